"""Run specs (gitexp.runspec): every form names the one run it should, or says why not."""

from __future__ import annotations

from pathlib import Path

import pygit2
import pytest
from helpers import finished_record, libgit2_home, make_run, make_three_runs, repo_state, started

from gitexp.errors import GitExpError, InvalidNameError, UnknownRunError
from gitexp.listing import list_runs
from gitexp.runspec import resolve_run_spec

pytestmark = pytest.mark.usefixtures(libgit2_home.__name__)


def open_repo(repo_dir: Path) -> pygit2.Repository:
    return pygit2.Repository(str(repo_dir))


@pytest.fixture
def three_runs(repo_dir: Path) -> pygit2.Repository:
    return make_three_runs(repo_dir)


def test_relative_specs(three_runs: pygit2.Repository) -> None:
    runs = list_runs(three_runs)
    assert resolve_run_spec(runs, "@") is runs[0]
    assert resolve_run_spec(runs, "@~0") is runs[0]
    assert resolve_run_spec(runs, "@~1") is runs[1]
    assert resolve_run_spec(runs, "@~2") is runs[2]
    with pytest.raises(UnknownRunError, match=r"^unknown run '@~3': there are only 3 runs$"):
        resolve_run_spec(runs, "@~3")
    with pytest.raises(UnknownRunError, match=r"there are only 3 runs"):
        resolve_run_spec(runs, "@~99999999999999999999999")
    with pytest.raises(UnknownRunError, match=r"there are only 1 run$"):
        resolve_run_spec(runs[:1], "@~1")
    with pytest.raises(UnknownRunError, match=r"there are only 0 runs$"):
        resolve_run_spec([], "@")


def test_named_specs(three_runs: pygit2.Repository) -> None:
    runs = list_runs(three_runs)
    oldest = runs[2]
    for spec in (
        "refs/experiments/train/20261120.001.k3f9",
        "train/20261120.001.k3f9",
        "20261120.001.k3f9",
        "k3f9",
        "f9",
        "001.k3f9",
        ".k3f9",
        "train/k3f9",
    ):
        assert resolve_run_spec(runs, spec) is oldest, spec
    assert resolve_run_spec(runs, "eval/20261120.001.ab12") is runs[1]
    assert resolve_run_spec(runs, "ab12") is runs[1]


def test_ambiguous_specs_list_the_candidates(three_runs: pygit2.Repository) -> None:
    runs = list_runs(three_runs)
    with pytest.raises(UnknownRunError):
        resolve_run_spec(runs, "20261120.001")  # a prefix, not a suffix: names nothing
    with pytest.raises(GitExpError) as caught:
        resolve_run_spec(runs, "9")
    assert str(caught.value) == (
        "ambiguous run '9': it matches train/20261120.002.zz99, train/20261120.001.k3f9"
    )
    with pytest.raises(GitExpError, match=r"train/20261120.002.zz99, train/20261120.001"):
        resolve_run_spec(runs, "train/9")


def test_same_id_under_two_names_is_ambiguous(repo_dir: Path) -> None:
    repo = open_repo(repo_dir)
    for name in ("train", "eval"):
        make_run(repo, name, "20261120.001.same", finished_record(name, "x", started(9)))
    runs = list_runs(repo)
    with pytest.raises(GitExpError, match=r"eval/20261120.001.same"):
        resolve_run_spec(runs, "20261120.001.same")
    assert resolve_run_spec(runs, "eval/20261120.001.same").name == "eval"


def test_many_candidates_are_summarised(repo_dir: Path) -> None:
    repo = open_repo(repo_dir)
    for n in range(13):
        run_id = f"20261120.{n + 1:03d}.a{n:02d}x"
        make_run(repo, "train", run_id, finished_record("train", run_id, started(n)))
    with pytest.raises(GitExpError, match=r" and 3 more$") as caught:
        resolve_run_spec(list_runs(repo), "x")
    assert str(caught.value).count("train/") == 10


@pytest.mark.parametrize(
    "spec", ["zzzz", "train/zz98", "nope/20261120.001.k3f9", "refs/heads/main", "train", "@~"]
)
def test_unknown_specs(three_runs: pygit2.Repository, spec: str) -> None:
    with pytest.raises(UnknownRunError, match=r"^unknown run '"):
        resolve_run_spec(list_runs(three_runs), spec)


@pytest.mark.parametrize(
    "spec",
    ["", "k3f9\n", "a\x00b", "\x1b[31mred", "with space", "x" * 10_000, "ab;rm", "é"],
)
def test_invalid_specs_touch_nothing(
    repo_dir: Path, three_runs: pygit2.Repository, spec: str
) -> None:
    before = repo_state(repo_dir)
    runs = list_runs(three_runs)
    with pytest.raises(InvalidNameError) as caught:
        resolve_run_spec(runs, spec)
    message = str(caught.value)
    assert message.startswith("invalid run '")
    assert len(message) < 200
    assert all(ch.isprintable() for ch in message)
    assert repo_state(repo_dir) == before
