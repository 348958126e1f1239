import { describe, expect, it } from "vitest";
import { DEFAULT_FLOW_RULES, flowText, parseFlowRules, parseToolLabels } from "./mcpFlows";

describe("toxic-flow settings", () => {
  it("reads tool labels, empty as none of the proxy's own", () => {
    expect(parseToolLabels("")).toEqual({ value: {}, problem: null });
    expect(parseToolLabels('{"read_*": ["private_data"], "fetch": []}')).toEqual({ value: { "read_*": ["private_data"], fetch: [] }, problem: null });
    expect(parseToolLabels("{nope").problem).toBe("not valid JSON");
    expect(parseToolLabels('["private_data"]').problem).toContain("an object");
    expect(parseToolLabels('{"x": ["secret"]}').problem).toContain("x: a list of untrusted_source");
  });
  it("reads rules: empty is the defaults, [] is none", () => {
    expect(parseFlowRules("  ")).toEqual({ value: null, problem: null });
    expect(parseFlowRules("[]")).toEqual({ value: [], problem: null });
    expect(parseFlowRules(JSON.stringify(DEFAULT_FLOW_RULES)).value).toEqual(DEFAULT_FLOW_RULES);
    expect(parseFlowRules('[{"after": [], "call": "destructive"}]').problem).toContain('rule 1: "after"');
    expect(parseFlowRules('[{"after": ["private_data"], "call": "mail"}]').problem).toContain('"call"');
    expect(parseFlowRules('[{"after": ["private_data"], "call": "external_sink", "action": "warn"}]').problem).toContain("block or alert");
    expect(parseFlowRules('{"after": []}').problem).toBe("a list of rules");
  });
  it("shows stored settings as text, nothing for defaults", () => {
    expect(flowText(null)).toBe("");
    expect(flowText(undefined)).toBe("");
    expect(flowText({})).toBe("");
    expect(flowText([])).toBe("[]");
    expect(JSON.parse(flowText({ a: ["destructive"] }))).toEqual({ a: ["destructive"] });
  });
});
