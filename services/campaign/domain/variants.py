"""A/B variants: what a campaign's variants, variant test and conversion goal may be,
each variant's content for a run, and the test's decision (a two-proportion z-test of
the best variant against the runner-up)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from clarion.campaign.v1 import campaign_pb2
from clarion.common.v1 import common_pb2
from services.campaign.domain import content
from services.campaign.store import CampaignRecord, RunContentOptions, RunVariantContent
from services.kit.errors import InvalidArgument
from services.kit.goals import check_conversion_goal

MIN_VARIANTS = 2
MAX_VARIANTS = 5
_VARIANT_ID = re.compile(r"[A-Za-z0-9_-]{1,16}")
MIN_TEST_PERCENT, MAX_TEST_PERCENT = 5, 50
MIN_WAIT_SECONDS, MAX_WAIT_SECONDS = 300, 7 * 24 * 3600
BASIS_POINTS = 10_000
# |z| at or above this is significant (two-sided, 95 %).
Z_CRITICAL = 1.96
_METRICS = (
    campaign_pb2.WINNER_METRIC_UNSPECIFIED,
    campaign_pb2.WINNER_METRIC_CLICK_THROUGH_RATE,
    campaign_pb2.WINNER_METRIC_CONVERSION_RATE,
)
_MENTIONED_NOTIFICATION = re.compile(r"\bnotification(?=[.\[])")


# What a campaign may hold.


def checked_variants(
    given: Sequence[campaign_pb2.Variant],
    notification: common_pb2.Notification,
    *,
    field: str = "variants",
    notification_field: str = "notification",
) -> tuple[campaign_pb2.Variant, ...]:
    """The variants as a campaign keeps them (copies), or InvalidArgument naming what is
    wrong: 2 to 5, ids unique, shares of 1 to 99 adding up to 100, and `notification`
    left unset beside them. Each variant's notification is content's to check."""
    if not given:
        return ()
    if notification.ByteSize():
        update = " (name both in update_mask, notification unset)" if "." in field else ""
        raise InvalidArgument(
            "NOTIFICATION_AND_VARIANTS",
            f"a campaign has a notification or variants, not both: with {field}, each "
            f"variant carries its own notification, so leave {notification_field} "
            f"unset{update}",
            field=notification_field,
        )
    if len(given) < MIN_VARIANTS:
        raise InvalidArgument(
            "TOO_FEW_VARIANTS",
            f"{field} has {len(given)} variant; an A/B test needs {MIN_VARIANTS} to "
            f"{MAX_VARIANTS} (for one notification, set {notification_field} instead)",
            field=field,
        )
    if len(given) > MAX_VARIANTS:
        raise InvalidArgument(
            "TOO_MANY_VARIANTS",
            f"{field} has {len(given)} variants; at most {MAX_VARIANTS}",
            field=field,
        )
    seen: set[str] = set()
    for index, variant in enumerate(given):
        where = f"{field}[{index}]"
        if not _VARIANT_ID.fullmatch(variant.variant_id):
            raise InvalidArgument(
                "INVALID_VARIANT",
                f'{where}.variant_id must be 1 to 16 characters of A-Z a-z 0-9 - _ (e.g. "A", "B")',
                field=f"{where}.variant_id",
            )
        if variant.variant_id in seen:
            raise InvalidArgument(
                "DUPLICATE_VARIANT",
                f"{where}.variant_id {variant.variant_id!r} is used twice; each variant "
                "needs an id of its own",
                field=f"{where}.variant_id",
            )
        seen.add(variant.variant_id)
        if not 1 <= variant.split_percent <= 99:
            raise InvalidArgument(
                "INVALID_VARIANT_SPLIT",
                f"{where}.split_percent is {variant.split_percent}; each variant's share is "
                "1 to 99 percent",
                field=f"{where}.split_percent",
            )
    total = sum(variant.split_percent for variant in given)
    if total != 100:
        raise InvalidArgument(
            "INVALID_VARIANT_SPLIT",
            f"the variants' split_percent add up to {total}; they must add up to 100",
            field=field,
        )
    kept = []
    for variant in given:
        copy = campaign_pb2.Variant()
        copy.CopyFrom(variant)
        kept.append(copy)
    return tuple(kept)


def checked_variant_test(
    given: campaign_pb2.VariantTest | None, *, field: str = "variant_test"
) -> campaign_pb2.VariantTest | None:
    """The test phase as kept (None: none), or InvalidArgument naming the wrong value.
    Whether the campaign may have one is check_combination's."""
    if given is None:
        return None
    if not MIN_TEST_PERCENT <= given.test_percent <= MAX_TEST_PERCENT:
        raise InvalidArgument(
            "INVALID_VARIANT_TEST",
            f"{field}.test_percent is {given.test_percent}; the test goes to "
            f"{MIN_TEST_PERCENT} to {MAX_TEST_PERCENT} percent of each run's audience",
            field=f"{field}.test_percent",
        )
    if not MIN_WAIT_SECONDS <= given.wait_seconds <= MAX_WAIT_SECONDS:
        raise InvalidArgument(
            "INVALID_VARIANT_TEST",
            f"{field}.wait_seconds is {given.wait_seconds}; the rest is sent "
            f"{MIN_WAIT_SECONDS} seconds (5 minutes) to {MAX_WAIT_SECONDS} (7 days) after "
            "the test",
            field=f"{field}.wait_seconds",
        )
    if given.metric not in _METRICS:
        raise InvalidArgument(
            "INVALID_VARIANT_TEST",
            f"{field}.metric {given.metric} is not a WinnerMetric",
            field=f"{field}.metric",
        )
    kept = campaign_pb2.VariantTest()
    kept.CopyFrom(given)
    return kept


