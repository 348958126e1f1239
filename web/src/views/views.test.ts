// Pages mounted against a stubbed network (the browser's fetch), as a user of
// each role: what they show and what they send.
import { flushPromises, mount } from "@vue/test-utils";
import { afterEach, describe, expect, it, vi } from "vitest";
import { session } from "../api/session";
import AgentsView from "./AgentsView.vue";
import BudgetsView from "./BudgetsView.vue";

type Route = (init: RequestInit | undefined) => unknown;
const sent: { method: string; path: string; body: unknown }[] = [];

/** Answers `METHOD /path` (query ignored) from `routes`; anything else is a 404. */
function network(routes: Record<string, Route>) {
  vi.stubGlobal("fetch", async (input: string, init?: RequestInit) => {
    const method = (init?.method ?? "GET").toUpperCase();
    const path = new URL(input, "http://console.test").pathname;
    sent.push({ method, path, body: init?.body ? JSON.parse(String(init.body)) : undefined });
    const route = routes[`${method} ${path}`];
    if (!route) return new Response(JSON.stringify({ error: { code: "not_found", message: path } }), { status: 404, headers: { "content-type": "application/json" } });
    return new Response(JSON.stringify(route(init)), { status: 200, headers: { "content-type": "application/json" } });
  });
  // The live feed is not part of these pages' tests.
  vi.stubGlobal("WebSocket", class { close() {} });
}

afterEach(() => {
  vi.unstubAllGlobals();
  sent.length = 0;
  session.role = null;
  session.token = null;
});

const budget = {
  id: "b1", scope: "group", target_id: "g1", target_name: "app-team", limit_usd: 250, warn_percent: 80, enforcement: "block", timezone: "UTC",
  created_at: "2026-11-01T00:00:00Z", updated_at: "2026-11-01T00:00:00Z",
  status: { state: "ok", spent_usd: 10, percent: 4, period: { start: "2026-11-01T00:00:00Z", end: "2026-12-01T00:00:00Z" } },
};

describe("budgets page", () => {
  const mutating = "[data-test=new-budget], [data-test=edit-budget], button";
  async function controls(role: "read_only" | "developer" | "admin") {
    session.token = "t";
    session.role = role;
    network({ "GET /api/v1/budgets": () => ({ budgets: [budget] }), "GET /api/v1/groups": () => [], "GET /api/v1/keys": () => [] });
    const w = mount(BudgetsView);
    await flushPromises();
    expect(w.find("[data-budget=app-team]").exists()).toBe(true);
    const labels = w.findAll(mutating).map((b) => b.text()).filter((t) => t !== "History");
    w.unmount();
    return labels;
  }
  it("shows its mutating controls to admins only (the API allows them to admins only)", async () => {
    expect(await controls("read_only")).toEqual([]);
    expect(await controls("developer")).toEqual([]);
    expect(await controls("admin")).toEqual(["New budget", "Edit", "Reset", "Delete"]);
  });
});

const agent = {
  id: "a1", name: "helper", base_url: null, card: { name: "Helper", skills: [{ id: "search", name: "Search" }] }, card_hash: "h", status: "approved",
  created_at: "2026-11-01T00:00:00Z", updated_at: "2026-11-01T00:00:00Z", refreshed_at: "2026-11-01T00:00:00Z", access: [], policies: null,
};
const packs = [
  { name: "llm-critical-security", builtin: true, description: "", rule_count: 10 },
  { name: "pii", builtin: true, description: "", rule_count: 5 },
];

describe("A2A agents page", () => {
  function serve(current: typeof agent) {
    let stored: Record<string, unknown> = { ...current };
    network({
      "GET /api/v1/a2a/agents": () => ({ agents: [stored] }),
      "GET /api/v1/a2a/tasks": () => ({ tasks: [] }),
      "GET /api/v1/groups": () => [],
      "GET /api/v1/credentials": () => [],
      "GET /api/v1/policies": () => packs,
      "PATCH /api/v1/a2a/agents/a1": (init) => (stored = { ...stored, ...JSON.parse(String(init?.body)) }),
    });
  }

  it("edits an agent's policies: chosen packs, then back to the default", async () => {
    session.token = "t";
    session.role = "developer";
    serve(agent);
    const w = mount(AgentsView);
    await flushPromises();
    expect(w.get("[data-agent=helper] [data-test=agent-policies]").text()).toBe("llm-critical-security (default)");
    await w.get("[data-agent=helper] td").trigger("click");
    const editor = () => w.get("[data-test=agent-policy-editor]");
    expect((editor().get("input[value=default]").element as HTMLInputElement).checked).toBe(true);
    await editor().get("input[value=custom]").setValue(true);
    await editor().get("input[value=pii]").setValue(true);
    await w.get("[data-test=save-agent]").trigger("submit");
    await flushPromises();
    const patch = sent.find((s) => s.method === "PATCH");
    expect(patch?.body).toMatchObject({ policies: ["llm-critical-security", "pii"] });
    expect(w.get("[data-agent=helper] [data-test=agent-policies]").text()).toBe("llm-critical-security, pii");

    // Unchecking every pack scans nothing; the default is null.
    await editor().get("input[value=llm-critical-security]").setValue(false);
    await editor().get("input[value=pii]").setValue(false);
    await w.get("form").trigger("submit");
    await flushPromises();
    expect(sent.filter((s) => s.method === "PATCH").at(-1)?.body).toMatchObject({ policies: [] });
    await editor().get("input[value=default]").setValue(true);
    await w.get("form").trigger("submit");
    await flushPromises();
    expect(sent.filter((s) => s.method === "PATCH").at(-1)?.body).toMatchObject({ policies: null });
    w.unmount();
  });

  it("shows a read-only user the policies without an editor", async () => {
    session.token = "t";
    session.role = "read_only";
    serve({ ...agent, policies: ["pii"] as never });
    const w = mount(AgentsView);
    await flushPromises();
    await w.get("[data-agent=helper] td").trigger("click");
    expect(w.get("[data-test=agent-policy-editor]").text()).toContain("pii");
    expect(w.find("[data-test=agent-policy-editor] input").exists()).toBe(false);
    expect(w.find("[data-test=save-agent]").exists()).toBe(false);
    expect(sent.some((s) => s.path === "/api/v1/policies")).toBe(false);
    w.unmount();
  });
});
