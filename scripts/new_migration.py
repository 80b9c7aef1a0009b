"""Autogenerates a service's next Alembic revision from its models (review it by hand).

    python scripts/new_migration.py segment "add subscribers"
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from alembic import command
from alembic.config import Config

# This checkout's models, not the copy `pip install .` put in site-packages.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.kit.db import upgrade_to_head


def main(service: str, message: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'head.db'}"
        upgrade_to_head(service, url)  # the history so far, then diff models against it
        config = Config()
        config.set_main_option("script_location", f"services/{service}/migrations")
        config.set_main_option("version_table", f"alembic_version_{service}")
        config.attributes["database_url"] = url
        command.revision(config, message=message, autogenerate=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