def checked_conversion_goal(
    given: common_pb2.ConversionGoal | None, *, field: str = "conversion_goal"
) -> common_pb2.ConversionGoal | None:
    """The goal as kept (None: none), or InvalidArgument naming the wrong value."""
    if given is None:
        return None
    check_conversion_goal(
        given.event_name, given.window_seconds, given.revenue_property, field=field
    )
    kept = common_pb2.ConversionGoal()
    kept.CopyFrom(given)
    return kept


def check_combination(campaign: CampaignRecord, *, prefix: str = "") -> None:
    """InvalidArgument when the campaign's variant test cannot be: without variants, by
    conversion rate without a conversion goal, or in a live campaign."""
    test = campaign.variant_test
    if test is None:
        return
    if not campaign.variants:
        raise InvalidArgument(
            "INVALID_VARIANT_TEST",
            f"{prefix}variant_test needs variants: it tests them against each other; set "
            f"{prefix}variants (2 to 5), or leave variant_test unset",
            field=f"{prefix}variant_test",
        )
    if test.metric == campaign_pb2.WINNER_METRIC_CONVERSION_RATE and not campaign.conversion_goal:
        raise InvalidArgument(
            "INVALID_VARIANT_TEST",
            f"{prefix}variant_test.metric CONVERSION_RATE needs {prefix}conversion_goal: "
            "what counts as a conversion",
            field=f"{prefix}variant_test.metric",
        )
    if campaign.trigger is not None:
        raise InvalidArgument(
            "VARIANT_TEST_AND_TRIGGER",
            "a live campaign (with a trigger) cannot have a variant_test: each of its runs "
            "goes to the few people who just did the event, with no audience to test on "
            "and send the rest to later; keep the variants without variant_test (each "
            "person gets its variant) or remove the trigger",
            field=f"{prefix}variant_test",
        )


# Content.


def notifications(campaign: CampaignRecord) -> list[tuple[str, common_pb2.Notification]]:
    """Where each notification of the campaign is (a request field) and what it is: its
    variants', or its one notification."""
    if campaign.variants:
        return [
            (f"variants[{index}].notification", variant.notification)
            for index, variant in enumerate(campaign.variants)
        ]
    return [("notification", campaign.notification)]


def relocated_field(name: str, where: str) -> str:
    """A content field (`notification.title`) as the field of a notification found at
    `where` (`variants[1].notification.title`)."""
    if where == "notification" or not (
        name == "notification" or name.startswith(("notification.", "notification["))
    ):
        return name
    return where + name.removeprefix("notification")


def relocated(error: InvalidArgument, where: str) -> InvalidArgument:
    """content's error about a notification, about the one at `where` instead."""
    if where == "notification":
        return error
    message = _MENTIONED_NOTIFICATION.sub(where, error.message)
    if message == error.message:
        message = f"{where}: {message}"
    metadata = dict(error.metadata)
    if "field" in metadata:
        metadata["field"] = relocated_field(metadata["field"], where)
    return InvalidArgument(error.reason, message, **metadata)


def relocated_message(message: str, where: str) -> str:
    return message if where == "notification" else _MENTIONED_NOTIFICATION.sub(where, message)


