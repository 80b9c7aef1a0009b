"""Delivery policies: a site's (frequency cap, do-not-disturb hours, throttle), a
campaign's own (opting out of the site's, its own quiet hours, throttle, control group),
and the one policy a run hands delivery, merged from both."""

from __future__ import annotations

import re
from dataclasses import dataclass

from clarion.campaign.v1 import campaign_pb2
from services.kit.errors import InvalidArgument

_HH_MM = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")
MAX_PER_DAY = 1000
MAX_PER_WEEK = 7000
MAX_PER_MINUTE = 10_000_000
MAX_CONTROL_GROUP_PERCENT = 50
_QUIET_ACTIONS = (
    campaign_pb2.QUIET_HOURS_ACTION_UNSPECIFIED,
    campaign_pb2.QUIET_HOURS_ACTION_DISCARD,
    campaign_pb2.QUIET_HOURS_ACTION_DELAY,
)


@dataclass(frozen=True)
class RunPolicy:
    """What delivery applies to a run's recipients (delivery's RunPolicy): 0 and "" are
    none."""

    cap_per_day: int = 0
    cap_per_week: int = 0
    quiet_start: str = ""
    quiet_end: str = ""
    # A recipient due inside the quiet hours goes when they end (else: suppressed dnd).
    quiet_delay: bool = False
    campaign_max_per_minute: int = 0
    site_max_per_minute: int = 0
    control_group_percent: int = 0
    # Where recipients without a time zone live (the site's zone); "": UTC.
    default_timezone: str = ""


def run_policy(
    site: campaign_pb2.DeliveryPolicy | None,
    campaign: campaign_pb2.CampaignPolicy | None,
    *,
    default_timezone: str = "",
) -> RunPolicy:
    """The site's policy as it is now, with the campaign's (fixed when its run started)
    over it: the site's frequency cap unless the campaign ignores it; the campaign's own
    quiet hours if it has them, else the site's, and none when it ignores quiet hours;
    both throttles; the campaign's control group. `default_timezone` (the site's) is
    where recipients without a time zone live, for quiet hours and local days; it is
    sent only when a policy needs it."""
    site = site or campaign_pb2.DeliveryPolicy()
    campaign = campaign or campaign_pb2.CampaignPolicy()
    cap = campaign_pb2.FrequencyCap() if campaign.ignore_frequency_cap else site.frequency_cap
    quiet: campaign_pb2.QuietHours | None = None
    if not campaign.ignore_quiet_hours:
        if _has_hours(campaign.quiet_hours):
            quiet = campaign.quiet_hours
        elif _has_hours(site.quiet_hours):
            quiet = site.quiet_hours
    return RunPolicy(
        cap_per_day=cap.per_day,
        cap_per_week=cap.per_week,
        quiet_start=quiet.start if quiet is not None else "",
        quiet_end=quiet.end if quiet is not None else "",
        # Unspecified means delay (the contract's default).
        quiet_delay=quiet is not None and quiet.action != campaign_pb2.QUIET_HOURS_ACTION_DISCARD,
        campaign_max_per_minute=campaign.max_per_minute,
        site_max_per_minute=site.max_per_minute,
        control_group_percent=campaign.control_group_percent,
        default_timezone=default_timezone if cap.per_day or cap.per_week or quiet else "",
    )


def campaign_policy(
    message: campaign_pb2.CampaignPolicy | None, *, field: str = "policy"
) -> campaign_pb2.CampaignPolicy | None:
    """A campaign's policy as it is kept (None: none), or InvalidArgument naming the
    field: quiet hours as check_quiet_hours says, and not both its own quiet hours and
    ignoring quiet hours."""
    if message is None:
        return None
    policy = campaign_pb2.CampaignPolicy()
    policy.CopyFrom(message)
    hours = check_quiet_hours(policy.quiet_hours, field=f"{field}.quiet_hours")
    if hours is None:
        policy.ClearField("quiet_hours")
    if hours is not None and policy.ignore_quiet_hours:
        raise InvalidArgument(
            "INVALID_QUIET_HOURS",
            f"{field}.ignore_quiet_hours and {field}.quiet_hours contradict each other: a "
            "campaign either has quiet hours of its own or ignores quiet hours; set one",
            field=f"{field}.ignore_quiet_hours",
        )
    _check_range(
        policy.max_per_minute, 0, MAX_PER_MINUTE, "INVALID_THROTTLE", f"{field}.max_per_minute"
    )
    _check_range(
        policy.control_group_percent, 0, MAX_CONTROL_GROUP_PERCENT, "INVALID_CONTROL_GROUP",
        f"{field}.control_group_percent",
    )  # fmt: skip
    return policy if policy.ByteSize() else None


