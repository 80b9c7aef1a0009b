import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { beforeEach, describe, test } from "node:test";
import vm from "node:vm";

import { IDBFactory } from "fake-indexeddb";

import { createClarion } from "../src/clarion.js";
import { loadState, saveState, SDK_VERSION } from "../src/core.js";
import { createHandlers } from "../src/worker.js";
import {
  FakeGateway,
  FakePushManager,
  FakeSubscription,
  fakeConsole,
  fakeNavigator,
  fakeNotification,
  GATEWAY,
  KEY_A,
  FULL,
  OTHER_SITE,
  SITE,
} from "./fakes.js";

const LINK = `${GATEWAY}/c/${SITE}~${FULL.run_id}~${FULL.subscriber_id}~${FULL.engagement_token}`;

/** A ServiceWorkerGlobalScope's parts, recording what the worker does. */
function fakeScope(gateway, indexedDB) {
  const scope = {
    listeners: {},
    shown: [],
    opened: [],
    windows: [],
    refuseOptions: false,
    addEventListener(type, listener) {
      scope.listeners[type] = listener;
    },
    registration: {
      pushManager: new FakePushManager(),
      async showNotification(title, options) {
        if (scope.refuseOptions && options.actions) throw new TypeError("actions are not supported");
        scope.shown.push({ title, options });
      },
    },
    clients: {
      matchAll: async () => scope.windows,
      openWindow: async (url) => {
        scope.opened.push(url);
        return {};
      },
    },
    fetch: gateway.fetch,
    indexedDB,
    navigator: { userAgent: "Mozilla/5.0 Firefox/133.0" },
  };
  return scope;
}

/** Dispatches `event` to `handler` and waits for what it passed to waitUntil. */
async function dispatch(handler, event) {
  const waited = [];
  handler({ ...event, waitUntil: (promise) => waited.push(promise) });
  assert.equal(waited.length, 1, "the handler extends the event");
  return waited[0];
}

const push = (value) => ({ data: { text: () => (typeof value === "string" ? value : JSON.stringify(value)) } });
const shownNotification = (scope) => ({
  data: scope.shown[0].options.data,
  closed: 0,
  close() {
    this.closed++;
  },
});

