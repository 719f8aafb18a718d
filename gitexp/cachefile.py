"""Writing the files under `<git common dir>/experiments/.cache/`: whole, or not at all."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` by `data` with one rename; where it cannot be written, go without.

    A cache is only a speed-up: a read-only repository or a file in the way must not fail
    the command, and a reader must never see half a file.
    """
    import tempfile  # only when writing: most commands just read

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as file:
            os.fchmod(file.fileno(), 0o644)  # mkstemp's 0600 would hide it from other users
            file.write(data)
        os.replace(temporary, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
