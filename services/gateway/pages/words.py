"""How the report pages say things: numbers, rates, times, reasons and schedules in words.

Every function takes plain values or generated messages and returns text; the templates
use them as Jinja filters (`{{ report.sent | number }}`).
"""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.message import Message

from clarion.campaign.v1 import campaign_pb2
from clarion.common.v1 import common_pb2

# What a page shows where there is no value (a campaign never sent, a rate over nothing).
NONE = "—"

_REASONS: dict[int, str] = {
    common_pb2.DELIVERY_REASON_PUSH_SERVICE_404: "Subscription gone (404)",
    common_pb2.DELIVERY_REASON_PUSH_SERVICE_410: "Subscription gone (410)",
    common_pb2.DELIVERY_REASON_PAYLOAD_TOO_LARGE: "Message too large",
    common_pb2.DELIVERY_REASON_PUSH_SERVICE_429: "Push service busy (429)",
    common_pb2.DELIVERY_REASON_PUSH_SERVICE_5XX: "Push service error (5xx)",
    common_pb2.DELIVERY_REASON_PUSH_SERVICE_AUTH: "VAPID signature refused",
    common_pb2.DELIVERY_REASON_PUSH_SERVICE_4XX: "Refused by the push service (4xx)",
    common_pb2.DELIVERY_REASON_TIMEOUT: "Timed out",
    common_pb2.DELIVERY_REASON_CONNECTION_ERROR: "Connection error",
    common_pb2.DELIVERY_REASON_ENDPOINT_REFUSED: "Endpoint not allowed",
    common_pb2.DELIVERY_REASON_ENCRYPTION_ERROR: "Could not encrypt",
    common_pb2.DELIVERY_REASON_NO_VAPID_CREDENTIALS: "No VAPID key",
    common_pb2.DELIVERY_REASON_UNSUBSCRIBED: "Unsubscribed",
    common_pb2.DELIVERY_REASON_FREQUENCY_CAP: "Frequency cap",
    common_pb2.DELIVERY_REASON_DND: "Quiet hours",
    common_pb2.DELIVERY_REASON_CUT_OFF: "Cut-off passed",
    common_pb2.DELIVERY_REASON_CONTROL_GROUP: "Control group",
    common_pb2.DELIVERY_REASON_CANCELLED: "Run cancelled",
    common_pb2.DELIVERY_REASON_EXPIRED_TTL: "TTL passed",
    common_pb2.DELIVERY_REASON_APNS_UNREGISTERED: "Device token gone (APNs)",
    common_pb2.DELIVERY_REASON_LOCAL_TIME_PASSED: "Local time had passed",
    common_pb2.DELIVERY_REASON_PERSONALIZATION_MISSING: "Template value missing",
    common_pb2.DELIVERY_REASON_PERSONALIZATION_INVALID: "Template value unusable",
}

_BROWSERS: dict[int, str] = {
    common_pb2.BROWSER_CHROME: "Chrome",
    common_pb2.BROWSER_FIREFOX: "Firefox",
    common_pb2.BROWSER_EDGE: "Edge",
    common_pb2.BROWSER_OPERA: "Opera",
    common_pb2.BROWSER_SAFARI: "Safari",
    common_pb2.BROWSER_OTHER: "Other",
}

_NOT_TARGETED: dict[int, str] = {
    campaign_pb2.NOT_TARGETED_REASON_NOT_IN_SEGMENT: "not in the campaign's audience",
    campaign_pb2.NOT_TARGETED_REASON_UNSUBSCRIBED: "unsubscribed before the run started",
    campaign_pb2.NOT_TARGETED_REASON_JOINED_AFTER_RUN: "subscribed after the run started",
    campaign_pb2.NOT_TARGETED_REASON_UNREACHABLE: "its subscription could not be sent to",
    campaign_pb2.NOT_TARGETED_REASON_TEST_SEND_ONLY: "the run was a test send to others",
    campaign_pb2.NOT_TARGETED_REASON_UNKNOWN_SUBSCRIBER: "no such subscriber on this site",
    campaign_pb2.NOT_TARGETED_REASON_NOT_IN_SAMPLE: "not in the variant test's sample",
}

_DAYS = {"MO": "Mon", "TU": "Tue", "WE": "Wed", "TH": "Thu", "FR": "Fri", "SA": "Sat", "SU": "Sun"}
_UNITS = {
    "MINUTELY": ("minute", "minutes"),
    "HOURLY": ("hour", "hours"),
    "DAILY": ("day", "days"),
    "WEEKLY": ("week", "weeks"),
    "MONTHLY": ("month", "months"),
    "YEARLY": ("year", "years"),
}


def number(value: int | float) -> str:
    """12345 -> "12,345"."""
    return f"{value:,}"


def percent(rate: float) -> str:
    """A rate of 0..1 as a percentage with two decimals (as `clarion report` prints it)."""
    return f"{rate:.2%}"


def share(part: int, whole: int) -> str:
    """`part` as a percentage of `whole`; "—" when whole is 0."""
    return percent(part / whole) if whole else NONE


def money(value: float) -> str:
    return f"{value:,.2f}"


def signed_percent(rate: float) -> str:
    return f"{rate:+.2%}"


def moment(value: datetime | None) -> str:
    """A time as the pages show it: UTC, to the minute."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else NONE


def timestamp(message: Message, field: str) -> datetime | None:
    """A message's Timestamp field as an aware datetime; None when unset."""
    if not message.HasField(field):
        return None
    return getattr(message, field).ToDatetime(UTC)


