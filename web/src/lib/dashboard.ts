// How a live message changes what the dashboard shows (pure, so it is tested).
import type { Schemas } from "../api/client";
import type { LiveMessage } from "../api/live";

export interface Dashboard {
  stats: Schemas["Stats"];
  alerts: Schemas["Alert"][];
  proxies: Schemas["ProxyView"][];
  events: Schemas["ProxyEvent"][];
  /** Group names by id, for groups that enter the top list live. */
  groupNames: Record<string, string>;
}

const KEEP = 8;
/** The length of the server's top lists (`TOP` in api/stats.rs). */
export const TOP = 5;

type Top = Schemas["Top"];

/**
 * Counts one exchange into a top list, ordered as the server orders it (spend,
 * then requests). A list shorter than TOP holds every id with traffic in the
 * range, so a new id has just this request; when the list is full a new id's
 * figures are unknown and it is left to the next load.
 */
export function countInto(top: Top[], id: string | null, name: string | null, cost: number): Top[] {
  const at = top.findIndex((t) => (t.id ?? null) === id);
  let next: Top[];
  if (at >= 0) next = top.map((t, i) => (i === at ? { ...t, requests: t.requests + 1, cost_usd: t.cost_usd + cost } : t));
  else if (top.length < TOP) next = [...top, { id, name, requests: 1, cost_usd: cost }];
  else return top;
  return next.sort((a, b) => b.cost_usd - a.cost_usd || b.requests - a.requests);
}

/** How the live feed names an exchange: by protocol, and the model, tool or method. */
export function describeEvent(e: Pick<Schemas["ProxyEvent"], "endpoint" | "model" | "proxy_name">): { protocol: "LLM" | "MCP" | "A2A"; what: string } {
  const [family, method = ""] = (e.endpoint ?? "").split(/:(.*)/s);
  if (family === "mcp") {
    const call = method || "request";
    // MCP events carry the tool (or prompt) called in `model`.
    return { protocol: "MCP", what: e.model ? `${call} ${e.model}` : call };
  }
  if (family === "a2a") return { protocol: "A2A", what: `agent ${e.proxy_name}: ${method || "request"}` };
  return { protocol: "LLM", what: e.model ?? e.endpoint ?? "" };
}

export function applyLive(board: Dashboard, message: LiveMessage, nowMs: number): Dashboard {
  switch (message.type) {
    case "event": {
      const e = message.data;
      const stats = { ...board.stats, buckets: [...board.stats.buckets] };
      stats.requests += 1;
      if (e.decision === "blocked") stats.blocked += 1;
      if (e.decision === "error") stats.errors += 1;
      stats.cost_usd += e.cost_usd ?? 0;
      stats.spend_this_month_usd += e.cost_usd ?? 0;
      // Into the bucket it falls in; a new bucket when time moved past the last.
      const width = stats.bucket_seconds * 1000;
      const at = Number.isNaN(Date.parse(e.at)) ? nowMs : Date.parse(e.at);
      const last = stats.buckets[stats.buckets.length - 1];
      if (last) {
        const lastStart = Date.parse(last.start);
        let target = last;
        if (at >= lastStart + width) {
          const start = new Date(Math.floor(at / width) * width).toISOString();
          target = { start, requests: 0, errors: 0, blocked: 0, cost_usd: 0 };
          stats.buckets.push(target);
          stats.buckets.shift();
        } else {
          target = { ...last };
          stats.buckets[stats.buckets.length - 1] = target;
        }
        target.requests += 1;
        if (e.decision === "blocked") target.blocked += 1;
        if (e.decision === "error") target.errors += 1;
        target.cost_usd += e.cost_usd ?? 0;
      }
      const cost = e.cost_usd ?? 0;
      const group = e.group_id ?? null;
      stats.top_groups = countInto(stats.top_groups, group, group === null ? null : (board.groupNames[group] ?? null), cost);
      stats.top_models = countInto(stats.top_models, e.model ?? null, e.model ?? null, cost);
      return { ...board, stats, events: [e, ...board.events].slice(0, KEEP) };
    }
    case "alert": {
      if (board.alerts.some((a) => a.id === message.data.id)) return board;
      const stats = { ...board.stats, open_alerts: board.stats.open_alerts + 1 };
      return { ...board, stats, alerts: [message.data, ...board.alerts].slice(0, KEEP) };
    }
    case "proxy_status": {
      const { proxy_id, status } = message.data;
      const proxies = board.proxies.map((p) => (p.id === proxy_id ? { ...p, status } : p));
      const counts = { running: 0, stopped: 0, error: 0 };
      for (const p of proxies) counts[p.status.state] += 1;
      // Proxies the board has not loaded yet keep the server's counts.
      const known = proxies.some((p) => p.id === proxy_id);
      return { ...board, proxies, stats: known ? { ...board.stats, proxies: counts } : board.stats };
    }
    case "lagged":
      return board;
  }
}
