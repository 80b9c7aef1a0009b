import assert from "node:assert/strict";
import { describe, mock, test } from "node:test";

import {
  EMPTY_TEXT,
  MIN_WIDTH,
  SERIES,
  chartOptions,
  hourRange,
  MIN_SPAN_SECONDS,
  chartSize,
  debounce,
  describeTimeline,
  numberFormat,
  parseTimeline,
  shapeTimeline,
  totals,
} from "../src/timeline.js";

const H = 3600;
const T0 = 1767225600; // 2026-01-01T00:00:00Z

const PER_HOUR = { sent: 100, viewed: 80, clicked: 10, converted: 1 };

function timeline(n = 3, fill = (key, i) => PER_HOUR[key] * (i + 1)) {
  const hours = Array.from({ length: n }, (_, i) => T0 + i * H);
  const series = Object.fromEntries(
    SERIES.map(({ key }) => [key, hours.map((_, i) => fill(key, i))]),
  );
  return { hours, series };
}

/** WCAG 2 contrast ratio of two #rrggbb colours. */
function contrastRatio(a, b) {
  const luminance = (hex) => {
    const [r, g, bl] = [1, 3, 5].map((i) => {
      const c = parseInt(hex.slice(i, i + 2), 16) / 255;
      return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * bl;
  };
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

describe("shapeTimeline", () => {
  test("turns hours and the four series into uPlot's columns, in legend order", () => {
    const shaped = shapeTimeline(timeline());
    assert.equal(shaped.ok, true);
    assert.equal(shaped.empty, false);
    assert.deepEqual(shaped.data, [
      [T0, T0 + H, T0 + 2 * H],
      [100, 200, 300],
      [80, 160, 240],
      [10, 20, 30],
      [1, 2, 3],
    ]);
  });

  test("does not share arrays with its input", () => {
    const input = timeline();
    const shaped = shapeTimeline(input);
    shaped.data[1][0] = 999;
    shaped.data[0][0] = 0;
    assert.equal(input.series.sent[0], 100);
    assert.equal(input.hours[0], T0);
  });

  test("keeps null counts as gaps", () => {
    const input = timeline();
    input.series.viewed[1] = null;
    const shaped = shapeTimeline(input);
    assert.equal(shaped.ok, true);
    assert.equal(shaped.data[2][1], null);
  });

  test("extra series are ignored", () => {
    const input = timeline();
    input.series.bounced = [1, 2, 3];
    assert.equal(shapeTimeline(input).data.length, 5);
  });

  test("no hours is empty", () => {
    const shaped = shapeTimeline(timeline(0));
    assert.equal(shaped.ok, true);
    assert.equal(shaped.empty, true);
  });

  test("hours with only zeros (or gaps) are empty", () => {
    const shaped = shapeTimeline(timeline(24, (key, i) => (i % 2 ? 0 : null)));
    assert.equal(shaped.ok, true);
    assert.equal(shaped.empty, true);
  });

  test("one send anywhere is not empty", () => {
    const shaped = shapeTimeline(timeline(24, (key, i) => (key === "sent" && i === 23 ? 1 : 0)));
    assert.equal(shaped.empty, false);
  });

  const broken = [
    ["null", null, "NOT_AN_OBJECT"],
    ["an array", [], "NOT_AN_OBJECT"],
    ["a number", 3, "NOT_AN_OBJECT"],
    ["no hours", { series: timeline().series }, "HOURS_NOT_AN_ARRAY"],
    ["hours as an object", { ...timeline(), hours: { 0: T0 } }, "HOURS_NOT_AN_ARRAY"],
    ["an hour as a string", { ...timeline(), hours: [T0, String(T0 + H), T0 + 2 * H] }, "HOUR_NOT_A_NUMBER"],
    ["an hour as NaN", { ...timeline(), hours: [T0, NaN, T0 + 2 * H] }, "HOUR_NOT_A_NUMBER"],
    ["hours out of order", { ...timeline(), hours: [T0, T0 + 2 * H, T0 + H] }, "HOURS_NOT_ASCENDING"],
    ["a repeated hour", { ...timeline(), hours: [T0, T0, T0 + H] }, "HOURS_NOT_ASCENDING"],
    ["no series", { hours: timeline().hours }, "SERIES_NOT_AN_OBJECT"],
    ["series as an array", { hours: timeline().hours, series: [] }, "SERIES_NOT_AN_OBJECT"],
  ];
  for (const [name, value, reason] of broken) {
    test(`rejects ${name} (${reason})`, () => {
      const shaped = shapeTimeline(value);
      assert.equal(shaped.ok, false);
      assert.equal(shaped.reason, reason);
      assert.equal(typeof shaped.detail, "string");
    });
  }

  for (const { key } of SERIES) {
    test(`rejects a missing series.${key}`, () => {
      const input = timeline();
      delete input.series[key];
      assert.deepEqual(shapeTimeline(input), {
        ok: false,
        reason: "SERIES_MISSING",
        detail: `series.${key} is not an array`,
      });
    });

    test(`rejects series.${key} shorter than hours`, () => {
      const input = timeline();
      input.series[key].pop();
      assert.deepEqual(shapeTimeline(input), {
        ok: false,
        reason: "LENGTH_MISMATCH",
        detail: `series.${key} has 2 values for 3 hours`,
      });
    });
  }

  const notCounts = [["negative", -1], ["a string", "5"], ["Infinity", Infinity], ["a boolean", true]];
  for (const [name, bad] of notCounts) {
    test(`rejects a count that is ${name}`, () => {
      const input = timeline();
      input.series.clicked[2] = bad;
      const shaped = shapeTimeline(input);
      assert.equal(shaped.reason, "VALUE_NOT_A_COUNT");
      assert.equal(shaped.detail, "series.clicked[2] is not a count");
    });
  }
});

describe("parseTimeline", () => {
  test("parses the embedded JSON", () => {
    assert.deepEqual(parseTimeline(JSON.stringify(timeline())), shapeTimeline(timeline()));
  });

  const notJson = [
    ["empty text", ""],
    ["no element text", null],
    ["HTML", "<p>hi</p>"],
    ["truncated JSON", '{"hours": [1'],
  ];
  for (const [name, text] of notJson) {
    test(`${name} is NOT_JSON`, () => {
      assert.equal(parseTimeline(text).reason, "NOT_JSON");
    });
  }
});

describe("the text alternative", () => {
  test("totals each series", () => {
    assert.deepEqual(totals(shapeTimeline(timeline()).data), [600, 480, 60, 6]);
  });

  test("names the hours and every series' total", () => {
    const data = shapeTimeline(timeline(24, () => 1000)).data;
    assert.equal(
      describeTimeline(data, "en-US"),
      "Hourly timeline over 24 hours: 24,000 sent, 24,000 viewed, 24,000 clicked, 24,000 converted.",
    );
    assert.match(describeTimeline(shapeTimeline(timeline(1)).data, "en-US"), /over 1 hour:/);
  });

  test("a page language that is not a valid tag falls back to the browser's", () => {
    assert.equal(numberFormat("not a language!").format(1), "1");
  });

  test("the empty message is what a reader sees", () => {
    assert.equal(EMPTY_TEXT, "No sends in this period");
  });
});

describe("the series' look", () => {
  for (const { key, stroke } of SERIES) {
    test(`${key}'s colour ${stroke} has at least 3:1 contrast against white`, () => {
      assert.ok(contrastRatio(stroke, "#ffffff") >= 3, `${contrastRatio(stroke, "#ffffff").toFixed(2)}:1`);
    });
  }

  test("colours and dashes are all different", () => {
    assert.equal(new Set(SERIES.map((s) => s.stroke)).size, SERIES.length);
    assert.equal(new Set(SERIES.map((s) => JSON.stringify(s.dash))).size, SERIES.length);
  });
});

describe("chartSize", () => {
  test("fills the container's width", () => {
    assert.deepEqual(chartSize(960), { width: 960, height: 320 });
    assert.deepEqual(chartSize(640.7), { width: 640, height: 320 });
  });

  test("fits a 390 px phone (358 px of content)", () => {
    const { width, height } = chartSize(358);
    assert.equal(width, 358);
    assert.ok(height >= 170 && height <= 200, String(height));
  });

  test("never collapses, even in a hidden container", () => {
    assert.deepEqual(chartSize(0), { width: MIN_WIDTH, height: 200 });
    assert.deepEqual(chartSize(NaN), { width: MIN_WIDTH, height: 200 });
  });
});

describe("chartOptions", () => {
  const options = chartOptions(800, "en-US");

  test("one line per series, with its label, colour and dash, after the time column", () => {
    assert.equal(options.series.length, 1 + SERIES.length);
    SERIES.forEach(({ label, stroke, dash }, i) => {
      const s = options.series[i + 1];
      assert.equal(s.label, label);
      assert.equal(s.stroke, stroke);
      assert.deepEqual(s.dash, dash ?? undefined);
    });
  });

  test("time on x, a legend, the container's size", () => {
    assert.equal(options.scales.x.time, true);
    assert.equal(options.legend.show, true);
    assert.equal(options.width, 800);
  });

  test("counts start at zero, read as whole numbers", () => {
    assert.deepEqual(options.scales.y.range(null, 3, 0), [0, 1.1]);
    assert.deepEqual(options.scales.y.range(null, 10, 1000), [0, 1100]);
    assert.deepEqual(options.axes[1].values(null, [0, 1000, 2000]), ["0", "1,000", "2,000"]);
    assert.ok(options.axes[1].incrs.every(Number.isInteger));
    assert.equal(options.series[1].value(null, 1234), "1,234");
    assert.equal(options.series[1].value(null, null), "–");
  });
});

describe("debounce", () => {
  test("runs once, after the last call of a burst", () => {
    mock.timers.enable({ apis: ["setTimeout"] });
    try {
      const calls = [];
      const resized = debounce((w) => calls.push(w), 150, globalThis);
      resized(400);
      mock.timers.tick(100);
      resized(390);
      mock.timers.tick(149);
      assert.deepEqual(calls, []);
      mock.timers.tick(1);
      assert.deepEqual(calls, [390]);
      resized(1024);
      mock.timers.tick(150);
      assert.deepEqual(calls, [390, 1024]);
    } finally {
      mock.timers.reset();
    }
  });
});

describe("hourRange", () => {
  test("widens a single hour to a readable window centred on it", () => {
    const hour = 1_800_000_000;
    const [from, to] = hourRange(hour, hour);
    assert.equal(to - from, MIN_SPAN_SECONDS);
    assert.equal((from + to) / 2, hour);
  });
  test("keeps a range that is already wide enough", () => {
    assert.deepEqual(hourRange(0, 86_400), [0, 86_400]);
  });
  test("passes an empty range through", () => {
    assert.deepEqual(hourRange(null, null), [null, null]);
  });
  test("is the x scale's range, taken from the data rather than uPlot's widened bounds", () => {
    const range = chartOptions(800, "en-US").scales.x.range;
    const lone = { data: [[7200], [3]] };
    // uPlot passes a single point widened by 86400 / 1e-3 seconds.
    assert.deepEqual(range(lone, 7200, 7200 + 86_400_000), hourRange(7200, 7200));
    assert.deepEqual(range({ data: [[]] }, null, null), [null, null]);
  });
});
