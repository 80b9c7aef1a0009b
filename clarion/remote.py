"""`clarion` commands that work on a running deployment over gRPC, with a site's API key
(`site list` alone takes the internal token: it sees every site).

    clarion site show | rotate-api-key [--export] | set-subject SUBJECT | list
    clarion site set-policy [--cap-per-day N] [--quiet-hours 22:00-08:00] [--max-per-minute N] ...
    clarion site import-vapid-key FILE [--public-key B64URL]
    clarion site set-safari --apns-key FILE --apns-key-id ID --team-id ID --website-push-id ID
        --website-name NAME --allowed-domain ORIGIN ... --url-format-string URL
        --certificate FILE [--certificate-key FILE] --icons DIR
    clarion campaign list [--label LABEL] | show ID | create FILE | update ID FILE
    clarion campaign cancel ID [--run RUN]
    clarion campaign send ID [--watch] [--profile ID ...] [--subscriber ID ...]
        [--recipients-file FILE]
    clarion campaign pause ID | resume ID
    clarion run list CAMPAIGN | show RUN [--watch]
    clarion why --run RUN|--campaign CAMPAIGN --subscriber SUBSCRIBER|--profile PROFILE
    clarion report CAMPAIGN
    clarion import subscribers|profiles|events FILE.csv, clarion export ... (imports.py)

Addresses and the key come from flags or CLARION_* variables (each command's --help
names them). Output is a readable table, or JSON with --json. A refused call prints one
line saying what went wrong and what to do (an OperatorError), never a traceback.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import grpc
import yaml
from google.protobuf import field_mask_pb2, json_format
from google.protobuf.message import Message
from pydantic import SecretStr

from clarion.campaign.v1 import (
    campaign_pb2,
    campaign_service_pb2,
    campaign_service_pb2_grpc,
    site_internal_service_pb2,
    site_internal_service_pb2_grpc,
    site_pb2,
    site_service_pb2,
    site_service_pb2_grpc,
)
from clarion.common.v1 import common_pb2
from clarion.reporting.v1 import reporting_service_pb2, reporting_service_pb2_grpc
from clarion.segment.v1 import segment_pb2
from clarion.trigger_file import duration_seconds, duration_words, read_trigger, trigger_words
from services.kit.config import Settings
from services.kit.errors import error_info
from services.kit.operator import OperatorError

T = TypeVar("T")

WATCH_INTERVAL_SECONDS = 0.5
_FINISHED = (
    campaign_pb2.RUN_STATE_DONE,
    campaign_pb2.RUN_STATE_FAILED,
    campaign_pb2.RUN_STATE_CANCELLED,
)


class ClientSettings(Settings):
    """What the remote commands read: the deployment's addresses and the site's key."""

    api_key: SecretStr = SecretStr("")
    """The site's API key (printed once by `clarion site create`)."""


# Fields whose variables each remote command names in its --help.
CAMPAIGN_FIELDS = ["api_key", "campaign_address"]
REPORT_FIELDS = ["api_key", "reporting_address"]
OPERATOR_FIELDS = ["internal_token", "campaign_address"]


def add_connection_arguments(
    parser: argparse.ArgumentParser, *, reporting: bool = False, internal: bool = False
) -> None:
    if internal:
        parser.add_argument(
            "--internal-token",
            help="the services' internal token (default: $CLARION_INTERNAL_TOKEN)",
        )
    else:
        parser.add_argument("--api-key", help="the site's API key (default: $CLARION_API_KEY)")
    if reporting:
        parser.add_argument(
            "--reporting-address", help="host:port (default: $CLARION_REPORTING_ADDRESS)"
        )
    else:
        parser.add_argument(
            "--campaign-address", help="host:port (default: $CLARION_CAMPAIGN_ADDRESS)"
        )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per call")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


class Remote:
    """One command's connection: the address, the credential, and error translation.

    A site's API key, or with `internal=True` the services' internal token (an
    operator's command that is about no one site, such as listing every site)."""

    def __init__(self, args: argparse.Namespace, service: str, *, internal: bool = False) -> None:
        settings = ClientSettings()
        self.service = service
        self.internal = internal
        self.address = getattr(args, f"{service}_address", None) or settings.address_for(service)
        if internal:
            key = args.internal_token or settings.internal_token.get_secret_value()
            if not key:
                raise OperatorError(
                    "no internal token: set CLARION_INTERNAL_TOKEN or pass --internal-token "
                    "(the value the services were started with; `clarion up` makes one up "
                    "when it is unset, so set it before starting)"
                )
        else:
            key = args.api_key or settings.api_key.get_secret_value()
            if not key:
                raise OperatorError(
                    "no API key: set CLARION_API_KEY or pass --api-key "
                    "(`clarion site create` prints a site's key once)"
                )
        self.metadata = (("authorization", f"Bearer {key}"),)
        self.timeout = args.timeout

    @contextmanager
    def channel(self) -> Iterator[grpc.Channel]:
        with grpc.insecure_channel(self.address) as channel:
            yield channel

    def call(self, method: Callable[..., T], request: Message) -> T:
        try:
            return method(request, metadata=self.metadata, timeout=self.timeout)
        except grpc.RpcError as error:
            raise OperatorError(self._describe(error)) from None

    def _describe(self, error: grpc.RpcError) -> str:
        code = error.code()  # type: ignore[attr-defined]
        details = error.details() or ""  # type: ignore[attr-defined]
        variable = ClientSettings.variable(f"{self.service}_address")
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return (
                f"the {self.service} service did not answer at {self.address} "
                f"({code.name.lower()}): is it running? Set {variable} or "
                f"--{self.service}-address"
            )
        info = error_info(error)
        # Campaign takes any token but the internal one for a site's key (INTERNAL_ONLY).
        if self.internal and (
            code == grpc.StatusCode.UNAUTHENTICATED
            or (info is not None and info.reason == "INTERNAL_ONLY")
        ):
            return (
                "the internal token was refused: it is not the one the services were started "
                "with (a site's API key is not it either); check CLARION_INTERNAL_TOKEN or "
                "--internal-token"
            )
        if code == grpc.StatusCode.UNAUTHENTICATED:
            return f"the API key was refused ({details}): check CLARION_API_KEY or --api-key"
        reason = f" [{info.reason}]" if info is not None and info.reason else ""
        return f"{code.name}: {details}{reason}"


def all_pages(
    remote: Remote, method: Callable[..., Any], request: Callable[[str], Message], field: str
) -> list[Any]:
    """Every item of a paged listing (AIP-158: an empty next_page_token ends it)."""
    items: list[Any] = []
    token = ""
    while True:
        page = remote.call(method, request(token))
        items.extend(getattr(page, field))
        token = page.next_page_token
        if not token:
            return items


def campaign_stub(channel: grpc.Channel) -> campaign_service_pb2_grpc.CampaignServiceStub:
    return campaign_service_pb2_grpc.CampaignServiceStub(channel)


def as_dict(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=False))


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)) for row in [header, *rows]]
    return "\n".join(line.rstrip() for line in lines)


def _state(run: campaign_pb2.Run) -> str:
    return campaign_pb2.RunState.Name(run.state).removeprefix("RUN_STATE_").lower()


def _when(message: Message, field: str) -> str:
    if not message.HasField(field):
        return "-"
    return getattr(message, field).ToDatetime().strftime("%Y-%m-%d %H:%M:%S UTC")


# site ...


def site_stub(channel: grpc.Channel) -> site_service_pb2_grpc.SiteServiceStub:
    return site_service_pb2_grpc.SiteServiceStub(channel)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _site_rows(site: site_pb2.Site) -> list[list[str]]:
    return [
        ["site_id", site.site_id],
        ["name", site.name],
        ["vapid_subject", site.vapid_subject],
        ["vapid_public_key", _b64url(site.vapid_public_key)],
        ["created", _when(site, "create_time")],
        ["delivery_policy", delivery_policy_words(site)],
        # One row per key pair, public halves only: the current one (what new browsers
        # subscribe with) first, then imported ones.
        *(["vapid_key", _vapid_key_line(key)] for key in site.vapid_keys),
        ["legacy_safari", _legacy_safari_line(site.legacy_safari)],
    ]


def _legacy_safari_line(safari: site_pb2.LegacySafari) -> str:
    if not safari.configured:
        return "not configured (clarion site set-safari)"
    expires = _when(safari, "certificate_expire_time")
    return (
        f"{safari.website_push_id}  APNs key {safari.apns_key_id} (team {safari.apns_team_id})"
        f"  certificate expires {expires}"
    )


def _vapid_key_line(key: site_pb2.VapidKey) -> str:
    current = "current" if key.current else ""
    return f"{key.vapid_key_id}  {current:<7}  {key.origin:<9}  {_b64url(key.public_key)}"


def cmd_site_show(args: argparse.Namespace) -> int:
    remote = Remote(args, "campaign")
    with remote.channel() as channel:
        site = remote.call(site_stub(channel).GetSite, site_service_pb2.GetSiteRequest()).site
    if args.json:
        print_json(as_dict(site))
        return 0
    print(table(_site_rows(site), ["FIELD", "VALUE"]))
    return 0


def read_private_key_file(path: str) -> bytes:
    """The private key in FILE ("-": stdin) as ImportVapidKey takes it: PEM and DER as
    they are, the raw 32-byte scalar, or that scalar as base64url text (how web-push
    libraries print a VAPID private key) decoded."""
    try:
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as error:
        raise OperatorError(f"cannot read the key file {path}: {error.strerror or error}") from None
    text = data.strip()
    if text.startswith(b"-----BEGIN") or len(data) == 32:
        return data
    try:
        decoded = _b64url_decode(text.decode("ascii"))
    except ValueError:
        return data  # DER, or nothing campaign accepts (it says which forms it takes)
    return decoded if len(decoded) == 32 else data


def _b64url_decode(text: str) -> bytes:
    """base64url with or without padding; ValueError for anything else."""
    if not text or not all(c.isalnum() or c in "-_=" for c in text):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, binascii.Error) as error:
        raise ValueError("not base64url") from error


