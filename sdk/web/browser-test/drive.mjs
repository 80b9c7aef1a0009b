// Drives the SDK in Debian's headless Chromium (playwright-core), one step at a time,
// for clarion/demo_browser.py (BrowserDriver; used by tests/browser and by `clarion demo
// --scenario browser`), which runs the stack and tells this script what to do.
// Protocol: the configuration is argv[2] (JSON); each step's result is one JSON line on
// stdout ({"step": ...}); after "subscribed" it reads commands, one JSON line each, on
// stdin: {"push": "<a body>", "expect": "shown" | "nothing"} (answers "shown" or
// "ignored"), {"click": "action_1" | ""} ("clicked"), {"close": true} ("closed"),
// {"done": true} ("done", then it exits). Browser and worker console lines go to stderr.
//
// What is replaced: only PushManager.subscribe/getSubscription in the page (an init
// script), which return the subscription the push-service simulator minted instead of
// one from Chromium's push service (there is none offline). Everything else is the
// browser's own: the SDK's fetches to the gateway (CORS), the service worker's
// registration, IndexedDB, showNotification/getNotifications, and the push event
// (CDP ServiceWorker.deliverPushMessage). Click and close are NotificationEvents
// dispatched on the worker's global scope (DevTools cannot click a notification).
import { chromium } from "playwright-core";
import readline from "node:readline";

const config = JSON.parse(process.argv[2]);
const DEADLINE_MS = config.timeoutMs || 45_000;

const emit = (step, value) => process.stdout.write(JSON.stringify({ step, ...value }) + "\n");
const log = (...parts) => process.stderr.write(parts.join(" ") + "\n");

const watchdog = setTimeout(() => {
  emit("error", { message: `the browser steps took more than ${DEADLINE_MS} ms` });
  process.exit(1);
}, DEADLINE_MS);

const input = readline.createInterface({ input: process.stdin });
const lines = input[Symbol.asyncIterator]();
async function nextCommand() {
  const { value, done } = await lines.next();
  if (done) throw new Error("stdin closed before the next command");
  return JSON.parse(value);
}

