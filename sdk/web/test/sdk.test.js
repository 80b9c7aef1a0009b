import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { beforeEach, describe, test } from "node:test";
import vm from "node:vm";

import { IDBFactory } from "fake-indexeddb";

import { createClarion, detectBrowser } from "../src/clarion.js";
import { loadState, SDK_VERSION } from "../src/core.js";
import {
  FakeGateway,
  fakeConsole,
  fakeNavigator,
  fakeNotification,
  GATEWAY,
  KEY_A,
  KEY_B,
  SITE,
} from "./fakes.js";

/** A page: the SDK over fake browser objects and a fake gateway, sharing one IndexedDB. */
function page({ gateway = new FakeGateway(), indexedDB = new IDBFactory(), navigator = fakeNavigator(), Notification = fakeNotification() } = {}) {
  let uuids = 0;
  const console = fakeConsole();
  const clarion = createClarion({
    fetch: gateway.fetch,
    indexedDB,
    navigator,
    Notification,
    crypto: { randomUUID: () => `00000000-0000-4000-8000-${String(++uuids).padStart(12, "0")}` },
    console,
  });
  return { clarion, gateway, indexedDB, navigator, Notification, console };
}

const bytes = (buffer) => Array.from(new Uint8Array(buffer));
const keyBytes = (key) => Array.from(Buffer.from(key, "base64url"));

describe("init", () => {
  test("fetches the site's config and remembers the site for the worker", async () => {
    const p = page();
    const result = await p.clarion.init({ siteId: SITE, gatewayUrl: `${GATEWAY}/` });
    assert.deepEqual(result, { siteId: SITE, subscriberId: null, reRegistered: false });
    assert.equal(p.gateway.calls[0].path, `/v1/sites/${SITE}/config`);
    assert.deepEqual(await loadState(p.indexedDB), { siteId: SITE, gatewayUrl: GATEWAY });
  });

  test("an unknown site is the gateway's SITE_NOT_FOUND", async () => {
    const p = page();
    await assert.rejects(p.clarion.init({ siteId: "nope", gatewayUrl: GATEWAY }), { code: "SITE_NOT_FOUND", status: 404 });
  });

  test("refuses missing options", async () => {
    const p = page();
    await assert.rejects(p.clarion.init({ siteId: "", gatewayUrl: GATEWAY }), { code: "INVALID_OPTIONS" });
    await assert.rejects(p.clarion.init({ siteId: SITE, gatewayUrl: "gw.example" }), { code: "INVALID_OPTIONS" });
  });

  test("everything else needs init first", async () => {
    const p = page();
    await assert.rejects(p.clarion.subscribe(), { code: "NOT_INITIALIZED" });
    await assert.rejects(p.clarion.track("x"), { code: "NOT_INITIALIZED" });
  });
});

