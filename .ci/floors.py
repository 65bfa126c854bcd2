"""Pip constraints that pin dependencies of pyproject.toml to their declared floors
(``name>=X`` becomes ``name==X``), so .ci/run can prove the floors are true.

    floors.py demo examples    # the core dependencies and those of the named extras
    floors.py --only anam      # only the named extras' own dependencies
    floors.py --tools          # the dev extra's test and lint tools, as declared (they float)
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import tomllib

_FLOOR = re.compile(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*>=\s*([0-9][^,;\s]*)")
_PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def _project() -> dict:
    return tomllib.loads(_PYPROJECT.read_text(encoding="utf-8"))["project"]


def pins(extras: list[str], *, core: bool) -> list[str]:
    project = _project()
    optional = project.get("optional-dependencies", {})
    specs = list(project.get("dependencies", [])) if core else []
    for extra in extras:
        if extra not in optional:
            raise SystemExit(f"pyproject.toml has no extra {extra!r}")
        specs += optional[extra]
    found: dict[str, str] = {}
    for spec in specs:
        if spec.startswith(project["name"]):
            continue
        match = _FLOOR.match(spec)
        if match is None:
            raise SystemExit(f"{spec!r} has no '>=' floor: every dependency must declare one")
        found[match.group(1).lower()] = match.group(2)
    return [f"{dep}=={version}" for dep, version in sorted(found.items())]


def tools() -> list[str]:
    project = _project()
    dev = project.get("optional-dependencies", {}).get("dev", [])
    return [spec for spec in dev if not spec.startswith(project["name"])]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("extras", nargs="*")
    parser.add_argument("--only", action="store_true", help="leave the core dependencies out")
    parser.add_argument("--tools", action="store_true", help="print the dev tools instead")
    args = parser.parse_args()
    print("\n".join(tools() if args.tools else pins(args.extras, core=not args.only)))
