"""The report pages' script and stylesheet: content-hashed files that `make web` builds
into `services/gateway/static/`, named by its `manifest.json`.

The manifest is read once, when the app is made. Only the file names it lists are ever
served, so no request can name another file (nor climb out of the directory); they are
cached for a year (`immutable`), since a changed file gets a new name.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from services.kit.logging import get_logger

log = get_logger("clarion.gateway")

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
MANIFEST = "manifest.json"
IMMUTABLE = "public, max-age=31536000, immutable"
_CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".map": "application/json; charset=utf-8",
}
# A built file's name: no directory, no leading dot, a type we know how to serve.
_NAME = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,127}")


@dataclass(frozen=True)
class Assets:
    directory: Path
    script: str = ""
    stylesheet: str = ""
    # Every name the manifest lists that exists in `directory`: all that is served.
    served: frozenset[str] = field(default_factory=frozenset)

    @property
    def built(self) -> bool:
        """Both the script and the stylesheet are there."""
        return bool(self.script and self.stylesheet)

    @classmethod
    def load(cls, directory: Path = STATIC_DIR) -> Assets:
        """The manifest's files; none (pages still work, as tables) when it is missing or
        unreadable, which the pages then say."""
        try:
            manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
        except FileNotFoundError:
            log.warning("report page assets not built", directory=str(directory))
            return cls(directory)
        except (OSError, ValueError) as error:
            log.error("report page manifest unreadable", directory=str(directory), error=str(error))
            return cls(directory)
        if not isinstance(manifest, dict):
            return cls(directory)
        served = frozenset(
            name
            for name in manifest.values()
            if isinstance(name, str)
            and _NAME.fullmatch(name)
            and Path(name).suffix in _CONTENT_TYPES
            and (directory / name).is_file()
        )
        script, stylesheet = manifest.get("reports.js"), manifest.get("reports.css")
        return cls(
            directory,
            script=script if script in served else "",
            stylesheet=stylesheet if stylesheet in served else "",
            served=served,
        )

    def response(self, name: str) -> web.StreamResponse | None:
        """The file called `name` when the manifest lists it; None otherwise."""
        if name not in self.served:
            return None
        return web.FileResponse(
            self.directory / name,
            headers={
                "Content-Type": _CONTENT_TYPES[Path(name).suffix],
                "Cache-Control": IMMUTABLE,
            },
        )