def cmd_site_import_vapid_key(args: argparse.Namespace) -> int:
    private_key = read_private_key_file(args.file)
    public_key = b""
    if args.public_key:
        try:
            public_key = _b64url_decode(args.public_key.strip())
        except ValueError:
            raise OperatorError(
                "--public-key must be the provider's public key in base64url (87 characters, "
                "the applicationServerKey browsers subscribed with)"
            ) from None
    remote = Remote(args, "campaign")
    with remote.channel() as channel:
        response = remote.call(
            site_stub(channel).ImportVapidKey,
            site_service_pb2.ImportVapidKeyRequest(private_key=private_key, public_key=public_key),
        )
    key = response.vapid_key
    if args.json:
        print_json({**as_dict(key), "created": response.created})
        return 0
    print(key.vapid_key_id)
    print(
        ("imported" if response.created else "the site already had this key")
        + f" (public key {_b64url(key.public_key)}): register the subscriptions moved with it "
        f"with vapid_key_id {key.vapid_key_id}",
        file=sys.stderr,
    )
    return 0


# The files of an icon.iconset folder (what Apple's tools make), by LegacySafariIcons'
# field names.
SAFARI_ICON_FILES = {
    "icon_16x16": "icon_16x16.png",
    "icon_16x16_2x": "icon_16x16@2x.png",
    "icon_32x32": "icon_32x32.png",
    "icon_32x32_2x": "icon_32x32@2x.png",
    "icon_128x128": "icon_128x128.png",
    "icon_128x128_2x": "icon_128x128@2x.png",
}
P12_PASSWORD_VARIABLE = "CLARION_SAFARI_P12_PASSWORD"


