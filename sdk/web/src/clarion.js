// @ts-check
/**
 * Clarion's browser SDK: subscribes this browser to a site's pushes through the Clarion
 * gateway, identifies the person and tracks events. An ES module; the build also makes a
 * plain script that defines the global `Clarion` (dist/clarion.js).
 *
 * State lives in IndexedDB (database "clarion", store "state"), because the service
 * worker needs the site id, the gateway URL, the site's key and the subscriber too, and
 * IndexedDB is the storage both can reach (localStorage is not available to workers).
 */
import {
  base64UrlToBytes,
  callGateway,
  ClarionError,
  detectBrowser,
  loadState,
  registerSubscription,
  reportClientError,
  saveState,
  siteUrl,
  subscribedWithKey,
} from "./core.js";

export { ClarionError, detectBrowser };

/** @typedef {import("./core.js").StoredState} StoredState */

/**
 * @typedef {object} InitOptions
 * @property {string} siteId
 * @property {string} gatewayUrl e.g. "https://push.example.com"
 * @property {string} [serviceWorkerPath] default "/clarion-sw.js"
 * @property {string} [serviceWorkerScope] default: the browser's (the worker's folder)
 */

/**
 * @typedef {object} Env The platform objects used (the page's globals by default).
 * @property {typeof fetch} fetch
 * @property {IDBFactory} [indexedDB]
 * @property {any} navigator
 * @property {any} Notification
 * @property {{randomUUID(): string}} crypto
 * @property {Pick<Console, "warn">} console
 */

const DEFAULT_WORKER = "/clarion-sw.js";

/**
 * A Clarion client over `given` platform objects (tests give fakes); the module's own
 * init/subscribe/... are those of a client over the page's globals.
 * @param {Partial<Env>} [given]
 */
