// Fakes of the browser APIs and of the gateway for unit tests (real-browser tests, against
// the real gateway, come with issue 12's second part). The gateway fake answers as
// docs/services/gateway.md documents its routes.

export const SITE = "shop-eu_1";
/** Another site the fake gateway knows (a push naming it is reported there). */
export const OTHER_SITE = "shop-us";
/** The gateway's client-error kinds (services/gateway/inputs.py CLIENT_ERROR_KINDS). */
export const CLIENT_ERROR_KINDS = ["bad_payload", "unknown_version", "show_failed", "open_failed", "report_failed", "subscribe_failed", "handler_failed"];
export const GATEWAY = "https://gw.example";

/** A base64url P-256 point (65 bytes) whose bytes all start from `seed`. */
export function vapidKey(seed) {
  const bytes = Buffer.alloc(65, 0);
  bytes[0] = 4;
  for (let i = 1; i < 65; i++) bytes[i] = (seed + i) % 256;
  return bytes.toString("base64url");
}
export const KEY_A = vapidKey(1);
export const KEY_B = vapidKey(99);

export class FakeGateway {
  constructor(key = KEY_A) {
    this.key = key;
    this.calls = [];
    this.subscribers = new Map(); // id -> {endpoint, state, profileId, body}
    this.next = 1;
    this.fetch = this.fetch.bind(this);
    this.failNext = null; // {status, code}
    this.failing = null; // {status, code}: every call fails so (the gateway down)
    this.clientErrors = []; // {site, body} of each accepted POST …/client-errors
  }

  async fetch(url, init = {}) {
    const { pathname } = new URL(url);
    const method = init.method || "GET";
    const headers = init.headers || {};
    const body = init.body === undefined ? undefined : JSON.parse(init.body);
    this.calls.push({ method, path: pathname, headers, body });
    const json = (status, value) =>
      new Response(JSON.stringify(value), { status, headers: { "Content-Type": "application/json" } });
    if (this.failNext || this.failing) {
      const { status, code } = this.failNext || this.failing;
      this.failNext = null;
      return json(status, { error: { code, message: code } });
    }
    const match = pathname.match(/^\/v1\/sites\/([^/]+)(\/.*)$/);
    if (!match || ![SITE, OTHER_SITE].includes(match[1])) return json(404, { error: { code: "SITE_NOT_FOUND", message: "no" } });
    const rest = match[2];
    if (method === "POST" && rest === "/client-errors") {
      const bad = !CLIENT_ERROR_KINDS.includes(body.kind) ? "kind" : !body.message || body.message.length > 500 ? "message" : !body.sdk_version ? "sdk_version" : "";
      if (bad) return json(400, { error: { code: "INVALID_FIELD", message: `${bad} is not valid` } });
      this.clientErrors.push({ site: match[1], body });
      return json(202, { recorded: true });
    }
    const token = (id) => `tok-${id}`;
    const proven = (id) => headers["X-Clarion-Unsubscribe-Token"] === token(id);
    if (method === "GET" && rest === "/config") return json(200, { site_id: SITE, vapid_public_key: this.key });
    if (method === "POST" && rest === "/subscriptions") {
      for (const [id, known] of this.subscribers) {
        if (known.endpoint === body.subscription.endpoint) {
          known.state = "active";
          return json(200, { subscriber_id: id, created: false, unsubscribe_token: token(id) });
        }
      }
      const id = `sub_${this.next++}`;
      this.subscribers.set(id, { endpoint: body.subscription.endpoint, state: "active", body });
      return json(201, { subscriber_id: id, created: true, unsubscribe_token: token(id) });
    }
    const del = rest.match(/^\/subscriptions\/(.+)$/);
    if (method === "DELETE" && del) {
      const id = decodeURIComponent(del[1]);
      if (!proven(id)) return json(403, { error: { code: "INVALID_UNSUBSCRIBE_TOKEN", message: "no" } });
      if (!this.subscribers.has(id)) return json(404, { error: { code: "SUBSCRIBER_NOT_FOUND", message: "no" } });
      this.subscribers.get(id).state = "unsubscribed";
      return json(200, { subscriber_id: id, state: "unsubscribed" });
    }
    if (method === "POST" && rest === "/identify") {
      if (!proven(body.subscriber_id)) return json(403, { error: { code: "INVALID_UNSUBSCRIBE_TOKEN", message: "no" } });
      // The site has "age" as a number: another type for it is refused, nothing attached.
      if (body.properties && "age" in body.properties && typeof body.properties.age !== "number") {
        return json(400, { error: { code: "PROPERTY_TYPE_MISMATCH", message: "properties.age is a number in this site" } });
      }
      this.subscribers.get(body.subscriber_id).profileId = body.profile_id;
      if (body.properties) this.subscribers.get(body.subscriber_id).properties = body.properties;
      return json(200, { subscriber_id: body.subscriber_id, profile_id: body.profile_id });
    }
    if (method === "POST" && rest === "/track") {
      if (!proven(body.subscriber_id)) return json(403, { error: { code: "INVALID_UNSUBSCRIBE_TOKEN", message: "no" } });
      return json(200, {
        results: body.events.map((e, index) =>
          e.name.startsWith("bad")
            ? { index, ok: false, duplicate: false, code: "PROPERTY_TYPE_MISMATCH", message: "bad" }
            : { index, ok: true, duplicate: false, code: "", message: "" },
        ),
      });
    }
    if (method === "POST" && rest === "/events") return json(202, { recorded: true });
    return json(404, { error: { code: "NOT_FOUND", message: "no" } });
  }

