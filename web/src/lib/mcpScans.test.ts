import { describe, expect, it } from "vitest";
import { anyRunning, countList, findingRows, findingTool, mayScan, type Scan } from "./mcpScans";

function scan(server: string, findings: Scan["findings"], status: Scan["status"] = "done"): Scan {
  return {
    id: `s-${server}`,
    proxy_id: "p",
    server,
    transport: "streamable_http",
    target: "http://127.0.0.1:8000/mcp",
    requested_by: "user:admin",
    started_at: "2026-01-01T00:00:00Z",
    finished_at: null,
    status,
    error: null,
    max_severity: null,
    counts: { critical: 0, high: 0, medium: 0, low: 0, info: 0 },
    findings,
    server_info: { name: null, version: null, protocol_version: null, tools: 0, resources: 0, resources_read: 0, prompts: 0, warnings: [] },
  };
}

describe("MCP scans", () => {
  it("lets developers scan HTTP proxies and only admins stdio ones", () => {
    expect(mayScan("developer", {})).toBe(true);
    expect(mayScan("read_only", {})).toBe(false);
    expect(mayScan("developer", { upstream_command: "/usr/bin/python3" })).toBe(false);
    expect(mayScan("admin", { upstream_command: "/usr/bin/python3" })).toBe(true);
    expect(mayScan(null, {})).toBe(false);
  });
  it("names the tool of a finding", () => {
    expect(findingTool("tool:run_command")).toBe("run_command");
    expect(findingTool("tool:a:b")).toBe("a:b");
    expect(findingTool("server")).toBe("");
    expect(findingTool("resource:tool:x")).toBe("");
  });
  it("merges the servers' findings, most severe first", () => {
    const rows = findingRows([
      scan("a", [{ check: "well-known-name", severity: "low", target: "tool:read_file", message: "m1" }]),
      scan("b", [
        { check: "no-auth", severity: "high", target: "server", message: "m2" },
        { check: "poisoned-description", severity: "critical", target: "prompt:p", message: "m3", rules: ["MCP-001"] },
      ]),
    ]);
    expect(rows.map((r) => [r.severity, r.server, r.tool, r.subject])).toEqual([
      ["critical", "b", "", "prompt:p"],
      ["high", "b", "", "server"],
      ["low", "a", "read_file", ""],
    ]);
    expect(new Set(rows.map((r) => r.key)).size).toBe(3);
  });
  it("lists the non-zero counts and knows when to poll", () => {
    expect(countList({ critical: 1, high: 0, medium: 2, low: 0, info: 0 })).toEqual([["critical", 1], ["medium", 2]]);
    expect(anyRunning([scan("a", []), scan("b", [], "running")])).toBe(true);
    expect(anyRunning([scan("a", [], "failed")])).toBe(false);
  });
});
