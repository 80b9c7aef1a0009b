"""The contracts hold: generated stubs match the protos; services stay independent."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from scripts.gen_protos import generate
from services.kit.config import SERVICE_NAMES
from services.kit.db import create_sync_engine_for, upgrade_to_head

ROOT = Path(__file__).resolve().parent.parent


def _generated(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in (root / "clarion").rglob("*_pb2*.py*")
    }


class TestGeneratedCode:
    def test_committed_stubs_equal_a_fresh_generation(self, tmp_path: Path) -> None:
        generate(tmp_path)
        fresh, committed = _generated(tmp_path), _generated(ROOT)
        assert sorted(committed) == sorted(fresh), "stale or missing stubs: run scripts/gen_protos.py"
        drifted = [name for name in fresh if fresh[name] != committed[name]]
        assert not drifted, f"stubs differ from protos, run scripts/gen_protos.py: {drifted}"


class TestServiceIndependence:
    def test_import_linter_contracts_are_kept(self) -> None:
        lint_imports = Path(sys.executable).with_name("lint-imports")
        result = subprocess.run(
            [str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr


class TestMigrations:
    """Each service's Alembic history builds exactly the schema its models describe."""

    @pytest.mark.parametrize("service", SERVICE_NAMES)
    def test_migrations_match_models(self, service: str, database_factory) -> None:  # type: ignore[no-untyped-def]
        url = database_factory()
        upgrade_to_head(service, url)
        metadata = importlib.import_module(f"services.{service}.models").Model.metadata
        engine = create_sync_engine_for(url)
        try:
            with engine.connect() as connection:
                context = MigrationContext.configure(
                    connection, opts={"compare_type": True, "version_table": f"alembic_version_{service}"}
                )
                diff = compare_metadata(context, metadata)
        finally:
            engine.dispose()
        assert diff == [], f"{service}: models and migrations differ; write a migration: {diff}"
