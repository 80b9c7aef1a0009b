// @ts-check
/**
 * What the page's SDK (clarion.js) and the service worker (clarion-sw.js) share: the
 * stored state (IndexedDB, reachable from both), the gateway's HTTP calls, browser
 * detection and registering a push subscription with the gateway.
 */

/**
 * @typedef {object} StoredState What one origin remembers about its Clarion site.
 * @property {string} siteId
 * @property {string} gatewayUrl without a trailing slash
 * @property {string} [vapidPublicKey] the site key the current subscription was made with
 * @property {string} [subscriberId]
 * @property {string} [unsubscribeToken] the gateway's proof that this browser holds it
 * @property {string} [endpoint] the push endpoint registered with the gateway
 * @property {string} [profileId] set by identify(), carried into re-registrations
 */

/**
 * @typedef {object} Env The platform objects the SDK and the worker use (globals by
 *   default; tests give fakes).
 * @property {typeof fetch} fetch
 * @property {IDBFactory} [indexedDB]
 */

export const DB_NAME = "clarion";
export const DB_VERSION = 1;
export const STORE = "state";
export const STATE_KEY = "site";

/** The SDK's version (package.json's): sent with error reports. */
export const SDK_VERSION = "0.1.0";

/** The words the gateway accepts for `browser` (services/gateway/inputs.py BROWSERS). */
export const BROWSERS = /** @type {const} */ (["chrome", "firefox", "edge", "opera", "safari", "other"]);

/** An error with the gateway's (or the SDK's own) code, e.g. SITE_NOT_FOUND. */
export class ClarionError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {number} [status] the HTTP status, when the gateway answered
   */
  constructor(code, message, status) {
    super(message);
    this.name = "ClarionError";
    this.code = code;
    this.status = status;
  }
}

// --- storage ---------------------------------------------------------------------------

/**
 * @param {IDBFactory | undefined} idb
 * @returns {Promise<IDBDatabase>}
 */