def _read_file(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise OperatorError(f"cannot read {what} {path}: {error.strerror or error}") from None


def _certificate_files(args: argparse.Namespace) -> tuple[bytes, bytes]:
    """(certificate PEM or DER, private key) from --certificate and --certificate-key,
    or both from a .p12/.pfx --certificate (password in CLARION_SAFARI_P12_PASSWORD)."""
    import os

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    data = _read_file(args.certificate, "the certificate file")
    if not args.certificate.lower().endswith((".p12", ".pfx")):
        if not args.certificate_key:
            raise OperatorError(
                "--certificate-key is required with a PEM or DER certificate (a .p12 holds both)"
            )
        return data, _read_file(args.certificate_key, "the certificate key file")
    password = os.environ.get(P12_PASSWORD_VARIABLE, "")
    try:
        key, certificate, extra = pkcs12.load_key_and_certificates(
            data, password.encode() if password else None
        )
    except ValueError:
        raise OperatorError(
            f"{args.certificate} could not be read as PKCS#12: is it one, and is its password "
            f"in {P12_PASSWORD_VARIABLE}?"
        ) from None
    if key is None or certificate is None:
        raise OperatorError(f"{args.certificate} must hold the certificate and its private key")
    pem = serialization.Encoding.PEM
    chain = b"".join(issuer.public_bytes(pem) for issuer in extra)
    key_pem = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return certificate.public_bytes(pem) + chain, key_pem


def safari_request(args: argparse.Namespace) -> site_service_pb2.SetLegacySafariRequest:
    """SetLegacySafari's request from `site set-safari`'s flags and files."""
    certificate, certificate_key = _certificate_files(args)
    folder = Path(args.icons)
    if not folder.is_dir():
        raise OperatorError(
            f"--icons must be a folder holding {', '.join(SAFARI_ICON_FILES.values())}"
        )
    icons = {
        name: _read_file(str(folder / file), "the icon")
        for name, file in SAFARI_ICON_FILES.items()
    }
    return site_service_pb2.SetLegacySafariRequest(
        apns_private_key=_read_file(args.apns_key, "the APNs key file"),
        apns_key_id=args.apns_key_id,
        apns_team_id=args.team_id,
        website_push_id=args.website_push_id,
        website_name=args.website_name,
        allowed_domains=args.allowed_domain,
        url_format_string=args.url_format_string,
        certificate=certificate,
        certificate_private_key=certificate_key,
        icons=site_pb2.LegacySafariIcons(**icons),
    )


def cmd_site_set_safari(args: argparse.Namespace) -> int:
    request = safari_request(args)
    remote = Remote(args, "campaign")
    with remote.channel() as channel:
        site = remote.call(site_stub(channel).SetLegacySafari, request).site
    if args.json:
        print_json(as_dict(site.legacy_safari))
        return 0
    safari = site.legacy_safari
    rows = [
        ["website_push_id", safari.website_push_id],
        ["website_name", safari.website_name],
        ["allowed_domains", ", ".join(safari.allowed_domains)],
        ["url_format_string", safari.url_format_string],
        ["apns_key_id", safari.apns_key_id],
        ["apns_team_id", safari.apns_team_id],
        ["certificate", safari.certificate_subject],
        ["certificate_expires", _when(safari, "certificate_expire_time")],
    ]
    print(table(rows, ["FIELD", "VALUE"]))
    print(
        f"legacy Safari is set for {site.site_id}: renew the certificate before it expires "
        f"({_when(safari, 'certificate_expire_time')}), or Safari refuses the push package",
        file=sys.stderr,
    )
    return 0


def cmd_site_rotate_api_key(args: argparse.Namespace) -> int:
    remote = Remote(args, "campaign")
    with remote.channel() as channel:
        rotated = remote.call(
            site_stub(channel).RotateApiKey, site_service_pb2.RotateApiKeyRequest()
        )
    if args.export:
        # For `eval "$(clarion site rotate-api-key --export)"`: later commands read it.
        print(f"export CLARION_API_KEY={shlex.quote(rotated.api_key)}")
    elif args.json:
        print_json({"site_id": rotated.site_id, "api_key": rotated.api_key})
    else:
        rows = [["site_id", rotated.site_id], ["api_key", rotated.api_key]]
        print(table(rows, ["FIELD", "VALUE"]))
    print(
        "Keep the new api_key: it is shown only this once. The old key is refused by "
        "campaign now, and by segment, delivery and reporting within 30 seconds.",
        file=sys.stderr,
    )
    return 0


def cmd_site_set_subject(args: argparse.Namespace) -> int:
    remote = Remote(args, "campaign")
    with remote.channel() as channel:
        site = remote.call(
            site_stub(channel).UpdateSite,
            site_service_pb2.UpdateSiteRequest(
                site=site_pb2.Site(vapid_subject=args.subject),
                update_mask=field_mask_pb2.FieldMask(paths=["vapid_subject"]),
            ),
        ).site
    if args.json:
        print_json(as_dict(site))
        return 0
    print(f"the VAPID subject of {site.site_id} is now {site.vapid_subject}")
    print("delivery signs with it within 5 minutes (it caches a site's credentials)")
    return 0


def _quiet_hours_flag(text: str, action: str) -> campaign_pb2.QuietHours:
    start, dash, end = text.partition("-")
    if not dash:
        raise OperatorError(f"--quiet-hours takes START-END, e.g. 22:00-08:00, not {text!r}")
    chosen = (
        campaign_pb2.QUIET_HOURS_ACTION_DISCARD
        if action == "discard"
        else campaign_pb2.QUIET_HOURS_ACTION_DELAY
    )
    # The service checks the times (INVALID_QUIET_HOURS names what is wrong).
    return campaign_pb2.QuietHours(start=start.strip(), end=end.strip(), action=chosen)


def site_policy_change(args: argparse.Namespace) -> tuple[site_pb2.Site, list[str]]:
    """The Site values and update_mask paths `site set-policy`'s flags ask for: only the
    parts named change, each as a whole."""
    site, paths = site_pb2.Site(), []
    policy = site.delivery_policy
    if args.no_frequency_cap or args.cap_per_day is not None or args.cap_per_week is not None:
        # A cap given as a whole: a bound not named is none.
        policy.frequency_cap.per_day = args.cap_per_day or 0
        policy.frequency_cap.per_week = args.cap_per_week or 0
        paths.append("delivery_policy.frequency_cap")
    if args.no_quiet_hours or args.quiet_hours:
        if args.quiet_hours:
            policy.quiet_hours.CopyFrom(_quiet_hours_flag(args.quiet_hours, args.quiet_action))
        paths.append("delivery_policy.quiet_hours")
    if args.max_per_minute is not None:
        policy.max_per_minute = args.max_per_minute
        paths.append("delivery_policy.max_per_minute")
    if args.timezone is not None:
        site.timezone = args.timezone
        paths.append("timezone")
    if args.home_url is not None:
        site.home_url = args.home_url
        paths.append("home_url")
    if not paths:
        raise OperatorError(
            "nothing to change: give --cap-per-day/--cap-per-week, --quiet-hours, "
            "--max-per-minute, --timezone, --home-url or a --no-... flag"
        )
    return site, paths


def cmd_site_set_policy(args: argparse.Namespace) -> int:
    change, paths = site_policy_change(args)
    remote = Remote(args, "campaign")
    with remote.channel() as channel:
        site = remote.call(
            site_stub(channel).UpdateSite,
            site_service_pb2.UpdateSiteRequest(
                site=change, update_mask=field_mask_pb2.FieldMask(paths=paths)
            ),
        ).site
    if args.json:
        print_json(as_dict(site))
        return 0
    print(f"delivery policy of {site.site_id}: {delivery_policy_words(site)}")
    print(f"time zone of recipients without one: {site.timezone or 'UTC'}")
    print(f"home page (where unfollowable click links go): {site.home_url or 'none given'}")
    print("runs started from now on apply it; runs already started keep theirs")
    return 0


def cmd_site_list(args: argparse.Namespace) -> int:
    remote = Remote(args, "campaign", internal=True)
    with remote.channel() as channel:
        sites: list[site_pb2.Site] = all_pages(
            remote,
            site_internal_service_pb2_grpc.SiteInternalServiceStub(channel).ListSites,
            lambda token: site_internal_service_pb2.ListSitesRequest(page_size=500, page_token=token),
            "sites",
        )
    if args.json:
        print_json([as_dict(s) for s in sites])
        return 0
    if not sites:
        print("no sites yet: create one with `clarion site create NAME --subject mailto:...`")
        return 0
    rows = [[s.site_id, s.name, s.vapid_subject, _when(s, "create_time")] for s in sites]
    print(table(rows, ["SITE", "NAME", "VAPID SUBJECT", "CREATED"]))
    return 0


def register_site(
    site_sub: Any,
    add: Callable[..., argparse.ArgumentParser],
    variables_help: Callable[..., str],
) -> None:
    """Adds the site commands that call a running campaign service to `clarion site`."""
    site_vars = variables_help(CAMPAIGN_FIELDS, ClientSettings)
    show = add(site_sub, "show", "show the API key's site: name, VAPID subject, key", site_vars)
    show.set_defaults(func=cmd_site_show)
    rotate = add(
        site_sub,
        "rotate-api-key",
        "replace the site's API key with a new one, printed once",
        site_vars,
        description="replace the site's API key with a new random one, printed only this once.\n"
        "The old key is refused by campaign at once, and by segment, delivery and reporting\n"
        "within 30 seconds (they cache keys): update whatever uses it.",
    )
    rotate.add_argument(
        "--export", action="store_true",
        help='print an `export CLARION_API_KEY=...` line, for eval "$(...)"',
    )  # fmt: skip
    rotate.set_defaults(func=cmd_site_rotate_api_key)
    subject = add(
        site_sub,
        "set-subject",
        "change the site's VAPID subject",
        site_vars,
        description="change the site's VAPID subject (the `sub` claim push services see):\n"
        "a mailto: address or https: URL where a push service can reach you, e.g.\n"
        "mailto:ops@example.com. Apple's push service refuses subjects at localhost,\n"
        "*.local hosts and IP addresses, so they are refused here too. Delivery signs\n"
        "with the new subject within 5 minutes.",
    )
    subject.add_argument("subject", metavar="SUBJECT")
    subject.set_defaults(func=cmd_site_set_subject)
    policy = add(
        site_sub,
        "set-policy",
        "change the site's delivery policy: frequency cap, quiet hours, throttle, time zone",
        site_vars,
        description="change the site's delivery policy, which every campaign of the site\n"
        "follows unless it opts out (a campaign file's policy: ignore_frequency_cap,\n"
        "ignore_quiet_hours, its own quiet_hours). Only the parts named change, each as a\n"
        "whole; `clarion site show` prints the result. Runs already started keep the\n"
        "policy they started with. Example:\n"
        "  clarion site set-policy --cap-per-day 3 --quiet-hours 22:00-08:00 --max-per-minute 600",
    )
    policy.add_argument(
        "--cap-per-day", type=int, metavar="N", help="at most N pushes per person per local day"
    )
    policy.add_argument(
        "--cap-per-week", type=int, metavar="N", help="at most N in the 7 local days ending today"
    )
    policy.add_argument("--no-frequency-cap", action="store_true", help="remove the frequency cap")
    policy.add_argument(
        "--quiet-hours", metavar="START-END",
        help="do-not-disturb window in each recipient's local time, e.g. 22:00-08:00",
    )  # fmt: skip
    policy.add_argument(
        "--quiet-action", choices=("delay", "discard"), default="delay",
        help="a push due in the window: delay (send at its end, the default) or discard",
    )  # fmt: skip
    policy.add_argument("--no-quiet-hours", action="store_true", help="remove the quiet hours")
    policy.add_argument(
        "--max-per-minute", type=int, metavar="N",
        help="at most N pushes a minute for the whole site (0: no ceiling)",
    )  # fmt: skip
    policy.add_argument(
        "--timezone", metavar="ZONE",
        help="IANA time zone of recipients without one, e.g. Europe/Berlin (empty: UTC)",
    )  # fmt: skip
    policy.add_argument(
        "--home-url", metavar="URL",
        help="the site's home page: where an expired or tampered click link leads (empty: none)",
    )  # fmt: skip
    policy.set_defaults(func=cmd_site_set_policy)
    listing = add(
        site_sub,
        "list",
        "list every site (needs the internal token)",
        variables_help(OPERATOR_FIELDS, ClientSettings),
    )
    listing.set_defaults(func=cmd_site_list)
    imported = add(
        site_sub,
        "import-vapid-key",
        "add another provider's VAPID key pair to the site; prints its key id",
        site_vars,
        description="add another provider's VAPID key pair to the site, so browsers that\n"
        "subscribed under its applicationServerKey keep receiving once their subscriptions\n"
        "are imported with the printed key id (vapid_key_id). FILE ('-': stdin) holds the\n"
        "private key: PKCS#8 DER or PEM, SEC1 PEM (BEGIN EC PRIVATE KEY), the raw 32-byte\n"
        "scalar, or that scalar in base64url (as web-push libraries print it); P-256 only.\n"
        "Importing the same pair again prints the key id it already has. It never becomes\n"
        "the site's current key (new browsers keep subscribing with the site's own).",
    )
    imported.add_argument("file", metavar="FILE")
    imported.add_argument(
        "--public-key", metavar="B64URL",
        help="the provider's public key (base64url); refused unless it is the private key's",
    )  # fmt: skip
    imported.set_defaults(func=cmd_site_import_vapid_key)
    safari = add(
        site_sub,
        "set-safari",
        "set the site's legacy Safari (macOS Safari <= 15, APNs) configuration",
        site_vars,
        description="set the site's legacy Safari configuration (macOS Safari 15 and earlier:\n"
        "website push over APNs), replacing the whole stored one: every flag is required.\n"
        "Everything is checked before anything is stored (key and certificate match, the\n"
        "certificate not expired, each icon's size). Secrets are read from files and never\n"
        "printed. The gateway then serves Safari's push package at\n"
        "POST /v2/pushPackages/WEBSITE_PUSH_ID (set CLARION_GATEWAY_PUBLIC_URL to its https\n"
        "URL). Example:\n"
        "  clarion site set-safari --apns-key AuthKey_KEY1234567.p8 --apns-key-id KEY1234567 \\\n"
        "    --team-id TEAM123456 --website-push-id web.com.example.shop \\\n"
        "    --website-name 'Example Shop' --allowed-domain https://shop.example.com \\\n"
        "    --url-format-string 'https://shop.example.com/%%@' \\\n"
        "    --certificate website_aps.p12 --icons icon.iconset",
    )
    safari.add_argument("--apns-key", required=True, metavar="FILE", help="the .p8 APNs key")
    safari.add_argument(
        "--apns-key-id", required=True, metavar="ID", help="the key's 10-character id"
    )
    safari.add_argument("--team-id", required=True, metavar="ID", help="the 10-character team id")
    safari.add_argument(
        "--website-push-id", required=True, metavar="ID", help="e.g. web.com.example.shop"
    )
    safari.add_argument(
        "--website-name", required=True, metavar="NAME", help="Notification Center's heading"
    )
    safari.add_argument(
        "--allowed-domain", required=True, action="append", metavar="ORIGIN",
        help="an https origin that may ask for permission (repeat for each)",
    )  # fmt: skip
    safari.add_argument(
        "--url-format-string", required=True, metavar="URL",
        help="where a click leads; each %%@ takes one of a push's url-args",
    )  # fmt: skip
    safari.add_argument(
        "--certificate", required=True, metavar="FILE",
        help="the Website Push ID certificate: PEM (optionally followed by Apple's WWDR "
        f"intermediate) or DER, or a .p12/.pfx with its key (password in ${P12_PASSWORD_VARIABLE})",
    )  # fmt: skip
    safari.add_argument(
        "--certificate-key", metavar="FILE", help="its private key (PEM or DER), unless a .p12"
    )
    safari.add_argument(
        "--icons", required=True, metavar="DIR",
        help="an icon.iconset folder: icon_16x16.png, icon_16x16@2x.png, ... icon_128x128@2x.png",
    )  # fmt: skip
    safari.set_defaults(func=cmd_site_set_safari)
    for parser in (show, rotate, subject, policy, imported, safari):
        add_connection_arguments(parser)
    add_connection_arguments(listing, internal=True)


# campaign ...


def cmd_campaign_list(args: argparse.Namespace) -> int:
    remote = Remote(args, "campaign")
    label = args.label or ""
    with remote.channel() as channel:
        campaigns: list[campaign_pb2.Campaign] = all_pages(
            remote,
            campaign_stub(channel).ListCampaigns,
            lambda token: campaign_service_pb2.ListCampaignsRequest(
                page_size=200, page_token=token, label=label
            ),
            "campaigns",
        )
    if args.json:
        print_json([as_dict(c) for c in campaigns])
        return 0
    if not campaigns and label:
        print(f"no campaign has the label {label!r}")
        return 0
    if not campaigns:
        print("no campaigns yet: create one with `clarion campaign create FILE`")
        return 0
    rows = [
        [c.campaign_id, c.name or "-", _title(c), _campaign_state(c),
         _when(c, "next_run_time"), _when(c, "create_time"), _trigger_words(c)]
        for c in campaigns
    ]  # fmt: skip
    header = ["CAMPAIGN", "NAME", "TITLE", "STATE", "NEXT RUN", "CREATED", "TRIGGER"]
    print(table(rows, header))
    return 0


def _title(campaign: campaign_pb2.Campaign) -> str:
    """The notification's title; an A/B test's each variant's, by id."""
    if campaign.variants:
        return " | ".join(f"{v.variant_id}: {v.notification.title}" for v in campaign.variants)
    return campaign.notification.title


def _print_campaign(campaign: campaign_pb2.Campaign, as_json: bool) -> None:
    if as_json:
        print_json(as_dict(campaign))
        return
    notification = campaign.notification
    rows = [
        ["campaign_id", campaign.campaign_id],
        ["name", campaign.name or "-"],
        ["title", notification.title],
        ["body", notification.body],
        ["target_url", notification.target_url or "-"],
        ["icon_url", notification.icon_url or "-"],
        ["image_url", notification.image_url or "-"],
        *_rich_rows(notification),
        *_ab_test_rows(campaign),
        ["ttl_seconds", str(campaign.ttl_seconds)],
        ["urgency", common_pb2.Urgency.Name(campaign.urgency).removeprefix("URGENCY_").lower()],
        ["audience", audience_words(campaign)],
        ["state", _campaign_state(campaign)],
        ["schedule", schedule_words(campaign)],
        *([["trigger", _trigger_words(campaign)]] if campaign.HasField("trigger") else []),
        ["next run", _when(campaign, "next_run_time")],
        ["labels", ", ".join(campaign.labels) or "-"],
        ["policy", policy_words(campaign.policy)],
        ["personalization", personalization_words(campaign.personalization)],
        *([["utm", utm_words(campaign.utm)]] if campaign.HasField("utm") else []),
        *([["topic", campaign.topic]] if campaign.topic else []),
        ["created", _when(campaign, "create_time")],
    ]
    rows += [
        ["missed", f"{_when(m, 'occurrence_time')} ({_missed_reason(m)})"]
        for m in campaign.missed_occurrences
    ]
    print(table(rows, ["FIELD", "VALUE"]))


def _ab_test_rows(campaign: campaign_pb2.Campaign) -> list[list[str]]:
    """An A/B test's variants (id, share, title), its test phase and conversion goal."""
    rows = [
        [f"variant {v.variant_id}", f"{v.split_percent}%: {v.notification.title}"]
        for v in campaign.variants
    ]
    if campaign.HasField("variant_test"):
        test = campaign.variant_test
        metric = (
            "conversion rate"
            if test.metric == campaign_pb2.WINNER_METRIC_CONVERSION_RATE
            else "click-through rate"
        )
        rows.append([
            "variant test",
            f"{test.test_percent}% first; the rest {duration_words(test.wait_seconds)} later "
            f"gets the winner by {metric} (or the split, without a significant winner)",
        ])  # fmt: skip
    if campaign.HasField("conversion_goal"):
        goal = campaign.conversion_goal
        revenue = f", revenue {goal.revenue_property}" if goal.revenue_property else ""
        rows.append([
            "conversion goal",
            f"{goal.event_name} within {duration_words(goal.window_seconds)}{revenue}",
        ])  # fmt: skip
    return rows


def _rich_rows(notification: common_pb2.Notification) -> list[list[str]]:
    """The notification's badge, buttons and display options, those it has."""
    rows = []
    if notification.badge_url:
        rows.append(["badge_url", notification.badge_url])
    for number, action in enumerate(notification.actions, 1):
        rows.append([f"action_{number}", f"{action.title} -> {action.url or '(no url)'}"])
    shown = [
        word
        for word, on in (
            ("require_interaction", notification.require_interaction),
            ("silent", notification.silent),
            ("renotify", notification.renotify),
        )
        if on
    ]
    if notification.tag:
        shown.insert(0, f"tag {notification.tag}")
    if shown:
        rows.append(["display", ", ".join(shown)])
    return rows


def quiet_hours_words(hours: campaign_pb2.QuietHours) -> str:
    action = "discarded" if hours.action == campaign_pb2.QUIET_HOURS_ACTION_DISCARD else "delayed"
    return f"{hours.start} to {hours.end} (pushes due then are {action})"


def policy_words(policy: campaign_pb2.CampaignPolicy) -> str:
    """How the site's delivery policies apply to the campaign, and its own, in words."""
    words = []
    if policy.ignore_frequency_cap:
        words.append("ignores the site's frequency cap")
    if policy.ignore_quiet_hours:
        words.append("ignores quiet hours")
    elif policy.quiet_hours.start:
        words.append(f"own quiet hours {quiet_hours_words(policy.quiet_hours)}")
    if policy.max_per_minute:
        words.append(f"at most {policy.max_per_minute} a minute")
    if policy.control_group_percent:
        words.append(f"holds out {policy.control_group_percent}% as a control group")
    return "; ".join(words) or "the site's"


def delivery_policy_words(site: site_pb2.Site) -> str:
    """A site's delivery policy (Site.delivery_policy) in words."""
    given = site.delivery_policy
    words = []
    cap = given.frequency_cap
    if cap.per_day:
        words.append(f"at most {cap.per_day} a day per person")
    if cap.per_week:
        words.append(f"at most {cap.per_week} a week per person")
    if given.quiet_hours.start:
        words.append(f"quiet hours {quiet_hours_words(given.quiet_hours)}")
    if given.max_per_minute:
        words.append(f"at most {given.max_per_minute} a minute for the site")
    return "; ".join(words) or "none"


def personalization_words(personalization: campaign_pb2.Personalization) -> str:
    if personalization.on_missing == campaign_pb2.MISSING_VALUE_ACTION_SUPPRESS:
        return "a recipient missing a value gets nothing"
    if personalization.missing_value_text:
        return f"a missing value prints {personalization.missing_value_text!r}"
    return "a missing value prints nothing"


def utm_words(utm: campaign_pb2.UtmParameters) -> str:
    return ", ".join(
        f"utm_{name}={getattr(utm, name)}"
        for name in ("source", "medium", "campaign", "content", "term")
        if getattr(utm, name)
    ) or "-"


def _campaign_state(campaign: campaign_pb2.Campaign) -> str:
    return campaign_pb2.CampaignState.Name(campaign.state).removeprefix("CAMPAIGN_STATE_").lower()


def _missed_reason(missed: campaign_pb2.MissedOccurrence) -> str:
    return campaign_pb2.MissedReason.Name(missed.reason).removeprefix("MISSED_REASON_").lower()


def schedule_words(campaign: campaign_pb2.Campaign) -> str:
    """When the campaign's runs start by themselves, in a few words."""
    schedule = campaign.schedule
    kind = schedule.WhichOneof("kind") if campaign.HasField("schedule") else None
    if kind == "at":
        return f"once, at {_when(schedule, 'at')}"
    if kind == "times":
        return f"at {len(schedule.times.times)} times (--json lists them)"
    if kind == "recurrence":
        recurrence = schedule.recurrence
        return f"{recurrence.rule} ({recurrence.timezone or 'UTC'})"
    if campaign.HasField("trigger"):
        return "none: a live campaign, its trigger starts runs"
    return "none: runs start when sent (`clarion campaign send`)"


def _trigger_words(campaign: campaign_pb2.Campaign) -> str:
    """A live campaign's trigger in words ("-" for any other): a start_time later than
    the campaign's last change is said, the one Clarion sets by itself is not."""
    if not campaign.HasField("trigger"):
        return "-"
    changed = [
        getattr(campaign, field).ToDatetime(UTC)
        for field in ("create_time", "update_time")
        if campaign.HasField(field)
    ]
    return trigger_words(campaign.trigger, since=max(changed, default=None))


def audience_words(campaign: campaign_pb2.Campaign) -> str:
    """Who the campaign's runs go to: its segment, an ad-hoc definition, or everyone."""
    kind = campaign.audience.WhichOneof("kind") if campaign.HasField("audience") else None
    if kind == "segment_id":
        return f"segment {campaign.audience.segment_id}"
    if kind == "definition":
        return "ad-hoc definition (--json shows it)"
    return "every subscriber"


def cmd_campaign_show(args: argparse.Namespace) -> int:
    remote = Remote(args, "campaign")
    with remote.channel() as channel:
        response = remote.call(
            campaign_stub(channel).GetCampaign,
            campaign_service_pb2.GetCampaignRequest(campaign_id=args.campaign_id),
        )
    _print_campaign(response.campaign, args.json)
    return 0


_URGENCY_WORDS = {"very_low", "low", "normal", "high"}


def read_campaign_file(
    path: str,
) -> tuple[campaign_service_pb2.CreateCampaignRequest, segment_pb2.AudienceSelector | None]:
    """A CreateCampaignRequest and the campaign's audience from a YAML or JSON file (`-`
    is standard input).

    Field names as in the proto (name, notification.title, ttl_seconds, urgency,
    request_id, personalization, utm, topic, labels, policy, variants, variant_test,
    conversion_goal); urgency may be given as `high` as well as `URGENCY_HIGH`,
    personalization.on_missing as `use_text` or `suppress`, policy.quiet_hours.action
    as `discard` or `delay`, variant_test.metric as `click_through_rate` or
    `conversion_rate`, variant_test.wait_seconds and conversion_goal.window_seconds as
    a duration (`4h`). `audience:`
    holds `segment_id: seg_...` or `definition: {...}` (clarion.segment.v1's proto JSON
    form); without it the campaign goes to every subscriber. `trigger:` makes it a live
    campaign, in the form clarion/trigger_file.py describes.
    """
    request, audience, _ = _read_campaign(path)
    return request, audience


def read_campaign_changes(path: str) -> tuple[campaign_pb2.Campaign, list[str]]:
    """The changes a campaign file asks for, for UpdateCampaign: a Campaign holding the
    fields the file gives, and the update_mask paths naming them. A top-level key given
    empty (`trigger:`, `schedule: null`) clears that field; `notification:` changes only
    the notification fields it names (notification.title, ...)."""
    request, audience, paths = _read_campaign(path)
    if "request_id" in paths:
        raise OperatorError(
            f"{path}: request_id is for `campaign create`; an update names the campaign by its id"
        )
    if not paths:
        raise OperatorError(f"{path} changes nothing: give the fields to change (name:, ...)")
    campaign = campaign_pb2.Campaign(notification=request.notification)
    for key in paths:
        if key.startswith("notification"):
            continue
        if key == "audience":
            if audience is not None:
                campaign.audience.CopyFrom(audience)
        elif key == "labels":
            campaign.labels.extend(request.labels)
        elif key == "variants":
            campaign.variants.extend(request.variants)
        elif request.DESCRIPTOR.fields_by_name[key].message_type is not None:
            if request.HasField(key):
                getattr(campaign, key).CopyFrom(getattr(request, key))
        else:
            setattr(campaign, key, getattr(request, key))
    return campaign, paths


def _read_campaign(
    path: str,
) -> tuple[
    campaign_service_pb2.CreateCampaignRequest, segment_pb2.AudienceSelector | None, list[str]
]:
    """The request, the audience, and the fields the file names (_request_fields)."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise OperatorError(f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise OperatorError(f"{path} is not UTF-8 text") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise OperatorError(f"{path} is not valid YAML or JSON: {str(error).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise OperatorError(f"{path} must hold one mapping (name:, notification:, ...)")
    paths = _request_fields(path, data)
    urgency = data.get("urgency")
    if isinstance(urgency, str) and urgency.lower() in _URGENCY_WORDS:
        data["urgency"] = f"URGENCY_{urgency.upper()}"
    audience = read_audience(path, data.pop("audience", None))
    _read_content_options(path, data)
    try:
        trigger = read_trigger(data.pop("trigger", None))
    except OperatorError as error:
        raise OperatorError(f"{path}: {error}") from None
    if trigger is not None and data.get("schedule"):
        raise OperatorError(
            f"{path}: a campaign has a schedule: (runs at set times) or a trigger: (runs on "
            "events), not both"
        )
    for timed in ("schedule", "timing"):
        if timed in data:
            # YAML reads an unquoted 2027-01-04T09:00:00Z as a datetime; the proto JSON
            # form wants the text.
            data[timed] = _times_as_text(data[timed])
    try:
        request = json_format.ParseDict(data, campaign_service_pb2.CreateCampaignRequest())
    except json_format.ParseError as error:
        raise OperatorError(f"{path}: {_one_line(error)}") from None
    if trigger is not None:
        request.trigger.CopyFrom(trigger)
    return request, audience, paths


def _request_fields(path: str, data: dict[Any, Any]) -> list[str]:
    """The fields the file's top-level keys name (a proto name or its JSON form,
    ttlSeconds), as proto names in the file's order, a notification mapping as the
    fields it names (notification.title); an unknown key is an OperatorError."""
    paths = []
    request = campaign_service_pb2.CreateCampaignRequest
    for key, name in _names(request, path, data, "a campaign file"):
        given = data[key]
        if name == "notification" and isinstance(given, dict) and given:
            notification = _names(common_pb2.Notification, path, given, "notification")
            paths += [f"notification.{field}" for _, field in notification]
        else:
            paths.append(name)
    return paths


def _names(
    message: type[Message], path: str, data: dict[Any, Any], what: str
) -> list[tuple[Any, str]]:
    fields = message.DESCRIPTOR.fields
    names = {name: field.name for field in fields for name in (field.name, field.json_name)}
    unknown = sorted(str(key) for key in data if key not in names)
    if unknown:
        known = ", ".join(field.name for field in fields)
        raise OperatorError(f"{path}: {what} takes {known}; not {', '.join(unknown)}")
    return [(key, names[key]) for key in data]


_ON_MISSING_WORDS = {
    "use_text": "MISSING_VALUE_ACTION_USE_TEXT",
    "suppress": "MISSING_VALUE_ACTION_SUPPRESS",
}
_QUIET_ACTION_WORDS = {
    "discard": "QUIET_HOURS_ACTION_DISCARD",
    "delay": "QUIET_HOURS_ACTION_DELAY",
}


def _read_content_options(path: str, data: dict[Any, Any]) -> None:
    """Checks the file's notification buttons, personalization:, utm:, labels:,
    policy:, variants:, variant_test: and conversion_goal: (an unknown key or a wrong
    value is an OperatorError naming it) and turns their words (on_missing: suppress,
    action: delay, metric: conversion_rate) into the proto's names, in place."""
    _check_actions(path, _field(data, "notification"), "notification")
    _read_ab_test(path, data)
    personalization = _mapping(
        path, _field(data, "personalization"), campaign_pb2.Personalization, "personalization"
    )
    if personalization is not None:
        _word(path, personalization, "on_missing", _ON_MISSING_WORDS, "personalization")
    _mapping(path, _field(data, "utm"), campaign_pb2.UtmParameters, "utm")
    labels = _field(data, "labels")
    if labels is not None:
        if not isinstance(labels, list):
            raise OperatorError(f"{path}: labels must be a list, e.g. [spring, sale]")
        for index, label in enumerate(labels):
            if not isinstance(label, str | int | float) or isinstance(label, bool):
                raise OperatorError(f"{path}: labels[{index}] must be text")
        _set_field(data, "labels", [str(label) for label in labels])
    policy = _mapping(path, _field(data, "policy"), campaign_pb2.CampaignPolicy, "policy")
    if policy is not None:
        hours = _mapping(
            path, _field(policy, "quiet_hours"), campaign_pb2.QuietHours, "policy.quiet_hours"
        )
        if hours is not None:
            for name in ("start", "end"):
                _set_field(hours, name, _clock_time(path, _field(hours, name), name))
            _word(path, hours, "action", _QUIET_ACTION_WORDS, "policy.quiet_hours")