def run_variants(
    campaign: CampaignRecord, run_id: str, *, test: bool = False, only: str = ""
) -> tuple[RunVariantContent, ...]:
    """Each of the campaign's variants' content for the run (variant_contents)."""
    return variant_contents(
        campaign.variants,
        campaign.campaign_id,
        run_id,
        site_id=campaign.site_id,
        personalization=campaign.personalization,
        utm=campaign.utm,
        topic=campaign.topic,
        test=test,
        only=only,
    )


def variant_contents(
    given: Sequence[campaign_pb2.Variant],
    campaign_id: str,
    run_id: str,
    *,
    site_id: str,
    personalization: campaign_pb2.Personalization | None,
    utm: campaign_pb2.UtmParameters | None,
    topic: str,
    test: bool = False,
    only: str = "",
) -> tuple[RunVariantContent, ...]:
    """Each variant's content for the run (content.run_content of its notification),
    with its split as weight; with `only`, that variant alone for everyone."""
    chosen = [v for v in given if not only or v.variant_id == only]
    return tuple(
        RunVariantContent(
            variant_id=variant.variant_id,
            weight_percent=100 if only else variant.split_percent,
            payload=parts.payload,
            options=RunContentOptions(
                browser_payloads=dict(parts.browser_payloads),
                profile_properties=parts.profile_properties,
                event_properties=parts.event_properties,
                suppress_missing_values=parts.suppress_missing_values,
                missing_value_text=parts.missing_value_text,
                topic=parts.topic,
            ),
        )
        for variant in chosen
        for parts in [
            content.run_content(
                variant.notification,
                campaign_id,
                run_id,
                site_id=site_id,
                personalization=personalization,
                utm=utm,
                topic=topic,
                test=test,
            )
        ]
    )


# The test's decision.


@dataclass(frozen=True)
class VariantOutcome:
    """A variant's result in the test run: pushes sent, and the clicks or conversions
    among them (by the test's metric)."""

    variant_id: str
    sent: int
    successes: int

    @property
    def rate(self) -> float:
        return self.successes / self.sent if self.sent > 0 else 0.0


@dataclass(frozen=True)
class Decision:
    # "" when no variant won significantly.
    winner_variant_id: str
    # The best variant's z statistic against the runner-up (0 when it cannot be had).
    z_score: float
    significant: bool
    outcomes: tuple[VariantOutcome, ...]


def decide(outcomes: Sequence[VariantOutcome]) -> Decision:
    """The winner of a variant test: the variant with the highest rate, when a
    two-proportion z-test against the runner-up (the next highest rate; pooled
    proportion) gives |z| >= 1.96. A tie at the top, a variant that sent nothing, or a
    pooled rate of 0 or 1 has no z (0) and no winner."""
    # Successes can only be among the sent (a report counting a click twice is capped),
    # which also keeps the pooled rate a proportion.
    kept = tuple(
        VariantOutcome(o.variant_id, max(o.sent, 0), min(max(o.successes, 0), max(o.sent, 0)))
        for o in outcomes
    )
    if len(kept) < 2:
        return Decision("", 0.0, False, kept)
    ranked = sorted(kept, key=lambda o: o.rate, reverse=True)
    best, runner_up = ranked[0], ranked[1]
    z = two_proportion_z(best.successes, best.sent, runner_up.successes, runner_up.sent)
    significant = abs(z) >= Z_CRITICAL
    return Decision(best.variant_id if significant else "", z, significant, kept)


def two_proportion_z(successes_a: int, sent_a: int, successes_b: int, sent_b: int) -> float:
    """z = (p_a - p_b) / sqrt(p (1 - p) (1/n_a + 1/n_b)), p the pooled proportion; 0
    when either sent nothing or the pooled proportion is 0 or 1 (no variance)."""
    if sent_a <= 0 or sent_b <= 0:
        return 0.0
    pooled = (successes_a + successes_b) / (sent_a + sent_b)
    variance = pooled * (1 - pooled) * (1 / sent_a + 1 / sent_b)
    if variance <= 0:
        return 0.0
    return (successes_a / sent_a - successes_b / sent_b) / math.sqrt(variance)


def sample_for_test(test_percent: int) -> tuple[int, int]:
    """The test run's share of the audience, in basis points."""
    return (0, test_percent * BASIS_POINTS // 100)


def sample_for_rest(test_sample_end: int) -> tuple[int, int]:
    """The rest run's share: everyone the test's did not hold."""
    return (test_sample_end, BASIS_POINTS)
