import { describe, expect, it } from "vitest";
import { byProxy, figureText, formatLatency, type Figures } from "./proxyStats";

const figures = (over: Partial<Figures>): Figures => ({
  proxy_id: "p1",
  proxy_name: "main",
  kind: "llm",
  requests: 200,
  errors: 3,
  blocked: 25,
  input_tokens: 12_500,
  output_tokens: 800,
  p50_latency_ms: 12.34,
  p95_latency_ms: 1530,
  latency_sample: 200,
  ...over,
});

describe("per-proxy figures", () => {
  it("formats latencies in ms or s, and a dash without any", () => {
    expect([formatLatency(null), formatLatency(undefined), formatLatency(0.4), formatLatency(12.34), formatLatency(250.4), formatLatency(1530)]).toEqual(["—", "—", "0.4 ms", "12.3 ms", "250 ms", "1.53 s"]);
  });
  it("shows requests, error rate, blocked, p50/p95 and tokens", () => {
    expect(figureText(figures({}))).toEqual({ requests: "200", errorRate: "1.5%", blocked: "25", p50: "12.3 ms", p95: "1.53 s", tokens: "12.5k in / 800 out" });
  });
  it("has nothing to show for a proxy without traffic", () => {
    expect(figureText(undefined)).toBeNull();
    expect(figureText(figures({ requests: 0, p50_latency_ms: null, p95_latency_ms: null }))).toBeNull();
  });
  it("indexes the figures by proxy id", () => {
    const stats = { range: "24h", since: "", until: "", latency_sample_limit: 500, proxies: [figures({}), figures({ proxy_id: "p2", requests: 1 })] } as const;
    expect(Object.keys(byProxy(stats as never))).toEqual(["p1", "p2"]);
    expect(byProxy(stats as never).p2!.requests).toBe(1);
  });
});