def _check_actions(path: str, notification: Any, what: str) -> None:
    """A notification mapping's buttons: a list of {title, url, icon_url}."""
    if not isinstance(notification, dict):
        return
    actions = _field(notification, "actions")
    if actions is None:
        return
    if not isinstance(actions, list):
        raise OperatorError(
            f"{path}: {what}.actions must be a list of buttons, each {{title, url, icon_url}}"
        )
    for index, action in enumerate(actions):
        _mapping(path, action, common_pb2.NotificationAction, f"{what}.actions[{index}]")


_METRIC_WORDS = {
    "click_through_rate": "WINNER_METRIC_CLICK_THROUGH_RATE",
    "conversion_rate": "WINNER_METRIC_CONVERSION_RATE",
}


def _read_ab_test(path: str, data: dict[Any, Any]) -> None:
    """The file's A/B test: variants: (a list of {variant_id, split_percent,
    notification}), variant_test: ({test_percent, wait_seconds, metric}, metric as
    click_through_rate or conversion_rate) and conversion_goal: ({event_name,
    window_seconds, revenue_property}); wait_seconds and window_seconds also take a
    duration (30m, 4h, 1d)."""
    given = _field(data, "variants")
    if given is not None:
        if not isinstance(given, list):
            raise OperatorError(
                f"{path}: variants must be a list of {{variant_id, split_percent, "
                "notification}}, e.g. [{variant_id: A, split_percent: 50, notification: "
                "{title: ...}}, ...]"
            )
        for index, variant in enumerate(given):
            where = f"variants[{index}]"
            _mapping(path, variant, campaign_pb2.Variant, where)
            if isinstance(variant, dict):
                if isinstance(_field(variant, "variant_id"), int | float):
                    _set_field(variant, "variant_id", str(_field(variant, "variant_id")))
                _mapping(
                    path, _field(variant, "notification"), common_pb2.Notification,
                    f"{where}.notification",
                )  # fmt: skip
                _check_actions(path, _field(variant, "notification"), f"{where}.notification")
    test = _mapping(path, _field(data, "variant_test"), campaign_pb2.VariantTest, "variant_test")
    if test is not None:
        _word(path, test, "metric", _METRIC_WORDS, "variant_test")
        _seconds(path, test, "wait_seconds", "variant_test")
    goal = _mapping(
        path, _field(data, "conversion_goal"), common_pb2.ConversionGoal, "conversion_goal"
    )
    if goal is not None:
        _seconds(path, goal, "window_seconds", "conversion_goal")


