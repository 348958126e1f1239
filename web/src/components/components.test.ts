import { mount } from "@vue/test-utils";
import { describe, expect, it } from "vitest";
import { nextTick } from "vue";
import ConfirmDialog from "./ConfirmDialog.vue";
import HighlightedText from "./HighlightedText.vue";
import LineChart from "./LineChart.vue";
import PagerButtons from "./PagerButtons.vue";
import ProblemList from "./ProblemList.vue";
import StateView from "./StateView.vue";
import { confirm } from "./confirm";

describe("StateView", () => {
  it("shows loading, then the error with a retry, then the empty text, then the content", async () => {
    const w = mount(StateView, { props: { loading: true, error: null }, slots: { default: "<p id='content'>rows</p>" } });
    expect(w.text()).toContain("Loading");
    await w.setProps({ loading: false, error: "store unavailable" });
    expect(w.get("[role=alert]").text()).toContain("store unavailable");
    await w.get("button").trigger("click");
    expect(w.emitted("retry")).toHaveLength(1);
    await w.setProps({ error: null, empty: true, emptyText: "No groups yet." });
    expect(w.text()).toContain("No groups yet.");
    expect(w.find("#content").exists()).toBe(false);
    await w.setProps({ empty: false });
    expect(w.find("#content").exists()).toBe(true);
  });
});

describe("ConfirmDialog", () => {
  it("resolves true on confirm and false on cancel", async () => {
    const w = mount(ConfirmDialog, { attachTo: document.body });
    const yes = confirm("Delete group?", "Its keys stop working.", "Delete");
    await nextTick();
    expect(w.text()).toContain("Its keys stop working.");
    await w.get("[data-test=confirm]").trigger("click");
    expect(await yes).toBe(true);
    const no = confirm("Revoke key?", "Callers are refused.");
    await nextTick();
    await w.findAll("button")[0]!.trigger("click");
    expect(await no).toBe(false);
    await nextTick();
    expect(w.find("[role=alertdialog]").exists()).toBe(false);
    w.unmount();
  });
});

describe("LineChart", () => {
  it("draws one path per series with the scale and totals", () => {
    const w = mount(LineChart, {
      props: { title: "Traffic", labels: ["10:00", "11:00"], series: [{ name: "requests", values: [1, 4, 2] }, { name: "blocked", values: [0, 1, 0] }] },
    });
    expect(w.findAll("path")).toHaveLength(2);
    expect(w.text()).toContain("requests 7");
    expect(w.text()).toContain("blocked 1");
    expect(w.findAll("text").map((t) => t.text())).toContain("5");
  });
});

describe("PagerButtons", () => {
  it("enables only the moves that exist and reports them", async () => {
    const w = mount(PagerButtons, { props: { canGoBack: false, hasNext: true } });
    const [newer, older] = w.findAll("button");
    expect(newer!.attributes("disabled")).toBeDefined();
    expect(older!.attributes("disabled")).toBeUndefined();
    await older!.trigger("click");
    expect(w.emitted("older")).toHaveLength(1);
    await w.setProps({ canGoBack: true, hasNext: false });
    expect(w.findAll("button")[1]!.attributes("disabled")).toBeDefined();
    await w.findAll("button")[0]!.trigger("click");
    expect(w.emitted("newer")).toHaveLength(1);
  });
});

describe("HighlightedText", () => {
  it("marks each span and keeps markup in the text as text", () => {
    const text = "é🙂 <b>BLUEBIRD</b> ok";
    const w = mount(HighlightedText, { props: { text, findings: [{ rule: "TEAM-1", spans: [{ start: 6, end: 14 }] }] } });
    const marks = w.findAll("mark");
    expect(marks.map((m) => m.text())).toEqual(["BLUEBIRD"]);
    expect(marks[0]?.attributes("title")).toBe("TEAM-1");
    expect(w.find("b").exists()).toBe(false);
    expect(w.get("pre").element.textContent).toBe(text);
  });
});

describe("ProblemList", () => {
  it("lists the API's problems, else shows the message", async () => {
    const w = mount(ProblemList, { props: { error: "a; b", problems: ["name: taken", "content: empty"] } });
    expect(w.findAll("li").map((li) => li.text())).toEqual(["name: taken", "content: empty"]);
    await w.setProps({ problems: [] });
    expect(w.get("[role=alert]").text()).toBe("a; b");
    await w.setProps({ error: null });
    expect(w.find("[role=alert]").exists()).toBe(false);
  });
});
