"""Record ML training runs in the git repository you already have.

A program started by ``git exp run`` reports to the run through these calls::

    import gitexp

    gitexp.params(args)               # a dict or an argparse.Namespace
    gitexp.log(step=3, loss=0.2)      # one point; buffered, flushed at least every second
    gitexp.flush()                    # write buffered points now (also done at exit)
    gitexp.current_run()              # "train/20261127.001.k3f9", or None
    gitexp.artifact("best.pt")        # copy a file into the run directory, with its sha256

Outside a run all of them are cheap no-ops, so a script behaves the same with or without gitexp.
To read runs back (in a notebook, say), ``gitexp.runs(path=".", **filters)`` lists them as
objects (docs/ui.md).
Importing this package stays light: it never loads the git or CLI machinery.
"""

from __future__ import annotations

from gitexp.child import artifact, current_run, flush, log, params

TYPE_CHECKING = False

if TYPE_CHECKING:
    from os import PathLike
    from typing import Any

    from gitexp.notebook import Runs

__all__ = ["__version__", "artifact", "current_run", "flush", "log", "params", "runs"]


def __getattr__(name: str) -> Any:
    # Looking up package metadata costs milliseconds, so only pay when someone asks.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("gitexp")
        except PackageNotFoundError:
            return "0+unknown"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def runs(path: str | PathLike[str] = ".", **filters: Any) -> Runs:
    """The runs of the repository at `path` as objects, filtered like `git exp log`
    (name=, status=, tag=, where=, since=, include_deleted=, sort=, reverse=, limit=).

    See gitexp.notebook.runs; it is imported only when called, so `import gitexp` stays light.
    """
    from gitexp.notebook import runs as _runs

    return _runs(path, **filters)
