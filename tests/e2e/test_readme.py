"""The README's first-campaign block works as printed: a new user who copies it reaches a
sent campaign and its report through the CLI alone.

The block runs in bash in an empty folder whose `.venv` is this checkout's (so
`.venv/bin/clarion` is the installed command, as after `make install`, which the suite
has already run and which the block's first line would only repeat). It uses the
default HTTP ports (8080, 8090) as printed. The gRPC defaults 50051-50054 lie inside
Linux's ephemeral range (32768-60999), where any outgoing connection on a busy CI machine
may hold one for a while, so the test moves the four services to free ports through
CLARION_*_LISTEN / CLARION_*_ADDRESS (as a reader with those ports taken would) and
rewrites the block's one literal address to match.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HTTP_PORTS = (8080, 8090)
SERVICE_PORTS = {"campaign": 50051, "segment": 50052, "delivery": 50053, "reporting": 50054}


def first_campaign_block() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- first-campaign -->\n```sh\n(.*?)```\n<!-- /first-campaign -->", readme, re.DOTALL)
    assert found, "README.md lost its first-campaign block"
    return found.group(1)


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_first_campaign_block_sends_and_reports(tmp_path: Path) -> None:
    busy = [port for port in HTTP_PORTS if not port_free(port)]
    assert not busy, f"the README uses the default HTTP ports; these are taken here: {busy}"
    block = first_campaign_block()
    lines = block.splitlines()
    assert lines[0].startswith("make install")
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("CLARION_")
    }
    body = "\n".join(lines[1:])
    for service, default in SERVICE_PORTS.items():
        address = f"127.0.0.1:{free_port()}"
        environment[f"CLARION_{service.upper()}_LISTEN"] = address
        environment[f"CLARION_{service.upper()}_ADDRESS"] = address
        body = body.replace(f"127.0.0.1:{default}", address)
    script = "set -euo pipefail\n" + body + "\n"
    # Output to files, not pipes: the block leaves the services running in the background,
    # holding its output open after bash itself has finished.
    out_path, err_path = tmp_path / "stdout", tmp_path / "stderr"
    with out_path.open("w") as out_file, err_path.open("w") as err_file:
        process = subprocess.Popen(
            ["bash", "-c", script],
            cwd=tmp_path,
            env=environment,
            stdout=out_file,
            stderr=err_file,
            text=True,
            start_new_session=True,  # the block's background services die with the group
        )
        try:
            process.wait(timeout=240)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
    out, err = out_path.read_text(), err_path.read_text()
    assert process.returncode == 0, f"stdout:\n{out[-3000:]}\nstderr:\n{err[-3000:]}"
    assert "subscribed 5 simulated browsers" in out
    progress = [line for line in out.splitlines() if line.startswith("[")]
    assert progress and "100%" in progress[-1] and "sent 5" in progress[-1], out
    report = {
        parts[0]: parts[-1] for parts in (line.split() for line in out.splitlines()) if parts
    }
    assert report.get("sent") == "5" and report.get("audience") == "5", out
    assert "Traceback" not in err