def _seconds(path: str, data: dict[Any, Any], name: str, what: str) -> None:
    """A number of seconds given as a duration (90s, 30m, 4h, 1d, 1h30m) becomes the
    number; a number stays as it is."""
    given = _field(data, name)
    if given is None or (isinstance(given, int) and not isinstance(given, bool)):
        return
    try:
        _set_field(data, name, duration_seconds(given, f"{what}.{name}"))
    except OperatorError as error:
        raise OperatorError(f"{path}: {error} (or a number of seconds)") from None


def _mapping(
    path: str, given: Any, message: type[Message], what: str
) -> dict[Any, Any] | None:
    """`given` when it is a mapping of `message`'s fields; None when absent or empty."""
    if given is None:
        return None
    if not isinstance(given, dict):
        known = ", ".join(field.name for field in message.DESCRIPTOR.fields)
        raise OperatorError(f"{path}: {what} must be a mapping of {known}")
    _names(message, path, given, what)
    return given


def _field(data: dict[Any, Any], name: str) -> Any:
    """The value of a proto field in a mapping that may use its JSON name."""
    for key, value in data.items():
        if key == name or key == _json_name(name):
            return value
    return None


def _set_field(data: dict[Any, Any], name: str, value: Any) -> None:
    for key in list(data):
        if key == name or key == _json_name(name):
            data[key] = value


def _json_name(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.title() for part in rest)


def _word(
    path: str, data: dict[Any, Any], name: str, words: dict[str, str], what: str
) -> None:
    """An enum field given as one of `words` (or its proto name) becomes the proto name."""
    given = _field(data, name)
    if given is None:
        return
    if isinstance(given, str) and given.lower() in words:
        _set_field(data, name, words[given.lower()])
    elif given not in words.values():
        raise OperatorError(
            f"{path}: {what}.{name} is {given!r}; give {' or '.join(words)}"
        )