function openDb(idb) {
  if (!idb) return Promise.reject(new ClarionError("NO_INDEXEDDB", "IndexedDB is not available"));
  return new Promise((resolve, reject) => {
    const request = idb.open(DB_NAME, DB_VERSION);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

/**
 * @template T
 * @param {IDBFactory | undefined} idb
 * @param {IDBTransactionMode} mode
 * @param {(store: IDBObjectStore) => IDBRequest} action
 * @returns {Promise<T>}
 */
async function withStore(idb, mode, action) {
  const db = await openDb(idb);
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const request = action(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(request.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

/**
 * @param {IDBFactory | undefined} idb
 * @returns {Promise<StoredState | undefined>}
 */
export function loadState(idb) {
  return withStore(idb, "readonly", (store) => store.get(STATE_KEY));
}

/**
 * @param {IDBFactory | undefined} idb
 * @param {StoredState} state
 * @returns {Promise<void>}
 */
export async function saveState(idb, state) {
  await withStore(idb, "readwrite", (store) => store.put(state, STATE_KEY));
}

// --- the gateway -----------------------------------------------------------------------

/**
 * @param {string} gatewayUrl
 * @param {string} siteId
 * @param {string} rest e.g. "/config"
 */
export function siteUrl(gatewayUrl, siteId, rest) {
  return `${gatewayUrl}/v1/sites/${encodeURIComponent(siteId)}${rest}`;
}

/**
 * One JSON call to the gateway; a non-2xx answer becomes a ClarionError with its code.
 * @param {typeof fetch} fetchFn
 * @param {string} url
 * @param {{method?: string, body?: unknown, token?: string, keepalive?: boolean}} [options]
 * @returns {Promise<any>}
 */
export async function callGateway(fetchFn, url, options = {}) {
  /** @type {Record<string, string>} */
  const headers = {};
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  if (options.token) headers["X-Clarion-Unsubscribe-Token"] = options.token;
  /** @type {Response} */
  let response;
  try {
    response = await fetchFn(url, {
      method: options.method || "GET",
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      credentials: "omit",
      keepalive: options.keepalive,
    });
  } catch (error) {
    throw new ClarionError("NETWORK_ERROR", `could not reach the gateway: ${String(error)}`);
  }
  let answer = null;
  try {
    answer = await response.json();
  } catch {
    // an answer that is not JSON (a proxy's page): the status says enough
  }
  if (!response.ok) {
    const error = answer && answer.error;
    throw new ClarionError(
      (error && error.code) || `HTTP_${response.status}`,
      (error && error.message) || `the gateway answered ${response.status}`,
      response.status,
    );
  }
  return answer;
}

/**
 * What went wrong, in the gateway's closed set of client-error kinds
 * (services/gateway/inputs.py CLIENT_ERROR_KINDS).
 * @typedef {"bad_payload" | "unknown_version" | "show_failed" | "open_failed" | "report_failed" | "subscribe_failed" | "handler_failed"} ClientErrorKind
 */

const CLIENT_ERROR_MESSAGE_LENGTH = 500;
const REPORTED_ID = /^[A-Za-z0-9_.:-]{1,128}$/;

/**
 * Reports a failure in this browser to the gateway (`POST …/client-errors`), best
 * effort: it never throws, and says whether the gateway took it. The message is cut to
 * the gateway's 500 characters; ids it could not take are left out.
 * @param {typeof fetch} fetchFn
 * @param {{gatewayUrl: string, siteId: string}} site
 * @param {ClientErrorKind} kind
 * @param {string} message
 * @param {{subscriberId?: unknown, runId?: unknown}} [ids]
 * @returns {Promise<boolean>}
 */
export async function reportClientError(fetchFn, site, kind, message, ids = {}) {
  try {
    let text = String(message || kind).slice(0, CLIENT_ERROR_MESSAGE_LENGTH);
    // A cut between the two halves of a surrogate pair leaves half a character.
    if (/[\ud800-\udbff]$/.test(text)) text = text.slice(0, -1);
    /** @type {Record<string, string>} */
    const body = { kind, message: text || kind, sdk_version: SDK_VERSION };
    if (typeof ids.subscriberId === "string" && REPORTED_ID.test(ids.subscriberId)) body.subscriber_id = ids.subscriberId;
    if (typeof ids.runId === "string" && REPORTED_ID.test(ids.runId)) body.run_id = ids.runId;
    await callGateway(fetchFn, siteUrl(site.gatewayUrl, site.siteId, "/client-errors"), {
      method: "POST",
      body,
      keepalive: true,
    });
    return true;
  } catch {
    return false; // the gateway down or refusing (429): the console has it already
  }
}

// --- the browser -----------------------------------------------------------------------

/**
 * The gateway's word for this browser, from User-Agent Client Hints where the browser
 * has them, else from the User-Agent string.
 * @param {{userAgent?: string, userAgentData?: {brands?: {brand: string}[]}} | undefined} nav
 * @returns {typeof BROWSERS[number]}
 */
export function detectBrowser(nav) {
  const brands = ((nav && nav.userAgentData && nav.userAgentData.brands) || []).map((b) =>
    b.brand.toLowerCase(),
  );
  if (brands.length) {
    if (brands.some((b) => b.includes("edge"))) return "edge";
    if (brands.some((b) => b.includes("opera"))) return "opera";
    if (brands.includes("google chrome")) return "chrome";
    // Other Chromium browsers name themselves (Brave, Samsung Internet, Yandex...).
    if (brands.some((b) => !/chromium|not.a.brand/.test(b))) return "other";
    if (brands.includes("chromium")) return "chrome";
  }
  const ua = (nav && nav.userAgent) || "";
  if (/\bEdg(e|A|iOS)?\//.test(ua)) return "edge";
  if (/\bOPR\/|\bOpera\b|\bOPT\//.test(ua)) return "opera";
  if (/\bSamsungBrowser\/|\bYaBrowser\/|\bUCBrowser\//.test(ua)) return "other";
  if (/\bFirefox\/|\bFxiOS\//.test(ua)) return "firefox";
  if (/\bChrome\/|\bCriOS\//.test(ua)) return "chrome";
  if (/\bSafari\//.test(ua) && /\bVersion\//.test(ua)) return "safari";
  return "other";
}

/** The browser's IANA time zone ("Europe/Paris"), or undefined. */
export function browserTimezone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || undefined;
  } catch {
    return undefined;
  }
}

/**
 * A base64url string (padded or not) as bytes, for `applicationServerKey`.
 * @param {string} text
 */
export function base64UrlToBytes(text) {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/").replace(/=+$/, "");
  const binary = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/**
 * Whether a subscription was made with `key` (base64url).
 * @param {{options?: {applicationServerKey?: ArrayBuffer | null}} | null} subscription
 * @param {string} key
 */
export function subscribedWithKey(subscription, key) {
  const current = subscription && subscription.options && subscription.options.applicationServerKey;
  if (!current) return false;
  const a = new Uint8Array(current);
  const b = base64UrlToBytes(key);
  return a.length === b.length && a.every((value, i) => value === b[i]);
}

/**
 * @typedef {object} SubscriptionLike
 * @property {string} endpoint
 * @property {() => unknown} toJSON
 */

/**
 * Registers `subscription` with the gateway (with the browser, time zone and any
 * identified profile), forgets the subscriber it replaces (best effort) and stores the
 * new one. Used by subscribe(), by a re-registration after the site's key changed, and
 * by the worker on `pushsubscriptionchange`.
 * @param {Env & {navigator?: any}} env
 * @param {StoredState} state
 * @param {SubscriptionLike} subscription
 * @param {string} vapidPublicKey the key it was made with
 * @returns {Promise<StoredState & {created: boolean}>}
 */
export async function registerSubscription(env, state, subscription, vapidPublicKey) {
  /** @type {Record<string, unknown>} */
  const body = {
    subscription: subscription.toJSON(),
    browser: detectBrowser(env.navigator),
  };
  const timezone = browserTimezone();
  if (timezone) body.timezone = timezone;
  if (state.profileId) body.profile_id = state.profileId;
  const answer = await callGateway(env.fetch, siteUrl(state.gatewayUrl, state.siteId, "/subscriptions"), {
    method: "POST",
    body,
  });
  if (state.subscriberId && state.unsubscribeToken && state.subscriberId !== answer.subscriber_id) {
    // The old endpoint is dead: unsubscribe its subscriber so it is not sent to again.
    await callGateway(
      env.fetch,
      siteUrl(state.gatewayUrl, state.siteId, `/subscriptions/${encodeURIComponent(state.subscriberId)}`),
      { method: "DELETE", token: state.unsubscribeToken },
    ).catch(() => undefined);
  }
  /** @type {StoredState} */
  const next = {
    ...state,
    vapidPublicKey,
    subscriberId: answer.subscriber_id,
    unsubscribeToken: answer.unsubscribe_token,
    endpoint: subscription.endpoint,
  };
  await saveState(env.indexedDB, next);
  return { ...next, created: Boolean(answer.created) };
}
