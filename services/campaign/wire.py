"""Proto <-> domain translation, shared by the servicers and the peer clients."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from clarion.campaign.v1 import campaign_pb2, site_pb2
from clarion.common.v1 import common_pb2
from services.campaign.domain import schedules, timing, triggers
from services.campaign.domain.campaigns import RunRecipient
from services.campaign.domain.ports import DeliveryPlanView, RecipientStatus
from services.campaign.store import (
    CampaignRecord,
    CampaignState,
    LegacySafariRecord,
    MissedReason,
    RestState,
    RunPhase,
    RunRecord,
    RunState,
    SiteRecord,
    Urgency,
    VapidKeyRecord,
)
from services.kit.errors import InvalidArgument

URGENCY_TO_PROTO = {
    Urgency.VERY_LOW: common_pb2.URGENCY_VERY_LOW,
    Urgency.LOW: common_pb2.URGENCY_LOW,
    Urgency.NORMAL: common_pb2.URGENCY_NORMAL,
    Urgency.HIGH: common_pb2.URGENCY_HIGH,
}
URGENCY_FROM_PROTO: dict[int, Urgency] = {
    number: urgency for urgency, number in URGENCY_TO_PROTO.items()
}
RUN_STATE_TO_PROTO = {
    RunState.PREPARING: campaign_pb2.RUN_STATE_PREPARING,
    RunState.SENDING: campaign_pb2.RUN_STATE_SENDING,
    RunState.DONE: campaign_pb2.RUN_STATE_DONE,
    RunState.FAILED: campaign_pb2.RUN_STATE_FAILED,
    RunState.CANCELLED: campaign_pb2.RUN_STATE_CANCELLED,
}
CAMPAIGN_STATE_TO_PROTO = {
    CampaignState.DRAFT: campaign_pb2.CAMPAIGN_STATE_DRAFT,
    CampaignState.SCHEDULED: campaign_pb2.CAMPAIGN_STATE_SCHEDULED,
    CampaignState.PAUSED: campaign_pb2.CAMPAIGN_STATE_PAUSED,
    CampaignState.COMPLETED: campaign_pb2.CAMPAIGN_STATE_COMPLETED,
    CampaignState.CANCELLED: campaign_pb2.CAMPAIGN_STATE_CANCELLED,
}
MISSED_REASON_TO_PROTO = {
    MissedReason.PAUSED: campaign_pb2.MISSED_REASON_PAUSED,
    MissedReason.SUPERSEDED: campaign_pb2.MISSED_REASON_SUPERSEDED,
    MissedReason.CUT_OFF: campaign_pb2.MISSED_REASON_CUT_OFF,
    MissedReason.ENDED: campaign_pb2.MISSED_REASON_ENDED,
}
RUN_PHASE_TO_PROTO = {
    RunPhase.NONE: campaign_pb2.RUN_PHASE_UNSPECIFIED,
    RunPhase.VARIANT_TEST: campaign_pb2.RUN_PHASE_VARIANT_TEST,
    RunPhase.VARIANT_REST: campaign_pb2.RUN_PHASE_VARIANT_REST,
}
RECIPIENT_STATUS_TO_PROTO = {
    RecipientStatus.PENDING: campaign_pb2.RECIPIENT_STATUS_PENDING,
    RecipientStatus.SENT: campaign_pb2.RECIPIENT_STATUS_SENT,
    RecipientStatus.FAILED: campaign_pb2.RECIPIENT_STATUS_FAILED,
    RecipientStatus.SUPPRESSED: campaign_pb2.RECIPIENT_STATUS_SUPPRESSED,
    RecipientStatus.EXPIRED: campaign_pb2.RECIPIENT_STATUS_EXPIRED,
}


def timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def urgency_from_proto(number: int) -> Urgency | None:
    """None for URGENCY_UNSPECIFIED (the domain's default applies)."""
    if number == common_pb2.URGENCY_UNSPECIFIED:
        return None
    urgency = URGENCY_FROM_PROTO.get(number)
    if urgency is None:
        raise InvalidArgument(
            "INVALID_URGENCY",
            f"urgency {number} is not a clarion.common.v1.Urgency value",
            field="urgency",
        )
    return urgency


def site_to_proto(site: SiteRecord) -> site_pb2.Site:
    return site_pb2.Site(
        site_id=site.site_id,
        name=site.name,
        vapid_public_key=site.vapid_public_key,
        vapid_subject=site.vapid_subject,
        create_time=timestamp(site.create_time),
        vapid_keys=[vapid_key_to_proto(key) for key in site.vapid_keys],
        timezone=site.timezone,
        delivery_policy=site.delivery_policy,
        home_url=site.home_url,
        legacy_safari=legacy_safari_to_proto(site.legacy_safari),
    )


def legacy_safari_to_proto(config: LegacySafariRecord | None) -> site_pb2.LegacySafari:
    """The public parts only; `configured` False (and nothing else) for None."""
    if config is None:
        return site_pb2.LegacySafari(configured=False)
    return site_pb2.LegacySafari(
        configured=True,
        website_push_id=config.website_push_id,
        website_name=config.website_name,
        allowed_domains=config.allowed_domains,
        url_format_string=config.url_format_string,
        apns_key_id=config.apns_key_id,
        apns_team_id=config.apns_team_id,
        certificate_subject=config.certificate_subject,
        certificate_expire_time=timestamp(config.certificate_expire_time),
        update_time=timestamp(config.update_time),
    )


def vapid_key_to_proto(key: VapidKeyRecord) -> site_pb2.VapidKey:
    """The public half only."""
    return site_pb2.VapidKey(
        vapid_key_id=key.vapid_key_id,
        public_key=key.public_key,
        current=key.current,
        origin=key.origin.value,
        create_time=timestamp(key.create_time),
    )


def campaign_to_proto(campaign: CampaignRecord) -> campaign_pb2.Campaign:
    shown_next = campaign.state is CampaignState.SCHEDULED and campaign.next_run_time
    return campaign_pb2.Campaign(
        campaign_id=campaign.campaign_id,
        name=campaign.name,
        # Unset (not an empty message) when the variants carry the notifications.
        notification=campaign.notification if campaign.notification.ByteSize() else None,
        ttl_seconds=campaign.ttl_seconds,
        urgency=URGENCY_TO_PROTO[campaign.urgency],
        create_time=timestamp(campaign.create_time),
        update_time=timestamp(campaign.update_time),
        audience=campaign.audience,
        schedule=(
            schedules.schedule_to_proto(schedules.schedule_from_json(campaign.schedule))
            if campaign.schedule
            else None
        ),
        state=campaign_pb2.CAMPAIGN_STATE_RUNNING
        if campaign.running
        else CAMPAIGN_STATE_TO_PROTO[campaign.state],
        # While paused the stored next occurrence is the next one to be missed: not shown.
        next_run_time=timestamp(campaign.next_run_time) if shown_next else None,
        missed_occurrences=[
            campaign_pb2.MissedOccurrence(
                occurrence_time=timestamp(time), reason=MISSED_REASON_TO_PROTO[reason]
            )
            for time, reason in campaign.missed
        ],
        trigger=(
            triggers.trigger_to_proto(triggers.trigger_from_json(campaign.trigger))
            if campaign.trigger
            else None
        ),
        timing=(
            timing.timing_to_proto(timing.timing_from_json(campaign.timing))
            if campaign.timing
            else None
        ),
        personalization=campaign.personalization,
        utm=campaign.utm,
        topic=campaign.topic,
        labels=campaign.labels,
        policy=campaign.policy,
        variants=campaign.variants,
        variant_test=campaign.variant_test,
        conversion_goal=campaign.conversion_goal,
    )


def run_to_proto(run: RunRecord) -> campaign_pb2.Run:
    return campaign_pb2.Run(
        run_id=run.run_id,
        campaign_id=run.campaign_id,
        state=RUN_STATE_TO_PROTO[run.state],
        audience=run.progress.resolved,
        failure_reason=run.failure_reason,
        create_time=timestamp(run.create_time),
        progress=campaign_pb2.RunProgress(**run.progress.__dict__),
        finish_time=timestamp(run.finish_time) if run.finish_time else None,
        warnings=_run_warnings(run),
        test=run.test,
        phase=RUN_PHASE_TO_PROTO[run.phase],  # type: ignore[arg-type]
        related_run_id=run.related_run_id or "",
        variant_decision=run.variant_decision,
        # A rest cancelled with its test (or campaign) is never sent: no time shown.
        rest_time=timestamp(run.rest_time)
        if run.rest_time is not None and run.rest_state is not RestState.CANCELLED
        else None,
        held_push_services=run.held_push_services,
    )


def reason_to_proto(word: str) -> int:
    """A DeliveryReason word ("push_service_410") as the enum value; "" is UNSPECIFIED."""
    if not word:
        return common_pb2.DELIVERY_REASON_UNSPECIFIED
    return common_pb2.DeliveryReason.Value(f"DELIVERY_REASON_{word.upper()}")


def run_recipient_to_proto(recipient: RunRecipient) -> campaign_pb2.RunRecipient:
    outcome = recipient.outcome
    return campaign_pb2.RunRecipient(
        run_id=recipient.run_id,
        subscriber_id=outcome.subscriber_id,
        status=RECIPIENT_STATUS_TO_PROTO[outcome.status],
        reason=reason_to_proto(outcome.reason),  # type: ignore[arg-type]
        attempts=outcome.attempts,
        finish_time=timestamp(outcome.finish_time) if outcome.finish_time else None,
        explanation=recipient.explanation,
    )


def delivery_plan_to_proto(plan: DeliveryPlanView) -> campaign_pb2.DeliveryPlan:
    return campaign_pb2.DeliveryPlan(
        snapshot_time=timestamp(plan.snapshot_time),
        audience=plan.audience,
        rows=[
            campaign_pb2.DeliveryPlanRow(
                hour_start=timestamp(row.hour_start),
                browser=row.browser,  # type: ignore[arg-type]
                variant_id=row.variant_id,
                sent=row.sent,
                suppressed=[
                    campaign_pb2.PlanSuppression(reason=reason, count=count)  # type: ignore[arg-type]
                    for reason, count in row.suppressed.items()
                ],
            )
            for row in plan.rows
        ],
    )


def _run_warnings(run: RunRecord) -> list[int]:
    # Only once the audience is final: while preparing, 0 resolved means not yet.
    if run.state == RunState.DONE and run.progress.resolved == 0:
        return [campaign_pb2.RUN_WARNING_EMPTY_AUDIENCE]
    return []
