import { describe, expect, it } from "vitest";
import { budgetProblems, isTimeZone, spentPercent } from "./budget";

const ok = { limit: "250", warn: "80", timezone: "UTC" };

describe("budget form", () => {
  it("accepts a valid form", () => {
    expect(budgetProblems(ok)).toEqual({});
    expect(budgetProblems({ ...ok, limit: "0.5", warn: "100", timezone: "Europe/Paris" })).toEqual({});
  });
  it("refuses limits the API refuses", () => {
    for (const limit of ["", "0", "-3", "abc", "2e9", "Infinity"]) expect(budgetProblems({ ...ok, limit }).limit).toMatch(/positive/);
  });
  it("wants a whole warning percent from 1 to 100", () => {
    for (const warn of ["", "0", "101", "12.5"]) expect(budgetProblems({ ...ok, warn }).warn).toMatch(/1 to 100/);
  });
  it("checks the time zone", () => {
    expect(budgetProblems({ ...ok, timezone: " " }).timezone).toMatch(/required/);
    expect(budgetProblems({ ...ok, timezone: "Mars/Olympus" }, () => false).timezone).toMatch(/IANA/);
    expect(isTimeZone("America/New_York")).toBe(true);
    expect(isTimeZone("Not/AZone")).toBe(false);
  });
  it("caps the spend bar", () => {
    expect([spentPercent(25, 100), spentPercent(300, 100), spentPercent(1, 0), spentPercent(-1, 10)]).toEqual([25, 100, 0, 0]);
  });
});
