"""The delivery service's tables: runs, the chunks workers claim, one row per recipient,
and the outbox of what peers (reporting, segment) still have to hear.

Every row carries its site; runs are keyed by (site_id, run_id), so another site's run
with the same id is simply a different row.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.kit.db import UTCDateTime, new_metadata

MAX_ID_LENGTH = 128
MAX_ENDPOINT_LENGTH = 2048
MAX_REASON_LENGTH = 64
# A variant id's column width (RunVariant.variant_id takes at most 16 characters).
MAX_VARIANT_LENGTH = 32
# Attempts kept in a recipient's attempt_log (RecipientOutcome.attempt_history).
MAX_ATTEMPT_HISTORY = 20
# A push service's origin (scheme, host, port), and what a hold keeps of its refusal.
MAX_ORIGIN_LENGTH = 512
MAX_HOLD_DETAIL_LENGTH = 200


class RunState(StrEnum):
    # Pulling the audience snapshot from segment; queued chunks already send.
    PREPARING = "preparing"
    SENDING = "sending"
    DONE = "done"
    # The audience could not be resolved; what was queued is still sent.
    FAILED = "failed"
    # Cancelled: nothing more is queued or sent; recipients without an outcome ended
    # suppressed (cancelled). Has its finish time from the moment it is cancelled.
    CANCELLED = "cancelled"


class RunFailure(StrEnum):
    AUDIENCE_REFUSED = "audience_refused"
    AUDIENCE_UNAVAILABLE = "audience_unavailable"


class ChunkState(StrEnum):
    PENDING = "pending"
    DONE = "done"


class RecipientState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    SUPPRESSED = "suppressed"
    EXPIRED = "expired"


class TargetKind(StrEnum):
    WEB_PUSH = "web_push"
    APNS = "apns"


class OutboxKind(StrEnum):
    # A recipient's terminal outcome, for reporting.
    OUTCOME = "outcome"
    # A subscriber a push service called gone, for segment to unsubscribe.
    UNSUBSCRIBE = "unsubscribe"
    # A run's final audience size, for reporting.
    AUDIENCE = "audience"
    # A run that just started, for reporting to know it (its conversion goal and
    # description) before any of its outcomes or engagement arrive; its audience is not
    # known yet. A run's other rows are relayed only after it (DeliveryStore.claim_outbox).
    START = "start"


class Model(DeclarativeBase):
    metadata = new_metadata()
    type_annotation_map = {datetime: UTCDateTime}


class DeliveryRunRow(Model):
    """One execution of a campaign: what to send, to whom, and how far it has got."""

    __tablename__ = "delivery_runs"
    __table_args__ = (
        # Preparers look for runs still pulling their audience.
        Index("ix_delivery_runs_state", "state"),
        # The cut-off sweep looks for runs whose cut-off passed.
        Index("ix_delivery_runs_cut_off_time", "cut_off_time"),
    )

    site_id: Mapped[str] = mapped_column(String(MAX_ID_LENGTH), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(MAX_ID_LENGTH), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(String(MAX_ID_LENGTH))
    # The PushPayload JSON without its per-recipient fields (campaign renders it).
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    ttl_seconds: Mapped[int] = mapped_column(Integer)
    # RFC 8030 Urgency header value: very-low | low | normal | high.
    urgency: Mapped[str] = mapped_column(String(16))
    # A listed audience (a test or transactional send, a trigger's firing): its
    # subscriber ids and its profile ids (every subscriber of each), newline-separated;
    # both empty: the selector's audience.
    audience_filter: Mapped[str] = mapped_column(Text, default="")
    audience_profiles: Mapped[str] = mapped_column(Text, default="", server_default="")
    # Who the run goes to otherwise: the clarion.segment.v1.AudienceSelector campaign
    # handed over, serialized (a saved segment or an ad-hoc definition), sent with every
    # audience page request; NULL: every reachable subscriber. Never set for a listed
    # audience.
    audience_selector: Mapped[bytes | None] = mapped_column(LargeBinary)
    snapshot_time: Mapped[datetime]
    # When its recipients are due (domain/timing.py's JSON form of RunTiming): a local
    # time and a cut-off; "": all at once.
    timing: Mapped[str] = mapped_column(Text, default="", server_default="")
    # How the payload is rendered per recipient (domain/content.py's JSON form of the
    # RunContent fields beyond payload, TTL and urgency: the profile properties its
    # templates read, missing values, per-browser payloads, topic); "": the payload as
    # it is, for everyone.
    content_options: Mapped[str] = mapped_column(Text, default="", server_default="")
    # Frequency cap, quiet hours, throttle and control group (domain/policies.py's JSON
    # form of RunPolicy); "": none.
    policy: Mapped[str] = mapped_column(Text, default="", server_default="")
    # A test send: its outcomes and audience reach reporting marked test.
    test: Mapped[bool] = mapped_column(default=False, server_default=false())
    # RunAudience.sample: only the people whose sample hash falls in [sample_start,
    # sample_end) of 10,000 basis points are in the run; NULL: the whole audience.
    sample_start: Mapped[int | None] = mapped_column(SmallInteger)
    sample_end: Mapped[int | None] = mapped_column(SmallInteger)
    # The conversion goal handed to reporting with the audience (domain/goals.py's
    # compact JSON of clarion.common.v1.ConversionGoal); "": none.
    conversion_goal: Mapped[str] = mapped_column(Text, default="", server_default="")
    # What reporting's webhooks say of the run (domain/descriptions.py's compact JSON of
    # clarion.common.v1.RunDescription); "": none given.
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    # Nothing is sent after this; the sweep then ends what is left (NULL: no cut-off).
    # Cleared when the run finishes.
    cut_off_time: Mapped[datetime | None]
    state: Mapped[str] = mapped_column(String(16))
    failure: Mapped[str] = mapped_column(String(32), default="")
    failure_message: Mapped[str] = mapped_column(Text, default="")
    # The next audience page to pull from segment ("" before the first); a listed
    # audience pulled in several slices prefixes it with the slice (worker.py).
    audience_page_token: Mapped[str] = mapped_column(Text, default="")
    resolved: Mapped[int] = mapped_column(BigInteger, default=0)
    queued: Mapped[int] = mapped_column(BigInteger, default=0)
    # Chunks made so far; a chunk's seq orders claims fairly across runs.
    chunks: Mapped[int] = mapped_column(Integer, default=0)
    # Preparation runs under a fenced lease like a chunk's.
    prepare_owner: Mapped[str | None] = mapped_column(String(128))
    prepare_lease_expires_at: Mapped[datetime | None]
    prepare_fence: Mapped[int] = mapped_column(BigInteger, default=0)
    # Since when the audience could not be read (segment unavailable).
    audience_unavailable_since: Mapped[datetime | None]
    create_time: Mapped[datetime]
    prepare_time: Mapped[datetime | None]
    finish_time: Mapped[datetime | None]


class DeliveryChunkRow(Model):
    """A batch of one run's recipients; the unit a worker claims under a fenced lease."""

    __tablename__ = "delivery_chunks"
    __table_args__ = (
        ForeignKeyConstraint(
            ["site_id", "run_id"],
            ["delivery_runs.site_id", "delivery_runs.run_id"],
            ondelete="CASCADE",
        ),
        # Claiming: pending chunks, lowest seq first (round robin across runs).
        Index("ix_delivery_chunks_state_seq", "state", "seq"),
        Index("ix_delivery_chunks_site_id_run_id", "site_id", "run_id"),
    )

    chunk_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    site_id: Mapped[str] = mapped_column(String(MAX_ID_LENGTH))
    run_id: Mapped[str] = mapped_column(String(MAX_ID_LENGTH))
    # Position within its run: claims take the lowest seq first, so a small run queued
    # behind a big one waits at most one chunk.
    seq: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    # Not claimable before this (a retry's backoff, a time-shifted send).
    due_time: Mapped[datetime]
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None]
    # Bumped by every claim; every write of the chunk's results must name the current
    # value, so a worker that lost its lease can no longer write.
    fence: Mapped[int] = mapped_column(BigInteger, default=0)
    # Its recipients by state, kept in step by the same fenced UPDATE that renews the
    # lease, so a run's progress is a sum over its chunks, not a count over recipients.
    pending: Mapped[int] = mapped_column(Integer, default=0)
    sent: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    suppressed: Mapped[int] = mapped_column(Integer, default=0)
    expired: Mapped[int] = mapped_column(Integer, default=0)
    # When its recipients were queued (the audience page that made it); NULL for chunks
    # queued before this was kept.
    queue_time: Mapped[datetime | None]
    # The recipients whose request the holder of `fence` has started and whose answer is
    # not recorded yet: comma-separated recipient ids, written by the same fenced UPDATE
    # that renews the lease. Their attempt is counted here, not in their rows (which
    # would take a second UPDATE per recipient): recording an answer adds it to the
    # recipient's `attempts` in the statement that records the answer, and whoever
    # claims or releases the chunk next adds it for those still listed (their answer
    # was lost with the process). A recipient's attempts = its `attempts`, plus one
    # while it is listed here.
    in_flight: Mapped[str] = mapped_column(Text, default="", server_default="")


