"""Holding a site's sends to a push service that refuses its VAPID signature (401/403).

A refusal that the site's credentials explain would refuse every recipient at that push
service alike, so after the first one(s) the rest are not sent: the (site, push service)
is held (`delivery_push_service_holds`), its recipients wait pending with reason
`push_service_auth`, and one of them is sent again as a probe after a growing delay.
The hold is lifted when the site's credentials change (their fingerprint differs from
the one refused) or when the push service accepts a request of the site (a probe, or
any other); recipients still held at their TTL end `expired` with reason
`push_service_auth`.

A refusal while the same credentials were accepted by that push service moments ago is
the subscription's own (subscribed under another applicationServerKey): that recipient
fails `push_service_auth` as before, and nothing is held.
"""

from __future__ import annotations

import hashlib

from services.delivery.domain.ports import SiteCredentials

# The first probe comes this long after the refusal; each next one after twice the wait,
# up to MAX_PROBE_SECONDS.
FIRST_PROBE_SECONDS = 60
MAX_PROBE_SECONDS = 3600
# A held recipient waits at most this long (or to its TTL) before its chunk looks at it
# again: a safety net for a hold lifted while a sender was deferring it.
HELD_WAIT_SECONDS = MAX_PROBE_SECONDS
# Each process looks again at the held sites' credentials this often (one
# GetSiteCredentials per held site), so a key imported or a subject changed lifts the
# hold within this long; probes due are looked for at every preparer step.
CREDENTIALS_CHECK_SECONDS = 30.0
# A push service accepting the site's credentials this recently makes a refusal with
# the same credentials the subscription's own, not the site's.
ACCEPTED_PROVES_SECONDS = 300.0
# What a hold keeps of the refusal's body.
DETAIL_CHARACTERS = 200
AUTH_STATUSES = frozenset({401, 403})


def credentials_fingerprint(credentials: SiteCredentials) -> str:
    """A fingerprint of what a push service checks of the site's VAPID signature: its
    subject, and its key pairs by id (the current one marked). A SHA-256 over them,
    never a key itself: stored with a hold, compared with the credentials fetched later."""
    digest = hashlib.sha256()
    digest.update(credentials.vapid_subject.encode())
    digest.update(b"\0current\0" + credentials.current_vapid_key_id.encode())
    digest.update(b"\0" + hashlib.sha256(credentials.vapid_private_key).digest())
    for key_id in sorted(credentials.vapid_keys):
        digest.update(b"\0" + key_id.encode() + b"\0")
        digest.update(hashlib.sha256(credentials.vapid_keys[key_id]).digest())
    return digest.hexdigest()[:32]


__all__ = [
    "ACCEPTED_PROVES_SECONDS",
    "AUTH_STATUSES",
    "CREDENTIALS_CHECK_SECONDS",
    "FIRST_PROBE_SECONDS",
    "HELD_WAIT_SECONDS",
    "MAX_PROBE_SECONDS",
    "credentials_fingerprint",
]
