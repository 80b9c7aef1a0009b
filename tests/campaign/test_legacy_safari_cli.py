"""`clarion site set-safari` as an operator runs it (a real `python -m clarion` process
against the campaign server): files in, the public parts and the certificate's expiry
out, a refusal in one line, no key ever printed; `site show` says it is configured."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from services.campaign.admin import CreatedSite
from services.kit.grpcserver import ManagedServer
from tests.support import safari

ROOT = Path(__file__).resolve().parents[2]
ICON_FILES = {
    "icon_16x16": "icon_16x16.png",
    "icon_16x16_2x": "icon_16x16@2x.png",
    "icon_32x32": "icon_32x32.png",
    "icon_32x32_2x": "icon_32x32@2x.png",
    "icon_128x128": "icon_128x128.png",
    "icon_128x128_2x": "icon_128x128@2x.png",
}


async def clarion(
    server: ManagedServer, site: CreatedSite, *argv: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """The command in a process of its own; awaited, so the in-process server answers."""
    environment = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "CLARION_API_KEY": site.api_key,
        "CLARION_CAMPAIGN_ADDRESS": server.address,
        **env,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "clarion", *argv,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=environment, cwd=ROOT,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    return subprocess.CompletedProcess(argv, process.returncode or 0, out.decode(), err.decode())


def files(tmp_path: Path, setup: safari.SafariSetup) -> dict[str, str]:
    (tmp_path / "AuthKey.p8").write_bytes(safari.pem_private(setup.apns_key))
    (tmp_path / "cert.pem").write_bytes(setup.certificate_pem)
    (tmp_path / "key.pem").write_bytes(safari.pem_private(setup.signing_key))
    icons = tmp_path / "icon.iconset"
    icons.mkdir()
    for name, file in ICON_FILES.items():
        (icons / file).write_bytes(setup.icons[name])
    return {"apns": str(tmp_path / "AuthKey.p8"), "icons": str(icons)}


def set_safari_argv(
    setup: safari.SafariSetup, paths: dict[str, str], *certificate: str
) -> list[str]:
    return [
        "site", "set-safari", "--apns-key", paths["apns"], "--apns-key-id", "KEY1234567",
        "--team-id", "TEAM123456", "--website-push-id", setup.website_push_id,
        "--website-name", "Example Shop", "--allowed-domain", "https://shop.example.com",
        "--allowed-domain", "https://www.example.com",
        "--url-format-string", "https://shop.example.com/%@", *certificate,
        "--icons", paths["icons"],
    ]  # fmt: skip


class TestSetSafariCommand:
    async def test_files_in_public_parts_and_expiry_out(
        self, campaign_server: ManagedServer, site: CreatedSite, tmp_path: Path
    ) -> None:
        setup = safari.setup(f"web.com.example.cli{uuid.uuid4().hex[:10]}")
        paths = files(tmp_path, setup)

        result = await clarion(
            campaign_server, site,
            *set_safari_argv(
                setup, paths, "--certificate", str(tmp_path / "cert.pem"),
                "--certificate-key", str(tmp_path / "key.pem"),
            ),
        )  # fmt: skip
        shown = await clarion(campaign_server, site, "site", "show")

        assert result.returncode == 0, result.stderr
        expires = setup.certificate.not_valid_after_utc.strftime("%Y-%m-%d %H:%M:%S UTC")
        assert setup.website_push_id in result.stdout
        assert expires in result.stdout and expires in result.stderr
        assert "https://shop.example.com, https://www.example.com" in result.stdout
        assert shown.returncode == 0, shown.stderr
        [line] = [row for row in shown.stdout.splitlines() if row.startswith("legacy_safari")]
        assert setup.website_push_id in line and "KEY1234567" in line and expires in line
        for secret in (safari.pem_private(setup.apns_key), safari.pem_private(setup.signing_key)):
            body = secret.decode().splitlines()[1]
            assert body not in result.stdout + result.stderr + shown.stdout

    async def test_a_p12_with_its_password_and_a_refusal_in_one_line(
        self, campaign_server: ManagedServer, site: CreatedSite, tmp_path: Path
    ) -> None:
        setup = safari.setup(f"web.com.example.cli{uuid.uuid4().hex[:10]}")
        paths = files(tmp_path, setup)
        p12 = tmp_path / "website_aps.p12"
        p12.write_bytes(
            pkcs12.serialize_key_and_certificates(
                b"shop", setup.signing_key, setup.certificate, None,
                serialization.BestAvailableEncryption(b"s3cret"),
            )
        )  # fmt: skip

        stored = await clarion(
            campaign_server, site, *set_safari_argv(setup, paths, "--certificate", str(p12)),
            "--json", CLARION_SAFARI_P12_PASSWORD="s3cret",
        )  # fmt: skip
        (Path(paths["icons"]) / "icon_32x32@2x.png").write_bytes(safari.png(32))
        refused = await clarion(
            campaign_server, site, *set_safari_argv(setup, paths, "--certificate", str(p12)),
            CLARION_SAFARI_P12_PASSWORD="s3cret",
        )  # fmt: skip

        assert stored.returncode == 0, stored.stderr
        assert f'"website_push_id": "{setup.website_push_id}"' in stored.stdout
        assert refused.returncode != 0
        assert "Traceback" not in refused.stderr
        [line] = refused.stderr.strip().splitlines()
        assert (
            "INVALID_ARGUMENT" in line and "icons.icon_32x32_2x" in line and "INVALID_ICON" in line
        )
