// @ts-check
/**
 * The push payload contract (clarion.common.v1.PushPayload, as JSON under its proto field
 * names, empty fields left out: campaign's domain/content.py renders it, delivery adds
 * subscriber_id and engagement_token), what the worker shows for it, and the gateway's
 * click links (docs/services/gateway.md "Click links", services/kit/tokens.py).
 */

/**
 * @typedef {object} PushAction
 * @property {string} action "action_1" or "action_2"
 * @property {string} [title]
 * @property {string} [url]
 * @property {string} [icon]
 */

/**
 * @typedef {object} PushPayload
 * @property {string} title
 * @property {string} [body]
 * @property {string} [icon]
 * @property {string} [image]
 * @property {string} [url]
 * @property {string} [campaign_id]
 * @property {string} [run_id]
 * @property {string} [subscriber_id]
 * @property {string} [engagement_token]
 * @property {string} [badge]
 * @property {PushAction[]} [actions]
 * @property {boolean} [require_interaction]
 * @property {boolean} [silent]
 * @property {string} [tag]
 * @property {boolean} [renotify]
 * @property {boolean} [test]
 * @property {string} [site_id] the site that sent it (payloads sent before it existed have none)
 * @property {number} [version] the contract's version: 1 (none: sent before it existed, 1)
 * @property {number} [timestamp] not in the contract today; shown when a payload has it
 */

/**
 * @typedef {object} NotificationOptionsOut What showNotification is given.
 * @property {string} [body]
 * @property {string} [icon]
 * @property {string} [image]
 * @property {string} [badge]
 * @property {{action: string, title: string, icon?: string}[]} [actions]
 * @property {boolean} [requireInteraction]
 * @property {boolean} [silent]
 * @property {string} [tag]
 * @property {boolean} [renotify]
 * @property {number} [timestamp]
 * @property {{clarion: PushPayload}} data
 */

/** The payload version this worker understands (campaign's content.PAYLOAD_VERSION). */
export const PAYLOAD_VERSION = 1;

/**
 * @typedef {{ok: true, payload: PushPayload} | {ok: false, reason: string, message: string}} ParsedPush
 */

/**
 * The push message's text as a payload, or why it is not one.
 * @param {string | null | undefined} text
 * @returns {ParsedPush}
 */
export function parsePayload(text) {
  if (text === null || text === undefined || text === "") {
    return { ok: false, reason: "EMPTY_PUSH", message: "the push carried no data" };
  }
  /** @type {unknown} */
  let value;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, reason: "NOT_JSON", message: "the push data is not JSON" };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { ok: false, reason: "NOT_AN_OBJECT", message: "the push data is not a JSON object" };
  }
  const payload = /** @type {Record<string, unknown>} */ (value);
  if (typeof payload.campaign_id !== "string" && typeof payload.run_id !== "string") {
    // Every Clarion push names its campaign and run (test sends too): this one is a
    // site's own, for the site's own push handler next to which this worker runs.
    return { ok: false, reason: "NOT_CLARION", message: "the push names no campaign or run" };
  }
  // After the campaign check: a site's own push may have a "version" of its own.
  if (payload.version !== undefined && payload.version !== PAYLOAD_VERSION) {
    return {
      ok: false,
      reason: "UNKNOWN_VERSION",
      message: `the push is of payload version ${JSON.stringify(payload.version).slice(0, 20)}; this worker knows ${PAYLOAD_VERSION}`,
    };
  }
  if (typeof payload.title !== "string" || !payload.title.trim()) {
    return { ok: false, reason: "MISSING_TITLE", message: "the push has no title" };
  }
  return { ok: true, payload: /** @type {PushPayload} */ (payload) };
}

/**
 * @param {unknown} value
 * @returns {value is string}
 */
const text = (value) => typeof value === "string" && value !== "";

/**
 * The showNotification options for a payload: every field the campaign set, nothing it
 * did not. `data.clarion` keeps the payload for the click and close handlers.
 * @param {PushPayload} payload
 * @returns {NotificationOptionsOut}
 */
export function notificationOptions(payload) {
  /** @type {NotificationOptionsOut} */
  const options = { data: { clarion: payload } };
  if (text(payload.body)) options.body = payload.body;
  if (text(payload.icon)) options.icon = payload.icon;
  if (text(payload.image)) options.image = payload.image;
  if (text(payload.badge)) options.badge = payload.badge;
  if (Array.isArray(payload.actions) && payload.actions.length) {
    options.actions = payload.actions
      .filter((a) => a && text(a.action) && text(a.title))
      .map((a) => (text(a.icon) ? { action: a.action, title: a.title || "", icon: a.icon } : { action: a.action, title: a.title || "" }));
  }
  if (payload.require_interaction === true) options.requireInteraction = true;
  if (payload.silent === true) options.silent = true;
  if (text(payload.tag)) {
    options.tag = payload.tag;
    // Browsers refuse renotify without a tag (a TypeError), so it is only set with one.
    if (payload.renotify === true) options.renotify = true;
  }
  if (typeof payload.timestamp === "number" && Number.isFinite(payload.timestamp)) {
    options.timestamp = payload.timestamp;
  }
  return options;
}

const SITE_ID = /^[A-Za-z0-9_-]{1,128}$/;

/**
 * The site a push is about: the one it names, else (a payload sent before payloads
 * named their site) the one stored on this origin.
 * @param {PushPayload} payload
 * @param {string | undefined} storedSiteId
 * @returns {string | undefined}
 */
export function payloadSite(payload, storedSiteId) {
  return typeof payload.site_id === "string" && SITE_ID.test(payload.site_id) ? payload.site_id : storedSiteId;
}
const ID = /^[A-Za-z0-9_.:-]{1,128}$/;
const TOKEN = /^[A-Za-z0-9_-]{43}$/;

/**
 * The gateway path of a click: `/c/{site_id}~{run_id}~{subscriber_id}~{engagement_token}`
 * plus `?b=1|2` for an action button (services/kit/tokens.py click_path); null for a part
 * no link can carry.
 * @param {string} siteId
 * @param {string} runId
 * @param {string} subscriberId
 * @param {string} engagementToken
 * @param {number} [button] 0: the body, 1 and 2: the actions
 * @returns {string | null}
 */
export function clickPath(siteId, runId, subscriberId, engagementToken, button = 0) {
  if (
    !SITE_ID.test(siteId) ||
    !ID.test(runId) ||
    !ID.test(subscriberId) ||
    !TOKEN.test(engagementToken) ||
    ![0, 1, 2].includes(button)
  ) {
    return null;
  }
  return `/c/${[siteId, runId, subscriberId, engagementToken].join("~")}${button ? `?b=${button}` : ""}`;
}

/**
 * Which button a notificationclick's `action` is: 0 for the body, else its 1-based place
 * among the payload's actions (what `?b=` carries); -1 for an action the push did not have.
 * @param {PushPayload} payload
 * @param {string | undefined} action
 */
export function buttonNumber(payload, action) {
  if (!action) return 0;
  const index = (payload.actions || []).findIndex((a) => a && a.action === action);
  return index < 0 ? -1 : index + 1;
}

/**
 * Where a click on `button` leads when no click link can be built: the button's URL,
 * else the body's.
 * @param {PushPayload} payload
 * @param {number} button
 */
export function directUrl(payload, button) {
  const action = button > 0 ? (payload.actions || [])[button - 1] : undefined;
  return (action && text(action.url) && action.url) || (text(payload.url) && payload.url) || "";
}