def delivery_policy(
    message: campaign_pb2.DeliveryPolicy | None, *, field: str = "delivery_policy"
) -> campaign_pb2.DeliveryPolicy | None:
    """A site's delivery policy as it is kept (None: none), or InvalidArgument naming
    the field."""
    if message is None:
        return None
    policy = campaign_pb2.DeliveryPolicy()
    policy.CopyFrom(message)
    check_frequency_cap(policy.frequency_cap, field=f"{field}.frequency_cap")
    if check_quiet_hours(policy.quiet_hours, field=f"{field}.quiet_hours") is None:
        policy.ClearField("quiet_hours")
    check_max_per_minute(policy.max_per_minute, field=f"{field}.max_per_minute")
    return policy if policy.ByteSize() else None


def check_frequency_cap(cap: campaign_pb2.FrequencyCap, *, field: str) -> None:
    _check_range(cap.per_day, 0, MAX_PER_DAY, "INVALID_FREQUENCY_CAP", f"{field}.per_day")
    _check_range(cap.per_week, 0, MAX_PER_WEEK, "INVALID_FREQUENCY_CAP", f"{field}.per_week")
    if cap.per_day and cap.per_week and cap.per_week < cap.per_day:
        raise InvalidArgument(
            "INVALID_FREQUENCY_CAP",
            f"{field}.per_week is {cap.per_week}, below {field}.per_day ({cap.per_day}): a "
            "week holds the day, so the weekly cap cannot be the smaller one",
            field=f"{field}.per_week",
        )


def check_max_per_minute(value: int, *, field: str) -> None:
    _check_range(value, 0, MAX_PER_MINUTE, "INVALID_THROTTLE", field)


def check_quiet_hours(
    hours: campaign_pb2.QuietHours, *, field: str
) -> campaign_pb2.QuietHours | None:
    """The quiet hours (None when neither start nor end nor action is set: none), or
    InvalidArgument naming the field: start and end are both "HH:MM" (00:00 to 23:59)
    and differ."""
    if not hours.start and not hours.end and not hours.action:
        return None
    for name in ("start", "end"):
        value = getattr(hours, name)
        if not value:
            raise InvalidArgument(
                "INVALID_QUIET_HOURS",
                f"{field}.{name} is missing: quiet hours need a start and an end (HH:MM), "
                "or neither",
                field=f"{field}.{name}",
            )
        if not _HH_MM.fullmatch(value):
            raise InvalidArgument(
                "INVALID_QUIET_HOURS",
                f"{field}.{name} is {value[:16]!r}; give HH:MM on a 24-hour clock (00:00 to "
                "23:59), e.g. 22:00",
                field=f"{field}.{name}",
            )
    if hours.start == hours.end:
        raise InvalidArgument(
            "INVALID_QUIET_HOURS",
            f"{field}.start and {field}.end are both {hours.start}: quiet hours need a "
            "window (22:00 to 08:00 runs over midnight)",
            field=f"{field}.end",
        )
    if hours.action not in _QUIET_ACTIONS:
        raise InvalidArgument(
            "INVALID_QUIET_HOURS",
            f"{field}.action {hours.action} is not a QuietHoursAction value",
            field=f"{field}.action",
        )
    return hours


def _has_hours(hours: campaign_pb2.QuietHours) -> bool:
    return bool(hours.start and hours.end)


def _check_range(value: int, low: int, high: int, reason: str, field: str) -> None:
    if not low <= value <= high:
        raise InvalidArgument(reason, f"{field} is {value}; give {low} to {high}", field=field)
