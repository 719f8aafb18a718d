"""The one-way rule of docs/development.md: no command imports another command, and no core
module imports the CLI or a command. Imports are read with `ast`, function-level ones too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "gitexp"
# Presentation: may import commands (cli/ parses and prints; web/ serves the dashboard).
PRESENTATION = ("cli", "web", "__main__.py")


def imported_modules(source: str, module: str) -> set[str]:
    """Every `gitexp...` module `source` (the module `module`) imports, anywhere in it."""
    package = module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "gitexp" or name.startswith("gitexp.")}


def modules() -> list[tuple[str, str, set[str]]]:
    """(path relative to the package, dotted name, gitexp modules it imports) per module."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith("_hook/"):
            continue  # runs in the user's interpreter and imports nothing of gitexp
        dotted = "gitexp." + relative.removesuffix(".py").replace("/", ".")
        dotted = dotted.removesuffix(".__init__")
        found.append((relative, dotted, imported_modules(path.read_text(), dotted)))
    return found


def is_under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_imports_are_found_at_any_depth() -> None:
    source = (
        "import gitexp.ids\nfrom gitexp import store\n"
        "def f():\n    from gitexp.commands.log import plain_log\n    from . import run\n"
    )
    assert imported_modules(source, "gitexp.commands.tag") == {
        "gitexp.ids",
        "gitexp",
        "gitexp.store",
        "gitexp.commands.log",
        "gitexp.commands.log.plain_log",
        "gitexp.commands",
        "gitexp.commands.run",
    }


@pytest.mark.parametrize("relative, dotted, imported", modules(), ids=lambda value: str(value))
def test_the_one_way_rule(relative: str, dotted: str, imported: set[str]) -> None:
    if relative.startswith("commands/"):
        others = {m for m in imported if is_under(m, "gitexp.commands") and m != dotted}
        others.discard("gitexp.commands")  # the package itself (an empty __init__)
        assert not others, f"{relative} imports another command: {sorted(others)}"
    elif not relative.startswith(PRESENTATION):
        upward = {
            m for m in imported if is_under(m, "gitexp.cli") or is_under(m, "gitexp.commands")
        }
        assert not upward, f"core module {relative} imports {sorted(upward)}"
