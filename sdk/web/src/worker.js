// @ts-check
/**
 * The service worker's handlers: show each push as the campaign designed it, report
 * views, clicks (with the button) and closes, open clicks through the gateway's click
 * redirect, and re-register after `pushsubscriptionchange`. A handler never throws:
 * every failure goes to the console and, when this origin knows its gateway, to the
 * gateway's client-errors endpoint (`POST …/client-errors`, best effort).
 */
import {
  base64UrlToBytes,
  callGateway,
  loadState,
  registerSubscription,
  reportClientError,
  siteUrl,
} from "./core.js";
import { buttonNumber, clickPath, directUrl, notificationOptions, parsePayload, payloadSite } from "./payload.js";

/** @typedef {import("./core.js").StoredState} StoredState */
/** @typedef {import("./payload.js").PushPayload} PushPayload */
/** @typedef {import("./core.js").ClientErrorKind} ClientErrorKind */

/**
 * @typedef {object} ExtendableEventLike
 * @property {(promise: Promise<unknown>) => void} waitUntil
 */
/**
 * @typedef {ExtendableEventLike & {data: {text(): string} | null}} PushEventLike
 */
/**
 * @typedef {object} NotificationLike
 * @property {unknown} data
 * @property {() => void} close
 */
/**
 * @typedef {ExtendableEventLike & {notification: NotificationLike, action?: string}} NotificationEventLike
 */
/**
 * @typedef {ExtendableEventLike & {newSubscription?: import("./core.js").SubscriptionLike | null}} SubscriptionChangeEventLike
 */
/**
 * @typedef {object} WindowClientLike
 * @property {string} url
 * @property {() => Promise<unknown>} focus
 */
/**
 * @typedef {object} WorkerScope The parts of ServiceWorkerGlobalScope the worker uses.
 * @property {(type: string, listener: (event: any) => void) => void} addEventListener
 * @property {{showNotification(title: string, options?: object): Promise<void>,
 *   pushManager: {subscribe(options: object): Promise<import("./core.js").SubscriptionLike>}}} registration
 * @property {{matchAll(options: object): Promise<readonly WindowClientLike[]>,
 *   openWindow(url: string): Promise<unknown>}} clients
 * @property {typeof fetch} fetch
 * @property {IDBFactory} [indexedDB]
 * @property {any} [navigator]
 */

/**
 * @typedef {object} WorkerEnv
 * @property {typeof fetch} fetch
 * @property {IDBFactory} [indexedDB]
 * @property {Pick<Console, "error" | "warn">} console
 */

const PREFIX = "[clarion]";

/**
 * The handlers for `scope` (exported for tests; installClarionWorker adds them).
 * @param {WorkerScope} scope
 * @param {Partial<WorkerEnv>} [given]
 */
