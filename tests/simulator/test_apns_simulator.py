"""The APNs simulator driven by aioapns itself (token auth, real TLS + HTTP/2), and by a raw
h2 client only for the requests aioapns cannot send."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from aioapns import APNs, NotificationRequest, PushType
from aioapns.common import NotificationResult
from aioapns.exceptions import MaxAttemptsExceeded

from clarion.simulator.apns import ApnsBehaviour, ApnsSimulator, ProviderKey
from tests.simulator.crafting import MovableClock
from tests.simulator.h2_client import h2_request

TOPIC = "web.com.example.shop"  # a Website Push ID
SAFARI_PAYLOAD: dict[str, Any] = {
    "aps": {
        "alert": {"title": "Sale", "body": "ünïcode ✓", "action": "View"},
        "url-args": ["campaigns", "42"],
    }
}


@pytest.fixture
async def apns(clock: MovableClock) -> AsyncIterator[ApnsSimulator]:
    simulator = ApnsSimulator(clock=clock)
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
def key(apns: ApnsSimulator) -> ProviderKey:
    return apns.new_key()


@pytest.fixture
def device(apns: ApnsSimulator) -> str:
    return apns.mint_device(TOPIC)


def aioapns_client(
    apns: ApnsSimulator, key: ProviderKey, *, p8: str | None = None, **options: Any
) -> APNs:
    client = APNs(key=p8 or key.p8, key_id=key.key_id, team_id=key.team_id, topic=TOPIC, **options)
    return apns.attach_aioapns(client)


@pytest.fixture
async def client(apns: ApnsSimulator, key: ProviderKey) -> AsyncIterator[APNs]:
    # Made on the running loop: aioapns's pool asks asyncio for the current loop, and a
    # plain fixture runs where, late in a whole suite, there is none.
    client = aioapns_client(apns, key)
    yield client
    client.pool.close()


async def send(client: APNs, device: str, **overrides: Any) -> NotificationResult:
    request: dict[str, Any] = {
        "device_token": device,
        "message": SAFARI_PAYLOAD,
        "push_type": PushType.ALERT,
    }
    request.update(overrides)
    return await asyncio.wait_for(client.send_notification(NotificationRequest(**request)), 5)


def bearer(key: ProviderKey, **claims: Any) -> str:
    token = jwt.encode(
        {"iss": key.team_id, "iat": int(time.time()), **claims},
        key.p8,
        algorithm="ES256",
        headers={"kid": key.key_id},
    )
    return f"bearer {token}"


def raw_headers(key: ProviderKey, **overrides: str | None) -> list[tuple[str, str]]:
    headers: dict[str, str | None] = {
        "authorization": bearer(key),
        "apns-topic": TOPIC,
        "apns-push-type": "alert",
    }
    headers.update({name.replace("_", "-"): value for name, value in overrides.items()})
    return [(name, value) for name, value in headers.items() if value is not None]


BODY = json.dumps(SAFARI_PAYLOAD).encode()


class TestAcceptedNotification:
    async def test_aioapns_safari_push_is_accepted_and_recorded(
        self, apns: ApnsSimulator, client: APNs, key: ProviderKey, device: str
    ) -> None:
        result = await send(client, device, priority=5, time_to_live=3600, collapse_key="run-7")

        assert (result.status, result.description) == ("200", None)
        [notification] = apns.notifications(device)
        assert notification.apns_id == result.notification_id
        assert notification.payload == SAFARI_PAYLOAD
        assert (notification.topic, notification.push_type) == (TOPIC, "alert")
        assert (notification.priority, notification.collapse_id) == (5, "run-7")
        assert notification.expiration == pytest.approx(time.time() + 3600, abs=5)
        assert (notification.team_id, notification.key_id) == (key.team_id, key.key_id)
        assert notification.headers["authorization"] == "bearer <redacted>"
        assert notification.safari_problems == ()
        assert apns.stats.accepted == 1 and apns.stats.per_device[device] == 1

    async def test_response_apns_id_is_generated_when_absent(
        self, apns: ApnsSimulator, key: ProviderKey, device: str
    ) -> None:
        response = await h2_request(apns, f"/3/device/{device}", raw_headers(key), BODY)

        assert response.status == 200 and response.body == b""
        assert response.alpn == "h2"
        generated = response.headers["apns-id"]
        assert str(uuid.UUID(generated)) == generated
        assert [n.apns_id for n in apns.notifications(device)] == [generated]

    async def test_cleartext_h2_prior_knowledge_is_served(
        self, apns: ApnsSimulator, key: ProviderKey, device: str
    ) -> None:
        apns_id = str(uuid.uuid4())
        response = await h2_request(
            apns, f"/3/device/{device}", raw_headers(key, apns_id=apns_id), BODY, tls=False
        )

        assert (response.status, response.headers["apns-id"]) == (200, apns_id)

    async def test_untrusted_client_cannot_connect(self, apns: ApnsSimulator) -> None:
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.open_connection(
                apns.host, apns.port, ssl=ssl.create_default_context(), server_hostname="localhost"
            )

    async def test_safari_content_problems_are_recorded_not_refused(
        self, apns: ApnsSimulator, client: APNs, device: str
    ) -> None:
        result = await send(client, device, message={"aps": {"alert": "just a string"}})

        assert result.status == "200"
        [notification] = apns.notifications(device)
        assert notification.safari_problems == (
            "aps.alert must be a dictionary with title and body",
            "aps.url-args must be a list of strings",
        )


class TestProviderToken:
    async def test_unknown_key_is_invalid(self, apns: ApnsSimulator, device: str) -> None:
        stranger = ProviderKey.generate()  # never registered
        client = aioapns_client(apns, stranger)
        try:
            result = await send(client, device)
        finally:
            client.pool.close()

        assert (result.status, result.description) == ("403", "InvalidProviderToken")
        assert apns.notifications(device) == []

    async def test_signature_by_another_key_is_invalid(
        self, apns: ApnsSimulator, key: ProviderKey, device: str
    ) -> None:
        client = aioapns_client(apns, key, p8=ProviderKey.generate().p8)
        try:
            result = await send(client, device)
        finally:
            client.pool.close()

        assert (result.status, result.description) == ("403", "InvalidProviderToken")

    async def test_token_older_than_an_hour_is_expired(
        self, apns: ApnsSimulator, client: APNs, device: str, clock: MovableClock
    ) -> None:
        assert (await send(client, device)).status == "200"
        clock.advance(3601)

        result = await send(client, device)

        assert (result.status, result.description) == ("403", "ExpiredProviderToken")

    async def test_missing_token(self, apns: ApnsSimulator, key: ProviderKey, device: str) -> None:
        response = await h2_request(
            apns, f"/3/device/{device}", raw_headers(key, authorization=None), BODY
        )

        assert (response.status, json.loads(response.body)) == (
            403,
            {"reason": "MissingProviderToken"},
        )

    async def test_new_token_within_20_minutes_is_too_many_updates(
        self, apns: ApnsSimulator, key: ProviderKey, client: APNs, device: str, clock: MovableClock
    ) -> None:
        # aioapns mints one JWT per connection: a second client (or connection) of the
        # same team presents a new token.
        assert (await send(client, device)).status == "200"
        second = aioapns_client(apns, key)
        try:
            refused = await send(second, device)
            clock.advance(20 * 60)
            accepted = await send(second, device)
        finally:
            second.pool.close()

        assert (refused.status, refused.description) == ("429", "TooManyProviderTokenUpdates")
        assert accepted.status == "200"
        assert (await send(client, device)).status == "200"  # the older token is still valid


class TestRequestValidation:
    @pytest.mark.parametrize(
        ("overrides", "status", "reason"),
        [
            ({"device_token": "zz" * 32}, "400", "BadDeviceToken"),
            ({"device_token": "ab" * 16}, "400", "BadDeviceToken"),
            ({"device_token": "ab" * 32}, "400", "BadDeviceToken"),  # well formed, unknown
            ({"apns_topic": "web.com.example.other"}, "400", "DeviceTokenNotForTopic"),
            ({"priority": 7}, "400", "BadPriority"),
            ({"notification_id": "not-a-uuid"}, "400", "BadMessageId"),
            ({"collapse_key": "c" * 65}, "400", "BadCollapseId"),
            ({"message": {"alert": "no aps"}}, "400", "PayloadEmpty"),
            ({"message": {"aps": {"alert": "x" * 5000}}}, "413", "PayloadTooLarge"),
        ],
    )
    async def test_aioapns_request_refused_with_apple_reason(
        self,
        apns: ApnsSimulator,
        client: APNs,
        device: str,
        overrides: dict[str, Any],
        status: str,
        reason: str,
    ) -> None:
        result = await send(client, device, **overrides)

        assert (result.status, result.description) == (status, reason)
        assert apns.notifications(device) == []
        assert apns.stats.rejected[reason] == 1

    @pytest.mark.parametrize(
        ("overrides", "body", "status", "reason"),
        [
            ({"apns_topic": None}, BODY, 400, "MissingTopic"),
            ({"apns_push_type": "banner"}, BODY, 400, "InvalidPushType"),
            ({"apns_expiration": "tomorrow"}, BODY, 400, "BadExpirationDate"),
            ({}, b"", 400, "PayloadEmpty"),
            ({}, b"{not json", 400, "PayloadEmpty"),
        ],
    )
    async def test_raw_request_refused_with_apple_reason(
        self,
        apns: ApnsSimulator,
        key: ProviderKey,
        device: str,
        overrides: dict[str, str | None],
        body: bytes,
        status: int,
        reason: str,
    ) -> None:
        apns_id = str(uuid.uuid4())
        headers = raw_headers(key, apns_id=apns_id, **overrides)
        response = await h2_request(apns, f"/3/device/{device}", headers, body)

        assert (response.status, json.loads(response.body)) == (status, {"reason": reason})
        assert response.headers["apns-id"] == apns_id

    async def test_repeated_header_is_duplicate_headers(
        self, apns: ApnsSimulator, key: ProviderKey, device: str
    ) -> None:
        headers = [*raw_headers(key), ("apns-topic", TOPIC)]
        response = await h2_request(apns, f"/3/device/{device}", headers, BODY)

        assert (response.status, json.loads(response.body)) == (400, {"reason": "DuplicateHeaders"})

    async def test_bad_path_method_and_missing_token(
        self, apns: ApnsSimulator, key: ProviderKey, device: str
    ) -> None:
        bad_path = await h2_request(apns, f"/2/device/{device}", raw_headers(key), BODY)
        get = await h2_request(apns, f"/3/device/{device}", raw_headers(key), method="GET")
        no_token = await h2_request(apns, "/3/device/", raw_headers(key), BODY)

        assert (bad_path.status, json.loads(bad_path.body)["reason"]) == (404, "BadPath")
        assert (get.status, json.loads(get.body)["reason"]) == (405, "MethodNotAllowed")
        assert (no_token.status, json.loads(no_token.body)["reason"]) == (
            400,
            "MissingDeviceToken",
        )


class TestBehaviours:
    async def test_unregistered_answers_410_with_timestamp(
        self, apns: ApnsSimulator, client: APNs, device: str
    ) -> None:
        apns.set_behaviour(device, ApnsBehaviour(status=410, timestamp_ms=1_700_000_000_000))
        given = await send(client, device)
        apns.set_behaviour(device, ApnsBehaviour(status=410))
        before_ms = int(time.time() * 1000)
        default = await send(client, device)

        assert (given.status, given.description) == ("410", "Unregistered")
        assert given.timestamp == 1_700_000_000_000
        assert (default.status, default.description) == ("410", "Unregistered")
        assert before_ms - 1000 <= default.timestamp <= time.time() * 1000 + 1000
        assert apns.notifications(device) == []

    @pytest.mark.parametrize(
        ("status", "reason"),
        [
            (400, "BadDeviceToken"),
            (429, "TooManyRequests"),
            (500, "InternalServerError"),
            (503, "ServiceUnavailable"),
        ],
    )
    async def test_state_answers_for_times_then_accepts(
        self, apns: ApnsSimulator, client: APNs, device: str, status: int, reason: str
    ) -> None:
        apns.set_behaviour(device, ApnsBehaviour(status=status, times=2))

        answers = [await send(client, device) for _ in range(3)]

        assert [(a.status, a.description) for a in answers] == [
            (str(status), reason),
            (str(status), reason),
            ("200", None),
        ]
        assert len(apns.notifications(device)) == 1

    async def test_delay_answers_late(self, apns: ApnsSimulator, client: APNs, device: str) -> None:
        apns.set_behaviour(device, ApnsBehaviour(delay=0.3, times=1))
        started = time.monotonic()
        result = await send(client, device)

        assert result.status == "200" and time.monotonic() - started >= 0.3

    async def test_hang_never_answers(self, apns: ApnsSimulator, client: APNs, device: str) -> None:
        apns.set_behaviour(device, ApnsBehaviour(hang=True, times=1))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(
                client.send_notification(NotificationRequest(device, SAFARI_PAYLOAD)), 0.3
            )
        assert apns.notifications(device) == []

    async def test_dropped_connection_after_accepting(
        self, apns: ApnsSimulator, key: ProviderKey, device: str
    ) -> None:
        apns.set_behaviour(device, ApnsBehaviour(drop=True, times=1))
        client = aioapns_client(apns, key, max_connection_attempts=1)
        request = NotificationRequest(device, SAFARI_PAYLOAD)
        try:
            with pytest.raises(MaxAttemptsExceeded):
                await asyncio.wait_for(client.send_notification(request), 5)
        finally:
            client.pool.close()

        [notification] = apns.notifications(device)  # APNs took it; the sender cannot know
        assert notification.apns_id == request.notification_id
        assert (apns.stats.accepted, apns.stats.dropped, apns.stats.duplicates) == (1, 1, {})

    async def test_aioapns_resends_after_a_drop_and_the_duplicate_is_counted(
        self, clock: MovableClock
    ) -> None:
        # aioapns retries ConnectionClosed on a new connection (with a new JWT) under the
        # same apns-id: with the token-update rule off, APNs accepts it twice.
        apns = ApnsSimulator(clock=clock, token_update_interval=0)
        await apns.start()
        key, device = apns.new_key(), apns.mint_device(TOPIC)
        apns.set_behaviour(device, ApnsBehaviour(drop=True, times=1))
        client = aioapns_client(apns, key)
        try:
            result = await send(client, device)
        finally:
            client.pool.close()
            await apns.stop()

        assert result.status == "200"
        assert apns.stats.duplicates == {result.notification_id: 2}
        assert [n.connection for n in apns.notifications(device)] == [1, 2]

    async def test_aioapns_resend_after_a_drop_meets_the_token_update_rule(
        self, apns: ApnsSimulator, client: APNs, device: str
    ) -> None:
        apns.set_behaviour(device, ApnsBehaviour(drop=True, times=1))

        result = await send(client, device)

        assert (result.status, result.description) == ("429", "TooManyProviderTokenUpdates")
        assert len(apns.notifications(device)) == 1

    def test_behaviour_rejects_a_reason_apple_pairs_with_another_status(self) -> None:
        with pytest.raises(ValueError, match="does not answer 400"):
            ApnsBehaviour(status=400, reason="Unregistered")


class TestControlOverHttp2:
    async def test_another_process_registers_keys_devices_and_behaviours(
        self, apns: ApnsSimulator
    ) -> None:
        key = ProviderKey.generate()

        async def control(method: str, path: str, body: bytes = b"") -> Any:
            response = await h2_request(apns, path, [], body, method=method, tls=False)
            assert response.status < 300, response.body
            return json.loads(response.body) if response.body.startswith((b"[", b"{")) else None

        await control("PUT", f"/control/keys/{key.team_id}/{key.key_id}", key.public_pem.encode())
        [device] = await control("POST", f"/control/devices?topic={TOPIC}&count=1")
        await control("PUT", f"/control/behaviours/{device}", b'{"status": 410, "times": 1}')
        ca = await h2_request(apns, "/control/ca.pem", [], method="GET", tls=False)
        assert ca.body.decode() == apns.ca_pem

        client = aioapns_client(apns, key)
        try:
            gone = await send(client, device)
            accepted = await send(client, device)
        finally:
            client.pool.close()

        assert (gone.description, accepted.status) == ("Unregistered", "200")
        [notification] = await control("GET", f"/control/notifications/{device}")
        assert notification["payload"] == SAFARI_PAYLOAD
        stats = await control("GET", "/control/stats")
        assert stats["accepted"] == 1 and stats["rejected"] == {"Unregistered": 1}


class TestCommandLine:
    async def test_clarion_simulator_runs_both_simulators(self, tmp_path: Path) -> None:
        ca_file = tmp_path / "apns-ca.pem"
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "clarion",
            "simulator",
            "--port",
            "0",
            "--apns-port",
            "0",
            "--apns-ca-file",
            str(ca_file),
            stderr=asyncio.subprocess.PIPE,  # where the JSON log lines go
            stdout=asyncio.subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": os.getcwd()},
        )
        try:
            urls: dict[str, str] = {}
            assert process.stderr is not None
            while len(urls) < 2:
                line = await asyncio.wait_for(process.stderr.readline(), 15)
                assert line, "the simulator exited"
                record = json.loads(line)
                if record.get("logger") == "clarion.cli":
                    urls[record["event"]] = record["url"]
            apns_url = urls["apns simulator listening"]
            assert urls["push-service simulator listening"].startswith("http://")
            host, port = apns_url.removeprefix("https://").rsplit(":", 1)
            _, writer = await asyncio.open_connection(
                host,
                int(port),
                ssl=ssl.create_default_context(cafile=str(ca_file)),
                server_hostname="localhost",
            )
            writer.close()  # the CA file written by the command verifies its certificate
        finally:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 15)


class TestDevices:
    async def test_registered_token_is_case_insensitive_and_checked(
        self, apns: ApnsSimulator, client: APNs
    ) -> None:
        token = "AB" * 32
        apns.register_device(token, TOPIC)

        result = await send(client, token.lower())

        assert result.status == "200"
        assert len(apns.notifications(token)) == 1
        with pytest.raises(ValueError, match="64 hex digits"):
            apns.register_device("not-hex", TOPIC)
