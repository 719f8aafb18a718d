"""The exceptions gitexp raises for problems a user can act on.

The CLI prints any ``GitExpError`` as one ``error: <message>`` line on stderr and exits 1
(2 for a ``UsageError``). Anything else that escapes is a bug. A subclass exists only where
some code catches it specifically.
"""

from __future__ import annotations


class GitExpError(Exception):
    """A problem the user can act on; its message is one line."""


class UsageError(GitExpError):
    """The command line is wrong (a bad option value or combination): the CLI exits 2."""


class InvalidNameError(GitExpError):
    """An experiment name or run spec is not allowed."""


class UnknownRunError(GitExpError):
    """No run matches the given spec."""
