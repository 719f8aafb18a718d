"""The exceptions gitexp raises for problems a user can act on.

The CLI prints any ``GitExpError`` as one ``error: <message>`` line on stderr and exits 1.
Anything else that escapes is a bug.
"""

from __future__ import annotations


class GitExpError(Exception):
    """A problem the user can act on; its message is one line."""


class NotARepositoryError(GitExpError):
    """The current directory is not inside a git repository."""


class BareRepositoryError(GitExpError):
    """The command needs a working tree but the repository is bare."""


class InvalidNameError(GitExpError):
    """An experiment name or run spec is not allowed."""


class UnknownRunError(GitExpError):
    """No run matches the given spec."""


class AmbiguousRunError(GitExpError):
    """More than one run matches the given spec."""


class ProgramNotFoundError(GitExpError):
    """The program to run does not exist or cannot be executed."""


class ConcurrentUpdateError(GitExpError):
    """A ref stayed locked or kept changing under us through every retry."""


class UnreadableRecordError(GitExpError):
    """A run's record is missing or is not valid JSON, so it cannot be changed."""


class RepositoryWriteError(GitExpError):
    """The repository cannot be written: a read-only or full disk, or no permission."""
