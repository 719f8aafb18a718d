"""Two clones of a bare remote, for the tests of push, fetch and pull."""

from __future__ import annotations

from pathlib import Path

from conftest import git
from helpers_e2e import write_program

PROGRAM = "import gitexp\ngitexp.log(step=1, loss=0.5)\n"


def make_clones(tmp_path: Path, program: str = PROGRAM) -> tuple[Path, Path, Path]:
    """A bare remote and two clones of it (`a`, user A; `b`, user B) sharing one commit that
    holds `train.py`."""
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    a, b = tmp_path / "a", tmp_path / "b"
    git(tmp_path, "clone", "-q", str(remote), str(a))
    git(a, "config", "user.name", "A")
    git(a, "config", "user.email", "a@example.com")
    write_program(a / "train.py", program)
    git(a, "add", "train.py")
    git(a, "commit", "-q", "-m", "train")
    git(a, "push", "-q", "origin", "main")
    git(tmp_path, "clone", "-q", str(remote), str(b))
    git(b, "config", "user.name", "B")
    git(b, "config", "user.email", "b@example.com")
    return remote, a, b