describe("subscribe", () => {
  let p;
  beforeEach(async () => {
    p = page();
    await p.clarion.init({ siteId: SITE, gatewayUrl: GATEWAY });
  });

  test("asks permission, registers the worker, subscribes with the site key and registers it", async () => {
    const result = await p.clarion.subscribe();
    assert.deepEqual(result, { subscriberId: "sub_1", created: true });
    assert.equal(p.Notification.asked, 1);
    assert.deepEqual(p.navigator.registered, [{ path: "/clarion-sw.js", options: undefined }]);
    const [options] = p.navigator.registration.pushManager.subscribeOptions;
    assert.equal(options.userVisibleOnly, true);
    assert.deepEqual(Array.from(options.applicationServerKey), keyBytes(KEY_A));
    const post = p.gateway.last("POST", "/subscriptions");
    const subscription = p.navigator.registration.pushManager.current;
    assert.deepEqual(post.body.subscription, subscription.toJSON());
    assert.equal(post.body.browser, "chrome");
    assert.equal(post.body.timezone, Intl.DateTimeFormat().resolvedOptions().timeZone);
    assert.equal(post.headers["Content-Type"], "application/json");
    assert.deepEqual(await loadState(p.indexedDB), {
      siteId: SITE,
      gatewayUrl: GATEWAY,
      vapidPublicKey: KEY_A,
      subscriberId: "sub_1",
      unsubscribeToken: "tok-sub_1",
      endpoint: subscription.endpoint,
    });
    assert.equal(await p.clarion.getSubscriberId(), "sub_1");
  });

  test("a second subscribe keeps the subscription (the gateway updates it)", async () => {
    await p.clarion.subscribe();
    const again = await p.clarion.subscribe();
    assert.deepEqual(again, { subscriberId: "sub_1", created: false });
    assert.equal(p.navigator.registration.pushManager.subscribeOptions.length, 1);
  });

  test("a custom worker path and scope are used", async () => {
    const q = page();
    await q.clarion.init({ siteId: SITE, gatewayUrl: GATEWAY, serviceWorkerPath: "/sw.js", serviceWorkerScope: "/app/" });
    await q.clarion.subscribe();
    assert.deepEqual(q.navigator.registered, [{ path: "/sw.js", options: { scope: "/app/" } }]);
  });

  for (const [answer, code] of [["denied", "PERMISSION_DENIED"], ["default", "PERMISSION_DISMISSED"]]) {
    test(`permission ${answer} subscribes nothing (${code})`, async () => {
      const q = page({ Notification: fakeNotification(answer) });
      await q.clarion.init({ siteId: SITE, gatewayUrl: GATEWAY });
      await q.clarion.subscribe().then(
        () => assert.fail("subscribed"),
        (error) => assert.equal(error.code, code),
      );
      assert.equal(q.navigator.registered.length, 0);
      assert.equal(q.gateway.last("POST", "/subscriptions"), undefined);
    });
  }

  test("a gateway refusal is thrown with its code and reported as subscribe_failed", async () => {
    await p.clarion.subscribe();
    p.gateway.failNext = { status: 400, code: "INVALID_ENDPOINT" };
    await assert.rejects(p.clarion.subscribe(), { code: "INVALID_ENDPOINT", status: 400 });
    assert.deepEqual(p.gateway.clientErrors, [
      {
        site: SITE,
        body: { kind: "subscribe_failed", message: "INVALID_ENDPOINT: INVALID_ENDPOINT", sdk_version: SDK_VERSION },
      },
    ]);
  });

  test("a refused permission is not reported; an unreachable gateway still throws the subscribe's error", async () => {
    const q = page({ Notification: fakeNotification("denied") });
    await q.clarion.init({ siteId: SITE, gatewayUrl: GATEWAY });
    await assert.rejects(q.clarion.subscribe(), { code: "PERMISSION_DENIED" });
    assert.deepEqual(q.gateway.clientErrors, []);
    p.gateway.failing = { status: 503, code: "SERVICE_UNAVAILABLE" };
    await assert.rejects(p.clarion.subscribe(), { code: "SERVICE_UNAVAILABLE" });
    assert.deepEqual(p.gateway.clientErrors, []);
  });
});

test("SDK_VERSION, sent with error reports, is package.json's version", () => {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
  assert.equal(SDK_VERSION, pkg.version);
});

