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
        known = {f"CLARION_{field.upper()}" for field in Settings.model_fields}
        for name, service in self.services.items():
            for variable in service.get("environment", {}):
                if variable.startswith("CLARION_"):
                    assert variable in known, f"{name}: {variable} is not a Clarion setting"

    def test_each_service_owns_its_database(self) -> None:
        urls = [self.services[name]["environment"]["CLARION_DATABASE_URL"] for name in SERVICE_NAMES]
        assert len(set(urls)) == len(SERVICE_NAMES)
