"""Write docs/git-exp.1, the man page `git exp --help` shows (git runs `man git-exp`).

    python docs/generate_man_page.py > docs/git-exp.1

The page is the commands' own --help text; tests/test_docs.py fails when it is stale.
pip installs it as <prefix>/share/man/man1/git-exp.1, where man finds it from PATH.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _cli_reference():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "cli_reference", HERE / "generate_cli_reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def roff_text(text: str) -> str:
    """Plain text made safe inside a roff no-fill block."""
    lines = []
    for line in text.replace("\\", "\\e").splitlines():
        lines.append("\\&" + line if line.startswith((".", "'")) else line)
    return "\n".join(lines)


def man_page() -> str:
    from gitexp.cli import cli

    reference = _cli_reference()
    parts = [
        '.TH GIT-EXP 1 "" "gitexp" "Git Manual"',
        ".SH NAME",
        "git-exp \\- record every experiment run inside your git repository",
        ".SH SYNOPSIS",
        ".B git exp",
        "\\fICOMMAND\\fR [\\fIARGS\\fR]...",
        ".SH DESCRIPTION",
        ".nf",
        roff_text(reference.command_help(None)),
        ".fi",
        ".SH COMMANDS",
    ]
    for name in sorted(cli.commands):
        parts += [f".SS git exp {name}", ".nf", roff_text(reference.command_help(name)), ".fi"]
    parts += [
        ".SH SEE ALSO",
        "The record format, guarantees and sharing workflows: docs/ in the gitexp sources.",
    ]
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    print(man_page(), end="")
