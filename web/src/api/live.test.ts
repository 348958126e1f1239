import { afterEach, describe, expect, it, vi } from "vitest";
import { backoff, connectLive, liveUrl, parseLive, type LiveMessage } from "./live";

describe("parseLive", () => {
  it("accepts the server's message kinds only", () => {
    expect(parseLive('{"type":"alert","data":{"id":"a1"}}')).toEqual({ type: "alert", data: { id: "a1" } });
    expect(parseLive('{"type":"nope","data":{}}')).toBeNull();
    expect(parseLive('{"type":"event"}')).toBeNull();
    expect(parseLive("not json")).toBeNull();
  });
});

describe("liveUrl and backoff", () => {
  it("follows the page's scheme and encodes the ticket", () => {
    expect(liveUrl({ protocol: "https:", host: "gw:8443" }, "a+b")).toBe("wss://gw:8443/api/v1/ws?ticket=a%2Bb");
    expect(liveUrl({ protocol: "http:", host: "127.0.0.1:8080" }, "t")).toBe("ws://127.0.0.1:8080/api/v1/ws?ticket=t");
  });
  it("doubles up to the cap", () => {
    expect([0, 1, 2].map((n) => backoff(n))).toEqual([500, 1000, 2000]);
    expect(backoff(30, 15_000)).toBe(15_000);
  });
});

class FakeSocket {
  static last: FakeSocket | null = null;
  onopen: (() => void) | null = null;
  onmessage: ((e: { data: string }) => void) | null = null;
  onclose: (() => void) | null = null;
  closed = false;
  constructor(readonly url: string) {
    FakeSocket.last = this;
  }
  close() {
    this.closed = true;
  }
}

describe("connectLive", () => {
  afterEach(() => vi.useRealTimers());

  it("opens with a fresh ticket, delivers messages, and reconnects after a drop", async () => {
    vi.useFakeTimers();
    let n = 0;
    const received: LiveMessage[] = [];
    const states: string[] = [];
    const live = connectLive({
      ticket: async () => `t${++n}`,
      onMessage: (m) => received.push(m),
      onState: (s) => states.push(s),
      socket: (url) => new FakeSocket(url) as unknown as WebSocket,
      location: { protocol: "http:", host: "h" },
    });
    await vi.advanceTimersByTimeAsync(0);
    const first = FakeSocket.last!;
    expect(first.url).toBe("ws://h/api/v1/ws?ticket=t1");
    first.onopen?.();
    first.onmessage?.({ data: '{"type":"proxy_status","data":{"proxy_id":"p"}}' });
    first.onmessage?.({ data: "garbage" });
    expect(received).toHaveLength(1);
    first.onclose?.();
    await vi.advanceTimersByTimeAsync(600);
    expect(FakeSocket.last!.url).toBe("ws://h/api/v1/ws?ticket=t2");
    live.stop();
    expect(FakeSocket.last!.closed).toBe(true);
    expect(states).toContain("open");
    expect(states[states.length - 1]).toBe("closed");
  });
});
