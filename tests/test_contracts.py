"""The contracts hold: generated stubs match the protos; services stay independent."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from scripts.gen_protos import generate

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
