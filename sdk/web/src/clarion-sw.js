// @ts-check
/**
 * Clarion's service worker. The build (scripts/build.js) bundles it into
 * dist/clarion-sw.js, a classic script: serve that file as the site's service worker, or
 * load it from the site's own worker with `importScripts("/clarion-sw.js")`.
 */
import { installClarionWorker } from "./worker.js";

installClarionWorker(/** @type {any} */ (self));