class DeliveryRecipientRow(Model):
    """One (run, subscriber): where to send it, and its outcome once it has one."""

    __tablename__ = "delivery_recipients"
    __table_args__ = (
        # At most one send per (run, subscriber): queueing it again is ignored.
        UniqueConstraint("site_id", "run_id", "subscriber_id"),
        # No foreign key to its run: a recipient is written with its chunk, in the same
        # transaction, and the chunk's key already guarantees the run (runs are never
        # deleted); the key's check per row was a tenth of PostgreSQL's queueing time.
        # No index names a column that sending changes (state, attempts, reason...):
        # PostgreSQL then updates a recipient in place (a HOT update, the table's
        # fillfactor leaving room on its page) without touching any index. A chunk's
        # few hundred rows are filtered by state after the chunk_id lookup.
        # Half of each page is left free: one commit records the answers of
        # neighbouring recipients, so most of a page's rows get their new version in
        # one transaction, which cannot make room by pruning its own old versions. At
        # 70 only about half the updates fitted on their page; the rest moved to
        # another and wrote three index entries each.
        Index("ix_delivery_recipients_chunk_id", "chunk_id"),
        {"postgresql_with": {"fillfactor": 50}},
    )

    recipient_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    site_id: Mapped[str] = mapped_column(String(MAX_ID_LENGTH))
    run_id: Mapped[str] = mapped_column(String(MAX_ID_LENGTH))
    chunk_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    subscriber_id: Mapped[str] = mapped_column(String(MAX_ID_LENGTH))
    profile_id: Mapped[str] = mapped_column(String(MAX_ID_LENGTH), default="")
    timezone: Mapped[str] = mapped_column(String(64), default="")
    # Its A/B variant (RunVariant.variant_id); "": the run has none.
    variant: Mapped[str] = mapped_column(String(MAX_VARIANT_LENGTH), default="")
    due_time: Mapped[datetime | None]
    # clarion.common.v1.Browser value, passed through to reporting.
    browser: Mapped[int] = mapped_column(SmallInteger)
    target_kind: Mapped[str] = mapped_column(String(16))
    # Web Push endpoint, or the APNs device token.
    endpoint: Mapped[str] = mapped_column(String(MAX_ENDPOINT_LENGTH))
    p256dh: Mapped[bytes] = mapped_column(LargeBinary)
    auth: Mapped[bytes] = mapped_column(LargeBinary)
    # The site's VAPID key (campaign's vk_ id) to sign with, as segment gave it; "": the
    # site's current key.
    vapid_key_id: Mapped[str] = mapped_column(String(64), default="", server_default="")
    # What its payload's templates read: compact JSON {"profile": {...}, "event": {...}}
    # of the values the run asked for; "": nothing (an untemplated payload).
    context: Mapped[str] = mapped_column(Text, default="", server_default="")
    state: Mapped[str] = mapped_column(String(16))
    # A closed-set word (DeliveryReason); while pending, why the last attempt is retried.
    reason: Mapped[str] = mapped_column(String(MAX_REASON_LENGTH), default="")
    # HTTP requests started for it, written before they are made.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Every request made to its push service and what it answered, oldest first, the
    # last MAX_ATTEMPT_HISTORY kept: each "<epoch ms> <HTTP status, 0: no answer>
    # <DeliveryReason word, -: accepted> <push service host>;", appended by the same
    # statement that records the answer (store._HotSql). Not indexed (HOT updates).
    attempt_log: Mapped[str] = mapped_column(Text, default="", server_default="")
    not_before: Mapped[datetime | None]
    finish_time: Mapped[datetime | None]