def _clock_time(path: str, value: Any, name: str) -> Any:
    """A quiet hours time as "HH:MM" text: YAML 1.1 reads an unquoted 22:00 as a number
    of minutes (sexagesimal), which is turned back into the text."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        return f"{value // 60:02d}:{value % 60:02d}"
    if value is not None and not isinstance(value, str):
        raise OperatorError(
            f"{path}: policy.quiet_hours.{name} must be a time such as \"22:00\""
        )
    return value


def _times_as_text(value: Any) -> Any:
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return moment.isoformat()
    if isinstance(value, dict):
        return {key: _times_as_text(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_times_as_text(item) for item in value]
    return value


def read_audience(path: str, given: Any) -> segment_pb2.AudienceSelector | None:
    """The file's `audience:` as an AudienceSelector; None (every subscriber) when it is
    absent or empty. Anything else that is not one is a one-line OperatorError."""
    if given is None or given == {}:
        return None
    if not isinstance(given, dict):
        raise OperatorError(
            f"{path}: audience must be a mapping: `segment_id: seg_...` or `definition: {{...}}`"
        )
    if set(given) - {"segment_id", "segmentId", "definition"}:
        unknown = ", ".join(sorted(str(key) for key in set(given) - {"segment_id", "segmentId", "definition"}))
        raise OperatorError(
            f"{path}: audience takes segment_id or definition, not {unknown}"
        )
    if len(given) > 1:
        raise OperatorError(f"{path}: audience takes one of segment_id and definition, not both")
    try:
        return json_format.ParseDict(given, segment_pb2.AudienceSelector())
    except json_format.ParseError as error:
        raise OperatorError(f"{path}: audience: {_one_line(error)}") from None


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def cmd_campaign_create(args: argparse.Namespace) -> int:
    request, audience = read_campaign_file(args.file)
    remote = Remote(args, "campaign")
    with remote.channel() as channel:
        stub = campaign_stub(channel)
        if audience is not None:
            request.audience.CopyFrom(audience)
        response = remote.call(stub.CreateCampaign, request)
    _print_warnings(response.warnings)
    if args.json:
        print_json(as_dict(response.campaign))
    elif args.quiet:
        print(response.campaign.campaign_id)
    else:
        print(f"created {response.campaign.campaign_id}")
        print(f"send it with: clarion campaign send {response.campaign.campaign_id} --watch")
    return 0


def _print_warnings(warnings: Any) -> None:
    """Warnings go to standard error, so --json and --quiet output stays as it is."""
    for warning in warnings:
        print(f"warning: {warning.field}: {warning.message}", file=sys.stderr)


def cmd_campaign_update(args: argparse.Namespace) -> int:
    campaign, paths = read_campaign_changes(args.file)
    campaign.campaign_id = args.campaign_id
    remote = Remote(args, "campaign")
    with remote.channel() as channel:
        answer = remote.call(
            campaign_stub(channel).UpdateCampaign,
            campaign_service_pb2.UpdateCampaignRequest(
                campaign=campaign, update_mask=field_mask_pb2.FieldMask(paths=paths)
            ),
        )
    updated = answer.campaign
    _print_warnings(answer.warnings)
    if args.json:
        print_json(as_dict(updated))
        return 0
    print(f"updated {updated.campaign_id}: {', '.join(paths)}")
    _print_campaign(updated, as_json=False)
    return 0


def cmd_campaign_send(args: argparse.Namespace) -> int:
    recipients = read_recipients(args.profile, args.subscriber, args.recipients_file)
    remote = Remote(args, "campaign")
    with remote.channel() as channel:
        stub = campaign_stub(channel)
        request = campaign_service_pb2.SendCampaignNowRequest(
            campaign_id=args.campaign_id, request_id=args.request_id or ""
        )
        if recipients is not None:
            request.recipients.CopyFrom(recipients)
        response = remote.call(stub.SendCampaignNow, request)
        if args.watch:
            return watch_run(remote, stub, response.run.run_id, args.json)
    if args.json:
        print_json(as_dict(response.run))
    else:
        to = "its audience"
        if recipients is not None:
            to = (
                f"{len(recipients.profile_ids)} profiles and "
                f"{len(recipients.subscriber_ids)} subscribers listed"
            )
        print(f"run {response.run.run_id} started ({_state(response.run)}), to {to}")
        print(f"follow it with: clarion run show {response.run.run_id} --watch")
    return 0


def cmd_campaign_test(args: argparse.Namespace) -> int:
    remote = Remote(args, "campaign")
    with remote.channel() as channel:
        stub = campaign_stub(channel)
        response = remote.call(
            stub.SendTestCampaign,
            campaign_service_pb2.SendTestCampaignRequest(
                campaign_id=args.campaign_id,
                request_id=args.request_id or "",
                variant_id=args.variant or "",
            ),
        )
        if args.watch:
            return watch_run(remote, stub, response.run.run_id, args.json)
    if args.json:
        print_json(as_dict(response.run))
    else:
        print(
            f"test run {response.run.run_id} started ({_state(response.run)}), "
            "to the site's test profiles"
        )
        print(f"follow it with: clarion run show {response.run.run_id} --watch")
    return 0


MAX_RECIPIENTS = 10_000


def read_recipients(
    profiles: list[str] | None, subscribers: list[str] | None, path: str | None
) -> campaign_service_pb2.Recipients | None:
    """The recipients of a transactional send: --profile and --subscriber ids, and those
    of a file (`-`: standard input) holding one a line, `profile:ID` or `subscriber:ID`
    (blank lines and lines starting with # are skipped). None when none is given (the
    send goes to the campaign's audience). Ids given twice count once; more than
    MAX_RECIPIENTS in all is an OperatorError, before anything is sent."""
    wanted: dict[str, dict[str, None]] = {"profile": {}, "subscriber": {}}
    for kind, given in (("profile", profiles), ("subscriber", subscribers)):
        for item in given or []:
            if not item.strip():
                raise OperatorError(f"--{kind} needs an id; an empty one was given")
            wanted[kind][item.strip()] = None
    if path is not None:
        for number, line in enumerate(_recipient_lines(path), start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            kind, _, value = text.partition(":")
            if kind.strip() not in wanted or not value.strip():
                raise OperatorError(
                    f"{path} line {number}: expected profile:ID or subscriber:ID, got "
                    f"{text[:60]!r}"
                )
            wanted[kind.strip()][value.strip()] = None
    total = sum(len(ids) for ids in wanted.values())
    if total > MAX_RECIPIENTS:
        raise OperatorError(
            f"{total:,} recipients given ({len(wanted['profile']):,} profiles, "
            f"{len(wanted['subscriber']):,} subscribers): a send takes at most "
            f"{MAX_RECIPIENTS:,}; split them into several sends"
        )
    if not total:
        if path is not None:
            raise OperatorError(f"{path} lists no recipients (profile:ID or subscriber:ID lines)")
        return None
    return campaign_service_pb2.Recipients(
        profile_ids=list(wanted["profile"]), subscriber_ids=list(wanted["subscriber"])
    )


def _recipient_lines(path: str) -> list[str]:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise OperatorError(f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise OperatorError(f"{path} is not UTF-8 text") from None
    return text.splitlines()


def _campaign_runs(
    remote: Remote, stub: campaign_service_pb2_grpc.CampaignServiceStub, campaign_id: str
) -> list[campaign_pb2.Run]:
    return all_pages(
        remote,
        stub.ListRuns,
        lambda token: campaign_service_pb2.ListRunsRequest(
            campaign_id=campaign_id, page_size=200, page_token=token
        ),
        "runs",
    )


def _unfinished_runs(
    remote: Remote, stub: campaign_service_pb2_grpc.CampaignServiceStub, campaign_id: str
) -> list[campaign_pb2.Run]:
    runs = _campaign_runs(remote, stub, campaign_id)
    return [r for r in runs if not r.HasField("finish_time")]


def cmd_campaign_cancel(args: argparse.Namespace) -> int:
    remote = Remote(args, "campaign")
    with remote.channel() as channel:
        stub = campaign_stub(channel)
        if args.run:
            run = remote.call(stub.GetRun, campaign_service_pb2.GetRunRequest(run_id=args.run)).run
            if run.campaign_id != args.campaign_id:
                raise OperatorError(
                    f"run {args.run} is a run of campaign {run.campaign_id}, not of "
                    f"{args.campaign_id}: check the ids (`clarion run list {args.campaign_id}`)"
                )
            targets = [run]
        else:
            # Runs without a finish time: preparing, sending, or failed and still sending.
            # Listed before the campaign is cancelled too, as campaign now cancels them
            # itself (they are then finished), and after, for any its schedule started
            # meanwhile. CancelRun of a cancelled run returns it as it is.
            unfinished = _unfinished_runs(remote, stub, args.campaign_id)
            remote.call(
                stub.CancelCampaign,
                campaign_service_pb2.CancelCampaignRequest(campaign_id=args.campaign_id),
            )
            later = _unfinished_runs(remote, stub, args.campaign_id)
            targets = list({r.run_id: r for r in [*unfinished, *later]}.values())
        cancelled = [
            remote.call(stub.CancelRun, campaign_service_pb2.CancelRunRequest(run_id=r.run_id)).run
            for r in targets
        ]
    if args.json:
        print_json([as_dict(r) for r in cancelled])
        return 0
    if not args.run:
        print(
            f"campaign {args.campaign_id} is cancelled: its schedule or trigger starts no "
            "more runs"
        )
    if not cancelled:
        print(f"no unfinished runs of {args.campaign_id}: nothing more to cancel")
        return 0
    print(runs_table(cancelled, "finish_time"))
    print("recipients not sent before the cancel are counted as suppressed (reason: cancelled)")
    return 0


def cmd_campaign_pause(args: argparse.Namespace) -> int:
    return _change_schedule(args, "PauseCampaign", "paused: its schedule starts nothing until resumed")


def cmd_campaign_resume(args: argparse.Namespace) -> int:
    return _change_schedule(args, "ResumeCampaign", "resumed")


def _change_schedule(args: argparse.Namespace, rpc: str, done: str) -> int:
    remote = Remote(args, "campaign")
    request = getattr(campaign_service_pb2, f"{rpc}Request")(campaign_id=args.campaign_id)
    with remote.channel() as channel:
        campaign = remote.call(getattr(campaign_stub(channel), rpc), request).campaign
    if args.json:
        print_json(as_dict(campaign))
    else:
        print(f"campaign {campaign.campaign_id} {done}; next run: {_when(campaign, 'next_run_time')}")
    return 0


# run ...


def runs_table(runs: list[campaign_pb2.Run], time_field: str) -> str:
    """Runs as a table: counts, and when each started (create_time) or ended."""
    rows = [
        [r.run_id, _state(r), str(r.audience), str(r.progress.sent), str(r.progress.failed),
         str(r.progress.suppressed), str(r.progress.expired), _when(r, time_field)]
        for r in runs
    ]  # fmt: skip
    when = "STARTED" if time_field == "create_time" else "FINISHED"
    header = ["RUN", "STATE", "AUDIENCE", "SENT", "FAILED", "SUPPRESSED", "EXPIRED", when]
    return table(rows, header)


def cmd_run_list(args: argparse.Namespace) -> int:
    remote = Remote(args, "campaign")
    with remote.channel() as channel:
        runs = _campaign_runs(remote, campaign_stub(channel), args.campaign_id)
    if args.json:
        print_json([as_dict(r) for r in runs])
        return 0
    if not runs:
        print(f"no runs of {args.campaign_id} yet: start one with `clarion campaign send`")
        return 0
    print(runs_table(runs, "create_time"))
    return 0


def run_line(run: campaign_pb2.Run) -> str:
    """One line of a run's progress, with a bar over the recipients that have an outcome."""
    p = run.progress
    done = p.sent + p.failed + p.suppressed + p.expired
    total = max(run.audience, p.resolved, done)
    fraction = done / total if total else (1.0 if run.state in _FINISHED else 0.0)
    width = 30
    filled = int(round(fraction * width))
    bar = "#" * filled + "." * (width - filled)
    line = (
        f"[{bar}] {fraction:4.0%} {_state(run):9} sent {p.sent}  failed {p.failed}  "
        f"suppressed {p.suppressed}  expired {p.expired}  of {total}"
    )
    if run.failure_reason:
        line += f"  ({run.failure_reason})"
    for warning in run.warnings:
        line += f"  warning: {campaign_pb2.RunWarning.Name(warning).removeprefix('RUN_WARNING_').lower()}"
    for held in run.held_push_services:
        line += (
            f"  held: {held.push_service} refuses the site's VAPID signature "
            f"({held.http_status}; next try {_when(held, 'next_probe_time')})"
        )
    return line


def watch_run(
    remote: Remote, stub: campaign_service_pb2_grpc.CampaignServiceStub, run_id: str, as_json: bool
) -> int:
    """Follows a run until it is finished: a live bar on a terminal, a line per change
    otherwise. Exit status 0 when DONE, 1 when FAILED or CANCELLED."""
    interactive = sys.stdout.isatty() and not as_json
    last = ""
    while True:
        run = remote.call(stub.GetRun, campaign_service_pb2.GetRunRequest(run_id=run_id)).run
        line = run_line(run)
        if line != last and not as_json:
            print(("\r" + line) if interactive else line, end="" if interactive else "\n", flush=True)
            last = line
        if run.state in _FINISHED:
            break
        time.sleep(WATCH_INTERVAL_SECONDS)
    if interactive:
        print()
    if as_json:
        print_json(as_dict(run))
    return 0 if run.state == campaign_pb2.RUN_STATE_DONE else 1


def cmd_run_show(args: argparse.Namespace) -> int:
    remote = Remote(args, "campaign")
    with remote.channel() as channel:
        stub = campaign_stub(channel)
        if args.watch:
            return watch_run(remote, stub, args.run_id, args.json)
        run = remote.call(stub.GetRun, campaign_service_pb2.GetRunRequest(run_id=args.run_id)).run
    if args.json:
        print_json(as_dict(run))
        return 0
    print(f"run {run.run_id} of campaign {run.campaign_id}")
    print(f"started {_when(run, 'create_time')}, finished {_when(run, 'finish_time')}")
    print(run_line(run))
    for line in variant_test_lines(run):
        print(line)
    return 0


def variant_test_lines(run: campaign_pb2.Run) -> list[str]:
    """A variant test's run: which phase, the other run, and for the rest how its
    variant was chosen."""
    if run.phase == campaign_pb2.RUN_PHASE_VARIANT_TEST:
        if run.related_run_id:
            rest = f"the rest went in run {run.related_run_id}"
        elif run.HasField("rest_time"):
            rest = f"the rest goes at {_when(run, 'rest_time')}"
        else:
            rest = "cancelled: the rest of the audience is not sent"
        return [f"variant test: the test share of the audience; {rest}"]
    if run.phase != campaign_pb2.RUN_PHASE_VARIANT_REST:
        return []
    decision = run.variant_decision
    chosen = (
        f"winner {decision.winner_variant_id} (z = {decision.z_score:.2f})"
        if decision.significant
        else f"no significant winner (z = {decision.z_score:.2f}): the test's split"
    )
    lines = [f"variant test: the rest of the audience after run {run.related_run_id}; {chosen}"]
    lines += [
        f"  {r.variant_id}: {r.successes} of {r.sent} ({r.rate:.2%})" for r in decision.results
    ]
    return lines


# why


def cmd_why(args: argparse.Namespace) -> int:
    request = campaign_service_pb2.ExplainRecipientRequest()
    if args.run:
        request.run_id = args.run
    else:
        request.campaign_id = args.campaign
    if args.subscriber:
        request.subscriber_id = args.subscriber
    else:
        request.profile_id = args.profile
    remote = Remote(args, "campaign")
    with remote.channel() as channel:
        explanations = list(
            remote.call(campaign_stub(channel).ExplainRecipient, request).explanations
        )
    if args.json:
        print_json([as_dict(e) for e in explanations])
        return 0
    if not explanations:
        print("nothing to explain: the campaign has no runs yet, or the profile no subscribers")
        return 0
    print("\n\n".join(why_block(e) for e in explanations))
    return 0


def why_block(e: campaign_pb2.RecipientExplanation) -> str:
    """One (run, subscriber) for a person: targeted or why not, each attempt, the final
    state and its sentence, what the person did with the push."""
    started = _when(e, "run_start_time")
    lines = [f"run {e.run_id} (started {started}), subscriber {e.subscriber_id}"]
    if not e.targeted:
        reason = campaign_pb2.NotTargetedReason.Name(e.not_targeted_reason)
        lines.append(f"targeted     no ({reason.removeprefix('NOT_TARGETED_REASON_').lower()})")
        lines.append(f"why          {e.explanation}")
        return "\n".join(lines)
    status = campaign_pb2.RecipientStatus.Name(e.status).removeprefix("RECIPIENT_STATUS_")
    lines.append("targeted     yes" + (f" (variant {e.variant})" if e.variant else ""))
    because = f" ({_reason_word(e.reason)})" if e.reason else ""
    lines.append(f"final        {status.lower()}{because}")
    lines.append(f"why          {e.explanation}")
    lines.append(f"finished     {_when(e, 'finish_time')}")
    if e.attempts:
        lines.append(f"attempts     {len(e.attempts)}")
        rows = [
            [_when(a, "attempt_time"), a.push_service or "-", str(a.http_status or "-"),
             _meaning(a)]
            for a in e.attempts
        ]
        header = ["TIME", "PUSH SERVICE", "HTTP", "MEANING"]
        lines += ["  " + line for line in table(rows, header).splitlines()]
    else:
        lines.append("attempts     none recorded")
    button = f" (button {e.clicked_button})" if e.clicked_button else " (the body)"
    clicked = _when(e, "clicked_time") + (button if e.HasField("clicked_time") else "")
    lines.append(f"viewed       {_when(e, 'viewed_time')}")
    lines.append(f"clicked      {clicked}")
    lines.append(f"closed       {_when(e, 'closed_time')}")
    converted = f", first {_when(e, 'converted_time')}" if e.HasField("converted_time") else ""
    lines.append(f"conversions  {e.conversions} (revenue {e.revenue:.2f}{converted})")
    return "\n".join(lines)


def _reason_word(reason: int) -> str:
    return common_pb2.DeliveryReason.Name(reason).removeprefix("DELIVERY_REASON_").lower()  # type: ignore[arg-type]


def _meaning(attempt: common_pb2.DeliveryAttempt) -> str:
    if attempt.reason:
        return _reason_word(attempt.reason)
    if 200 <= attempt.http_status < 300:
        return "accepted"
    return "no answer" if attempt.http_status == 0 else "-"


# report


def cmd_report(args: argparse.Namespace) -> int:
    remote = Remote(args, "reporting")
    with remote.channel() as channel:
        report = remote.call(
            reporting_service_pb2_grpc.ReportingServiceStub(channel).GetCampaignReport,
            reporting_service_pb2.GetCampaignReportRequest(campaign_id=args.campaign_id),
        ).report
    if args.json:
        print_json(as_dict(report))
        return 0
    rows = [
        ["runs", str(report.runs)],
        ["audience", str(report.audience)],
        ["sent", str(report.sent)],
        ["failed", str(report.failed)],
        ["suppressed", str(report.suppressed)],
        ["expired", str(report.expired)],
        ["viewed", str(report.viewed)],
        ["view rate", f"{report.view_rate:.2%}"],
        ["clicked", str(report.clicked)],
        ["closed", str(report.closed)],
        ["click-through rate", f"{report.click_through_rate:.2%}"],
        ["conversions", str(report.conversions)],
        ["conversion rate", f"{report.conversion_rate:.2%}"],
        ["revenue", f"{report.revenue:.2f}"],
        ["control group", str(report.control_group)],
        ["control group conversions", str(report.control_group_conversions)],
        ["unsubscribes after push", str(report.unsubscribes_after_push)],
        ["last sent", _when(report, "last_sent_time")],
    ]
    if report.sent_views_not_measured:
        rows.insert(8, ["sent, views not measured", str(report.sent_views_not_measured)])
    print(f"campaign {report.campaign_id}")
    print(table(rows, ["METRIC", "VALUE"]))
    if report.HasField("lift"):
        lift = report.lift
        print()
        print(
            f"lift: {lift.sent_conversion_rate:.2%} of {lift.sent_recipients} sent converted, "
            f"{lift.control_conversion_rate:.2%} of {lift.control_recipients} held out; "
            f"difference {lift.difference:+.2%} (95% CI {lift.difference_low:+.2%} to "
            f"{lift.difference_high:+.2%}, {'' if lift.significant else 'not '}significant)"
        )
    reason_rows = [
        [status, _reason_word(c.reason), str(c.count)]
        for status, counts in (
            ("failed", report.failed_by_reason),
            ("suppressed", report.suppressed_by_reason),
            ("expired", report.expired_by_reason),
        )
        for c in counts
    ]
    if reason_rows:
        print()
        print(table(reason_rows, ["STATUS", "REASON", "COUNT"]))
    if report.browsers:
        browser_rows = [
            [
                common_pb2.Browser.Name(b.browser).removeprefix("BROWSER_").lower(),  # type: ignore[arg-type]
                str(b.audience), str(b.sent), str(b.failed),
                str(b.viewed) if b.views_measured else "not measured",
                str(b.clicked), f"{b.click_through_rate:.2%}",
            ]
            for b in report.browsers
        ]  # fmt: skip
        print()
        header = ["BROWSER", "AUDIENCE", "SENT", "FAILED", "VIEWED", "CLICKED", "CTR"]
        print(table(browser_rows, header))
    if report.variants:
        variant_rows = [
            [
                v.variant_id, str(v.sent), str(v.viewed), str(v.clicked),
                f"{v.click_through_rate:.2%}", str(v.conversions), f"{v.conversion_rate:.2%}",
                f"{v.revenue:.2f}",
            ]
            for v in report.variants
        ]  # fmt: skip
        print()
        print(
            table(
                variant_rows,
                ["VARIANT", "SENT", "VIEWED", "CLICKED", "CTR", "CONVERSIONS", "CONV. RATE", "REVENUE"],
            )
        )
    return 0


def register(
    sub: Any,
    add: Callable[..., argparse.ArgumentParser],
    variables_help: Callable[..., str],
) -> None:
    """Adds the remote commands to the `clarion` parser."""
    campaign_vars = variables_help(CAMPAIGN_FIELDS, ClientSettings)
    report_vars = variables_help(REPORT_FIELDS, ClientSettings)

    campaign = sub.add_parser("campaign", help="list, show, create and send campaigns")
    campaign_sub = campaign.add_subparsers(dest="campaign_command", required=True)
    listing = add(campaign_sub, "list", "list the site's campaigns", campaign_vars)
    listing.add_argument("--label", help="only the campaigns carrying this label (exactly)")
    listing.set_defaults(func=cmd_campaign_list)
    show = add(campaign_sub, "show", "show one campaign", campaign_vars)
    show.add_argument("campaign_id")
    show.set_defaults(func=cmd_campaign_show)
    create = add(
        campaign_sub,
        "create",
        "create a campaign from a YAML or JSON file",
        campaign_vars,
        description="create a campaign from a YAML or JSON file (`-` reads standard input):\n\n"
        "  name: Spring sale\n  notification:\n    title: 20% off today\n"
        "    body: Everything in the spring collection\n    target_url: https://shop.example/sale\n"
        "  ttl_seconds: 86400\n  urgency: high\n"
        "  audience:          # optional; without it: every subscriber\n"
        "    segment_id: seg_0123456789abcdef0123456789abcdef\n"
        "    # or an ad-hoc definition, in clarion.segment.v1's proto JSON form:\n"
        "    # definition: {condition: {property: {name: city, operator:\n"
        "    #   PROPERTY_OPERATOR_EQUALS, values: [{string_value: Paris}]}}}\n"
        "  schedule:          # optional; without it: sent only with `campaign send`\n"
        "    recurrence:\n"
        "      rule: FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0\n"
        "      timezone: Europe/Berlin\n"
        "    # or once: at: 2027-01-04T09:00:00Z; or times: {times: [..., ...]}\n"
        "  # or, instead of a schedule, a live campaign: a push to each person who does\n"
        "  # the event (durations: 90s, 10m, 2h, 1d, 1h30m; times: 2027-01-01T00:00:00Z)\n"
        "  trigger:\n"
        "    event: Added To Cart\n"
        "    where:           # optional: conditions on the event's properties\n"
        "      - {property: category, equals: shoes}   # or not_equals, in: [..], contains,\n"
        "      # starts_with, greater_than, less_than, between: [a, b], exists: true|false,\n"
        "      # within_last_days: N, more_than_days_ago: N, within_next_days: N\n"
        "    unless: {event: Charged, within: 10m}   # optional; where:, keep_first_wait: true\n"
        "    # or: remind: {property: travel_date, before: 1d}   (or after: 2h)\n"
        "    cooldown: 24h    # optional: at most one push per person in this time\n"
        "    start: 2027-01-01T00:00:00Z   # optional, as is end:\n"
        "  # optional, under notification: badge_url, actions: [{title, url, icon_url}]\n"
        "  # (up to two buttons), require_interaction, silent, tag, renotify: true|false;\n"
        "  # title, body and URLs may read {{ profile.first_name | default('there') }}\n"
        "  personalization: {on_missing: use_text, missing_value_text: ''}  # or suppress\n"
        "  utm: {source: push, medium: web, campaign: spring}  # also content, term\n"
        "  topic: spring-sale  # a newer push of the topic replaces an undelivered one\n"
        "  labels: [spring, sale]\n"
        "  policy:            # optional: how the site's delivery policy applies\n"
        "    ignore_frequency_cap: true\n"
        "    quiet_hours: {start: '22:00', end: '08:00', action: delay}  # or discard\n"
        "    # or ignore_quiet_hours: true\n"
        "    max_per_minute: 1000\n"
        "    control_group_percent: 10\n"
        "  # an A/B test: variants instead of notification (2 to 5, shares adding to 100)\n"
        "  # variants:\n"
        "  #   - {variant_id: A, split_percent: 50, notification: {title: 20% off, ...}}\n"
        "  #   - {variant_id: B, split_percent: 50, notification: {title: Sale!, ...}}\n"
        "  # variant_test: {test_percent: 20, wait_seconds: 4h, metric: click_through_rate}\n"
        "  #   (optional: the test share first, the rest later the winner)\n"
        "  # conversion_goal: {event_name: Charged, window_seconds: 1d,\n"
        "  #   revenue_property: amount}\n",
    )
    create.add_argument("file")
    create.add_argument("-q", "--quiet", action="store_true", help="print only the campaign id")
    create.set_defaults(func=cmd_campaign_create)
    update = add(
        campaign_sub,
        "update",
        "change a campaign: the fields a YAML or JSON file gives",
        campaign_vars,
        description="change the fields a YAML or JSON file gives (the form of `campaign create`,\n"
        "request_id aside; `-` reads standard input); the others stay as they are. Under\n"
        "notification: only the fields named change. A key left empty clears it: `trigger:`\n"
        "makes a live campaign a draft again, `schedule:` with a `trigger:` turns a scheduled\n"
        "campaign into a live one. Runs already started keep what they had.",
    )
    update.add_argument("campaign_id")
    update.add_argument("file")
    update.set_defaults(func=cmd_campaign_update)
    send = add(
        campaign_sub,
        "send",
        "start a run of a campaign now: to its audience, or to listed people",
        campaign_vars,
        description="start a run of a campaign now. Without --profile, --subscriber or\n"
        "--recipients-file it goes to the campaign's audience; with them (a transactional\n"
        "send: an order update, a password reset) only to the reachable subscribers of the\n"
        f"profiles and to the subscribers listed, at most {MAX_RECIPIENTS:,} ids in all.",
    )
    send.add_argument("campaign_id")
    send.add_argument("--request-id", help="idempotency key: a repeat returns the same run")
    send.add_argument("--watch", action="store_true", help="follow the run until it is finished")
    send.add_argument(
        "--profile", action="append", metavar="ID",
        help="send to this profile's subscribers (repeatable)",
    )  # fmt: skip
    send.add_argument(
        "--subscriber", action="append", metavar="ID", help="send to this subscriber (repeatable)"
    )
    send.add_argument(
        "--recipients-file", metavar="FILE",
        help="ids to send to, one a line: profile:ID or subscriber:ID ('-': stdin)",
    )  # fmt: skip
    send.set_defaults(func=cmd_campaign_send)
    test = add(
        campaign_sub,
        "test",
        "send a campaign now to the site's test profiles only",
        campaign_vars,
        description="a test send: the campaign's current content, now, to the reachable\n"
        "subscribers of the site's test profiles (profiles marked test_profile), whatever\n"
        "the campaign's audience, schedule and policies. The campaign is left as it is, and\n"
        "reports leave the run out.",
    )
    test.add_argument("campaign_id")
    test.add_argument("--request-id", help="idempotency key: a repeat returns the same run")
    test.add_argument(
        "--variant", metavar="ID",
        help="an A/B test's variant every test recipient gets (default: each its own)",
    )  # fmt: skip
    test.add_argument("--watch", action="store_true", help="follow the run until it is finished")
    test.set_defaults(func=cmd_campaign_test)
    cancel = add(
        campaign_sub,
        "cancel",
        "cancel a campaign's schedule or trigger and unfinished runs, or one run",
        campaign_vars,
        description="cancel a run: nothing more is sent, and recipients not sent yet end "
        "suppressed (reason: cancelled). Without --run, the campaign's schedule or trigger "
        "is cancelled for good and every unfinished run of it too. Cancelling a finished run "
        "changes nothing.",
    )
    cancel.add_argument("campaign_id")
    cancel.add_argument("--run", help="cancel only this run of the campaign")
    cancel.set_defaults(func=cmd_campaign_cancel)
    pause = add(
        campaign_sub, "pause", "pause a scheduled campaign: its schedule starts nothing",
        campaign_vars,
    )  # fmt: skip
    pause.add_argument("campaign_id")
    pause.set_defaults(func=cmd_campaign_pause)
    resume = add(
        campaign_sub, "resume", "resume a paused campaign from its next occurrence",
        campaign_vars,
    )  # fmt: skip
    resume.add_argument("campaign_id")
    resume.set_defaults(func=cmd_campaign_resume)

    run = sub.add_parser("run", help="list and follow a campaign's runs")
    run_sub = run.add_subparsers(dest="run_command", required=True)
    runs = add(run_sub, "list", "list a campaign's runs, newest first", campaign_vars)
    runs.add_argument("campaign_id")
    runs.set_defaults(func=cmd_run_list)
    run_show = add(run_sub, "show", "show a run's progress", campaign_vars)
    run_show.add_argument("run_id")
    run_show.add_argument("--watch", action="store_true", help="a live progress bar until it is finished")
    run_show.set_defaults(func=cmd_run_show)

    why = add(
        sub,
        "why",
        "whether a person got a run's push, and why (or why not)",
        campaign_vars,
        description="whether a person was targeted by a run (and if not, why: not in the\n"
        "segment when it started, unsubscribed, unreachable, a test send only, ...); each\n"
        "delivery attempt with the push service's answer; the final state and why; when\n"
        "the push was viewed, clicked (which button) and closed; conversions and revenue.\n"
        "--campaign covers the campaign's newest 50 runs, --profile every subscriber of a\n"
        "profile.",
    )
    scope = why.add_mutually_exclusive_group(required=True)
    scope.add_argument("--run", help="the run's id")
    scope.add_argument("--campaign", help="a campaign's id: its newest runs, newest first")
    person = why.add_mutually_exclusive_group(required=True)
    person.add_argument("--subscriber", help="the subscriber's id")
    person.add_argument("--profile", help="a profile's id: each of its subscribers")
    why.set_defaults(func=cmd_why)

    report = add(sub, "report", "a campaign's report: sent, failed, viewed, clicked, CTR", report_vars)
    report.add_argument("campaign_id")
    report.set_defaults(func=cmd_report)

    for parser in (
        listing, show, create, update, send, test, cancel, pause, resume, runs, run_show, why
    ):  # fmt: skip
        add_connection_arguments(parser)
    add_connection_arguments(report, reporting=True)

    from clarion import imports  # builds on this module

    imports.register(sub, add, variables_help)