/** Polls `probe` until it returns something truthy (no fixed sleeps). */
async function until(what, probe, ms = 10_000) {
  const end = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Runs in the page before its scripts: PushManager.subscribe returns the simulator's
 * subscription (endpoint and keys), shaped as a PushSubscription, and records what the
 * SDK asked for; getSubscription returns it once made.
 * @param {{endpoint: string, keys: {p256dh: string, auth: string}}} minted
 */
function replacePushManager(minted) {
  const toBase64Url = (buffer) =>
    btoa(String.fromCharCode(...new Uint8Array(buffer)))
      .replace(/\+/g, "-")
      .replace(/\//g, "_")
      .replace(/=+$/, "");
  const fromBase64Url = (text) =>
    Uint8Array.from(atob(text.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0)).buffer;
  const asBuffer = (key) =>
    typeof key === "string"
      ? fromBase64Url(key)
      : ArrayBuffer.isView(key)
        ? key.buffer.slice(key.byteOffset, key.byteOffset + key.byteLength)
        : key;
  const calls = [];
  let current = null;
  PushManager.prototype.subscribe = async function subscribe(options = {}) {
    const key = asBuffer(options.applicationServerKey);
    calls.push({ userVisibleOnly: options.userVisibleOnly, applicationServerKey: toBase64Url(key) });
    current = {
      endpoint: minted.endpoint,
      expirationTime: null,
      options: { userVisibleOnly: Boolean(options.userVisibleOnly), applicationServerKey: key },
      getKey: (name) => fromBase64Url(minted.keys[name]),
      toJSON: () => ({ endpoint: minted.endpoint, expirationTime: null, keys: { ...minted.keys } }),
      unsubscribe: async () => {
        current = null;
        return true;
      },
    };
    return current;
  };
  PushManager.prototype.getSubscription = async function getSubscription() {
    return current;
  };
  Object.defineProperty(window, "clarionFakePush", { value: { calls } });
}

/** Runs in the page: the notifications the worker's registration shows. */
async function shownNotifications() {
  const registration = await navigator.serviceWorker.ready;
  const shown = await registration.getNotifications();
  return shown.map((n) => ({
    title: n.title,
    body: n.body,
    icon: n.icon,
    image: n.image,
    badge: n.badge,
    tag: n.tag,
    requireInteraction: n.requireInteraction,
    silent: n.silent,
    actions: n.actions.map((a) => ({ action: a.action, title: a.title, icon: a.icon })),
    data: n.data,
  }));
}

/**
 * Runs in the service worker: dispatches a NotificationEvent for the notification shown
 * (kept from the first call: a click closes it) and waits for the handler's work. A
 * synthetic event's waitUntil throws (it is not trusted), so this instance collects
 * the promises instead. clients.openWindow is observed (the real one is still called).
 * @param {{kind: string, action?: string}} what
 */
async function dispatchNotificationEvent({ kind, action }) {
  const scope = /** @type {any} */ (self);
  if (!scope.clarionTest) {
    const opened = [];
    const openWindow = scope.clients.openWindow.bind(scope.clients);
    scope.clients.openWindow = async (url) => {
      const entry = { url };
      opened.push(entry);
      try {
        const client = await openWindow(url);
        entry.result = client ? `opened ${client.url}` : "opened (no client)";
        return client;
      } catch (error) {
        entry.result = `refused: ${error.name}: ${error.message}`;
        throw error;
      }
    };
    const [notification] = await scope.registration.getNotifications();
    scope.clarionTest = { opened, notification };
  }
  const { notification, opened } = scope.clarionTest;
  if (!notification) throw new Error("no notification is shown");
  const event = new NotificationEvent(kind, action ? { notification, action } : { notification });
  const pending = [];
  Object.defineProperty(event, "waitUntil", { value: (promise) => pending.push(promise) });
  scope.dispatchEvent(event);
  await Promise.allSettled(pending);
  return {
    handled: pending.length,
    opened: opened.splice(0),
    stillShown: (await scope.registration.getNotifications()).length,
  };
}

const started = Date.now();
const browser = await chromium.launch({
  executablePath: config.executablePath || "/usr/bin/chromium",
  headless: true,
  chromiumSandbox: false,
  args: ["--no-sandbox", "--disable-background-networking"],
});
try {
  const origin = new URL(config.pageUrl).origin;
  const context = await browser.newContext({ timezoneId: config.timezone || "UTC" });
  await context.grantPermissions(["notifications"], { origin });
  await context.addInitScript(replacePushManager, config.subscription);
  const page = await context.newPage();
  page.on("console", (message) => log(`[page ${message.type()}]`, message.text()));
  page.on("pageerror", (error) => log("[page error]", String(error)));
  const workerErrors = [];
  context.on("serviceworker", (worker) => {
    worker.on("console", (message) => {
      log(`[worker ${message.type()}]`, message.text());
      if (message.type() === "error") workerErrors.push(message.text());
    });
  });
  const launchedMs = Date.now() - started;

  const url = new URL(config.pageUrl);
  url.searchParams.set("site", config.siteId);
  url.searchParams.set("gateway", config.gatewayUrl);
  await page.goto(url.href);
  const init = await until("init()", () => page.evaluate(() => window.clarionTest && window.clarionTest.init));
  if (init.error) throw new Error(`init failed: ${JSON.stringify(init.error)}`);
  await page.click("#subscribe"); // a real user gesture
  const subscribed = await until("subscribe()", () =>
    page.evaluate(() => window.clarionTest && window.clarionTest.subscribe),
  );
  if (subscribed.error) throw new Error(`subscribe failed: ${JSON.stringify(subscribed.error)}`);
  emit("subscribed", {
    init,
    subscribe: subscribed,
    pushManagerCalls: await page.evaluate(() => window.clarionFakePush.calls),
    permission: await page.evaluate(() => Notification.permission),
    userAgent: await page.evaluate(() => navigator.userAgent),
    launchedMs,
    elapsedMs: Date.now() - started,
  });

  const cdp = await context.newCDPSession(page);
  const registrations = new Map();
  cdp.on("ServiceWorker.workerRegistrationUpdated", ({ registrations: updated }) => {
    for (const r of updated) registrations.set(r.registrationId, r);
  });
  await cdp.send("ServiceWorker.enable");
  const registration = await until("the worker's registration", () =>
    [...registrations.values()].find((r) => !r.isDeleted && r.scopeURL === `${origin}/`),
  );
  const worker = await until("the service worker", () => context.serviceWorkers()[0]);

  for (;;) {
    const command = await nextCommand();
    const stepStarted = Date.now();
    if (command.push !== undefined) {
      const errorsBefore = workerErrors.length;
      await cdp.send("ServiceWorker.deliverPushMessage", {
        origin,
        registrationId: registration.registrationId,
        data: command.push,
      });
      if (command.expect === "nothing") {
        // The worker says why it showed nothing on its console; then nothing is shown.
        const reason = await until("the worker's error", () => workerErrors[errorsBefore]);
        const notifications = await page.evaluate(shownNotifications);
        emit("ignored", { reason, notifications, elapsedMs: Date.now() - stepStarted });
      } else {
        const notifications = await until("the notification", async () => {
          const list = await page.evaluate(shownNotifications);
          return list.length ? list : null;
        });
        emit("shown", { notifications, elapsedMs: Date.now() - stepStarted });
      }
    } else if (command.click !== undefined) {
      const kind = "notificationclick";
      emit("clicked", await worker.evaluate(dispatchNotificationEvent, { kind, action: command.click }));
    } else if (command.close) {
      emit("closed", await worker.evaluate(dispatchNotificationEvent, { kind: "notificationclose" }));
    } else {
      emit("done", { totalMs: Date.now() - started, workerErrors });
      break;
    }
  }
  await context.close();
} catch (error) {
  emit("error", { message: String((error && error.stack) || error) });
  process.exitCode = 1;
} finally {
  clearTimeout(watchdog);
  input.close();
  await browser.close();
}
