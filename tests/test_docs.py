"""The documentation says what the code does."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from gitexp.cli import cli

ROOT = Path(__file__).resolve().parent.parent


def load_generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "generate_cli_reference", ROOT / "docs" / "generate_cli_reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_matches_help() -> None:
    expected = load_generator().reference()
    actual = (ROOT / "docs" / "cli.md").read_text()
    assert actual == expected, "regenerate: python docs/generate_cli_reference.py > docs/cli.md"


def test_every_command_is_in_the_reference_and_readme() -> None:
    reference = (ROOT / "docs" / "cli.md").read_text()
    readme = (ROOT / "README.md").read_text()
    for name, command in cli.commands.items():
        assert f"## git exp {name}\n" in reference
        assert f"git exp {name}" in readme
        assert "Example" in (command.help or ""), f"{name} --help has no example"


def test_every_record_field_is_documented() -> None:
    from gitexp.record import RECORD_FIELDS

    documented = (ROOT / "docs" / "format.md").read_text()
    for field in RECORD_FIELDS:
        assert re.search(rf"`{field}`", documented), (
            f"record field {field} is not in docs/format.md"
        )


def test_the_record_type_is_the_documented_table() -> None:
    from gitexp.record import RECORD_FIELDS, RunRecord

    documented = (ROOT / "docs" / "format.md").read_text()
    section = documented[documented.index("| field | type | meaning |") :]
    table = section[: section.index("\n\n")]
    fields = [
        name for row in table.splitlines()[2:] for name in re.findall(r"`(\w+)`", row.split("|")[1])
    ]
    assert fields == list(RunRecord.__annotations__)
    assert set(RECORD_FIELDS) <= set(fields)


def test_readme_quick_start_commands_are_the_ci_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert ".venv/bin/python -m pytest" in readme
    assert ci.rstrip().endswith(".venv/bin/python -m pytest")


def test_man_page_matches_help() -> None:
    spec = importlib.util.spec_from_file_location(
        "generate_man_page", ROOT / "docs" / "generate_man_page.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    actual = (ROOT / "docs" / "git-exp.1").read_text()
    assert actual == module.man_page(), (
        "regenerate: python docs/generate_man_page.py > docs/git-exp.1"
    )


def test_git_exp_help_through_git_shows_the_man_page(tmp_path: Path) -> None:
    import os
    import shutil
    import subprocess
    import sys

    import pytest

    installed = Path(sys.prefix) / "share" / "man" / "man1" / "git-exp.1"
    if not installed.exists() or shutil.which("man") is None:
        pytest.skip(f"no man page installed at {installed} (editable install) or no man")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.update(MANPAGER="cat", PAGER="cat", MANWIDTH="100")
    env.pop("MANPATH", None)
    result = subprocess.run(
        ["git", "exp", "--help"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "git exp run" in result.stdout