describe("identify, track, unsubscribe", () => {
  let p;
  beforeEach(async () => {
    p = page();
    await p.clarion.init({ siteId: SITE, gatewayUrl: GATEWAY });
  });

  test("need a subscription", async () => {
    await assert.rejects(p.clarion.identify("user-1"), { code: "NOT_SUBSCRIBED" });
    await assert.rejects(p.clarion.track("Viewed"), { code: "NOT_SUBSCRIBED" });
  });

  test("identify sends the profile with the unsubscribe token and keeps it for re-registration", async () => {
    await p.clarion.subscribe();
    assert.deepEqual(await p.clarion.identify("user-1"), { subscriberId: "sub_1", profileId: "user-1" });
    const call = p.gateway.last("POST", "/identify");
    assert.deepEqual(call.body, { subscriber_id: "sub_1", profile_id: "user-1" });
    assert.equal(call.headers["X-Clarion-Unsubscribe-Token"], "tok-sub_1");
    assert.equal(p.gateway.subscribers.get("sub_1").profileId, "user-1");
    assert.equal((await loadState(p.indexedDB)).profileId, "user-1");
  });

  test("identify sends the profile's properties with it", async () => {
    await p.clarion.subscribe();
    const properties = { plan: "pro", age: 41, vip: true, tags: ["a"] };
    assert.deepEqual(await p.clarion.identify("user-1", properties), { subscriberId: "sub_1", profileId: "user-1" });
    assert.deepEqual(p.gateway.last("POST", "/identify").body, { subscriber_id: "sub_1", profile_id: "user-1", properties });
    assert.deepEqual(p.gateway.subscribers.get("sub_1").properties, properties);
    await p.clarion.identify("user-1", {});
    assert.equal("properties" in p.gateway.last("POST", "/identify").body, false);
  });

  test("identify's refused properties throw with the gateway's code and attach nothing", async () => {
    await p.clarion.subscribe();
    await assert.rejects(p.clarion.identify("user-1", { age: "old" }), { code: "PROPERTY_TYPE_MISMATCH", status: 400 });
    assert.equal(p.gateway.subscribers.get("sub_1").profileId, undefined);
    assert.equal((await loadState(p.indexedDB)).profileId, undefined);
    await assert.rejects(p.clarion.identify("user-1", /** @type {any} */ (["age"])), { code: "INVALID_OPTIONS" });
  });

  test("track sends one event with a generated id and its properties", async () => {
    await p.clarion.subscribe();
    const result = await p.clarion.track("Added to cart", { sku: "A-1", price: 9.5, gift: false, tags: ["red"] });
    assert.deepEqual(result, { eventId: "00000000-0000-4000-8000-000000000001", duplicate: false });
    const call = p.gateway.last("POST", "/track");
    assert.deepEqual(call.body, {
      subscriber_id: "sub_1",
      events: [
        {
          event_id: "00000000-0000-4000-8000-000000000001",
          name: "Added to cart",
          properties: { sku: "A-1", price: 9.5, gift: false, tags: ["red"] },
        },
      ],
    });
    assert.equal(call.headers["X-Clarion-Unsubscribe-Token"], "tok-sub_1");
    await p.clarion.track("Viewed");
    assert.equal(p.gateway.last("POST", "/track").body.events[0].event_id, "00000000-0000-4000-8000-000000000002");
    assert.equal("properties" in p.gateway.last("POST", "/track").body.events[0], false);
  });

  test("an event segment refuses is thrown with segment's reason", async () => {
    await p.clarion.subscribe();
    await assert.rejects(p.clarion.track("bad event"), { code: "PROPERTY_TYPE_MISMATCH" });
  });

  test("unsubscribe deletes the subscriber and the browser's subscription", async () => {
    await p.clarion.subscribe();
    const subscription = p.navigator.registration.pushManager.current;
    assert.deepEqual(await p.clarion.unsubscribe(), { subscriberId: "sub_1", unsubscribed: true });
    const call = p.gateway.last("DELETE", "/subscriptions/sub_1");
    assert.equal(call.headers["X-Clarion-Unsubscribe-Token"], "tok-sub_1");
    assert.equal(p.gateway.subscribers.get("sub_1").state, "unsubscribed");
    assert.equal(subscription.unsubscribed, true);
    assert.deepEqual(await loadState(p.indexedDB), { siteId: SITE, gatewayUrl: GATEWAY });
    await assert.rejects(p.clarion.track("x"), { code: "NOT_SUBSCRIBED" });
  });

  test("unsubscribe drops the browser's subscription even when the gateway fails, then throws", async () => {
    await p.clarion.subscribe();
    const subscription = p.navigator.registration.pushManager.current;
    p.gateway.failNext = { status: 503, code: "SERVICE_UNAVAILABLE" };
    await assert.rejects(p.clarion.unsubscribe(), { code: "SERVICE_UNAVAILABLE" });
    assert.equal(subscription.unsubscribed, true);
    assert.equal(await p.clarion.getSubscriberId(), null);
  });
});

