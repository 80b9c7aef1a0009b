"""The `clarion` command: sites, the embedded stack, single services, the simulator, the demo.

A problem the operator fixes (a port taken, CLARION_INTERNAL_TOKEN unset, a database out
of reach, a malformed variable) is an OperatorError: main() prints its one line and
exits 1. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import re
import shlex
import sys
import textwrap
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError
from pydantic_core import PydanticUndefined

from clarion.embedded import stop_on_signals, tune_gc, until_signalled
from services.delivery.settings import DeliverySettings
from services.kit.config import SERVICE_NAMES, Settings
from services.kit.logging import configure_logging, get_logger
from services.kit.operator import OperatorError, check_can_listen, listen_failed
from services.reporting.settings import ReportingSettings

log = get_logger("clarion.cli")

DISTRIBUTION = "clarion"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def version() -> str:
    """The installed distribution's version."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown (not installed)"


def _settings(args: argparse.Namespace, model: type[Settings] = Settings) -> Settings:
    try:
        settings = model()
    except ValidationError as error:
        raise OperatorError(_invalid_settings(model, error)) from None
    if getattr(args, "data_dir", None):
        settings.data_dir = Path(args.data_dir)
    configure_logging(settings.log_format, settings.log_level)
    return settings


def _invalid_settings(model: type[Settings], error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        field = str(item["loc"][0]) if item["loc"] else ""
        name = model.variable(field) if field in model.model_fields else field
        problems.append(f"{name}: {item['msg']}")
    return "invalid setting: " + "; ".join(problems)


# The variables each command reads, for its --help: generated from the settings classes.


def _default(field: str, model: type[Settings]) -> str:
    value: Any = model.model_fields[field].default
    if value is PydanticUndefined or value is None:
        return ""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple | list):
        return ",".join(str(v) for v in value)
    return str(value)


def _summary(description: str) -> str:
    """The first sentence of a field's description, on one line."""
    text = " ".join(description.split())
    return re.split(r"(?<=[.])\s+(?=[A-Z(])", text, maxsplit=1)[0]


def variables_help(
    fields: Iterable[str], model: type[Settings] = DeliverySettings, title: str = ""
) -> str:
    """An --help epilog naming the CLARION_* variables behind `fields` of `model`."""
    lines = [title or "environment variables read:"]
    for field in fields:
        info = model.model_fields[field]
        default = _default(field, model)
        text = _summary(info.description or "")
        if default:
            text += f" [default: {default}]"
        lines.append(f"  {model.variable(field)}")
        lines.append(textwrap.fill(text, 88, initial_indent=" " * 6, subsequent_indent=" " * 6))
    return "\n".join(lines)


def _fields(
    model: type[Settings] = Settings, *, without: Callable[[str], bool] = lambda _: False
) -> list[str]:
    return [name for name in model.model_fields if not without(name)]


_LOGS = ("log_format", "log_level")
_DELIVERY_OWN = [
    name for name in DeliverySettings.model_fields if name not in Settings.model_fields
]
_REPORTING_OWN = [
    name for name in ReportingSettings.model_fields if name not in Settings.model_fields
]


def _database_fields(*services: str) -> list[str]:
    return ["data_dir", "database_url", *(f"{s}_database_url" for s in services)]


def _no_variables() -> str:
    return "environment variables read: none"


