// The campaign report's hourly timeline, as data: reads the JSON the gateway embeds in the
// page (`<script type="application/json" id="timeline-data">`), checks it and shapes it into
// uPlot's column format. Pure: no DOM, no uPlot, so node's test runner covers it
// (test/timeline.test.js); src/reports.js draws what it returns.

/** The series in drawing order: key in the JSON, legend label, line colour and dash. */
export const SERIES = Object.freeze([
  // Colours have at least 3:1 contrast against white (WCAG 1.4.11, tested); the dashes tell
  // the lines apart for readers who cannot tell the colours apart.
  Object.freeze({ key: "sent", label: "Sent", stroke: "#1f5fbf", dash: null }),
  Object.freeze({ key: "viewed", label: "Viewed", stroke: "#7b3fc4", dash: [8, 4] }),
  Object.freeze({ key: "clicked", label: "Clicked", stroke: "#b34700", dash: [2, 3] }),
  Object.freeze({ key: "converted", label: "Converted", stroke: "#1a7a35", dash: [10, 3, 2, 3] }),
]);

export const EMPTY_TEXT = "No sends in this period";
export const INVALID_TEXT = "The timeline could not be drawn";

/** A number format for the page's language, or the browser's when that tag is not valid. */
export function numberFormat(locale) {
  try {
    return new Intl.NumberFormat(locale || undefined);
  } catch {
    return new Intl.NumberFormat();
  }
}

const isCount = (v) => v === null || (typeof v === "number" && Number.isFinite(v) && v >= 0);

/**
 * Checks the timeline object and returns uPlot's columns.
 *
 * @param {unknown} value the parsed JSON
 * @returns {{ok: true, empty: boolean, data: Array<Array<number|null>>}
 *   | {ok: false, reason: string, detail: string}}
 *   data = [hours, sent, viewed, clicked, converted]; empty when there are no hours or no
 *   series has a count above zero.
 */
export function shapeTimeline(value) {
  const fail = (reason, detail) => ({ ok: false, reason, detail });
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return fail("NOT_AN_OBJECT", "the timeline is not a JSON object");
  }
  const { hours, series } = /** @type {{hours?: unknown, series?: unknown}} */ (value);
  if (!Array.isArray(hours)) return fail("HOURS_NOT_AN_ARRAY", "hours is not an array");
  for (let i = 0; i < hours.length; i++) {
    const h = hours[i];
    if (typeof h !== "number" || !Number.isFinite(h)) {
      return fail("HOUR_NOT_A_NUMBER", `hours[${i}] is not a number of seconds`);
    }
    if (i > 0 && h <= hours[i - 1]) {
      return fail("HOURS_NOT_ASCENDING", `hours[${i}] is not after hours[${i - 1}]`);
    }
  }
  if (series === null || typeof series !== "object" || Array.isArray(series)) {
    return fail("SERIES_NOT_AN_OBJECT", "series is not an object");
  }
  const columns = [hours.slice()];
  let total = 0;
  for (const { key } of SERIES) {
    const values = /** @type {Record<string, unknown>} */ (series)[key];
    if (!Array.isArray(values)) return fail("SERIES_MISSING", `series.${key} is not an array`);
    if (values.length !== hours.length) {
      return fail(
        "LENGTH_MISMATCH",
        `series.${key} has ${values.length} values for ${hours.length} hours`,
      );
    }
    for (let i = 0; i < values.length; i++) {
      if (!isCount(values[i])) {
        return fail("VALUE_NOT_A_COUNT", `series.${key}[${i}] is not a count`);
      }
      total += values[i] ?? 0;
    }
    columns.push(values.slice());
  }
  return { ok: true, empty: total === 0, data: columns };
}

/**
 * Parses the embedded JSON text, then shapes it (see shapeTimeline).
 *
 * @param {string | null | undefined} text
 */
export function parseTimeline(text) {
  let value;
  try {
    value = JSON.parse(text ?? "");
  } catch {
    return { ok: false, reason: "NOT_JSON", detail: "the timeline data is not JSON" };
  }
  return shapeTimeline(value);
}

/** Totals per series, in SERIES order. */
export function totals(data) {
  return SERIES.map((_, i) => data[i + 1].reduce((sum, v) => sum + (v ?? 0), 0));
}

/**
 * The chart's text alternative (the canvas itself says nothing to a screen reader):
 * "Hourly timeline over 24 hours: 1,000 sent, 800 viewed, 120 clicked, 9 converted."
 */
