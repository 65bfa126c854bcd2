"""Print pip constraints pinning every runtime dependency of pyproject.toml (and of its
non-dev extras) to its declared floor: ``name>=X`` becomes ``name==X``. .ci/run installs the
project under these constraints to prove the floors are true."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

_FLOOR = re.compile(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*>=\s*([0-9][^,;\s]*)")


def floors(pyproject: Path) -> list[str]:
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    name = project["name"]
    specs = list(project.get("dependencies", []))
    for extra, deps in project.get("optional-dependencies", {}).items():
        if extra != "dev":  # test and lint tools float: their floors are not the library's
            specs += deps
    pins: dict[str, str] = {}
    for spec in specs:
        if spec.startswith(name):
            continue
        match = _FLOOR.match(spec)
        if match is None:
            raise SystemExit(f"{spec!r} has no '>=' floor: every dependency must declare one")
        pins[match.group(1).lower()] = match.group(2)
    return [f"{dep}=={version}" for dep, version in sorted(pins.items())]


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent
    print("\n".join(floors(root / "pyproject.toml")))