def cmd_site_create(args: argparse.Namespace) -> int:
    from services.campaign.admin import create_site
    from services.kit.errors import ClarionError

    settings = _settings(args)
    try:
        site = asyncio.run(create_site(settings, args.name, args.subject))
    except ClarionError as error:  # a bad name or subject: nothing was stored
        raise OperatorError(error.message) from None
    out = {
        "site_id": site.site_id,
        "name": site.name,
        "api_key": site.api_key,
        "vapid_public_key": _b64url(site.vapid_public_key),
    }
    if args.export:
        # For `eval "$(clarion site create ... --export)"`: the later commands read these.
        print(f"export CLARION_SITE_ID={shlex.quote(site.site_id)}")
        print(f"export CLARION_API_KEY={shlex.quote(site.api_key)}")
    else:
        print(json.dumps(out, indent=None if args.json else 2))
    if not args.json:
        print("Keep the api_key: it is shown only this once.", file=sys.stderr)
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from clarion.embedded import EmbeddedStack

    settings = _settings(args, DeliverySettings)
    # Every port first: a taken one is said before any database is touched.
    for name in (*SERVICE_NAMES, "gateway"):
        check_can_listen(settings.listen_for(name), settings.listen_variable(name))
    # This process's /metrics (on campaign's port) and delivery's process's.
    for name in ("campaign", "delivery"):
        if settings.metrics_port_for(name) > 0:
            host = settings.listen_for(name).rpartition(":")[0]
            address = f"{host}:{settings.metrics_port_for(name)}"
            check_can_listen(address, settings.variable("metrics_port"))

    async def run() -> None:
        # A signal while the processes start stops them all once started: ending here
        # then would leave delivery's and the gateway's processes behind.
        stop = stop_on_signals()
        # The gateway in a process of its own too: browsers' requests use the other core.
        stack = await EmbeddedStack.start(settings, metrics=True, gateway_in_process=False)
        log.info(
            "clarion is up",
            data_dir=str(settings.data_dir.resolve()),
            gateway=stack.gateway_url,
            **{name: stack.address(name) for name in SERVICE_NAMES},
        )
        # Where Prometheus scrapes each (docs/metrics.md): one URL for this process's.
        log.info("metrics served", **stack.metrics_urls())
        try:
            await stop.wait()
        finally:
            await stack.stop()

    asyncio.run(run())
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from services.kit.db import check_database, upgrade_to_head

    unknown = sorted(set(args.services) - set(SERVICE_NAMES))
    if unknown:
        print(f"clarion migrate: unknown service {', '.join(unknown)}; "
              f"choose from {', '.join(SERVICE_NAMES)}", file=sys.stderr)
        return 2
    settings = _settings(args)
    services = args.services or SERVICE_NAMES
    # Every database first: a bad URL is said before any schema changes.
    for service in services:
        check_database(
            settings.database_url_for(service),
            service=service,
            variable=settings.database_variable_for(service),
        )
    for service in services:
        upgrade_to_head(service, settings.database_url_for(service))
        log.info("schema at head", service=service)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from services.kit.metrics import listen_host, serve_metrics

    settings = _settings(args, DeliverySettings if args.service == "delivery" else Settings)
    address, variable = settings.listen_for(args.service), settings.listen_variable(args.service)
    # What the operator must fix is said before any database is touched.
    settings.internal_token_value  # noqa: B018 -- raises MissingSetting when unset
    check_can_listen(address, variable)
    metrics_port = -1 if args.service == "gateway" else settings.metrics_port_for(args.service)
    if metrics_port > 0:
        metrics_address = f"{listen_host(address)}:{metrics_port}"
        check_can_listen(metrics_address, settings.variable("metrics_port"))

    async def run() -> None:
        server: object
        if args.service == "gateway":
            from services.gateway.server import create_gateway

            try:
                server = await create_gateway(address, settings)
            except OSError as error:  # taken between the check and here
                raise listen_failed(address, variable, error) from None
        else:
            factory = _service_factory(args.service)
            server = await factory(settings.listen_for(args.service), settings)
        await server.start()  # type: ignore[attr-defined]
        # The gateway answers GET /metrics on its own port; a gRPC service beside it.
        metrics = await serve_metrics(address, metrics_port, settings.variable("metrics_port"))
        tune_gc()
        log.info(
            "serving",
            service=args.service,
            port=server.port,  # type: ignore[attr-defined]
            metrics=metrics.url if metrics is not None else "",
        )
        try:
            await until_signalled()
        finally:
            if metrics is not None:
                await metrics.stop()
            await server.stop()  # type: ignore[attr-defined]

    asyncio.run(run())
    return 0


def _service_factory(service: str) -> Callable[..., Awaitable[object]]:
    import importlib

    module = importlib.import_module(f"services.{service}.server")
    return module.create_server  # type: ignore[no-any-return]


