import { describe, expect, it } from "vitest";
import { DEFAULT_AGENT_POLICIES, policiesBody, policyChoice, policySummary, registration, skillList, skillsOf } from "./agent";

const blank = { url: "", card: "", name: "" };

describe("agent registration", () => {
  it("takes a URL or a pasted card", () => {
    expect(registration({ ...blank, url: " https://agent.example/ " })).toEqual({ ok: { url: "https://agent.example/" } });
    expect(registration({ ...blank, card: '{"name":"Helper"}', name: "helper" })).toEqual({ ok: { card: { name: "Helper" } } });
  });
  it("explains what is wrong", () => {
    const problems = (f: typeof blank) => ("problems" in registration(f) ? (registration(f) as { problems: Record<string, string> }).problems : {});
    expect(problems(blank).url).toMatch(/required/);
    expect(problems({ ...blank, url: "ftp://x" }).url).toMatch(/http/);
    expect(problems({ ...blank, url: "nope" }).url).toMatch(/valid URL/);
    expect(problems({ ...blank, url: "https://a", card: "{}" }).url).toMatch(/not both/);
    expect(problems({ ...blank, card: "[1]" }).card).toMatch(/object/);
    expect(problems({ ...blank, card: "{oops" }).card).toMatch(/Not valid JSON/);
    expect(problems({ ...blank, url: "https://a", name: "Bad Name" }).name).toMatch(/a-z/);
  });
  it("reads skills from a card", () => {
    expect(skillsOf({ skills: [{ id: "s1", name: "Search", description: "Finds" }, { id: "s2" }, { name: "no id" }, 3] })).toEqual([
      { id: "s1", name: "Search", description: "Finds" },
      { id: "s2", name: "s2", description: "" },
    ]);
    expect(skillsOf({})).toEqual([]);
    expect(skillsOf(null)).toEqual([]);
  });
  it("parses a skill list, blank meaning every skill", () => {
    expect(skillList(" a, b ,a,, ")).toEqual(["a", "b"]);
    expect(skillList("  ")).toBeNull();
  });
});

describe("agent policies", () => {
  it("reads an unset list as the default and a set one, even empty, as chosen", () => {
    expect(policyChoice(null)).toEqual({ mode: "default", names: DEFAULT_AGENT_POLICIES });
    expect(policyChoice(undefined).mode).toBe("default");
    expect(policyChoice([])).toEqual({ mode: "custom", names: [] });
    expect(policyChoice(["pii", "llm-critical-security"])).toEqual({ mode: "custom", names: ["pii", "llm-critical-security"] });
  });
  it("sends null for the default and the chosen packs otherwise, once each", () => {
    expect(policiesBody({ mode: "default", names: ["ignored"] })).toBeNull();
    expect(policiesBody({ mode: "custom", names: [] })).toEqual([]);
    expect(policiesBody({ mode: "custom", names: ["b", "a", "b"] })).toEqual(["a", "b"]);
  });
  it("says which packs scan the traffic", () => {
    expect(policySummary(null)).toBe("llm-critical-security (default)");
    expect(policySummary([])).toMatch(/not scanned/);
    expect(policySummary(["a", "b"])).toBe("a, b");
  });
});