class DeliveryOutboxRow(Model):
    """What a peer still has to hear, written in the transaction that made it true, one
    row per commit (not per recipient), so the outbox costs a row per batch.

    Rows are claimed in batches under a lease (SKIP LOCKED on PostgreSQL), sent, then
    deleted, so N delivery processes send each one once (or again only after a crash).
    """

    __tablename__ = "delivery_outbox"
    __table_args__ = (Index("ix_delivery_outbox_kind_claim_expires_at", "kind", "claim_expires_at"),)

    outbox_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    site_id: Mapped[str] = mapped_column(String(MAX_ID_LENGTH))
    run_id: Mapped[str] = mapped_column(String(MAX_ID_LENGTH))
    campaign_id: Mapped[str] = mapped_column(String(MAX_ID_LENGTH))
    # The recipients this row reports, one commit's worth: a compact JSON list of
    # [subscriber_id, state, reason, browser, variant, profile_id] (OUTCOME,
    # UNSUBSCRIBE; rows written before variants hold the first four); empty for AUDIENCE.
    entries: Mapped[str] = mapped_column(Text, default="")
    # The audience size for an AUDIENCE row.
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    occur_time: Mapped[datetime]
    claim_owner: Mapped[str | None] = mapped_column(String(128))
    claim_expires_at: Mapped[datetime | None]


