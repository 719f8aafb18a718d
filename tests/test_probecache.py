"""The interpreter probe's cache, against real virtualenvs, real pip and the real filesystem."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from gitexp.environment import start_python_probe
from gitexp.probecache import PROBE_FILE, ProbeCache

PACKAGES = ["tiny-pkg", "other-pkg"]


class Venv:
    """A virtualenv without pip, made by this interpreter's `venv`."""

    def __init__(self, root: Path) -> None:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
        self.root = root
        self.python = str(root / "bin" / "python")
        version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
        self.site = root / "lib" / version / "site-packages"

    def add_dist(self, name: str, version: str, where: Path | None = None) -> Path:
        """Install a distribution the way pip lays it out: a `.dist-info` directory."""
        info = (where or self.site) / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        return info


def settle() -> None:
    """Let the filesystem clock tick, so a change made next has a new timestamp."""
    time.sleep(0.05)


def probe(
    python: str,
    cache: ProbeCache,
    env: dict[str, str] | None = None,
    packages: list[str] = PACKAGES,
) -> tuple[dict[str, object], bool]:
    """(what the probe found, whether it came from the cache)."""
    environ = {"PATH": os.environ["PATH"], "HOME": os.environ["HOME"], **(env or {})}
    started = start_python_probe(python, packages, env=environ, cache=cache)
    found = started.result()
    settle()
    return found, started.from_cache


@pytest.fixture
def venv(tmp_path: Path) -> Venv:
    return Venv(tmp_path / "venv")


@pytest.fixture
def cache(tmp_path: Path) -> ProbeCache:
    # No racy window: the tests settle() instead, so fresh venvs can be cached at once.
    return ProbeCache(tmp_path / "cache" / "python-probe-v1", racy_seconds=0)


def test_second_probe_is_answered_from_the_cache_with_the_same_answer(
    venv: Venv, cache: ProbeCache
) -> None:
    venv.add_dist("tiny-pkg", "1.0")
    first, first_cached = probe(venv.python, cache)
    second, second_cached = probe(venv.python, cache)
    uncached = start_python_probe(venv.python, PACKAGES, env=dict(os.environ)).result()
    assert (first_cached, second_cached) == (False, True)
    assert first == second == uncached
    assert first["packages"] == {"tiny-pkg": "1.0"}
    assert first["executable"] == venv.python
    assert "cache" not in first


def test_a_changed_probe_program_is_not_answered_from_the_cache(tmp_path: Path, venv: Venv) -> None:
    program = tmp_path / "probe.py"
    program.write_bytes(PROBE_FILE.read_bytes())
    cache = ProbeCache(tmp_path / "cache" / "python-probe-v1", racy_seconds=0, probe_file=program)
    venv.add_dist("tiny-pkg", "1.0")
    _, first_cached = probe(venv.python, cache)
    _, second_cached = probe(venv.python, cache)
    program.write_bytes(PROBE_FILE.read_bytes() + b"# a new version of the probe\n")
    _, third_cached = probe(venv.python, cache)

    assert (first_cached, second_cached, third_cached) == (False, True, False)


def test_install_upgrade_and_removal_are_seen(venv: Venv, cache: ProbeCache) -> None:
    probe(venv.python, cache)
    info = venv.add_dist("tiny-pkg", "1.0")
    found, cached = probe(venv.python, cache)
    assert (found["packages"], cached) == ({"tiny-pkg": "1.0"}, False)
    found, cached = probe(venv.python, cache)
    assert (found["packages"], cached) == ({"tiny-pkg": "1.0"}, True)
    # An upgrade replaces the .dist-info directory with one of another name.
    (info / "METADATA").unlink()
    info.rmdir()
    venv.add_dist("tiny-pkg", "2.0")
    found, cached = probe(venv.python, cache)
    assert (found["packages"], cached) == ({"tiny-pkg": "2.0"}, False)
    for info in venv.site.glob("*.dist-info"):
        (info / "METADATA").unlink()
        info.rmdir()
    found, cached = probe(venv.python, cache)
    assert (found["packages"], cached) == ({}, False)


def test_metadata_rewritten_in_place_is_seen(venv: Venv, cache: ProbeCache) -> None:
    info = venv.add_dist("tiny-pkg", "1.0")
    probe(venv.python, cache)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tiny-pkg\nVersion: 1.1\n")
    found, cached = probe(venv.python, cache)
    assert (found["packages"], cached) == ({"tiny-pkg": "1.1"}, False)