def cmd_simulator(args: argparse.Namespace) -> int:
    from pathlib import Path

    from clarion.simulator import PushServiceSimulator
    from clarion.simulator.apns import ApnsSimulator

    configure_logging()

    async def run() -> None:
        simulator = PushServiceSimulator()
        url = await simulator.start(args.host, args.port)
        log.info("push-service simulator listening", url=url)
        apns = ApnsSimulator()
        apns_url = await apns.start(args.host, args.apns_port)
        if args.apns_ca_file:
            Path(args.apns_ca_file).write_text(apns.ca_pem)
        log.info("apns simulator listening", url=apns_url, ca_file=args.apns_ca_file)
        try:
            await until_signalled()
        finally:
            await apns.stop()
            await simulator.stop()

    asyncio.run(run())
    return 0


def cmd_simulated_browsers(args: argparse.Namespace) -> int:
    """Subscribes browsers minted by a running simulator to a site, through the gateway,
    as real browsers do: something to send a first campaign to."""
    import os

    import aiohttp

    site_id = args.site or os.environ.get("CLARION_SITE_ID", "")
    if not site_id:
        raise OperatorError("no site: pass --site or set CLARION_SITE_ID")
    gateway = args.gateway or f"http://{Settings().gateway_listen}"

    async def run() -> list[str]:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            try:
                async with session.post(
                    f"{args.simulator}/control/subscriptions", params={"count": str(args.count)}
                ) as response:
                    if response.status != 201:
                        raise OperatorError(
                            f"the simulator at {args.simulator} refused: {response.status} "
                            f"{(await response.text())[:200]}"
                        )
                    subscriptions = await response.json()
            except aiohttp.ClientError as error:
                raise OperatorError(
                    f"no simulator at {args.simulator} ({error}): start one with "
                    "`clarion simulator --port 8090` or pass --simulator"
                ) from None
            ids = []
            for subscription in subscriptions:
                try:
                    async with session.post(
                        f"{gateway}/v1/sites/{site_id}/subscriptions",
                        json={"subscription": subscription, "browser": "chrome", "timezone": "UTC"},
                    ) as response:
                        body = await response.json(content_type=None)
                except aiohttp.ClientError as error:
                    raise OperatorError(
                        f"no gateway at {gateway} ({error}): is `clarion up` running? "
                        "Pass --gateway or set CLARION_GATEWAY_LISTEN"
                    ) from None
                if response.status not in (200, 201):
                    message = (body or {}).get("error", {}).get("message", "")
                    hint = (
                        " (start the services with CLARION_PUSH_TEST_ENDPOINTS=true to admit "
                        "the simulator's http endpoints)"
                        if "endpoint" in message.lower()
                        else ""
                    )
                    raise OperatorError(f"the gateway refused a subscription: {message}{hint}")
                ids.append(str(body["subscriber_id"]))
            return ids

    ids = asyncio.run(run())
    print(f"subscribed {len(ids)} simulated browsers to {site_id}")
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    """Exit 0 when the gRPC server at ADDRESS answers SERVING (container health checks)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async def check() -> int:
        # With --wait, asks again until SERVING or the time is up (a service starting).
        deadline = asyncio.get_running_loop().time() + args.wait
        async with grpc.aio.insecure_channel(args.address) as channel:
            while True:
                try:
                    response = await health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout
                    )
                    problem = ""
                    if response.status != health_pb2.HealthCheckResponse.SERVING:
                        name = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
                        problem = f"{args.address}: {name}"
                except grpc.aio.AioRpcError as error:
                    problem = f"{args.address}: {error.code().name}: {error.details()}"
                if not problem:
                    print(f"{args.address}: SERVING")
                    return 0
                if asyncio.get_running_loop().time() >= deadline:
                    print(problem, file=sys.stderr)
                    return 1
                await asyncio.sleep(0.25)

    return asyncio.run(check())


def cmd_demo(args: argparse.Namespace) -> int:
    from clarion import demo

    configure_logging("console", "WARNING")
    data_dir = Path(args.data_dir) if args.data_dir else None
    if args.scenario == "segments":
        from clarion import demo_segments

        return demo_segments.main(args.people or 500, data_dir, args.json)
    if args.scenario in ("abandoned-cart", "recurring"):
        from clarion import demo_live

        size = args.shoppers if args.scenario == "abandoned-cart" else args.days
        return demo_live.main(args.scenario, size, data_dir, args.json)
    if args.scenario == "policies":
        from clarion import demo_policies

        return demo_policies.main(args.people or 150, data_dir, args.json)
    if args.scenario == "webhooks":
        from clarion import demo_webhooks

        return demo_webhooks.main(args.browsers, data_dir, args.json)
    if args.scenario == "browser":
        from clarion import demo_browser

        return demo_browser.main(data_dir, args.json)
    if args.scenario == "browsers":
        from clarion import demo_browsers

        return demo_browsers.main(data_dir, args.json)
    return demo.main(args.subscribers, data_dir, args.json)


def build_parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="clarion",
        description=__doc__.split("\n\n")[0],
        epilog="Each command's --help names the CLARION_* environment variables it reads.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(
        target: Any, name: str, help: str, epilog: str, description: str = ""
    ) -> argparse.ArgumentParser:
        return target.add_parser(  # type: ignore[no-any-return]
            name,
            help=help,
            description=description or help,
            epilog=epilog,
            formatter_class=formatter,
        )

    site = sub.add_parser("site", help="manage sites (tenants)")
    site_sub = site.add_subparsers(dest="site_command", required=True)
    create = add(
        site_sub,
        "create",
        "create a site with a VAPID key pair and an API key",
        variables_help([*_database_fields("campaign"), *_LOGS], Settings),
    )
    create.add_argument("name")
    create.add_argument(
        "--subject", required=True,
        help="VAPID sub claim: a mailto: address or https: URL where a push service can reach "
        "you, e.g. mailto:ops@example.com (Apple refuses localhost)",
    )
    create.add_argument("--data-dir", help="embedded data directory (default: $CLARION_DATA_DIR or .clarion)")
    create.add_argument("--json", action="store_true", help="one JSON line")
    create.add_argument(
        "--export", action="store_true",
        help='print `export CLARION_SITE_ID=... CLARION_API_KEY=...` lines, for eval "$(...)"',
    )
    create.set_defaults(func=cmd_site_create)
    from clarion import remote

    remote.register_site(site_sub, add, variables_help)

    up = add(
        sub,
        "up",
        "run every service and the gateway in one process",
        variables_help(
            _fields(DeliverySettings, without=lambda f: f.endswith("_address")),
            title="environment variables read (CLARION_INTERNAL_TOKEN is made up when "
            "unset; the services find each other without CLARION_*_ADDRESS):",
        ),
    )
    up.add_argument("--data-dir")
    up.set_defaults(func=cmd_up)

    migrate = add(
        sub,
        "migrate",
        "bring the services' schemas to this version (run before serving)",
        variables_help([*_database_fields(*SERVICE_NAMES), *_LOGS], Settings),
    )
    migrate.add_argument(
        "services", nargs="*", metavar="SERVICE",
        help=f"any of {', '.join(SERVICE_NAMES)} (default: all four)",
    )
    migrate.add_argument("--data-dir")
    migrate.set_defaults(func=cmd_migrate)

    serve = add(
        sub,
        "serve",
        "run one service, configured by CLARION_* environment variables",
        variables_help(_fields(Settings), Settings, "environment variables read (every service):")
        + "\n\n"
        + variables_help(_DELIVERY_OWN, title="and by delivery alone:")
        + "\n\n"
        + variables_help(_REPORTING_OWN, ReportingSettings, "and by reporting alone:"),
    )
    serve.add_argument("service", choices=[*SERVICE_NAMES, "gateway"])
    serve.set_defaults(func=cmd_serve)

    simulator = add(
        sub,
        "simulator",
        "run the RFC 8030 push-service simulator and the APNs simulator",
        _no_variables(),
    )
    simulator.add_argument("--host", default="127.0.0.1")
    simulator.add_argument("--port", type=int, default=8090)
    simulator.add_argument(
        "--apns-port", type=int, default=8091, help="the APNs simulator's port (HTTP/2, TLS or h2c)"
    )
    simulator.add_argument(
        "--apns-ca-file", help="write the CA the APNs simulator's certificate chains to (PEM)"
    )
    simulator.set_defaults(func=cmd_simulator)

    browsers = add(
        sub,
        "simulated-browsers",
        "subscribe browsers from a running simulator to a site, through the gateway",
        variables_help(["gateway_listen"], Settings)
        + "\n  CLARION_SITE_ID\n      The site (default for --site; `clarion site create --export` sets it).",
    )
    browsers.add_argument("--site", help="site id (default: $CLARION_SITE_ID)")
    browsers.add_argument("--count", type=int, default=5, choices=range(1, 1001), metavar="N")
    browsers.add_argument("--simulator", default="http://127.0.0.1:8090", help="the simulator's URL")
    browsers.add_argument("--gateway", help="the gateway's URL (default: http://$CLARION_GATEWAY_LISTEN)")
    browsers.set_defaults(func=cmd_simulated_browsers)

    health = add(sub, "health", "check a gRPC server's standard health service", _no_variables())
    health.add_argument("address", help="host:port")
    health.add_argument("--service", default="", help="service name (default: the whole server)")
    health.add_argument("--timeout", type=float, default=3.0, help="seconds per check")
    health.add_argument(
        "--wait", type=float, default=0.0, metavar="SECONDS",
        help="keep asking until SERVING for up to this long (default: ask once)",
    )
    health.set_defaults(func=cmd_health)

    demo = add(
        sub,
        "demo",
        "send one campaign to N simulated browsers, end to end",
        variables_help(
            _fields(
                DeliverySettings,
                without=lambda f: f.endswith(("_listen", "_address"))
                or f in ("data_dir", "allow_insecure_endpoints", *_LOGS),
            ),
            title="environment variables read (the demo picks free ports, its own data "
            "directory and test endpoints; it logs warnings only):",
        ),
    )
    demo.add_argument(
        "--scenario",
        choices=(
            "send",
            "segments",
            "abandoned-cart",
            "recurring",
            "policies",
            "webhooks",
            "browser",
            "browsers",
        ),
        default="send",
        help="send: one campaign to every subscriber; segments: profiles and events "
        "loaded, a saved segment's reach estimated, a campaign sent to it, and the "
        "received set compared with the definition's own evaluation; abandoned-cart: "
        "a live campaign (added to cart, then no purchase within 10 minutes) on a "
        "moved clock, the shoppers pushed compared with those who did not buy in time; "
        "recurring: a campaign at 09:00 Europe/Berlin every day (across a daylight "
        "saving change) on a moved clock, each run's time and audience checked; policies: "
        "a personalized A/B campaign under a frequency cap, quiet hours, a throttle and a "
        "control group on a moved clock, its preview against what was delivered per hour, "
        "each policy's expected against observed counts, and three decrypted payloads; "
        "webhooks: browsers view, click (body or a button) and close a campaign with two "
        "buttons and UTM parameters, plus a few forged events, and a local receiver checks "
        "every webhook's signature; its counts against the report's; browser: the web SDK "
        "in headless Chromium (a checkout built by `make sdk`, `make browser-deps`) "
        "subscribes, shows a campaign's push, clicks a button and closes it; its counts "
        "against the run's report; browsers: one campaign to Chrome, Firefox, Edge, "
        "Safari 16 (Web Push) and legacy Safari (APNs, through the APNs simulator), per "
        "browser its audience, sent, received/decrypted or accepted, and the content rules "
        "applied",
    )
    demo.add_argument("--subscribers", type=int, default=1000, help="browsers (send scenario)")
    demo.add_argument(
        "--people", type=int, help="people (segments scenario: 500, policies: 150)"
    )
    demo.add_argument("--shoppers", type=int, default=200, help="shoppers (abandoned-cart)")
    demo.add_argument("--days", type=int, default=60, help="days (recurring)")
    demo.add_argument("--browsers", type=int, default=120, help="browsers (webhooks)")
    demo.add_argument("--data-dir", help="keep the demo's SQLite files here (default: a temporary folder)")
    demo.add_argument("--json", action="store_true")
    demo.set_defaults(func=cmd_demo)

    remote.register(sub, add, variables_help)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except OperatorError as error:
        # What the operator must fix, in one line; a traceback would only bury it.
        print(f"clarion {args.command}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
