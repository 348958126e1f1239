import { describe, expect, it, vi } from "vitest";
import { ApiError, buildUrl, createClient, errorOf } from "./client";
import { roleAllows } from "./session";

describe("buildUrl", () => {
  it("fills path parameters, encoded, and skips empty query values", () => {
    expect(buildUrl("/api/v1/keys/{id}/revoke", { id: "a b/c" }, { limit: 5, cursor: undefined, model: "" })).toBe(
      "/api/v1/keys/a%20b%2Fc/revoke?limit=5",
    );
  });
  it("refuses a missing path parameter", () => {
    expect(() => buildUrl("/api/v1/groups/{id}", {})).toThrow(/missing path parameter id/);
  });
});

describe("errorOf", () => {
  it("reads the admin API's error body", async () => {
    const e = await errorOf(new Response(JSON.stringify({ error: { code: "conflict", message: "name taken" } }), { status: 409 }));
    expect(e).toBeInstanceOf(ApiError);
    expect([e.status, e.code, e.message]).toEqual([409, "conflict", "name taken"]);
    expect(e.problems).toEqual([]);
  });
  it("keeps the list of problems of a 422", async () => {
    const body = { error: { code: "unprocessable", message: "a; b", problems: ["name: taken", "content: empty", 3] } };
    const e = await errorOf(new Response(JSON.stringify(body), { status: 422 }));
    expect(e.problems).toEqual(["name: taken", "content: empty"]);
  });
  it("falls back to the status when the body is not JSON", async () => {
    const e = await errorOf(new Response("<html>bad gateway</html>", { status: 502, statusText: "Bad Gateway" }));
    expect([e.status, e.code, e.message]).toEqual([502, "http_502", "Bad Gateway"]);
  });
});

describe("createClient", () => {
  it("sends the bearer token and JSON body, and parses the answer", async () => {
    const fetch = vi.fn(async () => new Response(JSON.stringify({ id: "g1", name: "team" }), { status: 201 }));
    const client = createClient({ token: () => "tok", fetch });
    const group = await client.call("post", "/api/v1/groups", { body: { name: "team" } });
    expect(group.name).toBe("team");
    const [url, init] = fetch.mock.calls[0] as unknown as [string, RequestInit];
    expect(url).toBe("/api/v1/groups");
    expect(init.method).toBe("POST");
    expect((init.headers as Record<string, string>).authorization).toBe("Bearer tok");
    expect(init.body).toBe('{"name":"team"}');
  });
  it("answers 204 with undefined", async () => {
    const client = createClient({ token: () => null, fetch: async () => new Response(null, { status: 204 }) });
    expect(await client.call("post", "/api/v1/auth/logout")).toBeUndefined();
  });
  it("reports a 401 so the session can end, and throws", async () => {
    const onUnauthenticated = vi.fn();
    const client = createClient({
      token: () => "expired",
      onUnauthenticated,
      fetch: async () => new Response(JSON.stringify({ error: { code: "unauthenticated", message: "log in" } }), { status: 401 }),
    });
    await expect(client.call("get", "/api/v1/groups")).rejects.toMatchObject({ status: 401, code: "unauthenticated" });
    expect(onUnauthenticated).toHaveBeenCalledOnce();
  });
  it("does not end the session on a 403", async () => {
    const onUnauthenticated = vi.fn();
    const client = createClient({
      token: () => "t",
      onUnauthenticated,
      fetch: async () => new Response(JSON.stringify({ error: { code: "forbidden", message: "needs developer" } }), { status: 403 }),
    });
    await expect(client.call("post", "/api/v1/groups", { body: { name: "x" } })).rejects.toThrow("needs developer");
    expect(onUnauthenticated).not.toHaveBeenCalled();
  });
});

describe("roleAllows", () => {
  it("orders read_only < developer < admin", () => {
    expect(roleAllows("admin", "developer")).toBe(true);
    expect(roleAllows("developer", "developer")).toBe(true);
    expect(roleAllows("read_only", "developer")).toBe(false);
    expect(roleAllows("developer", "admin")).toBe(false);
    expect(roleAllows(null, "read_only")).toBe(false);
    expect(roleAllows("superuser", "read_only")).toBe(false);
  });
});
