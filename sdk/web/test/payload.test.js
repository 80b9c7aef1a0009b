import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";

import { buttonNumber, clickPath, directUrl, notificationOptions, parsePayload } from "../src/payload.js";
import { FULL } from "./fakes.js";


describe("parsePayload", () => {
  test("reads the contract's JSON", () => {
    const parsed = parsePayload(JSON.stringify(FULL));
    assert.equal(parsed.ok, true);
    assert.deepEqual(parsed.payload, FULL);
  });

  test("version 1 (or none) is understood", () => {
    assert.equal(parsePayload(JSON.stringify({ ...FULL, version: 1 })).ok, true);
  });

  for (const [name, text, reason] of [
    ["no data", null, "EMPTY_PUSH"],
    ["empty data", "", "EMPTY_PUSH"],
    ["not JSON", "Spring sale!", "NOT_JSON"],
    ["truncated JSON", '{"title": "Spr', "NOT_JSON"],
    ["a JSON array", "[1, 2]", "NOT_AN_OBJECT"],
    ["a JSON string", '"hi"', "NOT_AN_OBJECT"],
    ["JSON null", "null", "NOT_AN_OBJECT"],
    ["an unknown version", JSON.stringify({ ...FULL, version: 2 }), "UNKNOWN_VERSION"],
    ["no title", JSON.stringify({ ...FULL, title: undefined }), "MISSING_TITLE"],
    ["a blank title", JSON.stringify({ ...FULL, title: "  " }), "MISSING_TITLE"],
    ["a title that is not text", JSON.stringify({ ...FULL, title: 7 }), "MISSING_TITLE"],
    ["a site's own push (no campaign, no run)", JSON.stringify({ title: "Hello" }), "NOT_CLARION"],
  ]) {
    test(`refuses ${name} as ${reason}`, () => {
      const parsed = parsePayload(text);
      assert.equal(parsed.ok, false);
      assert.equal(parsed.reason, reason);
      assert.ok(parsed.message.length > 0);
    });
  }
});

describe("notificationOptions", () => {
  test("sets every field the campaign set", () => {
    assert.deepEqual(notificationOptions({ ...FULL, timestamp: 1764590400000 }), {
      body: "30% off everything",
      icon: "https://shop.example/icon.png",
      image: "https://shop.example/hero.jpg",
      badge: "https://shop.example/badge.png",
      actions: [
        { action: "action_1", title: "Shop now", icon: "https://shop.example/cart.png" },
        { action: "action_2", title: "Later" },
      ],
      requireInteraction: true,
      silent: true,
      tag: "spring",
      renotify: true,
      timestamp: 1764590400000,
      data: { clarion: { ...FULL, timestamp: 1764590400000 } },
    });
  });

  test("sets nothing the campaign did not set", () => {
    const minimal = { title: "Hi", campaign_id: "cmp_1", run_id: "run_1" };
    assert.deepEqual(notificationOptions(minimal), { data: { clarion: minimal } });
  });

  test("leaves renotify out without a tag (browsers throw on it)", () => {
    const options = notificationOptions({ title: "Hi", run_id: "r", renotify: true });
    assert.equal("renotify" in options, false);
    assert.equal("tag" in options, false);
  });

  test("skips actions without an id or title", () => {
    const options = notificationOptions({ title: "Hi", run_id: "r", actions: [{ action: "action_1" }, { title: "x" }] });
    assert.deepEqual(options.actions, []);
  });
});

describe("clickPath", () => {
  // The shared vector: inputs and expected paths computed by services/kit/tokens.py's
  // click_path (tests/sdk/test_click_vector.py checks the same file on the Python side).
  const vector = JSON.parse(readFileSync(new URL("./vectors/click_path.json", import.meta.url), "utf8"));

  test("matches services.kit.tokens.click_path for the body and a button", () => {
    for (const [button, expected] of Object.entries(vector.paths)) {
      assert.equal(
        clickPath(vector.site_id, vector.run_id, vector.subscriber_id, vector.engagement_token, Number(button)),
        expected,
      );
    }
  });

  test("builds nothing from parts no link can carry", () => {
    const { site_id, run_id, subscriber_id, engagement_token } = vector;
    assert.equal(clickPath("shop.eu", run_id, subscriber_id, engagement_token), null); // a site id has no "."
    assert.equal(clickPath(site_id, "run~1", subscriber_id, engagement_token), null);
    assert.equal(clickPath(site_id, run_id, "", engagement_token), null);
    assert.equal(clickPath(site_id, run_id, subscriber_id, engagement_token.slice(1)), null);
    assert.equal(clickPath(site_id, run_id, subscriber_id, engagement_token, 3), null);
  });
});

describe("buttons", () => {
  test("numbers an action by its place, the body 0, an unknown action -1", () => {
    assert.equal(buttonNumber(FULL, ""), 0);
    assert.equal(buttonNumber(FULL, undefined), 0);
    assert.equal(buttonNumber(FULL, "action_1"), 1);
    assert.equal(buttonNumber(FULL, "action_2"), 2);
    assert.equal(buttonNumber(FULL, "action_9"), -1);
  });

  test("a click without a link goes to the button's URL, else the body's", () => {
    assert.equal(directUrl(FULL, 2), "https://shop.example/later");
    assert.equal(directUrl(FULL, 0), FULL.url);
    assert.equal(directUrl({ ...FULL, actions: [{ action: "action_1", title: "x" }] }, 1), FULL.url);
  });
});
