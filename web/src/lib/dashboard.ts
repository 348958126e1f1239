// How a live message changes what the dashboard shows (pure, so it is tested).
import type { Schemas } from "../api/client";
import type { LiveMessage } from "../api/live";

export interface Dashboard {
  stats: Schemas["Stats"];
  alerts: Schemas["Alert"][];
  proxies: Schemas["ProxyView"][];
  events: Schemas["ProxyEvent"][];
}

const KEEP = 8;

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