describe("the service worker", () => {
  let gateway, indexedDB, scope, console, on;
  beforeEach(async () => {
    gateway = new FakeGateway();
    indexedDB = new IDBFactory();
    scope = fakeScope(gateway, indexedDB);
    console = fakeConsole();
    on = createHandlers(scope, { console });
    // What the page's init() and subscribe() left for the worker.
    await saveState(indexedDB, { siteId: SITE, gatewayUrl: GATEWAY, vapidPublicKey: KEY_A, subscriberId: FULL.subscriber_id, unsubscribeToken: "t" });
  });

  test("shows a push with every field and reports the view", async () => {
    await dispatch(on.push, push(FULL));
    assert.equal(scope.shown.length, 1);
    const { title, options } = scope.shown[0];
    assert.equal(title, "Spring sale");
    assert.equal(options.body, FULL.body);
    assert.equal(options.badge, FULL.badge);
    assert.equal(options.requireInteraction, true);
    assert.deepEqual(options.actions.map((a) => a.action), ["action_1", "action_2"]);
    assert.deepEqual(options.data.clarion, FULL);
    const report = gateway.last("POST", "/events");
    assert.equal(report.path, `/v1/sites/${SITE}/events`);
    assert.deepEqual(report.body, {
      kind: "viewed",
      run_id: FULL.run_id,
      campaign_id: FULL.campaign_id,
      subscriber_id: FULL.subscriber_id,
      engagement_token: FULL.engagement_token,
    });
    assert.deepEqual(console.lines.error, []);
  });

  test("a browser refusing an option still shows the text, and says so", async () => {
    scope.refuseOptions = true;
    await dispatch(on.push, push(FULL));
    assert.deepEqual(scope.shown, [{ title: "Spring sale", options: { body: FULL.body, data: { clarion: FULL } } }]);
    assert.match(console.lines.error[0], /SHOW_FAILED/);
    assert.equal(gateway.last("POST", "/events").body.kind, "viewed");
  });

  for (const [name, event, reason, kind] of [
    ["not JSON", push("<html>oops"), "NOT_JSON", "bad_payload"],
    ["of an unknown version", push({ ...FULL, version: 3 }), "UNKNOWN_VERSION", "unknown_version"],
    ["without a title", push({ ...FULL, title: "" }), "MISSING_TITLE", "bad_payload"],
    ["without data", { data: null }, "EMPTY_PUSH", "bad_payload"],
    ["unreadable", { data: { text: () => { throw new Error("bad bytes"); } } }, "UNREADABLE_PUSH", "bad_payload"],
  ]) {
    test(`a push ${name} shows nothing, throws nothing and is reported as ${reason}`, async () => {
      await dispatch(on.push, event); // resolves: nothing is thrown
      assert.deepEqual(scope.shown, []);
      assert.equal(console.lines.error.length, 1);
      assert.match(console.lines.error[0], new RegExp(`\\[clarion\\] ${reason}`));
      assert.equal(gateway.last("POST", "/events"), undefined);
      // ... and to the gateway's client-errors, with the ids the push had.
      const [reported] = gateway.clientErrors;
      assert.equal(gateway.clientErrors.length, 1);
      assert.equal(reported.site, SITE);
      assert.equal(reported.body.kind, kind);
      assert.equal(reported.body.sdk_version, SDK_VERSION);
      assert.match(reported.body.message, new RegExp(`^${reason}: `));
      assert.equal(reported.body.subscriber_id, FULL.subscriber_id);
      if (kind === "unknown_version") assert.equal(reported.body.run_id, FULL.run_id);
    });
  }

  test("an unknown version is reported to the site the push names", async () => {
    await dispatch(on.push, push({ ...FULL, site_id: OTHER_SITE, version: 2 }));
    assert.deepEqual(scope.shown, []);
    assert.deepEqual(
      gateway.clientErrors.map((e) => [e.site, e.body.kind]),
      [[OTHER_SITE, "unknown_version"]],
    );
  });

  test("a site's own push with a version of its own is still the site's", async () => {
    await dispatch(on.push, push({ title: "Site news", version: 7 }));
    assert.deepEqual(console.lines.error, []);
    assert.deepEqual(gateway.clientErrors, []);
  });

  test("the view, click and close go to the site the push names, not the stored one", async () => {
    const payload = { ...FULL, site_id: OTHER_SITE };
    await dispatch(on.push, push(payload));
    assert.equal(gateway.last("POST", "/events").path, `/v1/sites/${OTHER_SITE}/events`);
    await dispatch(on.notificationclick, { notification: shownNotification(scope), action: "action_1" });
    assert.deepEqual(scope.opened, [`${LINK.replace(`/c/${SITE}~`, `/c/${OTHER_SITE}~`)}?b=1`]);
    await dispatch(on.notificationclose, { notification: shownNotification(scope) });
    assert.deepEqual(
      gateway.calls.filter((c) => c.path.endsWith("/events")).map((c) => [c.path, c.body.kind]),
      ["viewed", "clicked", "closed"].map((kind) => [`/v1/sites/${OTHER_SITE}/events`, kind]),
    );
  });

  test("a payload from before site_id and version goes to the stored site", async () => {
    const { site_id, version, ...older } = FULL;
    await dispatch(on.push, push(older));
    assert.equal(scope.shown.length, 1);
    assert.equal(gateway.last("POST", "/events").path, `/v1/sites/${SITE}/events`);
    await dispatch(on.notificationclick, { notification: shownNotification(scope), action: "" });
    assert.deepEqual(scope.opened, [LINK]);
  });

  test("a refused notification is reported as show_failed", async () => {
    scope.refuseOptions = true;
    await dispatch(on.push, push(FULL));
    assert.deepEqual(gateway.clientErrors.map((e) => e.body.kind), ["show_failed"]);
    assert.match(gateway.clientErrors[0].body.message, /^SHOW_FAILED: actions are not supported/);
  });

  test("with the gateway down a bad push throws nothing and only the console has it", async () => {
    gateway.failing = { status: 503, code: "SERVICE_UNAVAILABLE" };
    await dispatch(on.push, push("not json"));
    await dispatch(on.push, push(FULL));
    assert.equal(scope.shown.length, 1);
    assert.deepEqual(gateway.clientErrors, []);
    assert.match(console.lines.error.join("\n"), /NOT_JSON[\s\S]*REPORT_VIEWED_FAILED/);
  });

  test("a long error message is cut to the gateway's 500 characters, never in a surrogate pair", async () => {
    scope.registration.showNotification = async () => {
      throw new Error("x".repeat(486) + "😀".repeat(10));
    };
    await dispatch(on.push, push(FULL));
    // The fallback (title and body alone) fails too: show_failed, then handler_failed.
    assert.deepEqual(gateway.clientErrors.map((e) => e.body.kind), ["show_failed", "handler_failed"]);
    const message = gateway.clientErrors[0].body.message;
    // "SHOW_FAILED: " and 486 x's are 499 characters; the 500th is half an emoji: dropped.
    assert.equal(message, "SHOW_FAILED: " + "x".repeat(486));
  });

  test("a site's own push is left to the site's handler", async () => {
    await dispatch(on.push, push({ title: "From the site itself" }));
    assert.deepEqual(scope.shown, []);
    assert.deepEqual(console.lines.error, []);
    assert.match(console.lines.warn[0], /ignored/);
  });

  test("a view the gateway refuses is an error (console, report_failed), not a failed push", async () => {
    gateway.failNext = { status: 403, code: "INVALID_ENGAGEMENT_TOKEN" };
    await dispatch(on.push, push(FULL));
    assert.equal(scope.shown.length, 1);
    assert.match(console.lines.error[0], /REPORT_VIEWED_FAILED.*engagement|INVALID_ENGAGEMENT_TOKEN/i);
    assert.deepEqual(
      gateway.clientErrors.map((e) => [e.body.kind, e.body.message, e.body.run_id]),
      [["report_failed", "REPORT_VIEWED_FAILED: INVALID_ENGAGEMENT_TOKEN", FULL.run_id]],
    );
  });

  test("a click on a button opens the click link with ?b= and reports the action id", async () => {
    await dispatch(on.push, push(FULL));
    const notification = shownNotification(scope);
    await dispatch(on.notificationclick, { notification, action: "action_2" });
    assert.equal(notification.closed, 1);
    assert.deepEqual(scope.opened, [`${LINK}?b=2`]);
    const report = gateway.last("POST", "/events");
    assert.equal(report.body.kind, "clicked");
    assert.equal(report.body.button, "action_2");
  });

  test("a click on the body opens the click link without b and reports no button", async () => {
    await dispatch(on.push, push(FULL));
    await dispatch(on.notificationclick, { notification: shownNotification(scope), action: "" });
    assert.deepEqual(scope.opened, [LINK]);
    const report = gateway.last("POST", "/events");
    assert.equal(report.body.kind, "clicked");
    assert.equal("button" in report.body, false);
  });

  test("a click focuses a window already showing the deeplink", async () => {
    let focused = 0;
    scope.windows.push({ url: FULL.url, focus: async () => focused++ });
    await dispatch(on.push, push(FULL));
    await dispatch(on.notificationclick, { notification: shownNotification(scope), action: "" });
    assert.equal(focused, 1);
    assert.deepEqual(scope.opened, []);
    assert.equal(gateway.last("POST", "/events").body.kind, "clicked");
  });

  test("without the site's state a click still opens the deeplink itself", async () => {
    const bare = fakeScope(gateway, new IDBFactory());
    const handlers = createHandlers(bare, { console });
    await dispatch(handlers.push, push(FULL));
    await dispatch(handlers.notificationclick, { notification: shownNotification(bare), action: "action_1" });
    assert.deepEqual(bare.opened, ["https://shop.example/shop"]);
  });

  test("a close is reported", async () => {
    await dispatch(on.push, push(FULL));
    await dispatch(on.notificationclose, { notification: shownNotification(scope) });
    assert.equal(gateway.last("POST", "/events").body.kind, "closed");
  });

  test("a site's own notification's click and close are left alone", async () => {
    const notification = { data: { url: "/x" }, closed: 0, close() { this.closed++; } };
    await dispatch(on.notificationclick, { notification, action: "" });
    await dispatch(on.notificationclose, { notification });
    assert.equal(notification.closed, 0);
    assert.deepEqual(scope.opened, []);
    assert.equal(gateway.calls.length, 0);
  });
});

