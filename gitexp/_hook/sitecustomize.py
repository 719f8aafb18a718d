"""Start-up hook that ``git exp run`` puts on a Python program's PYTHONPATH.

It runs inside the user's interpreter, which may lack gitexp and its dependencies and may be
as old as Python 3.8, so it uses only the standard library and 3.8 syntax. It:

- takes its own directory back out of PYTHONPATH and sys.path, so subprocesses and
  multiprocessing workers start without it;
- imports the ``sitecustomize`` it shadows (a distribution's or a virtualenv's), if any;
- when GITEXP_RUN_DIR is set, wraps ``sys.excepthook`` to save an uncaught exception to
  ``$GITEXP_RUN_DIR/error.json`` before the usual traceback is printed.
"""

# No `from __future__ import annotations` (importing __future__ costs start-up time in every
# run): annotations that 3.8 cannot evaluate are quoted instead.
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType

_HOOK_DIR = os.path.dirname(os.path.abspath(__file__))
_TRACEBACK_LINES = 20


def _is_hook_dir(entry: str) -> bool:
    return bool(entry) and os.path.abspath(entry) == _HOOK_DIR


def _remove_from_pythonpath() -> None:
    value = os.environ.get("PYTHONPATH")
    if value is None:
        return
    entries = value.split(os.pathsep)
    for index, entry in enumerate(entries):
        if _is_hook_dir(entry):
            # Only the entry the runner prepended: whatever the user had stays exactly as it was.
            del entries[index]
            break
    if entries:
        os.environ["PYTHONPATH"] = os.pathsep.join(entries)
    else:
        del os.environ["PYTHONPATH"]


def _chain_sitecustomize() -> None:
    """Import the next ``sitecustomize`` on sys.path, reporting failures as ``site`` does."""
    this_module = sys.modules.pop("sitecustomize", None)
    try:
        try:
            # __import__, not importlib.import_module: importlib is not loaded yet at start-up.
            __import__("sitecustomize")
        except ImportError as exc:
            if exc.name != "sitecustomize":
                raise
    except Exception as err:
        # The same report site.execsitecustomize() gives, and the program goes on.
        if sys.flags.verbose:
            sys.excepthook(*sys.exc_info())
        else:
            sys.stderr.write(
                "Error in sitecustomize; set PYTHONVERBOSE for traceback:\n"
                f"{err.__class__.__name__}: {err}\n"
            )
    # The import statement that loaded this file pops its name from sys.modules when this
    # file finishes: leave the shadowed module there if it loaded, else this one.
    if "sitecustomize" not in sys.modules and this_module is not None:
        sys.modules["sitecustomize"] = this_module


def _type_name(exc_type: "type[BaseException]") -> str:
    module = getattr(exc_type, "__module__", None)
    name = getattr(exc_type, "__qualname__", exc_type.__name__)
    if module in (None, "builtins", "__builtin__"):
        return name
    return f"{module}.{name}"


def _write_error(
    run_dir: str,
    exc_type: "type[BaseException]",
    exc: BaseException,
    tb: "TracebackType | None",
) -> None:
    # Standard json, not orjson: the program's interpreter may not have orjson installed.
    import json
    import traceback

    try:
        message = str(exc)
    except Exception:
        message = f"<unprintable {exc_type.__name__} object>"
    lines = "".join(traceback.format_exception(exc_type, exc, tb)).splitlines()
    error = {
        "type": _type_name(exc_type),
        "message": message,
        "traceback": "\n".join(lines[-_TRACEBACK_LINES:]) + "\n",
    }
    path = os.path.join(run_dir, "error.json")
    tmp = f"{path}.{os.getpid()}.tmp"
    # ASCII escapes: a message holding lone surrogates still encodes.
    with open(tmp, "w", encoding="ascii") as file:
        json.dump(error, file, indent=2)
        file.write("\n")
    os.replace(tmp, path)


def _install_excepthook(run_dir: str) -> None:
    previous = sys.excepthook
    main_pid = os.getpid()

    def gitexp_excepthook(
        exc_type: "type[BaseException]", exc: BaseException, tb: "TracebackType | None"
    ) -> None:
        # A forked child that dies is not the program dying; leave the run's error alone.
        if os.getpid() == main_pid:
            # Not contextlib.suppress: importing contextlib would add ~2 ms to every start-up.
            try:  # noqa: SIM105
                _write_error(run_dir, exc_type, exc, tb)
            except BaseException:
                pass  # the program's own traceback below matters more than our record
        previous(exc_type, exc, tb)

    sys.excepthook = gitexp_excepthook


def _main() -> None:
    _remove_from_pythonpath()
    sys.path[:] = [entry for entry in sys.path if not _is_hook_dir(entry)]
    _chain_sitecustomize()
    run_dir = os.environ.get("GITEXP_RUN_DIR")
    if run_dir:
        _install_excepthook(run_dir)


_main()
