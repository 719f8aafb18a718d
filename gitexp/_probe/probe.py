"""The interpreter probe: gitexp.environment runs ``python probe.py PACKAGE...``.

It runs in the user's interpreter, which may be any Python >= 3.8 without gitexp or orjson
installed: standard library only, no syntax newer than 3.8. It prints one JSON line: the
interpreter's executable, version and implementation, the installed version of each PACKAGE
asked about, and (under ``cache``) every path the answer depends on, stat'ed before being
read, so that gitexp.probecache can tell when a stored answer still holds. Names are looked up
one by one because scanning every installed distribution takes seconds in a large environment.
gitexp.probecache keys its answers on this file's content: editing it invalidates them.
"""

# No `from __future__ import annotations` (3.8 evaluates annotations at definition time):
# annotations that 3.8 cannot evaluate are quoted instead.
import json
import os
import platform
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Python puts this file's directory first on sys.path (unless PYTHONSAFEPATH); the program
# probed does not have it, and it must not count among the paths the answer depends on.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]


def stat_of(path: str) -> "list[int] | None":
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return [st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev, st.st_size]


def dependencies() -> "tuple[str | None, list[list[Any]]]":
    """The directory relative paths were read from (or None), and `[path, stat]` of every path
    the answer depends on."""
    paths: list[str | None] = list(sys.path)
    try:
        import site

        site_dirs = [*site.getsitepackages(), site.getusersitepackages()]
    except AttributeError:  # an old virtualenv's own site.py
        site_dirs = []
        paths.append(None)
    for site_dir in site_dirs:
        paths.append(site_dir)
        try:
            names = sorted(os.listdir(site_dir))
        except OSError:
            names = []
        paths.extend(os.path.join(site_dir, n) for n in names if n.endswith(".pth"))
    import sysconfig

    # A shared libpython holds the version: it can be upgraded under an unchanged binary.
    if sysconfig.get_config_var("Py_ENABLE_SHARED"):
        libdir = sysconfig.get_config_var("LIBDIR")
        soname = sysconfig.get_config_var("INSTSONAME")
        paths.append(os.path.join(libdir, soname) if libdir and soname else None)
    for module in ("sitecustomize", "usercustomize"):
        paths.append(getattr(sys.modules.get(module), "__file__", None) or "")
    home = os.path.dirname(sys.executable)
    paths.append(os.path.join(home, "pyvenv.cfg"))
    paths.append(os.path.join(os.path.dirname(home), "pyvenv.cfg"))
    if not all(isinstance(p, str) for p in paths):
        raise ValueError("a path that is not a string")
    found = [p for p in dict.fromkeys(paths) if p]
    # A relative entry (a path hook's marker, say) is looked up from the current directory.
    cwd = os.getcwd() if any(not os.path.isabs(p) for p in found) else None
    return cwd, [[os.path.abspath(p), stat_of(p)] for p in found]


def installed_versions(
    names: "list[str]", depends: "list[list[Any]]"
) -> "tuple[dict[str, str], bool]":
    """The version of each distribution in `names` that is installed; adds the paths read to
    `depends`, and says whether all of them could be named."""
    try:
        from importlib import metadata
    except ImportError:  # no importlib.metadata before 3.8
        return {}, True
    packages = {}
    complete = True
    for name in names:
        for candidate in (name, name.replace("-", "_"), name.replace("_", "-")):
            try:
                dist = metadata.distribution(candidate)
            except Exception:
                continue
            try:
                where = os.path.abspath(str(dist._path))  # type: ignore[attr-defined]
                for p in (where, os.path.join(where, "METADATA"), os.path.join(where, "PKG-INFO")):
                    depends.append([p, stat_of(p)])
            except Exception:
                complete = False
            try:
                packages[name] = dist.version
                break
            except Exception:
                pass
    return packages, complete


def main() -> None:
    checked_at = time.time()
    try:
        cwd, depends = dependencies()
        complete = True
    except Exception:
        cwd, depends, complete = None, [], False
    packages, named_all = installed_versions(sys.argv[1:], depends)
    answer = {
        "executable": sys.executable,
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "packages": packages,
        "cache": {
            "checked_at": checked_at,
            "complete": complete and named_all,
            "cwd": cwd,
            "depends": depends,
        },
    }
    sys.stdout.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    main()
