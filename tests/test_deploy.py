"""compose.yaml deploys each service alone, configured only by settings Clarion knows."""

from __future__ import annotations

from pathlib import Path

import yaml

from services.kit.config import SERVICE_NAMES, Settings

ROOT = Path(__file__).resolve().parent.parent


class TestCompose:
    def setup_method(self) -> None:
        self.services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]

    def test_every_service_and_the_gateway_has_its_own_container_with_a_health_check(self) -> None:
        for name in (*SERVICE_NAMES, "gateway"):
            service = self.services[name]
            assert service["command"] == ["serve", name]
            assert service["healthcheck"]["test"], name

    def test_every_clarion_variable_is_a_setting(self) -> None:
        from services.delivery.settings import DeliverySettings

        known = {f"CLARION_{field.upper()}" for field in DeliverySettings.model_fields}
        for name, service in self.services.items():
            for variable in service.get("environment", {}):
                if variable.startswith("CLARION_"):
                    assert variable in known, f"{name}: {variable} is not a Clarion setting"

    def test_each_service_owns_its_database(self) -> None:
        urls = [self.services[name]["environment"]["CLARION_DATABASE_URL"] for name in SERVICE_NAMES]
        assert len(set(urls)) == len(SERVICE_NAMES)

    def test_schemas_are_migrated_once_before_any_service_starts(self) -> None:
        migrate = self.services["migrate"]
        assert migrate["command"] == ["migrate"]
        for name in SERVICE_NAMES:
            # The one-shot migrates exactly the database each service uses.
            own = self.services[name]["environment"]["CLARION_DATABASE_URL"]
            assert migrate["environment"][f"CLARION_{name.upper()}_DATABASE_URL"] == own
        for name in (*SERVICE_NAMES, "gateway"):
            service = self.services[name]
            assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
            assert service["environment"]["CLARION_MIGRATE_ON_START"] == "false"


class TestMigrateStep:
    def test_a_service_refuses_an_unmigrated_database_until_clarion_migrate_ran(
        self, tmp_path: Path
    ) -> None:
        import asyncio
        import os
        import subprocess
        import sys

        import pytest

        from services.kit.grpcserver import open_service_database

        settings = Settings(data_dir=tmp_path, migrate_on_start=False)
        with pytest.raises(RuntimeError, match="clarion migrate delivery"):
            asyncio.run(open_service_database("delivery", settings))
        subprocess.run(
            [sys.executable, "-m", "clarion", "migrate", "delivery", "--data-dir", str(tmp_path)],
            check=True, cwd=ROOT, capture_output=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        engine = asyncio.run(open_service_database("delivery", settings))
        asyncio.run(engine.dispose())
