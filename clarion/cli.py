"""The `clarion` command: sites, the embedded stack, single services, the simulator, the demo."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from clarion.embedded import tune_gc, until_signalled
from services.kit.config import SERVICE_NAMES, Settings
from services.kit.logging import configure_logging, get_logger

log = get_logger("clarion.cli")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings()
    if getattr(args, "data_dir", None):
        settings.data_dir = Path(args.data_dir)
    configure_logging(settings.log_format, settings.log_level)
    return settings


def cmd_site_create(args: argparse.Namespace) -> int:
    from services.campaign.admin import create_site

    settings = _settings(args)
    site = asyncio.run(create_site(settings, args.name, args.subject))
    out = {
        "site_id": site.site_id,
        "name": site.name,
        "api_key": site.api_key,
        "vapid_public_key": _b64url(site.vapid_public_key),
    }
    print(json.dumps(out, indent=None if args.json else 2))
    if not args.json:
        print("Keep the api_key: it is shown only this once.", file=sys.stderr)
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from clarion.embedded import EmbeddedStack

    settings = _settings(args)

    async def run() -> None:
        stack = await EmbeddedStack.start(settings)
        log.info(
            "clarion is up",
            data_dir=str(settings.data_dir.resolve()),
            gateway=stack.gateway_url,
            **{name: stack.address(name) for name in SERVICE_NAMES},
        )
        try:
            await until_signalled()
        finally:
            await stack.stop()

    asyncio.run(run())
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from services.kit.db import upgrade_to_head

    unknown = sorted(set(args.services) - set(SERVICE_NAMES))
    if unknown:
        print(f"clarion migrate: unknown service {', '.join(unknown)}; "
              f"choose from {', '.join(SERVICE_NAMES)}", file=sys.stderr)
        return 2
    settings = _settings(args)
    for service in args.services or SERVICE_NAMES:
        upgrade_to_head(service, settings.database_url_for(service))
        log.info("schema at head", service=service)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def run() -> None:
        server: object
        if args.service == "gateway":
            from services.gateway.server import create_gateway

            server = await create_gateway(settings.gateway_listen, settings)
        else:
            factory = _service_factory(args.service)
            server = await factory(settings.listen_for(args.service), settings)
        await server.start()  # type: ignore[attr-defined]
        tune_gc()
        log.info("serving", service=args.service, port=server.port)  # type: ignore[attr-defined]
        try:
            await until_signalled()
        finally:
            await server.stop()  # type: ignore[attr-defined]

    asyncio.run(run())
    return 0


def _service_factory(service: str) -> Callable[..., Awaitable[object]]:
    import importlib

    module = importlib.import_module(f"services.{service}.server")
    return module.create_server  # type: ignore[no-any-return]


def cmd_simulator(args: argparse.Namespace) -> int:
    from clarion.simulator import PushServiceSimulator

    configure_logging()

    async def run() -> None:
        simulator = PushServiceSimulator()
        url = await simulator.start(args.host, args.port)
        log.info("push-service simulator listening", url=url)
        try:
            await until_signalled()
        finally:
            await simulator.stop()

    asyncio.run(run())
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    """Exit 0 when the gRPC server at ADDRESS answers SERVING (container health checks)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async def check() -> int:
        async with grpc.aio.insecure_channel(args.address) as channel:
            try:
                response = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout
                )
            except grpc.aio.AioRpcError as error:
                print(f"{args.address}: {error.code().name}: {error.details()}", file=sys.stderr)
                return 1
        name = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
        print(f"{args.address}: {name}")
        return 0 if response.status == health_pb2.HealthCheckResponse.SERVING else 1

    return asyncio.run(check())


def cmd_demo(args: argparse.Namespace) -> int:
    from clarion import demo

    configure_logging("console", "WARNING")
    return demo.main(args.subscribers, Path(args.data_dir) if args.data_dir else None, args.json)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clarion", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    site = sub.add_parser("site", help="manage sites (tenants)")
    site_sub = site.add_subparsers(dest="site_command", required=True)
    create = site_sub.add_parser("create", help="create a site with a VAPID key pair and an API key")
    create.add_argument("name")
    create.add_argument("--subject", default="mailto:admin@localhost", help="VAPID sub claim (mailto: or https:)")
    create.add_argument("--data-dir", help="embedded data directory (default: $CLARION_DATA_DIR or .clarion)")
    create.add_argument("--json", action="store_true", help="one JSON line")
    create.set_defaults(func=cmd_site_create)

    up = sub.add_parser("up", help="run every service and the gateway in one process")
    up.add_argument("--data-dir")
    up.set_defaults(func=cmd_up)

    migrate = sub.add_parser(
        "migrate", help="bring the services' schemas to this version (run before serving)"
    )
    migrate.add_argument(
        "services", nargs="*", metavar="SERVICE",
        help=f"any of {', '.join(SERVICE_NAMES)} (default: all four)",
    )
    migrate.add_argument("--data-dir")
    migrate.set_defaults(func=cmd_migrate)

    serve = sub.add_parser("serve", help="run one service, configured by CLARION_* environment variables")
    serve.add_argument("service", choices=[*SERVICE_NAMES, "gateway"])
    serve.set_defaults(func=cmd_serve)

    simulator = sub.add_parser("simulator", help="run the RFC 8030 push-service simulator")
    simulator.add_argument("--host", default="127.0.0.1")
    simulator.add_argument("--port", type=int, default=8090)
    simulator.set_defaults(func=cmd_simulator)

    health = sub.add_parser("health", help="check a gRPC server's standard health service")
    health.add_argument("address", help="host:port")
    health.add_argument("--service", default="", help="service name (default: the whole server)")
    health.add_argument("--timeout", type=float, default=3.0)
    health.set_defaults(func=cmd_health)

    demo = sub.add_parser("demo", help="send one campaign to N simulated browsers, end to end")
    demo.add_argument("--subscribers", type=int, default=1000)
    demo.add_argument("--data-dir", help="keep the demo's SQLite files here (default: a temporary folder)")
    demo.add_argument("--json", action="store_true")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
