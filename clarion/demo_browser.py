"""`clarion demo --scenario browser`: the web SDK in Debian's headless Chromium, end to end.

Starts the embedded stack, the push-service simulator and a site's pages on
http://127.0.0.1 (a tiny aiohttp server serving sdk/web/browser-test/page.html and the
built SDK, sdk/web/dist), then drives Chromium with playwright-core
(sdk/web/browser-test/drive.mjs): the page's `init` and a click on its button
(`subscribe`), a campaign with two buttons sent to everyone, the simulator's decrypted
push delivered to the page's service worker (CDP `ServiceWorker.deliverPushMessage`),
the notification read back, a click on its first button and a close dispatched to the
worker, and the run's report.

Replaced: only `PushManager.subscribe`/`getSubscription` in the page, which return a
subscription the simulator minted with the site's key (Chromium has no push service
offline); see docs/sdk.md "What is tested where".

Needs a checkout (sdk/web, found from the current directory or CLARION_SDK_WEB) built
by `make sdk`, node, and /usr/bin/chromium (`make browser-deps`, or CLARION_CHROMIUM).

Printed: subscribed, pushed, shown, clicked, closed (what the browser did), the report's
viewed, clicked, closed and clicks per button (equal where they should be), how the
click was counted, the paths of screenshots of the report pages (campaigns list,
campaign report, why trail, delivery plan; desktop and phone; in .clarion/screenshots)
with anything axe-core found serious, timings, and ok. The exit status is 1 when a check fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import web

from clarion.campaign.v1 import campaign_pb2, campaign_service_pb2, campaign_service_pb2_grpc
from clarion.common.v1 import common_pb2
from clarion.embedded import EmbeddedStack
from clarion.reporting.v1 import reporting_service_pb2, reporting_service_pb2_grpc
from services.kit.config import Settings
from services.kit.grpcserver import client_channel

STEP_SECONDS = 30.0
DEFAULT_CHROMIUM = "/usr/bin/chromium"
# Kept after the demo (its data directory is temporary); .clarion/ is the checkout's
# scratch space, ignored by git.
SCREENSHOTS_DIR = Path(".clarion") / "screenshots"
OPEN_REFUSED = "refused: InvalidAccessError: Not allowed to open a window."


class BrowserUnavailable(RuntimeError):
    """What is missing to run the SDK in Chromium, and how to install it."""


def sdk_dir() -> Path:
    """sdk/web of the checkout: CLARION_SDK_WEB, or found from here or the cwd upwards."""
    given = os.environ.get("CLARION_SDK_WEB")
    if given:
        return Path(given)
    for start in (Path(__file__).resolve().parent, Path.cwd().resolve()):
        for folder in (start, *start.parents):
            if (folder / "sdk" / "web" / "browser-test" / "drive.mjs").is_file():
                return folder / "sdk" / "web"
    return Path.cwd() / "sdk" / "web"


def chromium_path() -> str:
    return os.environ.get("CLARION_CHROMIUM", DEFAULT_CHROMIUM)


def browser_problems(sdk: Path) -> list[str]:
    """What keeps the browser steps from running, each with its remedy; [] when none."""
    problems = []
    if shutil.which("node") is None:
        problems.append("node is not on PATH (install Node.js 20+)")
    chromium = chromium_path()
    if not os.access(chromium, os.X_OK):
        problems.append(
            f"{chromium} is missing: run `make browser-deps` (apt-get install chromium)"
        )
    if not (sdk / "browser-test" / "drive.mjs").is_file():
        problems.append(f"{sdk}/browser-test/drive.mjs is missing: run from a Clarion checkout")
    if not (sdk / "node_modules" / "playwright-core").is_dir():
        problems.append(f"{sdk}/node_modules/playwright-core is missing: run `make sdk`")
    for name in ("clarion.js", "clarion-sw.js"):
        if not (sdk / "dist" / name).is_file():
            problems.append(f"{sdk}/dist/{name} is missing: run `make sdk`")
    return problems


def site_app(sdk: Path) -> web.Application:
    """A site's origin: the test page, a landing page, the SDK and its service worker."""

    async def page(_: web.Request) -> web.StreamResponse:
        return web.FileResponse(sdk / "browser-test" / "page.html")

    async def landing(_: web.Request) -> web.Response:
        return web.Response(
            text="<!doctype html><title>Welcome</title><h1>Welcome</h1>", content_type="text/html"
        )

    async def no_icon(_: web.Request) -> web.Response:
        return web.Response(status=204)

    def script(name: str) -> Callable[[web.Request], Any]:
        async def serve(_: web.Request) -> web.StreamResponse:
            return web.FileResponse(
                sdk / "dist" / name, headers={"Content-Type": "text/javascript"}
            )

        return serve

    app = web.Application()
    app.add_routes(
        [
            web.get("/", page),
            web.get("/welcome", landing),
            web.get("/favicon.ico", no_icon),
            web.get("/clarion.js", script("clarion.js")),
            web.get("/clarion-sw.js", script("clarion-sw.js")),
        ]
    )
    return app