  last(method, pathEnd) {
    return this.calls.filter((c) => c.method === method && c.path.endsWith(pathEnd)).at(-1);
  }
}

let endpoints = 0;

export class FakeSubscription {
  constructor(manager, key) {
    this.manager = manager;
    this.endpoint = `https://push.example/send/${++endpoints}`;
    this.options = { userVisibleOnly: true, applicationServerKey: key.buffer.slice(0) };
    this.unsubscribed = false;
  }
  toJSON() {
    return { endpoint: this.endpoint, expirationTime: null, keys: { p256dh: KEY_A, auth: "c2VjcmV0c2VjcmV0MTIzNA" } };
  }
  async unsubscribe() {
    this.unsubscribed = true;
    if (this.manager.current === this) this.manager.current = null;
    return true;
  }
}

export class FakePushManager {
  constructor() {
    this.current = null;
    this.subscribeOptions = [];
  }
  async getSubscription() {
    return this.current;
  }
  async subscribe(options) {
    this.subscribeOptions.push(options);
    if (!this.current) this.current = new FakeSubscription(this, new Uint8Array(options.applicationServerKey));
    return this.current;
  }
}

/** navigator with a service worker container whose registrations are always active. */
export function fakeNavigator(userAgent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36") {
  const registration = { active: { state: "activated" }, pushManager: new FakePushManager(), scope: "/" };
  const registered = [];
  return {
    userAgent,
    registration,
    registered,
    serviceWorker: {
      async register(path, options) {
        registered.push({ path, options });
        return registration;
      },
      async getRegistration() {
        return registered.length ? registration : undefined;
      },
    },
  };
}

export function fakeNotification(answer = "granted") {
  return {
    permission: "default",
    asked: 0,
    async requestPermission() {
      this.asked++;
      this.permission = answer;
      return answer;
    },
  };
}

/** A console that keeps what it is told. */
export function fakeConsole() {
  const lines = { error: [], warn: [] };
  return { lines, error: (...args) => lines.error.push(args.join(" ")), warn: (...args) => lines.warn.push(args.join(" ")) };
}

// A payload with every field campaign renders (domain/content.py) and delivery adds.
export const FULL = {
  title: "Spring sale",
  body: "30% off everything",
  icon: "https://shop.example/icon.png",
  image: "https://shop.example/hero.jpg",
  url: "https://shop.example/sale?utm_source=clarion",
  campaign_id: "cmp_1",
  run_id: "run_0f3a9c",
  badge: "https://shop.example/badge.png",
  actions: [
    { action: "action_1", title: "Shop now", url: "https://shop.example/shop", icon: "https://shop.example/cart.png" },
    { action: "action_2", title: "Later", url: "https://shop.example/later" },
  ],
  require_interaction: true,
  silent: true,
  tag: "spring",
  renotify: true,
  site_id: SITE,
  version: 1,
  subscriber_id: "sub_7d1e.x:2",
  engagement_token: "faVrlj7GEI7UHOLhB1LaM_3iL8eRq-eao1uZNO9uL7Q",
};