def test_editable_install_through_a_pth_file_edited_in_place(
    tmp_path: Path, venv: Venv, cache: ProbeCache
) -> None:
    first, second = tmp_path / "src1", tmp_path / "src2"
    first.mkdir()
    second.mkdir()
    venv.add_dist("tiny-pkg", "1.0", where=first)
    venv.add_dist("tiny-pkg", "2.0", where=second)
    pth = venv.site / "tiny.pth"
    pth.write_text(f"{first}\n")
    settle()
    assert probe(venv.python, cache)[0]["packages"] == {"tiny-pkg": "1.0"}
    assert probe(venv.python, cache)[1] is True
    with open(pth, "w") as file:  # in place: the site directory itself does not change
        file.write(f"{second}\n")
    found, cached = probe(venv.python, cache)
    assert (found["packages"], cached) == ({"tiny-pkg": "2.0"}, False)


def test_environment_variables_python_reads_are_part_of_the_key(
    tmp_path: Path, venv: Venv, cache: ProbeCache
) -> None:
    extra = tmp_path / "extra"
    extra.mkdir()
    venv.add_dist("other-pkg", "3.0", where=extra)
    settle()
    assert probe(venv.python, cache)[0]["packages"] == {}
    found, cached = probe(venv.python, cache, {"PYTHONPATH": str(extra)})
    assert (found["packages"], cached) == ({"other-pkg": "3.0"}, False)
    assert probe(venv.python, cache, {"PYTHONPATH": str(extra)}) == (found, True)
    assert probe(venv.python, cache) == ({**found, "packages": {}}, True)
    assert probe(venv.python, cache, {"VIRTUAL_ENV": str(extra)})[1] is False
    assert probe(venv.python, cache, {"PYTHONNOUSERSITE": "1"})[1] is False


