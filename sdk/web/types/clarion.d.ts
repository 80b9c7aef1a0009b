// The public API of Clarion's web SDK (src/clarion.js; the plain script's global
// `Clarion` has the same members). types/check.ts makes `tsc --noEmit` fail when the
// implementation stops matching it.

export interface InitOptions {
  /** The site's id, as Clarion's campaign service knows it. */
  siteId: string;
  /** Where the Clarion gateway answers, e.g. "https://push.example.com". */
  gatewayUrl: string;
  /** The service worker's URL on the site's origin; default "/clarion-sw.js". */
  serviceWorkerPath?: string;
  /** The worker's scope; default: the browser's (the folder of serviceWorkerPath). */
  serviceWorkerScope?: string;
}

export interface InitResult {
  siteId: string;
  /** This browser's subscriber, or null when it is not subscribed. */
  subscriberId: string | null;
  /** True when init subscribed again (the site's key or the subscription changed). */
  reRegistered: boolean;
}

export interface SubscribeResult {
  subscriberId: string;
  /** False when the gateway already knew this subscription's endpoint. */
  created: boolean;
}

export type PropertyValue = string | number | boolean | string[];

/** An error with the gateway's code (e.g. "SITE_NOT_FOUND") or the SDK's own
 * ("NOT_INITIALIZED", "NOT_SUBSCRIBED", "PERMISSION_DENIED", "PERMISSION_DISMISSED",
 * "UNSUPPORTED", "NETWORK_ERROR", "INVALID_OPTIONS", "WORKER_FAILED"). */
export class ClarionError extends Error {
  constructor(code: string, message: string, status?: number);
  code: string;
  /** The gateway's HTTP status, when it answered. */
  status: number | undefined;
}

/** Fetches the site's public config; re-registers a subscribed browser whose site key changed. */
export function init(options: InitOptions): Promise<InitResult>;
/** Asks permission and subscribes. Call it from a user gesture (a click handler). */
export function subscribe(): Promise<SubscribeResult>;
/** Sets `properties` on the person's profile ("set": others keep their values), then
 * attaches this subscriber to it. Refused properties (e.g. PROPERTY_TYPE_MISMATCH, naming
 * the property) throw, and the subscriber is not attached. */
export function identify(
  profileId: string,
  properties?: Record<string, PropertyValue>,
): Promise<{ subscriberId: string; profileId: string }>;
/** Tracks an event; its id is generated (crypto.randomUUID). */
export function track(
  name: string,
  properties?: Record<string, PropertyValue>,
): Promise<{ eventId: string; duplicate: boolean }>;
/** Unsubscribes at the gateway and from the push service. */
export function unsubscribe(): Promise<{ subscriberId: string | null; unsubscribed: true }>;
/** This browser's subscriber id, or null. */
export function getSubscriberId(): Promise<string | null>;
/** The gateway's browser word for a navigator: chrome, firefox, edge, opera, safari or other. */
export function detectBrowser(nav?: {
  userAgent?: string;
  userAgentData?: { brands?: { brand: string }[] };
}): "chrome" | "firefox" | "edge" | "opera" | "safari" | "other";

export interface Clarion {
  init: typeof init;
  subscribe: typeof subscribe;
  identify: typeof identify;
  track: typeof track;
  unsubscribe: typeof unsubscribe;
  getSubscriberId: typeof getSubscriberId;
}

/** A client over given platform objects (fetch, indexedDB, navigator, Notification,
 * crypto, console); the module's own functions use the page's globals. */
export function createClarion(env?: {
  fetch?: typeof fetch;
  indexedDB?: IDBFactory;
  navigator?: unknown;
  Notification?: unknown;
  crypto?: { randomUUID(): string };
  console?: Pick<Console, "warn">;
}): Clarion;