@asynccontextmanager
async def serve_site(sdk: Path) -> AsyncIterator[str]:
    """Serves `site_app` on 127.0.0.1 (http there is a secure context); yields its URL."""
    runner = web.AppRunner(site_app(sdk), access_log=None)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    port = tcp._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


class BrowserDriver:
    """drive.mjs in a node process: one JSON line per step on its stdout, commands on
    its stdin (the protocol is described at the top of drive.mjs)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.log: list[str] = []
        self._drain = asyncio.ensure_future(self._read_stderr())

    @classmethod
    async def start(cls, sdk: Path, config: dict[str, Any]) -> BrowserDriver:
        node = shutil.which("node") or "node"
        config = {"executablePath": chromium_path(), **config}
        process = await asyncio.create_subprocess_exec(
            node,
            str(sdk / "browser-test" / "drive.mjs"),
            json.dumps(config),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(process)

    async def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        async for line in self.process.stderr:
            self.log.append(line.decode(errors="replace").rstrip())

    def console(self) -> str:
        """The browser's and the worker's last console lines."""
        return "\n".join(self.log[-60:])

    async def step(self, name: str) -> dict[str, Any]:
        """The next step's result; RuntimeError when it is another (or an error)."""
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), STEP_SECONDS)
        if not line:
            await self.process.wait()
            raise RuntimeError(
                f"the browser driver exited ({self.process.returncode}) before "
                f"{name!r}:\n{self.console()}"
            )
        answer: dict[str, Any] = json.loads(line)
        if answer.get("step") != name:
            raise RuntimeError(
                f"expected {name!r} from the browser, got {answer}\n{self.console()}"
            )
        return answer

    async def send(self, command: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command).encode() + b"\n")
        await self.process.stdin.drain()

    async def close(self) -> None:
        if self.process.returncode is None:
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        await self._drain


# Where the report pages are looked at: a desktop and a phone.
VIEWPORTS = (
    {"name": "desktop", "width": 1280, "height": 800, "mobile": False},
    {"name": "phone", "width": 390, "height": 844, "mobile": True},
)
# What axe-core reports that counts as a failure of the pages.
BLOCKING_IMPACTS = ("serious", "critical")


def report_pages(campaign_id: str, subscriber_id: str) -> list[dict[str, str]]:
    """The gateway's report pages for one campaign, as report-pages.mjs visits them."""
    base = f"/reports/campaigns/{campaign_id}"
    return [
        {"name": "campaigns", "path": "/reports/"},
        {"name": "campaign-report", "path": base},
        {"name": "why", "path": f"{base}/why?subscriber_id={subscriber_id}"},
        {"name": "plan", "path": f"{base}/plan"},
    ]


async def capture_report_pages(
    sdk: Path,
    gateway_url: str,
    api_key: str,
    pages: list[dict[str, str]],
    out_dir: Path,
    seconds: float = 120.0,
) -> dict[str, Any]:
    """Signs in to the report pages in Chromium and screenshots each page at each of
    VIEWPORTS (sdk/web/browser-test/report-pages.mjs); what each page showed, its
    screenshot's path and axe-core's findings."""
    out_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "executablePath": chromium_path(),
        "gatewayUrl": gateway_url,
        "apiKey": api_key,
        "outDir": str(out_dir),
        "pages": pages,
        "viewports": list(VIEWPORTS),
        "timeoutMs": int(seconds * 1000),
    }
    process = await asyncio.create_subprocess_exec(
        shutil.which("node") or "node",
        str(sdk / "browser-test" / "report-pages.mjs"),
        json.dumps(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), seconds + 10)
    lines = stdout.decode(errors="replace").strip().splitlines()
    captured: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    if process.returncode != 0 or "error" in captured or not lines:
        raise RuntimeError(
            f"report-pages.mjs failed ({process.returncode}): {captured.get('error')}\n"
            + stderr.decode(errors="replace")[-4000:]
        )
    return captured


