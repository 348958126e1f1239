// Scans of MCP proxies' servers: who may start one, and how findings and
// counts are shown.
import type { Schemas } from "../api/client";
import { roleAllows } from "../api/session";

export type Scan = Schemas["McpScan"];
export type Severity = Schemas["Severity"];

export const SEVERITIES: Severity[] = ["critical", "high", "medium", "low", "info"];

/** A scan of an HTTP proxy needs a developer; a stdio proxy's scan starts its
 * program, so it needs an admin (as configuring the program does). */
export function mayScan(role: string | null | undefined, proxy: { upstream_command?: string | null }): boolean {
  return roleAllows(role, proxy.upstream_command ? "admin" : "developer");
}

/** The tool a finding is about (`tool:NAME`), or "" for the server, a prompt or a resource. */
export function findingTool(target: string): string {
  return target.startsWith("tool:") ? target.slice("tool:".length) : "";
}

/** What a finding is about, when it is not a tool: `prompt:x`, `resource:y`, `server`. */
export function findingSubject(target: string): string {
  return findingTool(target) ? "" : target;
}

export interface FindingRow {
  key: string;
  severity: Severity;
  check: string;
  server: string;
  tool: string;
  subject: string;
  message: string;
}

/** The findings of several scans (one per server of a proxy) as one table, most severe first. */
export function findingRows(scans: Scan[]): FindingRow[] {
  const rows = scans.flatMap((s) =>
    s.findings.map((f, i) => ({
      key: `${s.id}:${i}`,
      severity: f.severity,
      check: f.check,
      server: s.server ?? "",
      tool: findingTool(f.target),
      subject: findingSubject(f.target),
      message: f.message,
    })),
  );
  return rows.sort((a, b) => SEVERITIES.indexOf(a.severity) - SEVERITIES.indexOf(b.severity));
}

/** The non-zero counts, most severe first: [["critical", 1], ["high", 3]]. */
export function countList(counts: Scan["counts"]): [Severity, number][] {
  return SEVERITIES.map((s) => [s, counts[s]] as [Severity, number]).filter(([, n]) => n > 0);
}

/** Whether the list should be polled again. */
export function anyRunning(scans: Scan[]): boolean {
  return scans.some((s) => s.status === "running");
}
