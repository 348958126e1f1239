import { describe, expect, it } from "vitest";
import { linePath, niceCeil, scaleMax } from "./chart";
import { applyLive, countInto, describeEvent, TOP, type Dashboard } from "./dashboard";
import { formatCount, formatUsd, percent, portProblem, proxyNameProblem, urlProblem } from "./format";
import { Pager, usePages } from "./pager";

describe("chart geometry", () => {
  it("rounds the scale up to 1, 2 or 5 times a power of ten", () => {
    expect([0, 1, 3, 7, 12, 180, 501].map(niceCeil)).toEqual([0, 1, 5, 10, 20, 200, 1000]);
    expect(scaleMax([{ name: "a", values: [0, 0] }])).toBe(1);
    expect(scaleMax([{ name: "a", values: [3] }, { name: "b", values: [14] }])).toBe(20);
  });
  it("lays values across the width with 0 at the bottom", () => {
    expect(linePath([0, 5, 10], 100, 50, 10)).toBe("M0,50 L50,25 L100,0");
    expect(linePath([], 100, 50, 10)).toBe("");
    expect(linePath([20], 100, 50, 10)).toBe("M50,0");
  });
});

describe("formatting and validation", () => {
  it("formats counts, money and rates", () => {
    expect([formatCount(999), formatCount(12_345), formatCount(2_000_000)]).toEqual(["999", "12.3k", "2M"]);
    expect([formatUsd(0), formatUsd(0.004), formatUsd(12.345)]).toEqual(["$0.00", "<$0.01", "$12.35"]);
    expect([percent(1, 0), percent(1, 3), percent(1, 200)]).toEqual(["0%", "33%", "0.5%"]);
  });
  it("validates proxy fields like the server", () => {
    expect(proxyNameProblem("guarded-llm_1.0")).toBeNull();
    expect(proxyNameProblem("")).toMatch(/required/);
    expect(proxyNameProblem("bad name!")).toMatch(/Letters/);
    expect(proxyNameProblem("x".repeat(65))).toMatch(/64/);
    expect(urlProblem("http://127.0.0.1:9000")).toBeNull();
    expect(urlProblem("ftp://x")).toMatch(/http/);
    expect(urlProblem("nope")).toMatch(/valid/);
    expect([portProblem(""), portProblem("8080")]).toEqual([null, null]);
    expect(portProblem("70000")).toMatch(/65535/);
  });
});

describe("Pager", () => {
  it("goes forward with cursors and back to the previous page", () => {
    const p = new Pager<string>();
    expect(p.canGoBack).toBe(false);
    p.forward("c1");
    p.forward("c2");
    expect(p.current).toBe("c2");
    p.back();
    expect(p.current).toBe("c1");
    p.back();
    expect([p.current, p.canGoBack]).toEqual([null, false]);
  });
});

describe("usePages", () => {
  it("reloads on each move and only goes older when there is a next page", () => {
    let loads = 0;
    const pages = usePages<number>(async () => {
      loads += 1;
    });
    pages.older();
    expect(loads).toBe(0);
    pages.next.value = 40;
    pages.older();
    expect([pages.pager.current, pages.pager.canGoBack, loads]).toEqual([40, true, 1]);
    pages.newer();
    expect([pages.pager.current, loads]).toEqual([null, 2]);
    pages.next.value = 7;
    pages.older();
    pages.refilter();
    expect([pages.pager.current, pages.pager.canGoBack, loads]).toEqual([null, false, 4]);
  });
});

function board(): Dashboard {
  return {
    stats: {
      range: "1h",
      since: "2026-11-23T15:00:00Z",
      until: "2026-11-23T16:00:30Z",
      bucket_seconds: 60,
      buckets: [
        { start: "2026-11-23T15:59:00.000Z", requests: 1, errors: 0, blocked: 0, cost_usd: 0 },
        { start: "2026-11-23T16:00:00.000Z", requests: 2, errors: 0, blocked: 0, cost_usd: 0 },
      ],
      requests: 3,
      errors: 0,
      blocked: 0,
      cost_usd: 0,
      top_groups: [],
      top_models: [],
      spend_this_month_usd: 1,
      open_alerts: 0,
      proxies: { running: 1, stopped: 0, error: 0 },
    },
    alerts: [],
    proxies: [{ id: "p1", name: "main", status: { state: "running", gateway_path: "/p/main/", since: "" } } as never],
    events: [],
    groupNames: { g1: "team-one", g2: "team-two" },
  };
}

const event = (at: string, decision: "allowed" | "blocked" | "error") =>
  ({ type: "event", data: { id: at, at, decision, cost_usd: 0.5 } }) as never;