def blocking_findings(page: dict[str, Any]) -> list[str]:
    """What a captured page got wrong that a reader would notice."""
    found = [
        f"axe {v['impact']}: {v['id']} ({v['help']}) at {v['targets']}"
        for v in page["axe"]
        if v["impact"] in BLOCKING_IMPACTS
    ]
    if page["status"] != 200:
        found.append(f"HTTP {page['status']}")
    if page["overflowPx"] > 0:
        found.append(f"scrolls sideways by {page['overflowPx']} px")
    found += [f"CSP: {line}" for line in page["cspViolations"]]
    found += [f"script error: {line}" for line in page["pageErrors"]]
    return found


async def send_campaign(
    campaigns: campaign_service_pb2_grpc.CampaignServiceStub,
    metadata: tuple[tuple[str, str], ...],
    notification: common_pb2.Notification,
    name: str = "Browser test",
) -> tuple[str, campaign_pb2.Run]:
    """Creates a campaign to everyone, sends it now and waits for its run to end."""
    created = await campaigns.CreateCampaign(
        campaign_service_pb2.CreateCampaignRequest(name=name, notification=notification),
        metadata=metadata,
        timeout=10,
    )
    campaign_id = created.campaign.campaign_id
    sent = await campaigns.SendCampaignNow(
        campaign_service_pb2.SendCampaignNowRequest(campaign_id=campaign_id),
        metadata=metadata,
        timeout=10,
    )
    deadline = time.monotonic() + STEP_SECONDS
    while True:
        run = (
            await campaigns.GetRun(
                campaign_service_pb2.GetRunRequest(run_id=sent.run.run_id),
                metadata=metadata,
                timeout=10,
            )
        ).run
        if run.state in (campaign_pb2.RUN_STATE_DONE, campaign_pb2.RUN_STATE_FAILED):
            return campaign_id, run
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run.run_id} still {campaign_pb2.RunState.Name(run.state)}")
        await asyncio.sleep(0.05)


async def wait_for_run_report(
    reporting: reporting_service_pb2_grpc.ReportingServiceStub,
    metadata: tuple[tuple[str, str], ...],
    run_id: str,
    until: Callable[[Any], bool],
    seconds: float = STEP_SECONDS,
) -> Any:
    """Polls GetRunReport (engagement reaches reporting asynchronously): the first
    report `until` accepts, or the last one when `seconds` pass."""
    deadline = time.monotonic() + seconds
    while True:
        report = (
            await reporting.GetRunReport(
                reporting_service_pb2.GetRunReportRequest(run_id=run_id),
                metadata=metadata,
                timeout=10,
            )
        ).report
        if until(report) or time.monotonic() > deadline:
            return report
        await asyncio.sleep(0.05)


def demo_notification(origin: str) -> common_pb2.Notification:
    """The campaign the browser demo and test send: title, body, icon, badge, tag, two
    buttons, all on the site's origin."""
    landing = origin + "/welcome"
    return common_pb2.Notification(
        title="Winter sale",
        body="Everything -30% until Sunday",
        icon_url=origin + "/icon.png",
        badge_url=origin + "/badge.png",
        target_url=landing,
        tag="winter-sale",
        actions=[
            common_pb2.NotificationAction(
                title="Shop now", url=landing + "?from=button", icon_url=origin + "/cart.png"
            ),
            common_pb2.NotificationAction(title="Later", url=landing),
        ],
    )


