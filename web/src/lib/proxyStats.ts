// The proxies page's per-proxy figures (from /api/v1/stats/proxies), formatted.
import type { Schemas } from "../api/client";
import { formatCount, percent } from "./format";

export type Figures = Schemas["ProxyFigures"];

export interface FigureText {
  requests: string;
  errorRate: string;
  blocked: string;
  p50: string;
  p95: string;
  tokens: string;
}

/** Milliseconds as "12.3 ms" or "1.20 s"; "—" without a measurement. */
export function formatLatency(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return "—";
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  return `${ms >= 100 ? ms.toFixed(0) : ms.toFixed(1)} ms`;
}

/** What a proxy's row shows; null when it had no traffic in the range. */
export function figureText(f: Figures | undefined): FigureText | null {
  if (!f || f.requests === 0) return null;
  return {
    requests: formatCount(f.requests),
    errorRate: percent(f.errors, f.requests),
    blocked: formatCount(f.blocked),
    p50: formatLatency(f.p50_latency_ms),
    p95: formatLatency(f.p95_latency_ms),
    tokens: `${formatCount(f.input_tokens)} in / ${formatCount(f.output_tokens)} out`,
  };
}

/** The figures by proxy id. */
export function byProxy(stats: Schemas["ProxyStats"]): Record<string, Figures> {
  return Object.fromEntries(stats.proxies.map((f) => [f.proxy_id, f]));
}