describe("applyLive", () => {
  it("counts an event into the current bucket and the totals", () => {
    const b = applyLive(board(), event("2026-11-23T16:00:40Z", "blocked"), 0);
    expect(b.stats.buckets.map((x) => x.requests)).toEqual([1, 3]);
    expect([b.stats.requests, b.stats.blocked, b.stats.spend_this_month_usd]).toEqual([4, 1, 1.5]);
    expect(b.events).toHaveLength(1);
  });
  it("opens a new bucket when time moved on, keeping the window's length", () => {
    const b = applyLive(board(), event("2026-11-23T16:01:05Z", "error"), 0);
    expect(b.stats.buckets.map((x) => [x.start, x.requests, x.errors])).toEqual([
      ["2026-11-23T16:00:00.000Z", 2, 0],
      ["2026-11-23T16:01:00.000Z", 1, 1],
    ]);
  });
  it("adds an alert once and counts it open", () => {
    const alert = { type: "alert", data: { id: "a1", rule: "PI-001" } } as never;
    const once = applyLive(board(), alert, 0);
    const twice = applyLive(once, alert, 0);
    expect(twice.alerts.map((a) => a.id)).toEqual(["a1"]);
    expect(twice.stats.open_alerts).toBe(1);
  });
  it("counts events into the top groups and models as they arrive", () => {
    const start = board();
    start.stats.top_groups = [{ id: "g1", name: "team-one", requests: 2, cost_usd: 1 }];
    start.stats.top_models = [{ id: "gpt-4o", name: "gpt-4o", requests: 2, cost_usd: 1 }];
    const call = (group: string | null, model: string | null, cost: number) =>
      ({ type: "event", data: { id: `${group}${model}${cost}`, at: "2026-11-23T16:00:40Z", decision: "allowed", group_id: group, model, cost_usd: cost } }) as never;
    let b = applyLive(start, call("g1", "gpt-4o", 0.5), 0);
    expect(b.stats.top_groups).toEqual([{ id: "g1", name: "team-one", requests: 3, cost_usd: 1.5 }]);
    expect(start.stats.top_groups[0]!.requests).toBe(2);
    // A group new to the list gets its name; it overtakes on spend.
    b = applyLive(b, call("g2", "claude", 2), 0);
    b = applyLive(b, call(null, null, 0), 0);
    expect(b.stats.top_groups.map((t) => [t.name, t.requests])).toEqual([["team-two", 1], ["team-one", 3], [null, 1]]);
    expect(b.stats.top_models.map((t) => [t.id, t.requests])).toEqual([["claude", 1], ["gpt-4o", 3], [null, 1]]);
  });
  it("leaves a full top list alone for an id it does not hold", () => {
    const full = Array.from({ length: TOP }, (_, i) => ({ id: `m${i}`, name: `m${i}`, requests: 10 - i, cost_usd: 0 }));
    expect(countInto(full, "other", "other", 5)).toBe(full);
    expect(countInto(full, "m4", "m4", 0)[4]).toEqual({ id: "m4", name: "m4", requests: 7, cost_usd: 0 });
  });
  it("labels LLM, MCP and A2A events by model, tool or agent method", () => {
    expect(describeEvent({ endpoint: "chat_completions", model: "gpt-4o", proxy_name: "main" })).toEqual({ protocol: "LLM", what: "gpt-4o" });
    expect(describeEvent({ endpoint: "mcp:tools/call", model: "add", proxy_name: "tools" })).toEqual({ protocol: "MCP", what: "tools/call add" });
    expect(describeEvent({ endpoint: "mcp:tools/list", model: null, proxy_name: "tools" })).toEqual({ protocol: "MCP", what: "tools/list" });
    expect(describeEvent({ endpoint: "mcp", model: null, proxy_name: "tools" })).toEqual({ protocol: "MCP", what: "request" });
    expect(describeEvent({ endpoint: "a2a:message/send", model: "helper", proxy_name: "helper" })).toEqual({ protocol: "A2A", what: "agent helper: message/send" });
  });
  it("updates a proxy's status and the counts", () => {
    const b = applyLive(board(), { type: "proxy_status", data: { proxy_id: "p1", proxy_name: "main", status: { state: "stopped", gateway_path: "", since: "" } } } as never, 0);
    expect(b.proxies[0]!.status.state).toBe("stopped");
    expect(b.stats.proxies).toEqual({ running: 0, stopped: 1, error: 0 });
  });
});

describe("useLoad", () => {
  it("keeps the latest load's answer when an older one finishes last", async () => {
    const { useLoad } = await import("./useLoad");
    const pending: ((v: string) => void)[] = [];
    const { data, loading, reload } = useLoad(() => new Promise<string>((r) => pending.push(r)), "initial");
    const first = reload();
    const second = reload();
    pending[1]?.("new");
    await second;
    pending[0]?.("stale");
    await first;
    expect(data.value).toBe("new");
    expect(loading.value).toBe(false);
  });
});
