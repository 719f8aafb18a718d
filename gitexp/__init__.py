"""Record ML training runs in the git repository you already have.

A program started by ``git exp run`` reports to the run through these calls::

    import gitexp

    gitexp.params(args)               # a dict or an argparse.Namespace
    gitexp.log(step=3, loss=0.2)      # one point; buffered, flushed at least every second
    gitexp.flush()                    # write buffered points now (also done at exit)
    gitexp.current_run()              # "train/20261127.001.k3f9", or None
    gitexp.artifact("best.pt")        # copy a file into the run directory, with its sha256

Outside a run all of them are cheap no-ops, so a script behaves the same with or without gitexp.
Importing this package stays light: it never loads the git or CLI machinery.
"""

from __future__ import annotations

from gitexp.child import artifact, current_run, flush, log, params

TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

__all__ = ["__version__", "artifact", "current_run", "flush", "log", "params"]


def __getattr__(name: str) -> Any:
    # Looking up package metadata costs milliseconds, so only pay when someone asks.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("gitexp")
        except PackageNotFoundError:
            return "0+unknown"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
