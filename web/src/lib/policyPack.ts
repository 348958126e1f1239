// Editing a user pack as JSON: parse the text and check what the API would
// refuse outright (the API's /policies/validate has the last word on rules).

export type PackParse = { ok: true; pack: Record<string, unknown> } | { ok: false; problems: string[] };

export function parsePack(text: string, name: string): PackParse {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return { ok: false, problems: [`Not valid JSON: ${e instanceof Error ? e.message : String(e)}`] };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    return { ok: false, problems: ["The pack must be a JSON object with name, description and rules."] };
  const pack = value as Record<string, unknown>;
  const problems: string[] = [];
  if (pack.name !== name) problems.push(`name: must stay ${JSON.stringify(name)} (clone the pack to copy it under another name).`);
  if (!Array.isArray(pack.rules)) problems.push("rules: a list of rules is required.");
  return problems.length ? { ok: false, problems } : { ok: true, pack };
}

/** A free name for a copy of `name`: `name-copy`, then `name-copy-2`, ... */
export function cloneName(name: string, taken: string[]): string {
  const base = `${name}-copy`.slice(0, 64);
  if (!taken.includes(base)) return base;
  for (let i = 2; ; i++) {
    const candidate = `${base.slice(0, 60)}-${i}`;
    if (!taken.includes(candidate)) return candidate;
  }
}

/** User pack names appear in URLs: 1-64 of letters, digits, `-` and `_` (policies.rs `name_problem`). */
export function packNameProblem(name: string): string | null {
  if (!name) return "A name is required.";
  if (name.length > 64 || !/^[A-Za-z0-9_-]+$/.test(name)) return "1-64 characters of letters, digits, - and _ (it appears in URLs).";
  if (name === "validate") return "\"validate\" is reserved.";
  return null;
}
