// A2A agent registration checks and card reading.
import { urlProblem } from "./format";

export interface Skill {
  id: string;
  name: string;
  description: string;
}

export type Registration = { url: string } | { card: Record<string, unknown> };

/** Register by URL or by a pasted card, never both; the name (optional) like the API wants it. */
export function registration(form: { url: string; card: string; name: string }): { ok: Registration } | { problems: Record<string, string> } {
  const problems: Record<string, string> = {};
  const url = form.url.trim();
  const text = form.card.trim();
  const name = form.name.trim();
  if (name && !/^[a-z0-9_-]{1,64}$/.test(name)) problems.name = "1 to 64 of a-z, 0-9, - and _.";
  if (url && text) problems.url = "Give the card's URL or paste the card, not both.";
  else if (!url && !text) problems.url = "The agent's base URL is required (its card is read from /.well-known/agent-card.json).";
  let card: Record<string, unknown> | null = null;
  if (url && !text) {
    const p = urlProblem(url);
    if (p) problems.url = p.replace("An upstream URL", "A URL");
  } else if (text && !url) {
    try {
      const parsed: unknown = JSON.parse(text);
      if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) problems.card = "The card is a JSON object.";
      else card = parsed as Record<string, unknown>;
    } catch (e) {
      problems.card = `Not valid JSON: ${e instanceof Error ? e.message : String(e)}`;
    }
  }
  if (Object.keys(problems).length > 0) return { problems };
  return { ok: card ? { card } : { url } };
}

/** The skills a card declares (entries without an id are skipped). */
export function skillsOf(card: unknown): Skill[] {
  const skills = (card as { skills?: unknown } | null)?.skills;
  if (!Array.isArray(skills)) return [];
  return skills
    .filter((s): s is Record<string, unknown> => !!s && typeof s === "object" && typeof (s as { id?: unknown }).id === "string")
    .map((s) => ({ id: s.id as string, name: typeof s.name === "string" ? s.name : (s.id as string), description: typeof s.description === "string" ? s.description : "" }));
}

/** "a, b" -> ["a", "b"]; blank -> null (every skill). */
export function skillList(text: string): string[] | null {
  const ids = text.split(",").map((s) => s.trim()).filter(Boolean);
  return ids.length > 0 ? [...new Set(ids)] : null;
}

/** The packs an agent uses when its `policies` are not set (`POLICY_PACKS` in the A2A relay). */
export const DEFAULT_AGENT_POLICIES = ["llm-critical-security"];

export interface PolicyChoice {
  /** "default": the gateway's packs for agents; "custom": exactly `names` (maybe none). */
  mode: "default" | "custom";
  names: string[];
}

/** The form's view of an agent's `policies`. */
export function policyChoice(policies: string[] | null | undefined): PolicyChoice {
  return policies === null || policies === undefined ? { mode: "default", names: [...DEFAULT_AGENT_POLICIES] } : { mode: "custom", names: [...policies] };
}

/** The `policies` of the update: null restores the default; a list replaces it. */
export function policiesBody(choice: PolicyChoice): string[] | null {
  return choice.mode === "default" ? null : [...new Set(choice.names)].sort();
}

/** One line saying which packs scan an agent's traffic. */
export function policySummary(policies: string[] | null | undefined): string {
  if (policies === null || policies === undefined) return `${DEFAULT_AGENT_POLICIES.join(", ")} (default)`;
  return policies.length === 0 ? "none: messages are not scanned" : policies.join(", ");
}
