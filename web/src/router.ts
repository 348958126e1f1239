import { createRouter, createWebHistory, type RouteRecordRaw } from "vue-router";
import { restore, session, whenLoggedOut } from "./api/session";
import DashboardView from "./views/DashboardView.vue";
import LoginView from "./views/LoginView.vue";

// The dashboard and login are in the initial bundle; other pages load on demand.
export const routes: RouteRecordRaw[] = [
  { path: "/login", name: "login", component: LoginView, meta: { public: true, title: "Log in" } },
  { path: "/", name: "dashboard", component: DashboardView, meta: { title: "Dashboard" } },
  { path: "/proxies", name: "proxies", component: () => import("./views/ProxiesView.vue"), meta: { title: "Proxies" } },
  { path: "/alerts", name: "alerts", component: () => import("./views/AlertsView.vue"), meta: { title: "Alerts" } },
  { path: "/events", name: "events", component: () => import("./views/EventsView.vue"), meta: { title: "Traffic events" } },
  { path: "/groups", name: "groups", component: () => import("./views/GroupsView.vue"), meta: { title: "Groups" } },
  { path: "/keys", name: "keys", component: () => import("./views/KeysView.vue"), meta: { title: "API keys" } },
  { path: "/credentials", name: "credentials", component: () => import("./views/CredentialsView.vue"), meta: { title: "Provider credentials" } },
  { path: "/policies", name: "policies", component: () => import("./views/PoliciesView.vue"), meta: { title: "Policies" } },
  { path: "/system-prompts", name: "system-prompts", component: () => import("./views/SystemPromptsView.vue"), meta: { title: "System prompts" } },
  { path: "/agents", name: "agents", component: () => import("./views/AgentsView.vue"), meta: { title: "A2A agents" } },
  { path: "/budgets", name: "budgets", component: () => import("./views/BudgetsView.vue"), meta: { title: "Budgets" } },
  { path: "/usage", name: "usage", component: () => import("./views/UsageView.vue"), meta: { title: "Usage" } },
  { path: "/mcp-tools", name: "mcp-tools", component: () => import("./views/McpToolsView.vue"), meta: { title: "MCP tools" } },
  { path: "/audit", name: "audit", component: () => import("./views/AuditView.vue"), meta: { title: "Audit log" } },
  { path: "/settings", name: "settings", component: () => import("./views/SettingsView.vue"), meta: { title: "Settings" } },
  { path: "/password", name: "password", component: () => import("./views/PasswordView.vue"), meta: { title: "Change password" } },
  { path: "/:rest(.*)*", name: "missing", component: () => import("./views/NotFoundView.vue"), meta: { title: "Not found" } },
];

export const router = createRouter({ history: createWebHistory(), routes });

router.beforeEach(async (to) => {
  if (to.meta.public) return true;
  if (!(await restore())) return { name: "login", query: { next: to.fullPath } };
  if (session.mustChangePassword && to.name !== "password") return { name: "password" };
  return true;
});

router.afterEach((to) => {
  document.title = `${(to.meta.title as string) ?? "Console"} · Portcullis`;
});

whenLoggedOut(() => {
  if (router.currentRoute.value.name !== "login") void router.push({ name: "login" });
});
