"""Experiment names, run ids and ref names; `git check-ref-format` is the oracle for refs."""

from __future__ import annotations

import datetime as dt
import random
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gitexp import ids
from gitexp.errors import InvalidNameError

RUN_ID = "20260101.001.abcd"


def ref_is_valid(ref: str) -> bool:
    result = subprocess.run(["git", "check-ref-format", ref], capture_output=True, check=False)
    return result.returncode == 0


@pytest.mark.parametrize(
    "name",
    ["train", "Train2", "a", "0", "my_model-v1.2", "a.b.c", "x" * 100, "HEAD", "a-", "a."],
)
def test_validate_name_accepts(name: str) -> None:
    assert ids.validate_name(name) == name
    assert ref_is_valid(ids.run_ref(name, RUN_ID))


@pytest.mark.parametrize(
    "name",
    [
        "",
        "../heads/main",
        "a..b",
        "x.lock",
        "with space",
        " lead",
        "trail ",
        ".hidden",
        "-dash",
        "_under",
        "x" * 101,
        "a\nb",
        "a\x00b",
        "a\x1b[31m",
        "tab\t",
        "refs/heads/x",
        "a/b",
        "a\\b",
        "a:b",
        "a~1",
        "a^",
        "a?",
        "a*",
        "a[b",
        "a@{1}",
        "@",
        "tréin",
        "٣",  # a non-ASCII digit
        "train\n",
    ],
)
def test_validate_name_refuses(name: str) -> None:
    with pytest.raises(InvalidNameError) as caught:
        ids.validate_name(name)
    message = str(caught.value)
    assert message.startswith("invalid experiment name '")
    assert "\n" not in message and "\x00" not in message and "\x1b" not in message


def test_validate_name_messages() -> None:
    with pytest.raises(InvalidNameError, match=r"^invalid experiment name '': it must not be"):
        ids.validate_name("")
    with pytest.raises(InvalidNameError, match=r"longer than 100 characters"):
        ids.validate_name("x" * 101)
    with pytest.raises(InvalidNameError, match=r"'a\\nb': use letters, digits"):
        ids.validate_name("a\nb")


@given(st.text(max_size=120))
@settings(max_examples=300, deadline=None)
def test_every_accepted_name_makes_a_valid_ref(name: str) -> None:
    try:
        ids.validate_name(name)
    except InvalidNameError:
        return
    assert ids.NAME_PATTERN.match(name)
    assert ".." not in name and not name.endswith(".lock") and len(name) <= 100


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["train.py"], "train"),
        (["./train.sh"], "train"),
        (["scripts/train.py", "--lr", "0.1"], "train"),
        (["/abs/path/to/train"], "train"),
        (["python", "-m", "pkg.train"], "train"),
        (["python", "-mpkg.train"], "train"),
        (["python", "-m", "train"], "train"),
        (["python", "train.py"], "train"),
        (["python3", "train.py", "--epochs", "3"], "train"),
        (["python3.11", "-u", "scripts/train.py"], "train"),
        (["/usr/bin/python3", "-u", "-O", "train.py"], "train"),
        (["python", "-W", "ignore", "train.py"], "train"),
        (["python", "-X", "dev", "-m", "pkg.train"], "train"),
        (["python", "--", "train.py"], "train"),
        (["python", "-c", "print(1)"], "python"),
        (["python", "-"], "python"),
        (["python"], "python"),
        (["python3", "-u"], "python3"),
        (["train.v2.py"], "train.v2"),
        (["my model!.py"], "my-model"),
        (["données.py"], "donn-es"),
        (["日本語.py"], "run"),
        (["...py"], "run"),
        ([".hidden.py"], "hidden"),
        (["-weird-.sh"], "weird"),
        (["a..b.py"], "a.b"),
        (["x.lock.py"], "x"),
        (["x.lock.lock.py"], "x"),
        (["evil\n\x1b[2J.py"], "evil-2J"),
        (["x" * 300 + ".py"], "x" * 100),
        ([], "run"),
        ([""], "run"),
    ],
)
def test_default_name(command: list[str], expected: str) -> None:
    assert ids.default_name(command) == expected
    ids.validate_name(ids.default_name(command))


@given(st.lists(st.text(max_size=40), max_size=4))
@settings(max_examples=300, deadline=None)
def test_default_name_is_always_a_valid_name(command: list[str]) -> None:
    assert ids.validate_name(ids.default_name(command))


def test_random_suffix_ignores_random_seed() -> None:
    suffixes = []
    for _ in range(5):
        random.seed(1234)
        suffixes.append(ids.random_suffix())
    assert len(set(suffixes)) > 1
    for suffix in suffixes:
        assert len(suffix) == 4
        assert set(suffix) <= set(ids.RAND_ALPHABET)


def test_run_ids_and_refs_round_trip() -> None:
    day = dt.date(2026, 11, 27)
    for count in (1, 42, 999, 1000):
        run_id = ids.format_run_id(day, count, "k3f9")
        assert ids.RUN_ID_PATTERN.match(run_id)
        ref = ids.run_ref("train", run_id)
        assert ref_is_valid(ref)
        assert ids.parse_run_ref(ref) == ("train", run_id)
    assert ids.format_run_id(day, 7, "0a9z") == "20261127.007.0a9z"


@pytest.mark.parametrize(
    "ref",
    [
        "refs/heads/main",
        "refs/experiments/train",
        "refs/experiments/train/20260101.001.abcd/extra",
        "refs/experiments/train/20260101.01.abcd",
        "refs/experiments/train/2026011.001.abcd",
        "refs/experiments/train/20260101.001.ABCD",
        "refs/experiments/train/20260101.001.abc",
        "refs/experiments/train/20260101.001.abcd\n",
        "refs/experiments/.train/20260101.001.abcd",
        "refs/experiments//20260101.001.abcd",
        "refs/experimentstrain/20260101.001.abcd",
    ],
)
def test_parse_run_ref_refuses_other_refs(ref: str) -> None:
    assert ids.parse_run_ref(ref) is None


def test_printable_escapes_control_characters() -> None:
    assert ids.printable("a\nb\x1b[0m\x00é") == "a\\nb\\x1b[0m\\x00é"
