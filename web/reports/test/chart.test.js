// drawTimeline's paths that need no canvas, on a minimal stand-in for the DOM. Drawing the
// chart itself needs a browser: the gateway's report pages are checked in Chromium
// (tests/browser).
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { drawTimeline } from "../src/chart.js";
import { EMPTY_TEXT, INVALID_TEXT } from "../src/timeline.js";

function page({ data, chart = true }) {
  const doc = {
    documentElement: { lang: "en" },
    createElement: (tag) => ({ tagName: tag.toUpperCase(), className: "", textContent: "" }),
    elements: {},
    getElementById: (id) => doc.elements[id] ?? null,
  };
  if (data !== undefined) doc.elements["timeline-data"] = { textContent: data };
  if (chart) {
    doc.elements["timeline-chart"] = {
      ownerDocument: doc,
      clientWidth: 358,
      children: [{ tagName: "CANVAS" }],
      replaceChildren(...nodes) {
        this.children = nodes;
      },
    };
  }
  const win = { listeners: [], addEventListener: (type) => win.listeners.push(type) };
  return { doc, win, container: doc.elements["timeline-chart"] };
}

const EMPTY = JSON.stringify({
  hours: [1767225600, 1767229200],
  series: { sent: [0, 0], viewed: [0, 0], clicked: [0, 0], converted: [0, 0] },
});

describe("drawTimeline", () => {
  test("does nothing on a page without the timeline", () => {
    for (const { doc, win } of [page({ data: undefined }), page({ data: EMPTY, chart: false })]) {
      assert.equal(drawTimeline(doc, win), null);
      assert.deepEqual(win.listeners, []);
    }
  });

  test(`shows "${EMPTY_TEXT}" instead of an empty chart`, () => {
    const { doc, win, container } = page({ data: EMPTY });
    assert.equal(drawTimeline(doc, win), null);
    assert.equal(container.children.length, 1);
    const [p] = container.children;
    assert.equal(p.tagName, "P");
    assert.equal(p.textContent, "No sends in this period");
    assert.match(p.className, /\bchart-empty\b/);
    assert.deepEqual(win.listeners, []);
  });

  test("says the timeline could not be drawn, and why on the console, for bad data", (t) => {
    const errors = t.mock.method(console, "error", () => {});
    const { doc, win, container } = page({ data: '{"hours": [1], "series": {}}' });
    assert.equal(drawTimeline(doc, win), null);
    assert.equal(container.children[0].textContent, INVALID_TEXT);
    assert.match(container.children[0].className, /\bchart-error\b/);
    assert.equal(errors.mock.callCount(), 1);
    assert.match(errors.mock.calls[0].arguments[0], /SERIES_MISSING: series.sent is not an array/);
  });
});
