// The toxic-flow settings of an MCP proxy as the form edits them: JSON text,
// checked here before the API checks it again.

export const TOOL_LABELS = ["untrusted_source", "private_data", "external_sink", "destructive"] as const;
export type ToolLabel = (typeof TOOL_LABELS)[number];
export interface FlowRule {
  after: ToolLabel[];
  call: ToolLabel;
  action?: "block" | "alert";
}

/** What the gateway applies when a proxy sets no rules (docs/mcp.md). */
export const DEFAULT_FLOW_RULES: FlowRule[] = [
  { after: ["untrusted_source"], call: "external_sink", action: "block" },
  { after: ["untrusted_source"], call: "destructive", action: "block" },
  { after: ["private_data"], call: "external_sink", action: "alert" },
];

type Parsed<T> = { value: T; problem: null } | { value: null; problem: string };

const isLabel = (v: unknown): v is ToolLabel => typeof v === "string" && (TOOL_LABELS as readonly string[]).includes(v);
const labelList = TOOL_LABELS.join(", ");

function parseJson(text: string): Parsed<unknown> {
  try {
    return { value: JSON.parse(text) as unknown, problem: null };
  } catch {
    return { value: null, problem: "not valid JSON" };
  }
}

/** `{"tool or glob": ["label", ...]}`; empty text is no labels of the proxy's own. */
export function parseToolLabels(text: string): Parsed<Record<string, ToolLabel[]>> {
  if (!text.trim()) return { value: {}, problem: null };
  const parsed = parseJson(text);
  if (parsed.problem !== null) return parsed;
  const v = parsed.value;
  if (typeof v !== "object" || v === null || Array.isArray(v)) return { value: null, problem: 'an object such as {"read_*": ["private_data"]}' };
  for (const [tool, labels] of Object.entries(v)) {
    if (!tool.trim()) return { value: null, problem: "tool names must not be empty" };
    if (!Array.isArray(labels) || !labels.every(isLabel)) return { value: null, problem: `${tool}: a list of ${labelList}` };
  }
  return { value: v as Record<string, ToolLabel[]>, problem: null };
}

/** A list of rules; empty text is the defaults (`null`), `[]` is none. */
export function parseFlowRules(text: string): Parsed<FlowRule[] | null> {
  if (!text.trim()) return { value: null, problem: null };
  const parsed = parseJson(text);
  if (parsed.problem !== null) return parsed;
  const v = parsed.value;
  if (!Array.isArray(v)) return { value: null, problem: "a list of rules" };
  for (const [i, rule] of v.entries()) {
    const r = rule as Partial<FlowRule> | null;
    if (typeof r !== "object" || r === null) return { value: null, problem: `rule ${i + 1}: an object` };
    if (!Array.isArray(r.after) || r.after.length === 0 || !r.after.every(isLabel))
      return { value: null, problem: `rule ${i + 1}: "after" lists one or more of ${labelList}` };
    if (!isLabel(r.call)) return { value: null, problem: `rule ${i + 1}: "call" is one of ${labelList}` };
    if (r.action !== undefined && r.action !== "block" && r.action !== "alert") return { value: null, problem: `rule ${i + 1}: "action" is block or alert` };
  }
  return { value: v as FlowRule[], problem: null };
}

/** The text the form shows for stored settings. */
export function flowText(value: unknown): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "object" && Object.keys(value).length === 0 && !Array.isArray(value)) return "";
  return JSON.stringify(value, null, 1);
}
