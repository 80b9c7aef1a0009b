// The campaign report's timeline chart: draws the hourly timeline from the JSON the gateway
// embeds (`<script type="application/json" id="timeline-data">`) into `#timeline-chart` with uPlot.
// The pages' CSP allows no inline style: uPlot sets element styles through the CSSOM, which
// CSP permits, and this script adds no <style> element and no style attribute.
import uPlot from "uplot";

import {
  EMPTY_TEXT,
  INVALID_TEXT,
  chartOptions,
  chartSize,
  debounce,
  describeTimeline,
  parseTimeline,
} from "./timeline.js";

const RESIZE_WAIT_MS = 150;

function message(container, className, text) {
  const p = container.ownerDocument.createElement("p");
  p.className = className;
  p.textContent = text;
  container.replaceChildren(p);
}

/** Draws the timeline when the page has one; returns the chart (or null). */
export function drawTimeline(doc = document, win = window) {
  const source = doc.getElementById("timeline-data");
  const container = doc.getElementById("timeline-chart");
  if (!source || !container) return null;
  const shaped = parseTimeline(source.textContent);
  if (!shaped.ok) {
    console.error(`clarion reports: timeline ${shaped.reason}: ${shaped.detail}`);
    message(container, "chart-message chart-error", INVALID_TEXT);
    return null;
  }
  if (shaped.empty) {
    message(container, "chart-message chart-empty", EMPTY_TEXT);
    return null;
  }
  container.replaceChildren();
  const locale = doc.documentElement.lang || undefined;
  const chart = new uPlot(chartOptions(container.clientWidth, locale), shaped.data, container);
  // The canvas says nothing to a screen reader: give it the totals as its name.
  const canvas = chart.ctx.canvas;
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", describeTimeline(shaped.data, locale));
  win.addEventListener(
    "resize",
    debounce(() => chart.setSize(chartSize(container.clientWidth)), RESIZE_WAIT_MS),
  );
  return chart;
}
