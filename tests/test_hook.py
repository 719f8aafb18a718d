"""The start-up hook ``git exp run`` puts on a Python program's PYTHONPATH."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HOOK_DIR = Path(__file__).resolve().parents[1] / "gitexp" / "_hook"
HOOK_FILE = HOOK_DIR / "sitecustomize.py"


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    path = tmp_path / "run"
    path.mkdir()
    return path


def run_hooked(
    tmp_path: Path,
    source: str,
    *,
    run_dir: Path | None,
    user_pythonpath: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``source`` as a script the way the runner starts a Python program."""
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(source))
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(HOOK_DIR)] + ([user_pythonpath] if user_pythonpath is not None else [])
    )
    if run_dir is not None:
        env["GITEXP_RUN_DIR"] = str(run_dir)
    return subprocess.run(
        [sys.executable, str(script)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_an_uncaught_exception_is_saved_and_still_printed(tmp_path: Path, run_dir: Path) -> None:
    result = run_hooked(
        tmp_path,
        """
        def train():
            raise RuntimeError("boom")

        train()
        """,
        run_dir=run_dir,
    )
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.rstrip().endswith("RuntimeError: boom")
    error = json.loads((run_dir / "error.json").read_text())
    assert error["type"] == "RuntimeError"
    assert error["message"] == "boom"
    assert "in train" in error["traceback"]
    assert error["traceback"].rstrip().endswith("RuntimeError: boom")
    assert sorted(path.name for path in run_dir.iterdir()) == ["error.json"]


def test_the_type_names_its_module_and_qualified_name(tmp_path: Path, run_dir: Path) -> None:
    (tmp_path / "errors_mod.py").write_text(
        "class Outer:\n    class Failure(Exception):\n        pass\n"
    )
    result = run_hooked(
        tmp_path,
        """
        import errors_mod
        raise errors_mod.Outer.Failure("bad data")
        """,
        run_dir=run_dir,
    )
    assert result.returncode == 1
    error = json.loads((run_dir / "error.json").read_text())
    assert error["type"] == "errors_mod.Outer.Failure"
    assert error["message"] == "bad data"


def test_the_saved_traceback_keeps_only_its_end(tmp_path: Path, run_dir: Path) -> None:
    # Distinct functions: Python folds a repeated recursive frame into one line.
    chain = "".join(f"def f{n}():\n    f{n + 1}()\n" for n in range(30))
    source = chain + "def f30():\n    raise ValueError('bottom')\nf0()\n"
    result = run_hooked(tmp_path, source, run_dir=run_dir)
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) > 60
    traceback = json.loads((run_dir / "error.json").read_text())["traceback"]
    assert len(traceback.splitlines()) == 20
    assert traceback.endswith("ValueError: bottom\n")
    assert result.stderr.endswith(traceback)


def test_a_normal_exit_leaves_no_error(tmp_path: Path, run_dir: Path) -> None:
    result = run_hooked(tmp_path, "print('done')\n", run_dir=run_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "done\n"
    assert result.stderr == ""
    assert list(run_dir.iterdir()) == []


def test_sys_exit_leaves_no_error(tmp_path: Path, run_dir: Path) -> None:
    result = run_hooked(tmp_path, "import sys\nsys.exit(4)\n", run_dir=run_dir)
    assert result.returncode == 4
    assert list(run_dir.iterdir()) == []


def test_outside_a_run_the_excepthook_is_left_alone(tmp_path: Path) -> None:
    result = run_hooked(
        tmp_path,
        "import sys\nprint(sys.excepthook is sys.__excepthook__)\n",
        run_dir=None,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "True\n"


def test_an_exception_in_a_forked_child_is_not_the_programs(tmp_path: Path, run_dir: Path) -> None:
    result = run_hooked(
        tmp_path,
        """
        import os
        pid = os.fork()
        if pid == 0:
            raise RuntimeError("in the child")
        os.waitpid(pid, 0)
        """,
        run_dir=run_dir,
    )
    assert result.returncode == 0
    assert "RuntimeError: in the child" in result.stderr
    assert list(run_dir.iterdir()) == []


@pytest.mark.parametrize("user_pythonpath", [None, "", "/opt/user/lib"])
def test_subprocesses_start_without_the_hook(
    tmp_path: Path, run_dir: Path, user_pythonpath: str | None
) -> None:
    result = run_hooked(
        tmp_path,
        f"""
        import os
        import subprocess
        import sys
        code = "import os; print(repr(os.environ.get('PYTHONPATH')))"
        subprocess.run([sys.executable, "-c", code], check=True)
        print({str(HOOK_DIR)!r} in sys.path)
        """,
        run_dir=run_dir,
        user_pythonpath=user_pythonpath,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [repr(user_pythonpath), "False"]


def test_a_users_sitecustomize_still_runs(tmp_path: Path, run_dir: Path) -> None:
    user_dir = tmp_path / "user"
    user_dir.mkdir()
    (user_dir / "sitecustomize.py").write_text("import os\nos.environ['USER_SITE_RAN'] = 'yes'\n")
    result = run_hooked(
        tmp_path,
        """
        import os
        import sitecustomize
        print(os.environ.get("USER_SITE_RAN"), sitecustomize.__file__)
        """,
        run_dir=run_dir,
        user_pythonpath=str(user_dir),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"yes {user_dir / 'sitecustomize.py'}\n"


def test_a_users_excepthook_runs_after_the_error_is_saved(tmp_path: Path, run_dir: Path) -> None:
    user_dir = tmp_path / "user"
    user_dir.mkdir()
    (user_dir / "sitecustomize.py").write_text(
        textwrap.dedent(
            """
            import sys

            def report(exc_type, exc, tb):
                print("user hook saw", exc_type.__name__, file=sys.stderr)

            sys.excepthook = report
            """
        )
    )
    result = run_hooked(
        tmp_path, "raise KeyError('x')\n", run_dir=run_dir, user_pythonpath=str(user_dir)
    )
    assert result.returncode == 1
    assert result.stderr == "user hook saw KeyError\n"
    assert json.loads((run_dir / "error.json").read_text())["type"] == "KeyError"


def test_a_broken_user_sitecustomize_is_reported_as_python_would(
    tmp_path: Path, run_dir: Path
) -> None:
    user_dir = tmp_path / "user"
    user_dir.mkdir()
    (user_dir / "sitecustomize.py").write_text("raise ValueError('broken site')\n")
    result = run_hooked(
        tmp_path,
        """
        import sys
        import sitecustomize
        print("still running", sitecustomize.__file__.endswith("_hook/sitecustomize.py"))
        raise RuntimeError("boom")
        """,
        run_dir=run_dir,
        user_pythonpath=str(user_dir),
    )
    assert result.returncode == 1
    assert result.stderr.startswith(
        "Error in sitecustomize; set PYTHONVERBOSE for traceback:\nValueError: broken site\n"
    )
    assert result.stdout == "still running True\n"
    assert json.loads((run_dir / "error.json").read_text())["message"] == "boom"


def test_the_hook_is_python_38_stdlib_only() -> None:
    tree = ast.parse(HOOK_FILE.read_text(), feature_version=(3, 8))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.module is not None
            imported.add(node.module.split(".")[0])
    assert imported <= set(sys.stdlib_module_names)


def test_a_non_ascii_message_is_saved(tmp_path: Path, run_dir: Path) -> None:
    result = run_hooked(tmp_path, "raise ValueError('température \\udcff')\n", run_dir=run_dir)
    assert result.returncode == 1
    error = json.loads((run_dir / "error.json").read_text())
    assert error["message"] == "température \udcff"
