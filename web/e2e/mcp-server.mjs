// A tiny MCP server (streamable HTTP, JSON answers) whose tool list the test can
// change, to see tools arrive pending and a changed one quarantined.
import { createServer } from "node:http";

export async function startMcpServer(tools) {
  const state = { tools };
  const server = createServer((req, res) => {
    if (req.method !== "POST") {
      res.writeHead(405).end();
      return;
    }
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      const msg = JSON.parse(body);
      if (msg.id === undefined) {
        res.writeHead(202).end();
        return;
      }
      let answer;
      if (msg.method === "initialize")
        answer = { result: { protocolVersion: msg.params?.protocolVersion ?? "2025-06-18", capabilities: { tools: {} }, serverInfo: { name: "e2e-tools", version: "1.0.0" } } };
      else if (msg.method === "tools/list") answer = { result: { tools: state.tools } };
      else answer = { error: { code: -32601, message: `no method ${msg.method}` } };
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ jsonrpc: "2.0", id: msg.id, ...answer }));
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/mcp`,
    setTools: (t) => (state.tools = t),
    stop: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** initialize, then tools/list through the gateway, as an MCP client does. */
export async function listTools(url, key) {
  let session;
  let n = 0;
  const rpc = async (method, params, notify = false) => {
    const headers = { authorization: `Bearer ${key}`, "content-type": "application/json", accept: "application/json, text/event-stream" };
    if (session) headers["mcp-session-id"] = session;
    const r = await fetch(url, { method: "POST", headers, body: JSON.stringify({ jsonrpc: "2.0", method, params, ...(notify ? {} : { id: ++n }) }) });
    session = r.headers.get("mcp-session-id") ?? session;
    const text = await r.text();
    if (!r.ok) throw new Error(`${method}: ${r.status} ${text}`);
    if (notify) return null;
    const json = (r.headers.get("content-type") ?? "").includes("event-stream")
      ? text.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5)).join("")
      : text;
    return JSON.parse(json);
  };
  await rpc("initialize", { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "console-e2e", version: "1" } });
  await rpc("notifications/initialized", {}, true);
  return (await rpc("tools/list", {})).result?.tools ?? [];
}