def test_a_user_site_directory_appearing_is_seen(
    tmp_path: Path, venv: Venv, cache: ProbeCache
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    assert probe(sys.executable, cache, {"HOME": str(home)})[0]["packages"] == {}
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    user_site = home / ".local" / "lib" / version / "site-packages"
    user_site.mkdir(parents=True)
    assert probe(sys.executable, cache, {"HOME": str(home)})[1] is False


def test_a_relative_sys_path_entry_ties_the_answer_to_the_directory(
    tmp_path: Path, venv: Venv, cache: ProbeCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    (there / "relative-dir").mkdir(parents=True)
    venv.add_dist("tiny-pkg", "1.0", where=there / "relative-dir")
    settle()
    monkeypatch.chdir(here)
    probe(venv.python, cache)
    assert probe(venv.python, cache)[1] is True
    # setuptools' editable installs put such a marker on sys.path through a .pth file.
    (venv.site / "marker.pth").write_text("import sys; sys.path.append('relative-dir')\n")
    assert probe(venv.python, cache)[1] is False
    assert probe(venv.python, cache) == (probe(venv.python, cache)[0], True)
    assert probe(venv.python, cache)[0]["packages"] == {}
    monkeypatch.chdir(there)
    found, cached = probe(venv.python, cache)
    assert (found["packages"], cached) == ({"tiny-pkg": "1.0"}, False)
    assert probe(venv.python, cache) == (found, True)
    monkeypatch.chdir(here)
    assert probe(venv.python, cache) == ({**found, "packages": {}}, True)


def test_a_removed_current_directory_still_gets_an_answer(
    tmp_path: Path, venv: Venv, cache: ProbeCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    (venv.site / "marker.pth").write_text("import sys; sys.path.append('relative-dir')\n")
    venv.add_dist("tiny-pkg", "1.0")
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    settle()
    found, cached = probe(venv.python, cache)
    assert (found["packages"], cached) == ({"tiny-pkg": "1.0"}, False)
    assert "error" not in found
    assert probe(venv.python, cache)[1] is False


def test_two_venvs_keep_their_own_answers(tmp_path: Path, cache: ProbeCache) -> None:
    one, two = Venv(tmp_path / "one"), Venv(tmp_path / "two")
    one.add_dist("tiny-pkg", "1.0")
    two.add_dist("tiny-pkg", "2.0")
    settle()
    for _ in range(2):
        assert probe(one.python, cache)[0]["packages"] == {"tiny-pkg": "1.0"}
        assert probe(two.python, cache)[0]["packages"] == {"tiny-pkg": "2.0"}
    assert probe(one.python, cache)[1] and probe(two.python, cache)[1]


def test_a_venv_recreated_at_the_same_path_is_probed_again(
    tmp_path: Path, cache: ProbeCache
) -> None:
    Venv(tmp_path / "venv").add_dist("tiny-pkg", "1.0")
    settle()
    probe(str(tmp_path / "venv" / "bin" / "python"), cache)
    subprocess.run(["rm", "-rf", str(tmp_path / "venv")], check=True)
    again = Venv(tmp_path / "venv")
    found, cached = probe(again.python, cache)
    assert (found["packages"], cached) == ({}, False)


def test_a_launcher_script_is_never_cached(tmp_path: Path, venv: Venv, cache: ProbeCache) -> None:
    launcher = tmp_path / "python"
    launcher.write_text(f'#!/bin/sh\nexec "{venv.python}" "$@"\n')
    launcher.chmod(0o755)
    probe(str(launcher), cache)
    found, cached = probe(str(launcher), cache)
    assert cached is False
    assert found["executable"] == venv.python


def test_what_changed_just_before_the_probe_is_not_cached(tmp_path: Path, venv: Venv) -> None:
    cache = ProbeCache(tmp_path / "cache" / "python-probe-v1")  # the default racy window
    probe(venv.python, cache)
    assert probe(venv.python, cache)[1] is False
    assert not cache.path.exists()


def test_failed_probes_are_not_cached(tmp_path: Path, cache: ProbeCache) -> None:
    assert "error" in probe("/bin/false", cache)[0]
    assert "error" in probe(str(tmp_path / "missing"), cache)[0]
    assert not cache.path.exists()


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[:-5],
        lambda data: data.replace(b"tiny", b"tinY"),
        lambda data: b"something else\n",
        lambda data: b"",
    ],
)
def test_a_damaged_cache_is_ignored_and_rewritten(
    venv: Venv, cache: ProbeCache, damage: object
) -> None:
    venv.add_dist("tiny-pkg", "1.0")
    settle()
    probe(venv.python, cache)
    cache.path.write_bytes(damage(cache.path.read_bytes()))  # type: ignore[operator]
    found, cached = probe(venv.python, cache)
    assert (found["packages"], cached) == ({"tiny-pkg": "1.0"}, False)
    assert probe(venv.python, cache)[1] is True


def test_an_unwritable_cache_only_costs_speed(tmp_path: Path, venv: Venv) -> None:
    (tmp_path / "cache").write_text("a file where the directory should be")
    cache = ProbeCache(tmp_path / "cache" / "python-probe-v1", racy_seconds=0)
    venv.add_dist("tiny-pkg", "1.0")
    settle()
    for _ in range(2):
        found, cached = probe(venv.python, cache)
        assert (found["packages"], cached) == ({"tiny-pkg": "1.0"}, False)


def _wheel(directory: Path, version: str) -> Path:
    """A pure-Python wheel of `tiny-pkg`, built by hand (pip needs no build backend for it)."""
    path = directory / f"tiny_pkg-{version}-py3-none-any.whl"
    info = f"tiny_pkg-{version}.dist-info"
    files = {
        "tiny_pkg/__init__.py": f"VERSION = {version!r}\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: tiny-pkg\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{name},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{info}/RECORD,,")
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
        archive.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return path


def test_real_pip_install_upgrade_and_uninstall(
    tmp_path: Path, venv: Venv, cache: ProbeCache
) -> None:
    def pip(*args: str) -> None:
        command = [sys.executable, "-m", "pip", "--python", venv.python, "-q"]
        options = ["--disable-pip-version-check", "--no-input"]
        subprocess.run([*command, *args, *options], check=True, capture_output=True)
        settle()

    settle()
    probe(venv.python, cache)
    for step, expected in (
        (("install", "--no-index", "--no-deps", str(_wheel(tmp_path, "1.0"))), {"tiny-pkg": "1.0"}),
        (("install", "--no-index", "--no-deps", str(_wheel(tmp_path, "2.0"))), {"tiny-pkg": "2.0"}),
        (("uninstall", "-y", "tiny-pkg"), {}),
    ):
        assert probe(venv.python, cache)[1] is True
        pip(*step)
        found, cached = probe(venv.python, cache)
        assert (found["packages"], cached) == (expected, False)
