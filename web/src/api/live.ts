// The live feed: a WebSocket opened with a single-use ticket (browsers cannot
// send the bearer header on a WebSocket), reconnecting with backoff.
import type { Schemas } from "./client";

export type LiveMessage =
  | { type: "event"; data: Schemas["ProxyEvent"] }
  | { type: "alert"; data: Schemas["Alert"] }
  | {
      type: "proxy_status";
      data: { proxy_id: string; proxy_name: string; status: Schemas["ProxyStatus"] };
    }
  | { type: "lagged"; data: { lost: number } };

export type LiveState = "connecting" | "open" | "closed";

export interface LiveOptions {
  ticket: () => Promise<string>;
  onMessage: (message: LiveMessage) => void;
  onState?: (state: LiveState) => void;
  /** For tests. */
  socket?: (url: string) => WebSocket;
  location?: { protocol: string; host: string };
  maxBackoffMs?: number;
}

export function parseLive(text: string): LiveMessage | null {
  try {
    const value = JSON.parse(text) as { type?: unknown; data?: unknown };
    if (
      typeof value?.type === "string" &&
      ["event", "alert", "proxy_status", "lagged"].includes(value.type) &&
      typeof value.data === "object" &&
      value.data !== null
    ) {
      return value as LiveMessage;
    }
  } catch {
    // Ignored: not a message of ours.
  }
  return null;
}

export function liveUrl(location: { protocol: string; host: string }, ticket: string): string {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/api/v1/ws?ticket=${encodeURIComponent(ticket)}`;
}

/** Next reconnect delay: doubles from 500 ms up to the cap. */
export function backoff(attempt: number, capMs = 15_000): number {
  return Math.min(capMs, 500 * 2 ** Math.min(attempt, 10));
}

/** Connects and keeps connecting until `stop()` is called. */
export function connectLive(options: LiveOptions): { stop: () => void } {
  const open = options.socket ?? ((url: string) => new WebSocket(url));
  const where = options.location ?? window.location;
  let stopped = false;
  let attempt = 0;
  let socket: WebSocket | null = null;
  let timer: ReturnType<typeof setTimeout> | null = null;

  const retry = () => {
    if (stopped) return;
    options.onState?.("closed");
    timer = setTimeout(connect, backoff(attempt++, options.maxBackoffMs));
  };

  async function connect() {
    if (stopped) return;
    options.onState?.("connecting");
    let ticket: string;
    try {
      ticket = await options.ticket();
    } catch {
      retry();
      return;
    }
    if (stopped) return;
    socket = open(liveUrl(where, ticket));
    socket.onopen = () => {
      attempt = 0;
      options.onState?.("open");
    };
    socket.onmessage = (e: MessageEvent) => {
      const message = typeof e.data === "string" ? parseLive(e.data) : null;
      if (message) options.onMessage(message);
    };
    socket.onclose = () => {
      socket = null;
      retry();
    };
  }

  void connect();
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      socket?.close();
      options.onState?.("closed");
    },
  };
}