export function createHandlers(scope, given = {}) {
  /** @type {WorkerEnv} */
  const env = {
    fetch: given.fetch || ((input, init) => scope.fetch(input, init)),
    indexedDB: given.indexedDB || scope.indexedDB,
    console: given.console || console,
  };

  /**
   * A problem, logged to the console and reported to the gateway as `kind` (to the
   * push's site, else the stored one; not at all when this origin has no stored
   * gateway). Never throws.
   * @param {ClientErrorKind} kind
   * @param {string} reason e.g. NOT_JSON, SHOW_FAILED
   * @param {unknown} detail
   * @param {PushPayload} [payload] the push it is about
   * @param {StoredState} [known] the stored state, when the caller has it
   */
  async function reportError(kind, reason, detail, payload, known) {
    const text = detail instanceof Error ? detail.message : String(detail);
    env.console.error(`${PREFIX} ${reason}:`, text);
    const stored = known || (await state());
    const siteId = stored && (payload ? payloadSite(payload, stored.siteId) : stored.siteId);
    if (!stored || !siteId) return;
    await reportClientError(env.fetch, { gatewayUrl: stored.gatewayUrl, siteId }, kind, `${reason}: ${text}`, {
      subscriberId: (payload && payload.subscriber_id) || stored.subscriberId,
      runId: payload && payload.run_id,
    });
  }

  /** @returns {Promise<StoredState | undefined>} */
  async function state() {
    try {
      return await loadState(env.indexedDB);
    } catch (error) {
      env.console.error(`${PREFIX} STATE_UNREADABLE:`, error instanceof Error ? error.message : error);
      return undefined;
    }
  }

  /**
   * Reports an engagement event (viewed, clicked, closed) with the push's proof, to
   * the site the push names (else the stored one).
   * @param {"viewed" | "clicked" | "closed"} kind
   * @param {PushPayload} payload
   * @param {StoredState | undefined} stored
   * @param {string} [button] the action id of a clicked button
   */
  async function report(kind, payload, stored, button) {
    if (!stored) {
      env.console.warn(`${PREFIX} not reporting "${kind}": this origin has no Clarion site (init() never ran)`);
      return;
    }
    const { run_id, campaign_id, subscriber_id, engagement_token } = payload;
    if (!run_id || !campaign_id || !subscriber_id || !engagement_token) return; // a test push
    /** @type {Record<string, string>} */
    const body = { kind, run_id, campaign_id, subscriber_id, engagement_token };
    if (button) body.button = button;
    const siteId = /** @type {string} */ (payloadSite(payload, stored.siteId));
    try {
      await callGateway(env.fetch, siteUrl(stored.gatewayUrl, siteId, "/events"), {
        method: "POST",
        body,
      });
    } catch (error) {
      await reportError("report_failed", `REPORT_${kind.toUpperCase()}_FAILED`, error, payload, stored);
    }
  }

  /** @param {PushEventLike} event */
  async function showPush(event) {
    let textData = null;
    try {
      textData = event.data ? event.data.text() : null;
    } catch (error) {
      await reportError("bad_payload", "UNREADABLE_PUSH", error);
      return;
    }
    const parsed = parsePayload(textData);
    if (!parsed.ok) {
      // Nothing is shown for a push we cannot read: its title would be a guess.
      if (parsed.reason === "NOT_CLARION") env.console.warn(`${PREFIX} ignored: ${parsed.message}`);
      else {
        const kind = parsed.reason === "UNKNOWN_VERSION" ? "unknown_version" : "bad_payload";
        await reportError(kind, parsed.reason, parsed.message, parsedObject(textData));
      }
      return;
    }
    const payload = parsed.payload;
    const options = notificationOptions(payload);
    try {
      await scope.registration.showNotification(payload.title, options);
    } catch (error) {
      // A browser that refuses an option (an action icon, say) still shows the text.
      await reportError("show_failed", "SHOW_FAILED", error, payload);
      const plain = options.body ? { body: options.body, data: options.data } : { data: options.data };
      await scope.registration.showNotification(payload.title, plain);
    }
    await report("viewed", payload, await state());
  }

  /**
   * Focuses a window already showing `deeplink`, else opens `target`.
   * @param {string} target
   * @param {string} deeplink
   */
  async function openOrFocus(target, deeplink) {
    if (deeplink) {
      const windows = await scope.clients.matchAll({ type: "window", includeUncontrolled: true });
      const open = windows.find((client) => client.url === deeplink);
      if (open) {
        await open.focus();
        return;
      }
    }
    if (target) await scope.clients.openWindow(target);
  }

  /** @param {NotificationEventLike} event */
  async function click(event) {
    const payload = clarionPayload(event.notification);
    if (!payload) return;
    const stored = await state();
    const found = buttonNumber(payload, event.action);
    const button = found < 0 ? 0 : found;
    const siteId = stored && payloadSite(payload, stored.siteId);
    const path =
      siteId &&
      clickPath(siteId, payload.run_id || "", payload.subscriber_id || "", payload.engagement_token || "", button);
    const target = stored && path ? stored.gatewayUrl + path : directUrl(payload, button);
    await Promise.all([
      openOrFocus(target, directUrl(payload, button)).catch((error) =>
        reportError("open_failed", "OPEN_FAILED", error, payload, stored),
      ),
      report("clicked", payload, stored, button ? event.action : undefined),
    ]);
  }

  /** @param {NotificationEventLike} event */
  async function close(event) {
    const payload = clarionPayload(event.notification);
    if (payload) await report("closed", payload, await state());
  }

  /** @param {SubscriptionChangeEventLike} event */
  async function subscriptionChange(event) {
    const stored = await state();
    if (!stored || !stored.vapidPublicKey || !stored.subscriberId) return;
    const subscription =
      event.newSubscription ||
      (await scope.registration.pushManager.subscribe({
        userVisibleOnly: true,
        applicationServerKey: base64UrlToBytes(stored.vapidPublicKey),
      }));
    await registerSubscription(
      { fetch: env.fetch, indexedDB: env.indexedDB, navigator: scope.navigator },
      stored,
      subscription,
      stored.vapidPublicKey,
    );
  }

  /**
   * @param {(event: any) => Promise<void>} handler
   * @param {string} reason
   * @param {ClientErrorKind} [kind]
   * @returns {(event: ExtendableEventLike) => void}
   */
  const guarded =
    (handler, reason, kind = "handler_failed") =>
    (event) => {
      try {
        event.waitUntil(handler(event).catch((error) => reportError(kind, reason, error)));
      } catch (error) {
        reportError(kind, reason, error);
      }
    };

  return {
    push: guarded(showPush, "PUSH_FAILED"),
    notificationclick: guarded(
      /** @param {NotificationEventLike} event */ (event) => {
        if (clarionPayload(event.notification)) event.notification.close();
        return click(event);
      },
      "CLICK_FAILED",
    ),
    notificationclose: guarded(close, "CLOSE_FAILED"),
    pushsubscriptionchange: guarded(subscriptionChange, "RESUBSCRIBE_FAILED", "subscribe_failed"),
  };
}

/**
 * A refused push's text as an object, for the ids its error report may carry.
 * @param {string | null} text
 * @returns {PushPayload | undefined}
 */
function parsedObject(text) {
  try {
    const value = JSON.parse(text || "");
    return value && typeof value === "object" && !Array.isArray(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The Clarion payload a notification carries, or undefined for one Clarion did not show
 * (a site's own notification, next to which the worker may run).
 * @param {NotificationLike} notification
 * @returns {PushPayload | undefined}
 */
function clarionPayload(notification) {
  const data = /** @type {{clarion?: PushPayload} | null | undefined} */ (notification && notification.data);
  return data && typeof data === "object" && data.clarion && typeof data.clarion === "object" ? data.clarion : undefined;
}

/**
 * Adds Clarion's push, notificationclick, notificationclose and pushsubscriptionchange
 * listeners to a service worker scope.
 * @param {WorkerScope} scope
 * @param {Partial<WorkerEnv>} [env]
 */
export function installClarionWorker(scope, env) {
  const handlers = createHandlers(scope, env);
  for (const [type, handler] of Object.entries(handlers)) scope.addEventListener(type, handler);
  return handlers;
}