export function describeTimeline(data, locale) {
  const hours = data[0].length;
  const fmt = numberFormat(locale);
  const parts = totals(data).map((n, i) => `${fmt.format(n)} ${SERIES[i].key}`);
  return `Hourly timeline over ${fmt.format(hours)} hour${hours === 1 ? "" : "s"}: ${parts.join(", ")}.`;
}

export const MIN_WIDTH = 240;
export const MAX_HEIGHT = 320;
export const MIN_HEIGHT = 200;

/**
 * The plot's size for a container width: as wide as the container (never below MIN_WIDTH),
 * a bit flatter than 16:9 on a desktop and taller than that on a phone.
 *
 * @param {number} containerWidth CSS pixels
 */
export function chartSize(containerWidth) {
  const width = Math.max(MIN_WIDTH, Math.floor(Number.isFinite(containerWidth) ? containerWidth : 0));
  const height = Math.min(MAX_HEIGHT, Math.max(MIN_HEIGHT, Math.round(width * 0.5)));
  return { width, height };
}

/**
 * Calls `fn` once, `wait` ms after the last of a burst of calls (window resize events).
 *
 * @template {unknown[]} A
 * @param {(...args: A) => void} fn
 * @param {number} wait
 * @param {{setTimeout: typeof setTimeout, clearTimeout: typeof clearTimeout}} [timers]
 */
export function debounce(fn, wait, timers = globalThis) {
  let handle = null;
  return (...args) => {
    if (handle !== null) timers.clearTimeout(handle);
    handle = timers.setTimeout(() => {
      handle = null;
      fn(...args);
    }, wait);
  };
}

// Whole-number tick steps for the count axis (1, 2, 5, 10, 20, 50, ...): no "0.5 sends".
const COUNT_STEPS = [];
for (let magnitude = 1; magnitude <= 1e9; magnitude *= 10) {
  COUNT_STEPS.push(magnitude, 2 * magnitude, 5 * magnitude);
}

const HOUR_SECONDS = 3600;
// The narrowest time window the chart shows: a run's single hour would otherwise be
// stretched by uPlot over a range of years.
export const MIN_SPAN_SECONDS = 6 * HOUR_SECONDS;

/**
 * The x range for data from `min` to `max` (epoch seconds): the data's own range when it
 * spans at least MIN_SPAN_SECONDS, else a window of that width centred on the data.
 *
 * @param {number | null} min
 * @param {number | null} max
 * @returns {[number | null, number | null]}
 */
export function hourRange(min, max) {
  if (min === null || max === null || !Number.isFinite(min) || !Number.isFinite(max)) {
    return [min, max];
  }
  const pad = Math.max(0, (MIN_SPAN_SECONDS - (max - min)) / 2);
  return [min - pad, max + pad];
}

/**
 * The x scale's range function: from the data's own first and last hour, because uPlot
 * widens a single point by 86400 / its `ms` option before asking, which with epoch
 * seconds is 1,000 days.
 *
 * @param {{data: ArrayLike<ArrayLike<number | null>>}} u
 * @param {number | null} min
 * @param {number | null} max
 */
export function xRange(u, min, max) {
  const hours = u && u.data && u.data[0];
  if (hours && hours.length > 0) return hourRange(hours[0], hours[hours.length - 1]);
  return hourRange(min, max);
}

/**
 * uPlot's options for the timeline at a container width: one line per series with its
 * colour and dash, a legend, time on x in the browser's local time (uPlot's default for
 * `time: true` scales, values in epoch seconds), whole counts from zero on y.
 *
 * @param {number} containerWidth
 * @param {string} [locale]
 */
export function chartOptions(containerWidth, locale) {
  const fmt = numberFormat(locale);
  const count = (_u, v) => (v === null || v === undefined ? "–" : fmt.format(v));
  return {
    ...chartSize(containerWidth),
    scales: {
      x: { time: true, range: xRange },
      y: { range: (_u, _min, max) => [0, Math.max(1, max) * 1.1] },
    },
    series: [
      { label: "Hour" },
      ...SERIES.map(({ label, stroke, dash }) => ({
        label,
        stroke,
        width: 2,
        ...(dash ? { dash } : {}),
        value: count,
        points: { size: 5 },
      })),
    ],
    axes: [
      {},
      { incrs: COUNT_STEPS, values: (_u, splits) => splits.map((v) => fmt.format(v)), size: 56 },
    ],
    legend: { show: true, live: true },
  };
}