def from_epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def iso(value: datetime | None) -> str:
    """The machine-readable form for `<time datetime>`."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else ""


def reason(value: int) -> str:
    return (
        _REASONS.get(value)
        or common_pb2.DeliveryReason.Name(value)
        .removeprefix(  # type: ignore[arg-type]
            "DELIVERY_REASON_"
        )
        .replace("_", " ")
        .capitalize()
    )


def browser(value: int) -> str:
    return _BROWSERS.get(value, "Unknown")


def not_targeted(value: int) -> str:
    return _NOT_TARGETED.get(value, "not targeted")


def state(campaign: campaign_pb2.Campaign) -> str:
    name = campaign_pb2.CampaignState.Name(campaign.state).removeprefix("CAMPAIGN_STATE_")
    if name == "DRAFT":
        # DRAFT means "no schedule": such a campaign may well have been sent by hand, which
        # "Draft" would deny on a report page.
        return "Manual"
    return "Unknown" if name == "UNSPECIFIED" else name.capitalize()


def recipient_status(value: int) -> str:
    name = campaign_pb2.RecipientStatus.Name(value).removeprefix("RECIPIENT_STATUS_")  # type: ignore[arg-type]
    return "Unknown" if name == "UNSPECIFIED" else name.capitalize()


def attempt_meaning(attempt: common_pb2.DeliveryAttempt) -> str:
    if attempt.reason:
        return reason(attempt.reason)
    if 200 <= attempt.http_status < 300:
        return "Accepted"
    return "No answer" if attempt.http_status == 0 else NONE


def duration(seconds: int) -> str:
    """3600 -> "1 h", 5400 -> "90 min", 172800 -> "2 days"."""
    seconds = abs(seconds)
    if seconds and seconds % 86400 == 0:
        days = seconds // 86400
        return f"{days} day" + ("" if days == 1 else "s")
    if seconds and seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds and seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def recurrence(rule: str, zone: str) -> str:
    """An RFC 5545 rule in words ("every week on Mon, Thu at 09:00"), or the rule itself
    when it says something these words do not cover."""
    parts: dict[str, str] = {}
    for item in rule.split(";"):
        key, _, value = item.partition("=")
        parts[key.strip().upper()] = value.strip().upper()
    unit = _UNITS.get(parts.pop("FREQ", ""))
    known = {"INTERVAL", "BYDAY", "BYHOUR", "BYMINUTE", "BYMONTHDAY", "COUNT"}
    if unit is None or set(parts) - known:
        return f"Recurring: {rule} ({zone or 'UTC'})"
    interval = parts.get("INTERVAL", "1")
    words = [f"Every {unit[0]}" if interval == "1" else f"Every {interval} {unit[1]}"]
    if "BYDAY" in parts:
        words.append("on " + ", ".join(_DAYS.get(day, day) for day in parts["BYDAY"].split(",")))
    if "BYMONTHDAY" in parts:
        words.append(f"on day {parts['BYMONTHDAY']}")
    if "BYHOUR" in parts:
        hours = parts["BYHOUR"].split(",")
        minute = parts.get("BYMINUTE", "0").split(",")[0]
        if all(hour.isdigit() for hour in hours) and minute.isdigit():
            words.append("at " + ", ".join(f"{int(h):02d}:{int(minute):02d}" for h in hours))
        else:
            return f"Recurring: {rule} ({zone or 'UTC'})"
    if "COUNT" in parts:
        words.append(f"({parts['COUNT']} times)")
    return " ".join(words) + f" ({zone or 'UTC'})"


def trigger(value: campaign_pb2.Trigger) -> str:
    words = f"Live: when “{value.event_name}” happens"
    wait = value.WhichOneof("wait")
    if wait == "inaction":
        words += (
            f", if no “{value.inaction.event_name}” follows within "
            f"{duration(value.inaction.window_seconds)}"
        )
    elif wait == "date_reminder":
        offset = value.date_reminder.offset_seconds
        when = (
            "at" if offset == 0 else (f"{duration(offset)} {'before' if offset < 0 else 'after'}")
        )
        words += f", {when} its “{value.date_reminder.property}” time"
    return words


def schedule(campaign: campaign_pb2.Campaign) -> str:
    """When the campaign's runs start, in words: once at, set times, a recurring rule, a
    live trigger, or only when sent by hand."""
    if campaign.HasField("trigger"):
        return trigger(campaign.trigger)
    kind = campaign.schedule.WhichOneof("kind") if campaign.HasField("schedule") else None
    if kind == "at":
        return f"Once at {moment(timestamp(campaign.schedule, 'at'))}"
    if kind == "times":
        count = len(campaign.schedule.times.times)
        return f"At {count} set time" + ("" if count == 1 else "s")
    if kind == "recurrence":
        rule = campaign.schedule.recurrence
        return recurrence(rule.rule, rule.timezone)
    return "When sent by hand"


FILTERS = {
    "number": number,
    "percent": percent,
    "money": money,
    "signed_percent": signed_percent,
    "moment": moment,
    "iso": iso,
    "reason": reason,
    "browser": browser,
    "not_targeted": not_targeted,
    "recipient_status": recipient_status,
    "attempt_meaning": attempt_meaning,
}
