"""Optional packages: `pip install 'gitexp[ui]'` brings what plots and the dashboard need."""

from __future__ import annotations

import importlib
from types import ModuleType

from gitexp.errors import GitExpError

UI_EXTRA = "pip install 'gitexp[ui]'"


class MissingExtraError(GitExpError):
    """A feature needs an optional package that is not installed."""


def require(module: str, feature: str, install: str = UI_EXTRA) -> ModuleType:
    """Import ``module`` or say in one line that ``feature`` needs it and how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".", 1)[0]
        raise MissingExtraError(f"{feature} needs {package}: {install}") from None
