// System prompt form checks, the same as the API's (system_prompts.rs `problems`
// and the template parser in portcullis-protocol).

export const VARIABLES = ["user", "group", "date", "organization", "proxy"] as const;
const MAX_CONTENT_BYTES = 32 * 1024;
const MAX_DESCRIPTION_CHARS = 1000;
const MAX_PRIORITY = 1_000_000;

export interface PromptForm {
  name: string;
  description: string;
  content: string;
}
export type PromptProblems = Partial<Record<keyof PromptForm, string>>;

/** Names: 1-64 of letters, digits, space and `._-@`, no outer spaces (api/mod.rs `check_name`). */
export function nameProblem(name: string, what = "A name"): string | null {
  if (!name.trim()) return `${what} is required.`;
  if (name.length > 64) return "At most 64 characters.";
  if (name.trim() !== name) return "No spaces at the start or the end.";
  if (!/^[A-Za-z0-9 ._@-]+$/.test(name)) return "Letters, digits, spaces and . _ - @ only.";
  return null;
}

/** The `{{name}}` placeholders of a template; braces around anything else are text. */
export function placeholders(content: string): string[] {
  const found: string[] = [];
  for (const m of content.matchAll(/\{\{([^}]*)\}\}/g)) {
    const name = (m[1] ?? "").trim();
    if (/^[A-Za-z0-9_.-]+$/.test(name) && !found.includes(name)) found.push(name);
  }
  return found;
}

export function promptProblems(form: PromptForm): PromptProblems {
  const problems: PromptProblems = {};
  const name = nameProblem(form.name);
  if (name) problems.name = name;
  if (Array.from(form.description).length > MAX_DESCRIPTION_CHARS)
    problems.description = `At most ${MAX_DESCRIPTION_CHARS} characters.`;
  if (!form.content.trim()) problems.content = "The prompt text is required.";
  else if (new TextEncoder().encode(form.content).length > MAX_CONTENT_BYTES) problems.content = "At most 32 KiB.";
  else {
    const unknown = placeholders(form.content).filter((v) => !(VARIABLES as readonly string[]).includes(v));
    if (unknown.length)
      problems.content = `Unknown variable${unknown.length > 1 ? "s" : ""} ${unknown.map((v) => `{{${v}}}`).join(", ")}; known: ${VARIABLES.map((v) => `{{${v}}}`).join(", ")}.`;
  }
  return problems;
}

export interface BindingRow {
  target_kind: "proxy" | "group";
  target: string;
  priority: string;
}

/** One problem per row index (the target and priority of each binding). */
export function bindingProblems(rows: BindingRow[]): Record<number, string> {
  const problems: Record<number, string> = {};
  const seen = new Set<string>();
  rows.forEach((row, i) => {
    const p = Number(row.priority);
    if (!row.target) problems[i] = `Choose a ${row.target_kind}.`;
    else if (seen.has(`${row.target_kind}:${row.target}`)) problems[i] = `This ${row.target_kind} is bound twice.`;
    else if (row.priority.trim() === "" || !Number.isInteger(p) || Math.abs(p) > MAX_PRIORITY)
      problems[i] = "Priority: a whole number between -1,000,000 and 1,000,000.";
    seen.add(`${row.target_kind}:${row.target}`);
  });
  return problems;
}
