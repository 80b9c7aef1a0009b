"""The domain's ports over gRPC: campaign (site credentials), segment (audience snapshot,
subscriber checks, unsubscribes) and reporting (outcomes, audiences), each called with
the internal token on behalf of the site. A failed call raises the port's exception
with one line saying what it means (services.kit.peers.Peers.call_failed): an internal
token the peer refuses reads "internal token rejected by <peer>", not "unreachable"."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from clarion.campaign.v1 import site_internal_service_pb2, site_internal_service_pb2_grpc
from clarion.common.v1 import common_pb2
from clarion.reporting.v1 import (
    reporting_internal_service_pb2,
    reporting_internal_service_pb2_grpc,
)
from clarion.segment.v1 import (
    segment_internal_service_pb2,
    segment_internal_service_pb2_grpc,
    segment_pb2,
    subscriber_pb2,
)
from services.delivery.domain.content import plain_properties
from services.delivery.domain.descriptions import RunDescription
from services.delivery.domain.goals import ConversionGoal
from services.delivery.domain.ports import (
    ApnsCredentials,
    AudiencePage,
    CredentialsUnavailable,
    PeerUnavailable,
    SiteCredentials,
)
from services.delivery.models import RecipientState, TargetKind
from services.delivery.store import Member, OutboxItem
from services.kit.peers import Peers, token_rejected

DELIVERY_STATUS = {
    RecipientState.SENT: common_pb2.DELIVERY_STATUS_SENT,
    RecipientState.FAILED: common_pb2.DELIVERY_STATUS_FAILED,
    RecipientState.SUPPRESSED: common_pb2.DELIVERY_STATUS_SUPPRESSED,
    RecipientState.EXPIRED: common_pb2.DELIVERY_STATUS_EXPIRED,
}
_REASON_PREFIX = "DELIVERY_REASON_"

# The peer refused the request itself: asking again will not help. A refused internal
# token (UNAUTHENTICATED, PERMISSION_DENIED) is not among these: it is configuration,
# and the work waits (retried) until the operator makes the tokens agree, rather than
# failing every recipient for good.
_PERMANENT = (
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.INVALID_ARGUMENT,
)


def reason_enum(reason: str) -> int:
    """A stored reason word as clarion.common.v1.DeliveryReason ("" is UNSPECIFIED)."""
    if not reason:
        return common_pb2.DELIVERY_REASON_UNSPECIFIED
    return common_pb2.DeliveryReason.Value(_REASON_PREFIX + reason.upper())


def timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _permanent(error: grpc.aio.AioRpcError) -> bool:
    return error.code() in _PERMANENT and not token_rejected(error)


def _unavailable(peers: Peers, call: str, error: grpc.aio.AioRpcError) -> PeerUnavailable:
    service = call.partition(".")[0]
    return PeerUnavailable(f"{call}: {peers.call_failed(service, error)}", permanent=_permanent(error))


class GrpcSiteCredentials:
    def __init__(self, peers: Peers) -> None:
        self._peers = peers

    async def site_credentials(self, site_id: str) -> SiteCredentials:
        stub = site_internal_service_pb2_grpc.SiteInternalServiceStub(
            self._peers.channel("campaign")
        )
        try:
            response = await stub.GetSiteCredentials(
                site_internal_service_pb2.GetSiteCredentialsRequest(),
                metadata=self._peers.metadata(site_id),
                timeout=self._peers.timeout,
            )
        except grpc.aio.AioRpcError as error:
            raise CredentialsUnavailable(
                f"campaign.GetSiteCredentials: {self._peers.call_failed('campaign', error)}",
                permanent=_permanent(error),
            ) from None
        if not response.vapid_private_key or not response.engagement_secret:
            raise CredentialsUnavailable("the site has no VAPID key", permanent=True)
        return SiteCredentials(
            site_id=site_id,
            vapid_private_key=response.vapid_private_key,
            vapid_public_key=response.vapid_public_key,
            vapid_subject=response.vapid_subject,
            engagement_secret=response.engagement_secret,
            current_vapid_key_id=response.current_vapid_key_id,
            vapid_keys={pair.vapid_key_id: pair.private_key for pair in response.vapid_keys},
        )


class GrpcApnsCredentials:
    """A site's legacy Safari (APNs) credentials from campaign; a site without any (or
    with an unusable key) raises CredentialsUnavailable(permanent=True)."""

    def __init__(self, peers: Peers) -> None:
        self._peers = peers

    async def apns_credentials(self, site_id: str) -> ApnsCredentials:
        stub = site_internal_service_pb2_grpc.SiteInternalServiceStub(
            self._peers.channel("campaign")
        )
        try:
            response = await stub.GetLegacySafariCredentials(
                site_internal_service_pb2.GetLegacySafariCredentialsRequest(),
                metadata=self._peers.metadata(site_id),
                timeout=self._peers.timeout,
            )
        except grpc.aio.AioRpcError as error:
            raise CredentialsUnavailable(
                f"campaign.GetLegacySafariCredentials: "
                f"{self._peers.call_failed('campaign', error)}",
                permanent=_permanent(error),
            ) from None
        if not (response.apns_private_key and response.apns_key_id and response.apns_team_id):
            raise CredentialsUnavailable("the site has no APNs key", permanent=True)
        return ApnsCredentials(
            site_id=site_id,
            private_key=response.apns_private_key,
            key_id=response.apns_key_id,
            team_id=response.apns_team_id,
            topic=response.apns_topic,
            url_format_string=response.url_format_string,
        )


class GrpcAudience:
    def __init__(self, peers: Peers) -> None:
        self._peers = peers

    def _stub(self) -> segment_internal_service_pb2_grpc.SegmentInternalServiceStub:
        return segment_internal_service_pb2_grpc.SegmentInternalServiceStub(
            self._peers.channel("segment")
        )

    async def audience_page(
        self,
        site_id: str,
        snapshot_time: datetime,
        subscriber_ids: Sequence[str],
        page_token: str,
        page_size: int,
        *,
        selector: bytes = b"",
        audience_key: str = "",
        profile_ids: Sequence[str] = (),
        profile_properties: Sequence[str] = (),
    ) -> AudiencePage:
        request = segment_internal_service_pb2.ListAudienceMembersRequest(
            snapshot_time=timestamp(snapshot_time),
            subscriber_ids=list(subscriber_ids),
            profile_ids=list(profile_ids),
            page_size=page_size,
            page_token=page_token,
            profile_properties=list(profile_properties),
        )
        if selector:
            request.audience.CopyFrom(segment_pb2.AudienceSelector.FromString(selector))
            request.audience_key = audience_key
        try:
            response = await self._stub().ListAudienceMembers(
                request, metadata=self._peers.metadata(site_id), timeout=self._peers.timeout
            )
        except grpc.aio.AioRpcError as error:
            if selector and _permanent(error):
                raise PeerUnavailable(_audience_refused(request.audience, error), permanent=True)
            raise _unavailable(self._peers, "segment.ListAudienceMembers", error) from None
        members = []
        web_push, apns = TargetKind.WEB_PUSH, TargetKind.APNS
        for m in response.members:
            target = m.target
            if target.HasField("apns"):
                kind, endpoint, p256dh, auth = apns, target.apns.device_token, b"", b""
            else:
                web = target.web_push
                kind, endpoint, p256dh, auth = web_push, web.endpoint, web.p256dh, web.auth
            properties = m.profile_properties
            # Positional, in Member's field order: keywords cost more, per member.
            members.append(
                Member(
                    m.subscriber_id,
                    m.profile_id,
                    m.timezone,
                    m.browser,
                    kind,
                    endpoint,
                    p256dh,
                    auth,
                    m.unsubscribed,
                    m.vapid_key_id,
                    plain_properties(properties) if properties else {},
                )
            )
        return AudiencePage(members, response.next_page_token)

    async def inactive_subscribers(self, site_id: str, subscriber_ids: Sequence[str]) -> set[str]:
        try:
            response = await self._stub().CheckSubscribers(
                segment_internal_service_pb2.CheckSubscribersRequest(
                    subscriber_ids=list(subscriber_ids)
                ),
                metadata=self._peers.metadata(site_id),
                timeout=self._peers.timeout,
            )
        except grpc.aio.AioRpcError as error:
            raise _unavailable(self._peers, "segment.CheckSubscribers", error) from None
        return set(response.inactive_subscriber_ids)


def _audience_refused(
    audience: segment_pb2.AudienceSelector, error: grpc.aio.AioRpcError
) -> str:
    """Why segment refused a run's audience for good, as the run's failure message."""
    details = error.details() or "no details"
    if error.code() == grpc.StatusCode.NOT_FOUND:
        if audience.HasField("segment_id"):
            return (
                f"the segment {audience.segment_id!r} was not found (deleted?): "
                f"segment.ListAudienceMembers answered NOT_FOUND: {details}"
            )
        return f"the segment was not found: segment.ListAudienceMembers answered NOT_FOUND: {details}"
    what = "the segment's definition" if audience.HasField("segment_id") else "the audience definition"
    return (
        f"{what} was refused: segment.ListAudienceMembers answered "
        f"{error.code().name}: {details}"
    )


class GrpcSubscriberPruner:
    def __init__(self, peers: Peers) -> None:
        self._peers = peers

    async def unsubscribe(self, site_id: str, gone: Sequence[tuple[str, str]]) -> None:
        stub = segment_internal_service_pb2_grpc.SegmentInternalServiceStub(
            self._peers.channel("segment")
        )
        try:
            await stub.BatchUnsubscribeSubscribers(
                segment_internal_service_pb2.BatchUnsubscribeSubscribersRequest(
                    unsubscriptions=[
                        subscriber_pb2.Unsubscription(
                            subscriber_id=subscriber_id,
                            reason=reason_enum(reason),  # type: ignore[arg-type]
                        )
                        for subscriber_id, reason in gone
                    ]
                ),
                metadata=self._peers.metadata(site_id),
                timeout=self._peers.timeout,
            )
        except grpc.aio.AioRpcError as error:
            raise _unavailable(self._peers, "segment.BatchUnsubscribeSubscribers", error) from None


class GrpcOutcomeSink:
    def __init__(self, peers: Peers) -> None:
        self._peers = peers

    def _stub(self) -> reporting_internal_service_pb2_grpc.ReportingInternalServiceStub:
        return reporting_internal_service_pb2_grpc.ReportingInternalServiceStub(
            self._peers.channel("reporting")
        )

    async def record_outcomes(self, site_id: str, outcomes: Sequence[OutboxItem]) -> None:
        # Thousands per call sharing a few times, states and reasons: each of those is
        # converted once (a Timestamp is copied into each message by the C runtime).
        stamps: dict[datetime, Timestamp | None] = {}
        codes: dict[tuple[str, str], tuple[int, int]] = {}
        request = reporting_internal_service_pb2.RecordDeliveryOutcomesRequest()
        # Each message made in place in the request (constructing one and then adding
        # it copies it).
        add = request.outcomes.add
        for outcome in outcomes:
            stamp = stamps.get(outcome.occur_time)
            if stamp is None:
                stamp = stamps[outcome.occur_time] = timestamp(outcome.occur_time)
            key = (outcome.state, outcome.reason)
            code = codes.get(key)
            if code is None:
                code = codes[key] = (
                    DELIVERY_STATUS[RecipientState(outcome.state)],
                    reason_enum(outcome.reason),
                )
            add(
                run_id=outcome.run_id,
                campaign_id=outcome.campaign_id,
                subscriber_id=outcome.subscriber_id,
                status=code[0],  # type: ignore[arg-type]
                reason=code[1],  # type: ignore[arg-type]
                browser=outcome.browser,  # type: ignore[arg-type]
                occur_time=stamp,
                test=outcome.test,
                variant=outcome.variant,
                profile_id=outcome.profile_id,
            )
        try:
            await self._stub().RecordDeliveryOutcomes(
                request,
                metadata=self._peers.metadata(site_id),
                timeout=self._peers.timeout,
            )
        except grpc.aio.AioRpcError as error:
            raise _unavailable(self._peers, "reporting.RecordDeliveryOutcomes", error) from None

    async def record_audience(
        self,
        site_id: str,
        run_id: str,
        campaign_id: str,
        audience: int | None,
        *,
        test: bool = False,
        conversion_goal: ConversionGoal | None = None,
        description: RunDescription | None = None,
    ) -> None:
        try:
            await self._stub().RecordRunAudience(
                reporting_internal_service_pb2.RecordRunAudienceRequest(
                    run_id=run_id,
                    campaign_id=campaign_id,
                    # Not known yet (the run just started): 0 until the audience follows.
                    audience=audience or 0,
                    test=test,
                    conversion_goal=conversion_goal.to_proto() if conversion_goal else None,
                    description=description.to_proto() if description else None,
                ),
                metadata=self._peers.metadata(site_id),
                timeout=self._peers.timeout,
            )
        except grpc.aio.AioRpcError as error:
            raise _unavailable(self._peers, "reporting.RecordRunAudience", error) from None
