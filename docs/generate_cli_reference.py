"""Write docs/cli.md from the commands' own --help text.

    python docs/generate_cli_reference.py > docs/cli.md

tests/test_docs.py fails when docs/cli.md and the CLI disagree.
"""

from __future__ import annotations

import click

from gitexp.cli import cli

HEADER = """# Command-line reference

Generated from `--help` by `python docs/generate_cli_reference.py > docs/cli.md`; a test
checks that it matches the code. Through git, `git exp <command> -h` prints the same text.
"""


def command_help(name: str | None) -> str:
    """The --help text of `git exp` (name None) or of one of its commands."""
    with click.Context(
        cli, info_name="git exp", terminal_width=100, **cli.context_settings
    ) as root:
        if name is None:
            return cli.get_help(root)
        command = cli.commands[name]
        settings = {**command.context_settings, "terminal_width": 100}
        with click.Context(command, info_name=name, parent=root, **settings) as ctx:
            return command.get_help(ctx)


def reference() -> str:
    parts = [HEADER, "## git exp\n", "```text", command_help(None), "```\n"]
    for name in sorted(cli.commands):
        parts += [f"## git exp {name}\n", "```text", command_help(name), "```\n"]
    return "\n".join(parts)


if __name__ == "__main__":
    print(reference(), end="")
