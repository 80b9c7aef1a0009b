"""Generates the Python gRPC stubs (+ .pyi) for every proto under protos/.

The one way generated code is made; tests/test_generated_code.py re-runs it into a
temporary folder and fails when the committed stubs differ.
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"


def proto_files() -> list[Path]:
    return sorted(PROTO_ROOT.glob("clarion/**/*.proto"))


def generate(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    well_known = str(resources.files("grpc_tools") / "_proto")
    files = [str(p.relative_to(PROTO_ROOT)) for p in proto_files()]
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *files,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    # Every generated folder is a regular package so `pip install .` ships it.
    for path in {out_dir / Path(f).parent for f in files}:
        while path != out_dir:
            (path / "__init__.py").touch()
            path = path.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT, help="output root (default: repo root)")
    generate(parser.parse_args().out)


if __name__ == "__main__":
    sys.exit(main())
