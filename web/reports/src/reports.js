// The report pages' script, bundled with uPlot by scripts/build.js into
// services/gateway/static/reports-<hash>.js (docs/reports-ui.md). Each page feature looks
// for its own elements and does nothing where they are absent.
import { drawTimeline } from "./chart.js";

function start() {
  drawTimeline();
}

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", start);
} else {
  start();
}
