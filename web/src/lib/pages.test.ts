import { describe, expect, it } from "vitest";
import { highlightSegments } from "./highlight";
import { cloneName, packNameProblem, parsePack } from "./policyPack";
import { passwordProblem, priceProblems, userProblems } from "./settings";
import { bindingProblems, placeholders, promptProblems } from "./systemPrompt";

describe("dry-run highlighting", () => {
  it("cuts the text at the spans, counting characters, not UTF-16 units", () => {
    // "🙂" is one character but two UTF-16 units: offsets from the API count it once.
    const text = "é🙂 BLUEBIRD ok";
    const segs = highlightSegments(text, [{ rule: "R1", spans: [{ start: 3, end: 11 }] }]);
    expect(segs).toEqual([
      { text: "é🙂 ", rules: [] },
      { text: "BLUEBIRD", rules: ["R1"] },
      { text: " ok", rules: [] },
    ]);
    expect(segs.map((s) => s.text).join("")).toBe(text);
  });
  it("splits overlapping spans of several rules and merges equal neighbours", () => {
    const segs = highlightSegments("abcdefgh", [
      { rule: "B", spans: [{ start: 2, end: 6 }] },
      { rule: "A", spans: [{ start: 0, end: 4 }, { start: 4, end: 5 }] },
    ]);
    expect(segs).toEqual([
      { text: "ab", rules: ["A"] },
      { text: "cde", rules: ["A", "B"] },
      { text: "f", rules: ["B"] },
      { text: "gh", rules: [] },
    ]);
  });
  it("ignores empty, reversed and out-of-range spans, and findings without spans", () => {
    expect(highlightSegments("abc", [{ rule: "X", spans: [{ start: 2, end: 2 }, { start: 3, end: 1 }, { start: 2, end: 99 }] }, { rule: "Y" }])).toEqual([
      { text: "ab", rules: [] },
      { text: "c", rules: ["X"] },
    ]);
    expect(highlightSegments("", [{ rule: "X", spans: [{ start: 0, end: 1 }] }])).toEqual([]);
    expect(highlightSegments("<b>x</b>", [])).toEqual([{ text: "<b>x</b>", rules: [] }]);
  });
});

describe("system prompt form", () => {
  it("checks name, description and content like the API", () => {
    expect(promptProblems({ name: "support", description: "", content: "Today is {{date}}." })).toEqual({});
    const p = promptProblems({ name: " bad/name", description: "x".repeat(1001), content: "  " });
    expect(p.name).toMatch(/spaces|Letters/);
    expect(p.description).toMatch(/1000/);
    expect(p.content).toMatch(/required/);
    expect(promptProblems({ name: "a", description: "", content: "Hi {{ customer }} and {{user}}" }).content).toMatch(/\{\{customer\}\}/);
    expect(promptProblems({ name: "a", description: "", content: "x".repeat(32 * 1024 + 1) }).content).toMatch(/32 KiB/);
  });
  it("treats braces around anything but a name as text", () => {
    expect(placeholders('JSON: {{"a": 1}} for {{ user }} and {{user}} {{group}}')).toEqual(["user", "group"]);
  });
  it("checks every binding row", () => {
    expect(bindingProblems([{ target_kind: "proxy", target: "p1", priority: "10" }])).toEqual({});
    const p = bindingProblems([
      { target_kind: "proxy", target: "", priority: "0" },
      { target_kind: "group", target: "g1", priority: "1.5" },
      { target_kind: "group", target: "g1", priority: "0" },
      { target_kind: "proxy", target: "p1", priority: "2000000" },
    ]);
    expect(p[0]).toMatch(/Choose a proxy/);
    expect(p[1]).toMatch(/whole number/);
    expect(p[2]).toMatch(/twice/);
    expect(p[3]).toMatch(/1,000,000/);
  });
});

describe("settings forms", () => {
  it("checks users and passwords", () => {
    expect(userProblems({ username: "alice", password: "twelve-chars" })).toEqual({});
    expect(userProblems({ username: "", password: "short" })).toEqual({ username: "A user name is required.", password: "At least 12 characters." });
    expect(passwordProblem("é".repeat(12))).toBeNull();
    expect(passwordProblem("x".repeat(257))).toMatch(/256/);
  });
  it("checks prices", () => {
    expect(priceProblems({ model: "gpt-4o-mini", provider: "", input: "0.15", output: "0.6", cached: "" })).toEqual({});
    const p = priceProblems({ model: "bad model", provider: "x".repeat(33), input: "", output: "-1", cached: "1e9" });
    expect(Object.keys(p).sort()).toEqual(["cached", "input", "model", "output", "provider"]);
  });
});

describe("policy pack editing", () => {
  it("parses the JSON and keeps the name", () => {
    expect(parsePack('{"name": "mine", "rules": []}', "mine")).toEqual({ ok: true, pack: { name: "mine", rules: [] } });
    const bad = parsePack("{", "mine");
    expect(bad.ok).toBe(false);
    expect(!bad.ok && bad.problems[0]).toMatch(/Not valid JSON/);
    expect(parsePack("[]", "mine")).toEqual({ ok: false, problems: [expect.stringMatching(/JSON object/)] });
    const renamed = parsePack('{"name": "other"}', "mine");
    expect(!renamed.ok && renamed.problems).toEqual([expect.stringMatching(/must stay "mine"/), expect.stringMatching(/rules/)]);
  });
  it("proposes a free clone name and checks names", () => {
    expect(cloneName("secrets", ["secrets"])).toBe("secrets-copy");
    expect(cloneName("secrets", ["secrets-copy", "secrets-copy-2"])).toBe("secrets-copy-3");
    expect(packNameProblem("my_pack-1")).toBeNull();
    expect(packNameProblem("validate")).toMatch(/reserved/);
    expect(packNameProblem("a b")).toMatch(/letters/);
    expect(packNameProblem("")).toMatch(/required/);
  });
});
