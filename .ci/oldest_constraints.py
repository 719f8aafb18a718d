"""Print pip constraints pinning every dependency of gitexp to its lowest allowed version.

`.ci/run` installs with these to prove the lower bounds in pyproject.toml; reading them from
pyproject.toml keeps the proof and the claim from drifting apart. Every runtime dependency
must state its bound as `name>=version` (optionally with an upper bound after a comma).
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
LOWER_BOUND = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*>=\s*([0-9][^,;\s]*)\s*(?:,[^;]*)?")


def oldest_pins(pyproject: Path = PYPROJECT) -> list[str]:
    """`name==version` for each runtime dependency, at the version its `>=` bound names."""
    with pyproject.open("rb") as file:
        dependencies = tomllib.load(file)["project"]["dependencies"]
    pins = []
    for requirement in dependencies:
        match = LOWER_BOUND.fullmatch(requirement)
        if match is None:
            raise SystemExit(f"error: no lower bound to test in {requirement!r}")
        pins.append(f"{match[1]}=={match[2]}")
    return pins


if __name__ == "__main__":
    sys.stdout.write("".join(f"{pin}\n" for pin in oldest_pins()))
