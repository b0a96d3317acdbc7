"""plait's configuration files: `plait.toml` in the project, and the user's
`$XDG_CONFIG_HOME/plait/config.toml` (`~/.config/plait/config.toml`). The project's settings win
over the user's; the environment (`PLAIT_REMOTE`) and the command line win over both.

    [remote]
    url = "grpc://cache.example.com:50051/main"   # grpc://HOST:PORT[/INSTANCE]
    upload = true                                  # fill the cache with what runs here (CI)
    execute = true                                 # run on the farm what its cache lacks

    [test]
    timeout = 600                                  # seconds `plait test` may run
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

from plait.errors import Location, UsageError

PROJECT_FILE = "plait.toml"
KNOWN: dict[str, dict[str, type]] = {
    "remote": {"url": str, "upload": bool, "execute": bool},
    "test": {"timeout": int},
}


def user_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "plait" / "config.toml"


def read(path: Path) -> dict[str, Any]:
    """The settings of one file ({} when there is none), checked against what plait knows."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read {path}: {e}", hint="fix or remove the file") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        line = re.search(r"at line (\d+)", str(e))
        raise UsageError(
            f"{path.name} is not valid TOML: {e}",
            hint="see the example in plait's README (a [remote] table with url and upload)",
            location=Location(str(path), int(line.group(1))) if line else None,
        ) from None
    for table, value in data.items():
        if table not in KNOWN or not isinstance(value, dict):
            raise UsageError(
                f"{path}: unknown setting {table!r}",
                hint=f"plait knows the tables {', '.join(f'[{t}]' for t in KNOWN)}",
            )
        for key, setting in value.items():
            kind = KNOWN[table].get(key)
            if kind is None or not isinstance(setting, kind):
                raise UsageError(
                    f"{path}: [{table}] {key} = {setting!r} is not a setting plait knows",
                    hint=f"[{table}] takes "
                    + ", ".join(f"{k} ({t.__name__})" for k, t in KNOWN[table].items()),
                )
    return data


def settings(project: Path) -> dict[str, dict[str, Any]]:
    """The user's settings, with the project's over them."""
    merged: dict[str, dict[str, Any]] = {}
    for path in (user_file(), project / PROJECT_FILE):
        for table, values in read(path).items():
            merged.setdefault(table, {}).update(values)
    return merged