async def run_browser_demo(
    data_dir: Path,
    *,
    settings: Settings | None = None,
    progress: Callable[[str], None] = lambda _: None,
    screenshots_dir: Path | None = None,
) -> dict[str, Any]:
    from clarion.simulator import PushServiceSimulator
    from services.campaign.admin import create_site

    sdk = sdk_dir()
    problems = browser_problems(sdk)
    if problems:
        raise BrowserUnavailable("; ".join(problems))
    started = time.perf_counter()
    settings = settings or Settings(data_dir=data_dir, log_level="WARNING", log_format="console")
    settings.allow_insecure_endpoints = True  # the simulator is plain http on loopback
    simulator = PushServiceSimulator()
    await simulator.start("127.0.0.1", 0)
    stack = await EmbeddedStack.start(settings, ephemeral_ports=True)
    channels = [client_channel(stack.address(name)) for name in ("campaign", "reporting")]
    driver: BrowserDriver | None = None
    try:
        site = await create_site(settings, "Browser demo", "mailto:demo@clarion.invalid")
        metadata = (("authorization", f"Bearer {site.api_key}"),)
        campaigns = campaign_service_pb2_grpc.CampaignServiceStub(channels[0])
        reporting = reporting_service_pb2_grpc.ReportingServiceStub(channels[1])
        minted = simulator.mint_subscription(application_server_key=site.vapid_public_key)
        async with serve_site(sdk) as page_url:
            origin = page_url.rstrip("/")
            progress(f"site {site.site_id}; page {page_url}; starting Chromium")
            driver = await BrowserDriver.start(
                sdk,
                {
                    "pageUrl": page_url,
                    "gatewayUrl": stack.gateway_url,
                    "siteId": site.site_id,
                    "subscription": minted.to_json(),
                },
            )
            subscribed = await driver.step("subscribed")
            subscriber_id = subscribed["subscribe"]["subscriberId"]
            progress(f"subscribed as {subscriber_id}; sending a campaign")
            campaign_id, run = await send_campaign(campaigns, metadata, demo_notification(origin))
            messages = simulator.messages(minted.endpoint)
            if not messages or messages[-1].plaintext is None:
                raise RuntimeError(f"the simulator received no push for the page: run {run}")
            await driver.send({"push": messages[-1].plaintext.decode(), "expect": "shown"})
            shown = await driver.step("shown")
            notifications = shown["notifications"]
            progress(f"shown: {[n['title'] for n in notifications]}; clicking action_1, closing")
            viewed = await wait_for_run_report(reporting, metadata, run.run_id, lambda r: r.viewed)
            await driver.send({"click": "action_1"})
            clicked = await driver.step("clicked")
            await driver.send({"close": True})
            closed = await driver.step("closed")
            await driver.send({"done": True})
            done = await driver.step("done")
            report = await wait_for_run_report(
                reporting, metadata, run.run_id, lambda r: r.clicked >= 1 and r.closed >= 1
            )
        shots_dir = screenshots_dir or data_dir / "screenshots"
        progress(f"signing in to the report pages; screenshots in {shots_dir}")
        captured = await capture_report_pages(
            sdk,
            stack.gateway_url,
            site.api_key,
            report_pages(campaign_id, subscriber_id),
            shots_dir,
        )
        page_findings = {
            f"{page['name']}@{page['viewport']}": blocking_findings(page)
            for page in captured["pages"]
        }
        opened = clicked["opened"][0] if clicked["opened"] else {}
        result: dict[str, Any] = {
            "subscribed": 1 if subscriber_id else 0,
            "pushed": len(messages),
            "shown": len(notifications),
            "clicked": clicked["handled"],
            "closed": closed["handled"],
            "report_sent": report.sent,
            "report_viewed": viewed.viewed,
            "report_clicked": report.clicked,
            "report_closed": report.closed,
            "report_clicked_by_button": {
                b.button or "body": b.clicked for b in report.clicked_by_button
            },
            "click_counted_by": (
                "the worker's events-API report (Chromium refused clients.openWindow "
                "without a user gesture)"
                if opened.get("result") == OPEN_REFUSED
                else f"the click link ({opened.get('result', 'not opened')}) and the report"
            ),
            "title_shown": notifications[0]["title"] if notifications else None,
            "replaced": "PushManager.subscribe/getSubscription (a simulator subscription)",
            "screenshots": [page["screenshot"] for page in captured["pages"]],
            "report_pages_findings": {k: v for k, v in page_findings.items() if v},
            "worker_errors": done["workerErrors"],
            "campaign_id": campaign_id,
            "run_id": run.run_id,
            "chromium_launch_ms": subscribed["launchedMs"],
            "browser_ms": done["totalMs"],
            "elapsed_s": round(time.perf_counter() - started, 2),
        }
        result["ok"] = (
            result["subscribed"] == result["pushed"] == result["shown"] == 1
            and result["clicked"] == result["closed"] == 1
            and report.sent == viewed.viewed == report.clicked == report.closed == 1
            and result["report_clicked_by_button"] == {"action_1": 1}
            and len(captured["pages"]) == len(VIEWPORTS) * 4
            and not result["report_pages_findings"]
        )
        return result
    finally:
        if driver is not None:
            await driver.close()
        for channel in channels:
            await channel.close()
        await stack.stop()
        await simulator.stop()


def main(data_dir: Path | None, as_json: bool) -> int:
    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        with tempfile.TemporaryDirectory(prefix="clarion-demo-") as tmp:
            result = asyncio.run(
                run_browser_demo(
                    data_dir or Path(tmp),
                    progress=progress,
                    screenshots_dir=SCREENSHOTS_DIR.resolve(),
                )
            )
    except BrowserUnavailable as error:
        print(f"clarion demo --scenario browser cannot run: {error}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(result), flush=True)
    else:
        for key, value in result.items():
            print(f"{key:>26}: {value}")
    if not result["ok"]:
        print("demo FAILED: the counts above disagree", file=sys.stderr)
        return 1
    return 0