describe("pushsubscriptionchange", () => {
  /** A browser subscribed by the SDK, and its worker. */
  async function subscribed() {
    const gateway = new FakeGateway();
    const indexedDB = new IDBFactory();
    const navigator = fakeNavigator();
    const clarion = createClarion({ fetch: gateway.fetch, indexedDB, navigator, Notification: fakeNotification(), crypto: { randomUUID: () => "u" } });
    await clarion.init({ siteId: SITE, gatewayUrl: GATEWAY });
    await clarion.subscribe();
    await clarion.identify("user-1");
    const scope = fakeScope(gateway, indexedDB);
    return { gateway, indexedDB, scope, on: createHandlers(scope, { console: fakeConsole() }) };
  }

  test("registers the browser's new subscription and drops the old subscriber", async () => {
    const { gateway, indexedDB, scope, on } = await subscribed();
    const fresh = new FakeSubscription(scope.registration.pushManager, Buffer.from(KEY_A, "base64url"));
    await dispatch(on.pushsubscriptionchange, { oldSubscription: null, newSubscription: fresh });
    const post = gateway.last("POST", "/subscriptions");
    assert.equal(post.body.subscription.endpoint, fresh.endpoint);
    assert.equal(post.body.profile_id, "user-1");
    assert.equal(post.body.browser, "firefox");
    assert.equal(gateway.subscribers.get("sub_1").state, "unsubscribed");
    const state = await loadState(indexedDB);
    assert.equal(state.subscriberId, "sub_2");
    assert.equal(state.unsubscribeToken, "tok-sub_2");
    assert.equal(state.endpoint, fresh.endpoint);
  });

  test("subscribes again with the stored site key when the browser gives no new subscription", async () => {
    const { gateway, indexedDB, scope, on } = await subscribed();
    await dispatch(on.pushsubscriptionchange, { newSubscription: null });
    const [options] = scope.registration.pushManager.subscribeOptions;
    assert.equal(options.userVisibleOnly, true);
    assert.deepEqual(Array.from(options.applicationServerKey), Array.from(Buffer.from(KEY_A, "base64url")));
    assert.equal(gateway.last("POST", "/subscriptions").body.subscription.endpoint, scope.registration.pushManager.current.endpoint);
    assert.equal((await loadState(indexedDB)).subscriberId, "sub_2");
  });

  test("does nothing for a browser that never subscribed", async () => {
    const gateway = new FakeGateway();
    const scope = fakeScope(gateway, new IDBFactory());
    await dispatch(createHandlers(scope, { console: fakeConsole() }).pushsubscriptionchange, { newSubscription: null });
    assert.equal(gateway.calls.length, 0);
  });
});

describe("the built worker (dist/clarion-sw.js)", () => {
  const built = new URL("../dist/clarion-sw.js", import.meta.url);
  test("is a classic script that installs the four listeners and shows a push", { skip: !existsSync(built) && "run the build first" }, async () => {
    const gateway = new FakeGateway();
    const indexedDB = new IDBFactory();
    await saveState(indexedDB, { siteId: SITE, gatewayUrl: GATEWAY });
    const scope = fakeScope(gateway, indexedDB);
    const console = fakeConsole();
    // As importScripts runs it: a classic script (an import or export would be a SyntaxError).
    new vm.Script(readFileSync(built, "utf8"), { filename: "clarion-sw.js" }).runInNewContext({ self: scope, console });
    assert.deepEqual(Object.keys(scope.listeners).sort(), ["notificationclick", "notificationclose", "push", "pushsubscriptionchange"]);
    await dispatch(scope.listeners.push, push(FULL));
    assert.equal(scope.shown[0].title, "Spring sale");
    assert.equal(gateway.last("POST", "/events").body.kind, "viewed");
  });
});