class DeliveryRunContextRow(Model):
    """What one listed person of a run carries into its templates as `event` (the
    properties of the event that triggered its push), until the run is queued."""

    __tablename__ = "delivery_run_contexts"
    __table_args__ = (
        ForeignKeyConstraint(
            ["site_id", "run_id"],
            ["delivery_runs.site_id", "delivery_runs.run_id"],
            ondelete="CASCADE",
        ),
    )

    site_id: Mapped[str] = mapped_column(String(MAX_ID_LENGTH), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(MAX_ID_LENGTH), primary_key=True)
    # "p:" + a profile id (every subscriber of it), or "s:" + a subscriber id.
    person_key: Mapped[str] = mapped_column(String(MAX_ID_LENGTH + 2), primary_key=True)
    # Compact JSON object of the event's properties.
    event_properties: Mapped[str] = mapped_column(Text)


class DeliveryRunVariantRow(Model):
    """One variant of a run's A/B test: its share of the people and its content. A run
    with variants keeps its first variant's content in its own row too (with every
    variant's profile properties), so what reads only the run still reads one copy."""

    __tablename__ = "delivery_run_variants"
    __table_args__ = (
        ForeignKeyConstraint(
            ["site_id", "run_id"],
            ["delivery_runs.site_id", "delivery_runs.run_id"],
            ondelete="CASCADE",
        ),
    )

    site_id: Mapped[str] = mapped_column(String(MAX_ID_LENGTH), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(MAX_ID_LENGTH), primary_key=True)
    variant_id: Mapped[str] = mapped_column(String(MAX_VARIANT_LENGTH), primary_key=True)
    # Its place in the request: variants split the hash range in this order.
    position: Mapped[int] = mapped_column(SmallInteger)
    weight_percent: Mapped[int] = mapped_column(SmallInteger)
    # As the run's payload and content_options (TTL, urgency and topic are the run's:
    # every variant has the same).
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    content_options: Mapped[str] = mapped_column(Text, default="", server_default="")


class DeliveryPersonSendsRow(Model):
    """Pushes sent to one person (a profile, or an anonymous subscriber) of a site on
    its recent local days, for the frequency cap. One row per person, locked while a
    chunk reserves its sends, so concurrent runs and delivery processes never take the
    person past the cap."""

    __tablename__ = "delivery_person_sends"

    site_id: Mapped[str] = mapped_column(String(MAX_ID_LENGTH), primary_key=True)
    # "p:" + profile id, or "s:" + subscriber id.
    person_key: Mapped[str] = mapped_column(String(MAX_ID_LENGTH + 2), primary_key=True)
    # Compact JSON {"YYYY-MM-DD": sends} of the person's last 7 local days with a send.
    days: Mapped[str] = mapped_column(Text, default="{}")
    update_time: Mapped[datetime]


class DeliveryRateWindowRow(Model):
    """Sends started in one minute for one throttle scope (a campaign, or the whole
    site), shared by every delivery process."""

    __tablename__ = "delivery_rate_windows"

    site_id: Mapped[str] = mapped_column(String(MAX_ID_LENGTH), primary_key=True)
    # "site", or "campaign:" + campaign id.
    scope: Mapped[str] = mapped_column(String(MAX_ID_LENGTH + 16), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(primary_key=True)
    sends: Mapped[int] = mapped_column(Integer, default=0)


class DeliveryPushServiceHoldRow(Model):
    """A push service that refused a site's VAPID signature (401/403): the site's sends
    to it are held (its recipients wait, pending with reason push_service_auth) until
    the site's credentials change, a probe is accepted, or their TTL ends them. One row
    per (site, push service origin), shared by every delivery process."""

    __tablename__ = "delivery_push_service_holds"

    site_id: Mapped[str] = mapped_column(String(MAX_ID_LENGTH), primary_key=True)
    # The push service's origin (scheme, host, non-default port): the VAPID `aud`.
    push_service: Mapped[str] = mapped_column(String(MAX_ORIGIN_LENGTH), primary_key=True)
    # The refusal: 401 or 403, and the start of its body (what the push service said).
    http_status: Mapped[int] = mapped_column(SmallInteger)
    detail: Mapped[str] = mapped_column(String(MAX_HOLD_DETAIL_LENGTH), default="")
    # A fingerprint of the site's VAPID credentials when refused (domain/holds.py: a
    # hash of the subject and key pairs, never a key): other credentials lift the hold.
    credentials_fingerprint: Mapped[str] = mapped_column(String(64))
    since: Mapped[datetime]
    # When one held recipient is sent again (the probe), and the wait before the one
    # after it (doubling from 1 minute to 1 hour).
    next_probe_time: Mapped[datetime]
    probe_seconds: Mapped[int] = mapped_column(Integer)
    # The recipient sent as the current probe (0: none): the only one sent while held.
    probe_recipient_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), default=0
    )
    update_time: Mapped[datetime]
