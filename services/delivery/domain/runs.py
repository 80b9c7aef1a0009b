"""The rules of a delivery run's life: take one over from campaign, and ask about it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from clarion.common.v1 import common_pb2
from clarion.delivery.v1 import delivery_pb2
from services.delivery.domain.content import (
    NO_OPTIONS,
    ContentOptions,
    VariantContent,
    content_options,
    run_contexts,
    variant_run_options,
)
from services.delivery.domain.descriptions import description_from_proto
from services.delivery.domain.goals import goal_from_proto
from services.delivery.domain.payload import URGENCIES, PayloadError, check_shared_payload
from services.delivery.domain.timing import RunTiming, timing_from_proto, timing_to_json
from services.delivery.models import MAX_ID_LENGTH
from services.delivery.store import (
    DeliveryStore,
    Hold,
    NewRun,
    RecipientView,
    Run,
    RunCounts,
    StoredVariant,
)
from services.kit.clock import Clock
from services.kit.errors import AlreadyExists, InvalidArgument, NotFound

# FCM's and Mozilla's ceiling.
MAX_TTL_SECONDS = 28 * 24 * 3600
# A listed audience (a test or transactional send) names at most this many ids,
# subscribers and profiles together; more is a segment's work.
MAX_LISTED_AUDIENCE = 10_000
MAX_PROFILE_ID_LENGTH = 128
MAX_BATCH_GET = 1000
_ID = re.compile(r"^[A-Za-z0-9._:~-]+$")
# An A/B test has 1 to 5 variants (one of weight 100: the rest of a test with a winner).
MAX_VARIANTS = 5
MAX_VARIANT_ID_LENGTH = 16
# As the request edge reads TEXT_FORMAT_ID (services/kit/validation.py).
_VARIANT_ID = re.compile(r"^[A-Za-z0-9_.:-]+$")
# A sample's bounds are basis points of the people's sample hash.
SAMPLE_BASIS_POINTS = 10_000


@dataclass(frozen=True)
class VariantRequest:
    """One RunVariant as the adapter hands it over (its urgency as a header value)."""

    variant_id: str
    weight_percent: int
    payload: bytes
    ttl_seconds: int
    # None: an urgency this build does not know.
    urgency: str | None
    content: delivery_pb2.RunContent


@dataclass(frozen=True)
class RunRequest:
    run_id: str
    campaign_id: str
    payload: bytes
    ttl_seconds: int
    # None: the caller sent an urgency this build does not know.
    urgency: str | None
    subscriber_ids: Sequence[str]
    # A serialized clarion.segment.v1.AudienceSelector; b"": every reachable subscriber.
    # A listed audience (subscriber_ids, profile_ids) ignores it.
    selector: bytes = b""
    # With subscriber_ids: the subscribers of these profiles too.
    profile_ids: Sequence[str] = ()
    # When recipients are due; None: all at once.
    timing: delivery_pb2.RunTiming | None = None
    # The RunContent (its fields past payload, TTL and urgency: domain/content.py);
    # None: the payload as it is.
    content: delivery_pb2.RunContent | None = None
    # RunAudience.contexts: what each listed person's templates read as `event`.
    contexts: Sequence[delivery_pb2.RecipientContext] = ()
    # The RunPolicy as JSON (server.run_policy_json); "": none.
    policy: str = ""
    # A test send: outcomes and audience reach reporting marked test.
    test: bool = False
    # An A/B test's variants: each recipient gets its variant's content instead of
    # payload/content (then ignored). Empty: none.
    variants: Sequence[VariantRequest] = ()
    # RunAudience.sample: only this share of the audience is in the run; None: all.
    sample: delivery_pb2.AudienceSample | None = None
    # Handed to reporting with the run's audience; None: none.
    conversion_goal: common_pb2.ConversionGoal | None = None
    # Handed to reporting when the run is recorded there, for its webhooks; None: none.
    description: common_pb2.RunDescription | None = None


def _hold_order(hold: Hold) -> tuple[datetime, str]:
    return hold.since, hold.push_service


@dataclass(frozen=True)
class RunWithCounts:
    run: Run
    counts: RunCounts
    # The push services holding the run's site's sends (domain/holds.py), for a run
    # with recipients still pending; () otherwise.
    holds: tuple[Hold, ...] = ()


def _check_profile_id(value: str, field: str) -> None:
    """A profile id as segment takes one: 1-128 printable characters (no line break, so
    the run row's newline-separated list keeps it whole)."""
    if not value:
        raise InvalidArgument("MISSING_FIELD", f"{field} is required", field=field)
    if len(value) > MAX_PROFILE_ID_LENGTH or not value.isprintable():
        raise InvalidArgument(
            "INVALID_PROFILE_ID",
            f"{field} must be 1-{MAX_PROFILE_ID_LENGTH} printable characters",
            field=field,
        )


def _check_id(value: str, field: str) -> None:
    if not value:
        raise InvalidArgument("MISSING_FIELD", f"{field} is required", field=field)
    if len(value) > MAX_ID_LENGTH or not _ID.match(value):
        raise InvalidArgument(
            "INVALID_ID",
            f"{field} must be 1-{MAX_ID_LENGTH} characters of A-Z a-z 0-9 . _ : ~ -",
            field=field,
        )


def _check_content(
    payload: bytes,
    ttl_seconds: int,
    urgency: str | None,
    content: delivery_pb2.RunContent | None,
    where: str,
) -> ContentOptions:
    """A RunContent's payload, TTL and urgency checked, and its options; INVALID_ARGUMENT
    naming the field under `where` ("content", or "variants[i].content")."""
    try:
        check_shared_payload(payload)
    except PayloadError as error:
        message = str(error).replace("content.payload", f"{where}.payload")
        raise InvalidArgument("INVALID_PAYLOAD", message, field=f"{where}.payload") from None
    if not 0 < ttl_seconds <= MAX_TTL_SECONDS:
        raise InvalidArgument(
            "INVALID_TTL",
            f"{where}.ttl_seconds is {ttl_seconds}; give 1 to {MAX_TTL_SECONDS}",
            field=f"{where}.ttl_seconds",
        )
    if urgency not in URGENCIES:
        raise InvalidArgument(
            "INVALID_URGENCY",
            f"{where}.urgency must be one of VERY_LOW, LOW, NORMAL, HIGH",
            field=f"{where}.urgency",
        )
    return content_options(content, payload, where) if content is not None else NO_OPTIONS


def _check_variants(variants: Sequence[VariantRequest]) -> list[VariantContent]:
    """The run's variants, each content checked as `content` is; INVALID_ARGUMENT:
    TOO_MANY_VARIANTS, INVALID_VARIANT (an empty, malformed or repeated id; a TTL,
    urgency or topic other than the first variant's: those are the run's, one per push
    stream), INVALID_VARIANT_SPLIT (a weight outside 1-100, or weights not adding up to
    100)."""
    if len(variants) > MAX_VARIANTS:
        raise InvalidArgument(
            "TOO_MANY_VARIANTS",
            f"{len(variants)} variants; a run takes at most {MAX_VARIANTS}",
            field="variants",
        )
    checked: list[VariantContent] = []
    seen: set[str] = set()
    for index, variant in enumerate(variants):
        where = f"variants[{index}]"
        if (
            not variant.variant_id
            or len(variant.variant_id) > MAX_VARIANT_ID_LENGTH
            or not _VARIANT_ID.match(variant.variant_id)
        ):
            raise InvalidArgument(
                "INVALID_VARIANT",
                f"{where}.variant_id must be 1-{MAX_VARIANT_ID_LENGTH} characters of "
                "A-Z a-z 0-9 _ . : -",
                field=f"{where}.variant_id",
            )
        if variant.variant_id in seen:
            raise InvalidArgument(
                "INVALID_VARIANT",
                f"{where}.variant_id {variant.variant_id!r} is given twice; each variant "
                "needs its own id",
                field=f"{where}.variant_id",
            )
        seen.add(variant.variant_id)
        if not 1 <= variant.weight_percent <= 100:
            raise InvalidArgument(
                "INVALID_VARIANT_SPLIT",
                f"{where}.weight_percent is {variant.weight_percent}; give 1 to 100",
                field=f"{where}.weight_percent",
            )
        options = _check_content(
            variant.payload,
            variant.ttl_seconds,
            variant.urgency,
            variant.content,
            f"{where}.content",
        )
        if index:
            first = variants[0]
            for name, value, expected in (
                ("ttl_seconds", variant.ttl_seconds, first.ttl_seconds),
                ("urgency", variant.urgency, first.urgency),
                ("topic", options.topic, checked[0].options.topic),
            ):
                if value != expected:
                    raise InvalidArgument(
                        "INVALID_VARIANT",
                        f"{where}.content.{name} differs from variants[0]'s; a run's "
                        "variants share their TTL, urgency and topic",
                        field=f"{where}.content.{name}",
                    )
        checked.append(
            VariantContent(variant.variant_id, variant.weight_percent, variant.payload, options)
        )
    total = sum(variant.weight_percent for variant in variants)
    if total != 100:
        raise InvalidArgument(
            "INVALID_VARIANT_SPLIT",
            f"the variants' weight_percent add up to {total}; they must add up to 100",
            field="variants",
        )
    return checked


def _check_sample(sample: delivery_pb2.AudienceSample) -> tuple[int, int]:
    """[start, end) basis points of the people's sample hash; INVALID_ARGUMENT
    INVALID_SAMPLE unless 0 <= start < end <= 10,000."""
    start, end = sample.start_basis_points, sample.end_basis_points
    if not 0 <= start < SAMPLE_BASIS_POINTS:
        raise InvalidArgument(
            "INVALID_SAMPLE",
            f"audience.sample.start_basis_points is {start}; give 0 to {SAMPLE_BASIS_POINTS - 1}",
            field="audience.sample.start_basis_points",
        )
    if not start < end <= SAMPLE_BASIS_POINTS:
        raise InvalidArgument(
            "INVALID_SAMPLE",
            f"audience.sample.end_basis_points is {end}; give more than start_basis_points "
            f"({start}) and at most {SAMPLE_BASIS_POINTS}",
            field="audience.sample.end_basis_points",
        )
    return start, end


class DeliveryRuns:
    def __init__(self, store: DeliveryStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def start(self, site_id: str, request: RunRequest) -> tuple[RunWithCounts, bool]:
        """Takes the run over (PREPARING; the audience snapshot is taken now). A repeat
        for the same run returns it unchanged. Returns the run and whether it is new."""
        _check_id(request.run_id, "run_id")
        _check_id(request.campaign_id, "campaign_id")
        payload, ttl_seconds, urgency = request.payload, request.ttl_seconds, request.urgency
        variants: list[VariantContent] = []
        if request.variants:
            # The run's own content is its variants'; `content` is left unset.
            variants = _check_variants(request.variants)
            first = request.variants[0]
            payload, ttl_seconds, urgency = first.payload, first.ttl_seconds, first.urgency
            options = variant_run_options(variants)
        else:
            options = _check_content(
                payload, ttl_seconds, urgency, request.content, "content"
            )
        assert urgency is not None  # _check_content refuses an unknown one
        sample = _check_sample(request.sample) if request.sample is not None else None
        goal = (
            goal_from_proto(request.conversion_goal).to_json()
            if request.conversion_goal is not None
            else ""
        )
        description = (
            description_from_proto(request.description).to_json()
            if request.description is not None
            else ""
        )
        listed = len(request.subscriber_ids) + len(request.profile_ids)
        if listed > MAX_LISTED_AUDIENCE:
            raise InvalidArgument(
                "TOO_MANY_RECIPIENTS",
                f"audience names {len(request.subscriber_ids)} subscribers and "
                f"{len(request.profile_ids)} profiles; a listed audience takes at most "
                f"{MAX_LISTED_AUDIENCE} ids in all",
                field="audience",
            )
        for index, subscriber_id in enumerate(request.subscriber_ids):
            _check_id(subscriber_id, f"audience.subscriber_ids[{index}]")
        for index, profile_id in enumerate(request.profile_ids):
            _check_profile_id(profile_id, f"audience.profile_ids[{index}]")
        contexts = run_contexts(request.contexts)
        now = self._clock.now()
        timing = timing_from_proto(request.timing, now) if request.timing else RunTiming()
        run, created = await self._store.create_run(
            NewRun(
                site_id=site_id,
                run_id=request.run_id,
                campaign_id=request.campaign_id,
                payload=payload,
                ttl_seconds=ttl_seconds,
                urgency=urgency,
                audience_filter=tuple(dict.fromkeys(request.subscriber_ids)),
                audience_profiles=tuple(dict.fromkeys(request.profile_ids)),
                selector=b"" if listed else request.selector,
                timing=timing_to_json(timing),
                cut_off_time=timing.cut_off_time,
                content_options=options.to_json(),
                policy=request.policy,
                test=request.test,
                contexts=tuple((c.person_key, c.event_properties) for c in contexts),
                variants=tuple(
                    StoredVariant(v.variant_id, v.weight_percent, v.payload, v.options.to_json())
                    for v in variants
                ),
                sample=sample,
                conversion_goal=goal,
                description=description,
            ),
            now,
        )
        if not created and run.campaign_id != request.campaign_id:
            raise AlreadyExists(
                "RUN_ID_TAKEN",
                f"run {request.run_id!r} already belongs to campaign {run.campaign_id!r}; "
                "use a new run_id",
                field="run_id",
            )
        return await self._with_counts(run), created

    async def get(self, site_id: str, run_id: str) -> RunWithCounts:
        _check_id(run_id, "run_id")
        found = await self.get_many(site_id, [run_id])
        if not found:
            raise self._run_not_found(run_id)
        return found[0]

    async def get_many(self, site_id: str, run_ids: Sequence[str]) -> list[RunWithCounts]:
        if len(run_ids) > MAX_BATCH_GET:
            raise InvalidArgument(
                "TOO_MANY_RUNS",
                f"{len(run_ids)} run ids; ask for at most {MAX_BATCH_GET} at once",
                field="run_ids",
            )
        for index, run_id in enumerate(run_ids):
            _check_id(run_id, f"run_ids[{index}]")
        runs = await self._store.get_runs(site_id, run_ids)
        counts = await self._store.run_counts(site_id, [run.run_id for run in runs])
        order = {run_id: index for index, run_id in enumerate(run_ids)}
        # A hold is the site's: shown on each of its runs still waiting on recipients.
        waiting = [run.run_id for run in runs if counts[run.run_id].pending]
        holds = (
            tuple(sorted((await self._store.site_holds(site_id)).values(), key=_hold_order))
            if waiting
            else ()
        )
        return sorted(
            (
                RunWithCounts(
                    run, counts[run.run_id], holds if counts[run.run_id].pending else ()
                )
                for run in runs
            ),
            key=lambda found: order[found.run.run_id],
        )

    async def cancel(self, site_id: str, run_id: str) -> tuple[RunWithCounts, int]:
        """Cancels the run (see DeliveryStore.cancel_run); returns it and how many
        recipients this call ended as cancelled. A finished run is returned unchanged."""
        _check_id(run_id, "run_id")
        cancelled = await self._store.cancel_run(site_id, run_id, self._clock.now())
        if cancelled is None:
            raise self._run_not_found(run_id)
        run, recipients = cancelled
        return await self._with_counts(run), recipients

    async def recipient_outcome(self, site_id: str, run_id: str, subscriber_id: str) -> RecipientView:
        _check_id(run_id, "run_id")
        if not subscriber_id:
            raise InvalidArgument("MISSING_FIELD", "subscriber_id is required", field="subscriber_id")
        if await self._store.get_run(site_id, run_id) is None:
            raise self._run_not_found(run_id)
        view = await self._store.recipient(site_id, run_id, subscriber_id)
        if view is None:
            raise NotFound(
                "RECIPIENT_NOT_QUEUED",
                f"subscriber {subscriber_id!r} is not queued for run {run_id!r}: it was not in "
                "the run's audience snapshot, or the audience is still being resolved",
                subscriber_id=subscriber_id,
            )
        return view

    async def _with_counts(self, run: Run) -> RunWithCounts:
        counts = await self._store.run_counts(run.site_id, [run.run_id])
        return RunWithCounts(run, counts[run.run_id])

    @staticmethod
    def _run_not_found(run_id: str) -> NotFound:
        return NotFound("RUN_NOT_FOUND", f"no delivery run {run_id!r} in this site", run_id=run_id)