export function createClarion(given = {}) {
  /** @returns {Env} */
  const env = () => ({
    fetch: given.fetch || ((input, init) => globalThis.fetch(input, init)),
    indexedDB: given.indexedDB || globalThis.indexedDB,
    navigator: given.navigator || globalThis.navigator,
    Notification: given.Notification || /** @type {any} */ (globalThis).Notification,
    crypto: given.crypto || globalThis.crypto,
    console: given.console || console,
  });
  /** @type {(Required<Omit<InitOptions, "serviceWorkerScope">> & {serviceWorkerScope?: string, vapidPublicKey: string}) | null} */
  let config = null;

  function configured() {
    if (!config) throw new ClarionError("NOT_INITIALIZED", "call Clarion.init({siteId, gatewayUrl}) first");
    return config;
  }

  /** @returns {Promise<StoredState>} */
  async function stored() {
    const site = configured();
    const state = await loadState(env().indexedDB);
    return state && state.siteId === site.siteId
      ? { ...state, gatewayUrl: site.gatewayUrl }
      : { siteId: site.siteId, gatewayUrl: site.gatewayUrl };
  }

  /** @returns {Promise<StoredState & {subscriberId: string, unsubscribeToken: string}>} */
  async function subscribedState() {
    const state = await stored();
    if (!state.subscriberId || !state.unsubscribeToken) {
      throw new ClarionError("NOT_SUBSCRIBED", "this browser is not subscribed: call subscribe() first");
    }
    return /** @type {any} */ (state);
  }

  function serviceWorkers() {
    const container = env().navigator && env().navigator.serviceWorker;
    if (!container) {
      throw new ClarionError("UNSUPPORTED", "this browser has no service workers or push");
    }
    return container;
  }

  async function registration() {
    const site = configured();
    return serviceWorkers().getRegistration(site.serviceWorkerScope || site.serviceWorkerPath);
  }

  /** Registers the worker and waits until it is active (push needs an active worker). */
  async function registerWorker() {
    const site = configured();
    const options = site.serviceWorkerScope ? { scope: site.serviceWorkerScope } : undefined;
    const reg = await serviceWorkers().register(site.serviceWorkerPath, options);
    const worker = reg.active ? null : reg.installing || reg.waiting;
    if (worker) {
      await new Promise((resolve, reject) => {
        const check = () => {
          if (worker.state === "activated") resolve(undefined);
          else if (worker.state === "redundant") reject(new ClarionError("WORKER_FAILED", "the service worker failed to install"));
        };
        worker.addEventListener("statechange", check);
        check();
      });
    }
    return reg;
  }

  /**
   * Subscribes `reg` with the site's key (replacing a subscription made with another
   * key) and registers it with the gateway.
   * @param {any} reg
   * @param {StoredState} state
   * @param {string} key
   */
  async function subscribeWith(reg, state, key) {
    let subscription = await reg.pushManager.getSubscription();
    if (subscription) {
      const known = subscription.options && subscription.options.applicationServerKey;
      const sameKey = known ? subscribedWithKey(subscription, key) : state.vapidPublicKey === key;
      if (!sameKey) {
        await subscription.unsubscribe();
        subscription = null;
      }
    }
    if (!subscription) {
      subscription = await reg.pushManager.subscribe({
        userVisibleOnly: true,
        applicationServerKey: base64UrlToBytes(key),
      });
    }
    return registerSubscription(env(), state, subscription, key);
  }

  /**
   * Fetches the site's public config and remembers the site for the service worker. If
   * this browser is subscribed and the site's key changed (or the browser's subscription
   * did), subscribes again with the new key and registers that.
   * @param {InitOptions} options
   */
  async function init(options) {
    if (!options || typeof options.siteId !== "string" || !options.siteId) {
      throw new ClarionError("INVALID_OPTIONS", "init needs a siteId");
    }
    const gatewayUrl = String(options.gatewayUrl || "").replace(/\/+$/, "");
    if (!/^https?:\/\//.test(gatewayUrl)) {
      throw new ClarionError("INVALID_OPTIONS", "init needs gatewayUrl, an http(s) URL");
    }
    const answer = await callGateway(env().fetch, siteUrl(gatewayUrl, options.siteId, "/config"));
    config = {
      siteId: options.siteId,
      gatewayUrl,
      serviceWorkerPath: options.serviceWorkerPath || DEFAULT_WORKER,
      serviceWorkerScope: options.serviceWorkerScope,
      vapidPublicKey: answer.vapid_public_key,
    };
    let state = await stored();
    await saveState(env().indexedDB, state);
    let reRegistered = false;
    const permission = env().Notification && env().Notification.permission;
    if (state.subscriberId && permission === "granted") {
      try {
        const reg = (await registration()) || (await registerWorker());
        const current = await reg.pushManager.getSubscription();
        if (state.vapidPublicKey !== config.vapidPublicKey || !current || current.endpoint !== state.endpoint) {
          state = await subscribeWith(reg, state, config.vapidPublicKey);
          reRegistered = true;
        }
      } catch (error) {
        env().console.warn("[clarion] could not re-register this browser:", error);
        await reportClientError(env().fetch, state, "subscribe_failed", `re-registration: ${describe(error)}`, {
          subscriberId: state.subscriberId,
        });
      }
    }
    return { siteId: state.siteId, subscriberId: state.subscriberId || null, reRegistered };
  }

  /**
   * Asks permission, registers the service worker, subscribes with the site's key and
   * registers the subscription (browser, time zone) with the gateway. Call it from a user
   * gesture (a click handler): browsers refuse or quietly deny a permission prompt
   * without one.
   */
  async function subscribe() {
    const site = configured();
    try {
      return await subscribeNow(site);
    } catch (error) {
      // What the person chose (or a browser without push) is not a failure to report.
      const code = error instanceof ClarionError ? error.code : "";
      if (!["PERMISSION_DENIED", "PERMISSION_DISMISSED", "UNSUPPORTED"].includes(code)) {
        await reportClientError(env().fetch, site, "subscribe_failed", describe(error));
      }
      throw error;
    }
  }

  /** @param {NonNullable<typeof config>} site */
  async function subscribeNow(site) {
    const Notification = env().Notification;
    if (!Notification) throw new ClarionError("UNSUPPORTED", "this browser has no notifications");
    const permission = await new Promise((resolve, reject) => {
      // Older Safari takes a callback and returns nothing.
      const asked = Notification.requestPermission(resolve);
      if (asked && typeof asked.then === "function") asked.then(resolve, reject);
    });
    if (permission !== "granted") {
      throw new ClarionError(
        permission === "denied" ? "PERMISSION_DENIED" : "PERMISSION_DISMISSED",
        `notification permission is ${permission}`,
      );
    }
    const reg = await registerWorker();
    const result = await subscribeWith(reg, await stored(), site.vapidPublicKey);
    return { subscriberId: /** @type {string} */ (result.subscriberId), created: result.created };
  }

  /**
   * Attaches this browser's subscriber to the person `profileId`, setting `properties`
   * on that profile first (string, number, boolean or list of strings each, as track's;
   * "set": a property not given keeps its value). Properties the site refuses (a type
   * other than the one the site has for that name) throw with the gateway's code, and
   * the subscriber is then not attached.
   * @param {string} profileId
   * @param {Record<string, string | number | boolean | string[]>} [properties]
   */
  async function identify(profileId, properties) {
    if (properties !== undefined && (typeof properties !== "object" || properties === null || Array.isArray(properties))) {
      throw new ClarionError("INVALID_OPTIONS", "identify's properties must be an object");
    }
    const state = await subscribedState();
    /** @type {Record<string, unknown>} */
    const body = { subscriber_id: state.subscriberId, profile_id: profileId };
    if (properties && Object.keys(properties).length) body.properties = properties;
    await callGateway(env().fetch, siteUrl(state.gatewayUrl, state.siteId, "/identify"), {
      method: "POST",
      body,
      token: state.unsubscribeToken,
    });
    await saveState(env().indexedDB, { ...state, profileId });
    return { subscriberId: state.subscriberId, profileId };
  }

  /**
   * Tracks an event of this subscriber (and of its profile, once identified).
   * @param {string} name
   * @param {Record<string, string | number | boolean | string[]>} [properties]
   */
  async function track(name, properties) {
    const state = await subscribedState();
    const eventId = env().crypto.randomUUID();
    /** @type {Record<string, unknown>} */
    const event = { event_id: eventId, name };
    if (properties && Object.keys(properties).length) event.properties = properties;
    const answer = await callGateway(env().fetch, siteUrl(state.gatewayUrl, state.siteId, "/track"), {
      method: "POST",
      body: { subscriber_id: state.subscriberId, events: [event] },
      token: state.unsubscribeToken,
      keepalive: true,
    });
    const result = (answer && answer.results && answer.results[0]) || {};
    if (!result.ok) {
      throw new ClarionError(result.code || "TRACK_FAILED", result.message || "the event was not recorded");
    }
    return { eventId, duplicate: Boolean(result.duplicate) };
  }

  /**
   * Unsubscribes this browser: at the gateway (DELETE) and from the push service. The
   * browser's subscription is dropped even when the gateway cannot be reached (that
   * error is thrown after).
   */
  async function unsubscribe() {
    const state = await stored();
    /** @type {unknown} */
    let failure = null;
    if (state.subscriberId && state.unsubscribeToken) {
      try {
        await callGateway(
          env().fetch,
          siteUrl(state.gatewayUrl, state.siteId, `/subscriptions/${encodeURIComponent(state.subscriberId)}`),
          { method: "DELETE", token: state.unsubscribeToken },
        );
      } catch (error) {
        if (!(error instanceof ClarionError && error.code === "SUBSCRIBER_NOT_FOUND")) failure = error;
      }
    }
    const reg = await registration();
    const subscription = reg && (await reg.pushManager.getSubscription());
    if (subscription) await subscription.unsubscribe();
    await saveState(env().indexedDB, { siteId: state.siteId, gatewayUrl: state.gatewayUrl });
    if (failure) throw failure;
    return { subscriberId: state.subscriberId || null, unsubscribed: /** @type {const} */ (true) };
  }

  /** This browser's subscriber id, or null when it is not subscribed. */
  async function getSubscriberId() {
    return (await stored()).subscriberId || null;
  }

  return { init, subscribe, identify, track, unsubscribe, getSubscriberId };
}

/** @param {unknown} error */
function describe(error) {
  return error instanceof ClarionError ? `${error.code}: ${error.message}` : String(error);
}

const page = createClarion();
export const init = page.init;
export const subscribe = page.subscribe;
export const identify = page.identify;
export const track = page.track;
export const unsubscribe = page.unsubscribe;
export const getSubscriberId = page.getSubscriberId;