describe("re-registration when the site's key changed", () => {
  test("init subscribes again with the new key and replaces the subscriber", async () => {
    const gateway = new FakeGateway(KEY_A);
    const indexedDB = new IDBFactory();
    const navigator = fakeNavigator();
    const Notification = fakeNotification();
    const first = page({ gateway, indexedDB, navigator, Notification });
    await first.clarion.init({ siteId: SITE, gatewayUrl: GATEWAY });
    await first.clarion.subscribe();
    await first.clarion.identify("user-1");
    const old = navigator.registration.pushManager.current;

    gateway.key = KEY_B; // the operator rotated the site's VAPID key
    const next = page({ gateway, indexedDB, navigator, Notification }); // the next page load
    const result = await next.clarion.init({ siteId: SITE, gatewayUrl: GATEWAY });

    assert.deepEqual(result, { siteId: SITE, subscriberId: "sub_2", reRegistered: true });
    assert.equal(old.unsubscribed, true);
    const current = navigator.registration.pushManager.current;
    assert.deepEqual(bytes(current.options.applicationServerKey), keyBytes(KEY_B));
    const post = gateway.last("POST", "/subscriptions");
    assert.equal(post.body.subscription.endpoint, current.endpoint);
    assert.equal(post.body.profile_id, "user-1"); // the person is kept
    assert.equal(gateway.subscribers.get("sub_1").state, "unsubscribed");
    const state = await loadState(indexedDB);
    assert.equal(state.vapidPublicKey, KEY_B);
    assert.equal(state.subscriberId, "sub_2");
    assert.equal(Notification.asked, 1); // no new prompt
  });

  test("init changes nothing when the key is the same", async () => {
    const p = page();
    await p.clarion.init({ siteId: SITE, gatewayUrl: GATEWAY });
    await p.clarion.subscribe();
    const calls = p.gateway.calls.length;
    const again = await p.clarion.init({ siteId: SITE, gatewayUrl: GATEWAY });
    assert.deepEqual(again, { siteId: SITE, subscriberId: "sub_1", reRegistered: false });
    assert.equal(p.gateway.calls.length, calls + 1); // the config only
  });

  test("init re-registers when the browser lost its subscription", async () => {
    const p = page();
    await p.clarion.init({ siteId: SITE, gatewayUrl: GATEWAY });
    await p.clarion.subscribe();
    p.navigator.registration.pushManager.current = null; // e.g. site data partly cleared
    const again = await p.clarion.init({ siteId: SITE, gatewayUrl: GATEWAY });
    assert.equal(again.reRegistered, true);
    assert.equal(again.subscriberId, "sub_2");
  });

  test("a failed re-registration is a console warning, not a failed init", async () => {
    const p = page();
    await p.clarion.init({ siteId: SITE, gatewayUrl: GATEWAY });
    await p.clarion.subscribe();
    p.gateway.key = KEY_B;
    const fetch = p.gateway.fetch;
    let n = 0;
    // The config answers; the registration's POST finds the network down.
    const offline = (url, init) => (++n === 2 ? Promise.reject(new TypeError("offline")) : fetch(url, init));
    const failing = page({
      gateway: { fetch: offline },
      indexedDB: p.indexedDB,
      navigator: p.navigator,
      Notification: p.Notification,
    });
    const result = await failing.clarion.init({ siteId: SITE, gatewayUrl: GATEWAY });
    assert.equal(result.reRegistered, false);
    assert.match(failing.console.lines.warn[0], /could not re-register/);
  });
});

describe("detectBrowser", () => {
  const ua = {
    chrome: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    edge: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86",
    opera: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 OPR/115.0.0.0",
    firefox: "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    safari: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    iosChrome: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
    samsung: "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
  };
  for (const [name, expected] of [
    ["chrome", "chrome"], ["edge", "edge"], ["opera", "opera"], ["firefox", "firefox"],
    ["safari", "safari"], ["iosChrome", "chrome"], ["samsung", "other"],
  ]) {
    test(`user agent ${name} is ${expected}`, () => assert.equal(detectBrowser({ userAgent: ua[name] }), expected));
  }
  test("client hints win over the user agent", () => {
    const brands = (...names) => ({ userAgent: ua.chrome, userAgentData: { brands: names.map((brand) => ({ brand })) } });
    assert.equal(detectBrowser(brands("Not A(Brand", "Chromium", "Microsoft Edge")), "edge");
    assert.equal(detectBrowser(brands("Chromium", "Google Chrome", "Not_A Brand")), "chrome");
    assert.equal(detectBrowser(brands("Opera", "Chromium")), "opera");
    assert.equal(detectBrowser(brands("Brave", "Chromium")), "other");
    assert.equal(detectBrowser(brands("Chromium", "Not)A;Brand")), "chrome");
  });
  test("nothing known is other", () => {
    assert.equal(detectBrowser(undefined), "other");
    assert.equal(detectBrowser({ userAgent: "curl/8.0" }), "other");
  });
});

describe("the built plain script (dist/clarion.js)", () => {
  const built = new URL("../dist/clarion.js", import.meta.url);
  test("defines the global Clarion with the module's API", { skip: !existsSync(built) && "run the build first" }, () => {
    const context = {};
    new vm.Script(readFileSync(built, "utf8"), { filename: "clarion.js" }).runInNewContext(context);
    for (const name of ["init", "subscribe", "identify", "track", "unsubscribe", "getSubscriberId", "createClarion", "detectBrowser"]) {
      assert.equal(typeof context.Clarion[name], "function", name);
    }
    assert.equal(context.Clarion.detectBrowser({ userAgent: "Mozilla/5.0 Firefox/133.0" }), "firefox");
  });
});
