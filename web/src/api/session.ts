// Who is logged in, with which role; the token lives in sessionStorage (this tab).
import { reactive } from "vue";
import { createClient, type Schemas } from "./client";

export type Role = Schemas["Role"];
const RANK: Record<string, number> = { read_only: 0, developer: 1, admin: 2 };
const TOKEN_KEY = "portcullis.token";

/** Whether `held` is at least `needed` (read_only < developer < admin). */
export function roleAllows(held: string | undefined | null, needed: Role): boolean {
  if (!held) return false;
  const h = RANK[held];
  const n = RANK[needed];
  return h !== undefined && n !== undefined && h >= n;
}

export interface SessionState {
  token: string | null;
  username: string | null;
  role: Role | null;
  mustChangePassword: boolean;
}

function storage(): Storage | null {
  try {
    return typeof sessionStorage === "undefined" ? null : sessionStorage;
  } catch {
    return null;
  }
}

export const session = reactive<SessionState>({
  token: storage()?.getItem(TOKEN_KEY) ?? null,
  username: null,
  role: null,
  mustChangePassword: false,
});

let onLogout: (() => void) | null = null;
/** What to do when the session ends (the router sends the user to the login page). */
export function whenLoggedOut(handler: () => void) {
  onLogout = handler;
}

export function clearSession() {
  session.token = null;
  session.username = null;
  session.role = null;
  session.mustChangePassword = false;
  storage()?.removeItem(TOKEN_KEY);
  onLogout?.();
}

export const api = createClient({
  token: () => session.token,
  onUnauthenticated: () => {
    if (session.token) clearSession();
  },
});

export function can(needed: Role): boolean {
  return roleAllows(session.role, needed);
}

export async function login(username: string, password: string) {
  const answer = await api.call("post", "/api/v1/auth/login", { body: { username, password } });
  session.token = answer.token;
  session.username = answer.user.username;
  session.role = answer.user.role;
  session.mustChangePassword = answer.user.must_change_password;
  storage()?.setItem(TOKEN_KEY, answer.token);
}

/** Fills the user from the stored token; false when there is none or it expired. */
export async function restore(): Promise<boolean> {
  if (!session.token) return false;
  if (session.role) return true;
  try {
    const me = await api.call("get", "/api/v1/auth/me");
    session.role = me.role;
    session.username = me.user?.username ?? me.key_prefix ?? null;
    session.mustChangePassword = me.user?.must_change_password ?? false;
    return true;
  } catch {
    return false;
  }
}

export async function logout() {
  try {
    await api.call("post", "/api/v1/auth/logout");
  } finally {
    clearSession();
  }
}

export async function changePassword(current: string, next: string) {
  await api.call("post", "/api/v1/auth/change-password", {
    body: { current_password: current, new_password: next },
  });
  session.mustChangePassword = false;
}
