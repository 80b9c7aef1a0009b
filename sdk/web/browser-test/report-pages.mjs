// Signs in to the gateway's report pages in Debian's headless Chromium (playwright-core)
// and, at each viewport, opens each page, checks what a reader would notice and saves a
// full-page screenshot; for clarion/demo_browser.py (capture_report_pages), used by
// tests/browser and by `clarion demo --scenario browser`.
// The configuration is argv[2] (JSON): {gatewayUrl, apiKey, outDir, pages: [{name, path}],
// viewports: [{name, width, height, mobile}], executablePath}. The result is one JSON line
// on stdout: {signedIn, pages: [{name, viewport, status, title, screenshot, overflowPx,
// chart, cspViolations, pageErrors, axe: [{id, impact, help, nodes, targets}]}]}.
// Nothing is replaced: the sign-in form is filled and submitted as a person would, and the
// pages' own scripts and styles run under their Content-Security-Policy. axe-core is
// evaluated over DevTools (which a page's CSP does not govern), after the screenshot.
import { chromium } from "playwright-core";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";

const config = JSON.parse(process.argv[2]);
const DEADLINE_MS = config.timeoutMs || 90_000;
const require = createRequire(import.meta.url);
const axeSource = await readFile(require.resolve("axe-core/axe.min.js"), "utf8");

const watchdog = setTimeout(() => {
  process.stdout.write(JSON.stringify({ error: `took more than ${DEADLINE_MS} ms` }) + "\n");
  process.exit(1);
}, DEADLINE_MS);

/** What the hourly chart shows: a canvas with some non-background pixels, or its text. */
async function chartState(page) {
  return page.evaluate(() => {
    const holder = document.getElementById("timeline-chart");
    if (!holder) return { present: false };
    const canvas = holder.querySelector("canvas");
    if (!canvas) return { present: true, drawn: false, text: holder.textContent.trim() };
    const context = canvas.getContext("2d");
    const { data } = context.getImageData(0, 0, canvas.width, canvas.height);
    let inked = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i] > 0) inked += 1;
    return {
      present: true,
      drawn: inked > 0,
      widthPx: Math.round(holder.getBoundingClientRect().width),
      inkedPixels: inked,
    };
  });
}

async function signIn(page) {
  await page.goto(new URL("/reports/sign-in", config.gatewayUrl).href);
  await page.fill('input[name="api_key"]', config.apiKey);
  await Promise.all([page.waitForURL(/\/reports\/?$/), page.click('button[type="submit"]')]);
  return page.url();
}

const browser = await chromium.launch({
  executablePath: config.executablePath || "/usr/bin/chromium",
  headless: true,
  chromiumSandbox: false,
  args: ["--no-sandbox", "--disable-background-networking"],
});
const results = [];
let signedIn = "";
try {
  for (const viewport of config.viewports) {
    const context = await browser.newContext({
      viewport: { width: viewport.width, height: viewport.height },
      isMobile: Boolean(viewport.mobile),
      hasTouch: Boolean(viewport.mobile),
      deviceScaleFactor: 1,
    });
    const page = await context.newPage();
    const cspViolations = [];
    const pageErrors = [];
    page.on("console", (message) => {
      if (/Content.Security.Policy/i.test(message.text())) cspViolations.push(message.text());
    });
    page.on("pageerror", (error) => pageErrors.push(String(error)));
    signedIn = await signIn(page);
    for (const wanted of config.pages) {
      cspViolations.length = 0;
      pageErrors.length = 0;
      const response = await page.goto(new URL(wanted.path, config.gatewayUrl).href);
      await page.waitForLoadState("load");
      if (await page.$("#timeline-chart")) {
        // The chart draws after DOMContentLoaded: wait for its canvas or its empty text.
        await page.waitForFunction(() => {
          const holder = document.getElementById("timeline-chart");
          return holder && (holder.querySelector("canvas") || holder.textContent.trim());
        });
        await page.waitForTimeout(100); // one frame for uPlot's first paint
      }
      const screenshot = path.join(config.outDir, `${wanted.name}-${viewport.name}.png`);
      await page.screenshot({ path: screenshot, fullPage: true });
      const overflowPx = await page.evaluate(
        () => document.documentElement.scrollWidth - window.innerWidth,
      );
      const chart = await chartState(page);
      await page.evaluate(axeSource);
      const axe = await page.evaluate(async () => {
        // eslint-disable-next-line no-undef
        const found = await axe.run(document, { resultTypes: ["violations"] });
        return found.violations.map((v) => ({
          id: v.id,
          impact: v.impact,
          help: v.help,
          nodes: v.nodes.length,
          targets: v.nodes.slice(0, 3).map((n) => n.target.join(" ")),
        }));
      });
      results.push({
        name: wanted.name,
        viewport: viewport.name,
        status: response ? response.status() : 0,
        url: page.url(),
        title: await page.title(),
        heading: (await page.textContent("h1").catch(() => "")) || "",
        screenshot,
        overflowPx,
        chart,
        cspViolations: [...cspViolations],
        pageErrors: [...pageErrors],
        axe,
      });
    }
    await context.close();
  }
  process.stdout.write(JSON.stringify({ signedIn, pages: results }) + "\n");
} catch (error) {
  process.stdout.write(JSON.stringify({ error: String(error && error.stack) }) + "\n");
  process.exitCode = 1;
} finally {
  clearTimeout(watchdog);
  await browser.close();
}
