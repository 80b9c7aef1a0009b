"""What personalization costs a send, per recipient, beside what a send costs anyway.

    python -m benchmarks.personalization --json            # 20,000 recipients, 5 repetitions
    python -m benchmarks.personalization --quick --json    # 1000 recipients, once: a smoke run

Each figure is the CPU time per recipient of one step of delivery's send path
(services/delivery/domain/worker.py), taken on the same recipients in one process and
interleaved per repetition, so they compare side by side:

- plain_payload_us: an untemplated run's payload for one recipient (the shared JSON
  with its subscriber_id and engagement_token appended; payload.for_recipient), the
  path every campaign without templates keeps.
- personalized_payload_us: a templated run's payload for one recipient
  (content.render_for_recipient with its stored context JSON): a title and body
  reading two profile properties with a fallback, a click URL reading an event
  property, checked and given UTM parameters; compiled once (as the worker caches it).
- engagement_token_us: the HMAC each payload carries, computed either way.
- encrypt_us: RFC 8291 encryption of that payload by the native encryptor, in the
  batch form the worker uses; the step every send pays.
- personalization_share_of_encrypt: (personalized - plain) / encrypt.

Median, min and max over the repetitions of the per-recipient mean.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from services.delivery.adapters.encryptors import create_encryptor
from services.delivery.domain.content import (
    ContentOptions,
    compile_payload,
    render_for_recipient,
)
from services.delivery.domain.payload import for_recipient
from services.kit.templates import wrap_click_url
from services.kit.tokens import engagement_token

DEFAULT_RECIPIENTS = 20_000
DEFAULT_REPEAT = 5
UTM = "utm_source=clarion&utm_medium=push&utm_campaign=spring"

PLAIN = json.dumps(
    {
        "title": "Spring sale: 20% off everything",
        "body": "Only this weekend, in every store and online.",
        "url": "https://shop.example/sale?" + UTM,
        "campaign_id": "cmp_" + "a" * 32,
        "run_id": "run_" + "b" * 32,
    },
    separators=(",", ":"),
).encode()
TEMPLATED = json.dumps(
    {
        "title": 'Hi {{ profile.first_name | default("there") }}, 20% off everything',
        "body": "Only this weekend in {{ profile.city | default('every store') }} and online.",
        "url": wrap_click_url("{{ event.product_url }}", UTM),
        "campaign_id": "cmp_" + "a" * 32,
        "run_id": "run_" + "b" * 32,
    },
    separators=(",", ":"),
).encode()


def recipients(count: int) -> list[tuple[str, str, bytes, bytes]]:
    """(subscriber_id, context JSON, p256dh, auth) for `count` recipients."""
    made = []
    for index in range(count):
        key = ec.generate_private_key(ec.SECP256R1()).public_key()
        p256dh = key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        context = json.dumps(
            {
                "profile": {"first_name": f"Person {index}", "city": "Lyon"} if index % 4 else {},
                "event": {"product_url": f"https://shop.example/p/{index}?ref=cart"},
            },
            separators=(",", ":"),
        )
        made.append((f"sub_{index:032x}", context, p256dh, secrets.token_bytes(16)))
    return made


def cpu_us_per_item(step: Callable[[], Any], count: int) -> float:
    started = time.process_time()
    step()
    return (time.process_time() - started) / count * 1e6


def measure(people: list[tuple[str, str, bytes, bytes]]) -> dict[str, float]:
    secret = secrets.token_bytes(32)
    options = ContentOptions.from_json(
        json.dumps({"templated": True, "profile_properties": ["city", "first_name"]})
    )
    template = compile_payload(TEMPLATED, options)
    assert template is not None
    encryptor = create_encryptor("native")
    tokens = [engagement_token(secret, "site_1", "run_1", sid) for sid, *_ in people]
    plain: list[bytes] = []
    personalized: list[bytes | object] = []
    count = len(people)
    figures = {
        "engagement_token_us": cpu_us_per_item(
            lambda: [engagement_token(secret, "site_1", "run_1", sid) for sid, *_ in people],
            count,
        ),
        "plain_payload_us": cpu_us_per_item(
            lambda: plain.extend(
                for_recipient(PLAIN, sid, token)
                for (sid, *_), token in zip(people, tokens, strict=True)
            ),
            count,
        ),
        "personalized_payload_us": cpu_us_per_item(
            lambda: personalized.extend(
                render_for_recipient(template, context, sid, token)
                for (sid, context, *_), token in zip(people, tokens, strict=True)
            ),
            count,
        ),
        "encrypt_us": cpu_us_per_item(
            lambda: encryptor.encrypt_batch(plain, [(p, a) for _, _, p, a in people]), count
        ),
    }
    made = [p for p in personalized if isinstance(p, bytes)]
    assert len(made) == count, "every recipient's payload renders"
    assert json.loads(made[1])["title"] == "Hi Person 1, 20% off everything"
    assert json.loads(made[0])["title"] == "Hi there, 20% off everything"
    figures["personalization_share_of_encrypt"] = (
        figures["personalized_payload_us"] - figures["plain_payload_us"]
    ) / figures["encrypt_us"]
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="1000 recipients, once")
    parser.add_argument("--recipients", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=None)
    args = parser.parse_args(argv)
    count = args.recipients or (1000 if args.quick else DEFAULT_RECIPIENTS)
    repeat = args.repeat or (1 if args.quick else DEFAULT_REPEAT)
    people = recipients(count)
    runs = [measure(people) for _ in range(repeat)]
    report: dict[str, Any] = {
        "recipients": count,
        "repetitions": repeat,
        "load_average": list(os.getloadavg()),
    }
    for name in runs[0]:
        values = [run[name] for run in runs]
        report[name] = {
            "median": round(statistics.median(values), 3),
            "min": round(min(values), 3),
            "max": round(max(values), 3),
        }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for name, value in report.items():
            print(f"{name:36} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
