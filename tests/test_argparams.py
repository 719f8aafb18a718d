"""Hyperparameters from argv, secret names, and redaction."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitexp.argparams import (
    REDACTED,
    coerce_value,
    is_secret_name,
    parse_argv_params,
    redact_argv,
    redact_params,
)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--lr", "0.1"], {"lr": 0.1}),
        (["--lr=0.1"], {"lr": 0.1}),
        (["lr=0.1"], {"lr": 0.1}),
        (["-x", "3"], {"x": 3}),
        (["--flag"], {"flag": True}),
        (["--flag", "--lr", "1"], {"flag": True, "lr": 1}),
        (["--flag", "--"], {"flag": True}),
        (["--shift", "-0.1"], {"shift": -0.1}),
        (["--offset", "-3"], {"offset": -3}),
        (["--wd", "1e-3"], {"wd": 0.001}),
        (["--learning-rate", "3e-4"], {"learning_rate": 0.0003}),
        (["--model.hidden-size=512"], {"model.hidden_size": 512}),
        (["+trainer.gpus=2", "++seed=1"], {"trainer.gpus": 2, "seed": 1}),
        (["--lr", "0.1", "--lr", "0.2"], {"lr": 0.2}),
        (["data.csv", "--epochs", "3", "out"], {"epochs": 3}),
        (["--epochs", "3", "--", "--lr", "1", "k=v"], {"epochs": 3}),
        (["data/x=1.csv", "--1x", "-"], {}),
        (["--name="], {"name": ""}),
        (["--input", "-", "--v"], {"input": "-", "v": True}),
    ],
)
def test_parse_argv_params_forms(args: list[str], expected: dict[str, object]) -> None:
    assert parse_argv_params(args) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3", 3),
        ("-3", -3),
        ("+3", 3),
        ("0.5", 0.5),
        (".5", 0.5),
        ("-.5", -0.5),
        ("1e-3", 0.001),
        ("1E5", 100000.0),
        ("true", True),
        ("FALSE", False),
        ("True", True),
        ("nan", "nan"),
        ("inf", "inf"),
        ("-inf", "-inf"),
        ("1e999", "1e999"),
        ("1_000", "1_000"),
        ("0x10", "0x10"),
        ("adamw", "adamw"),
        ("", ""),
        ("٣", "٣"),
    ],
)
def test_coerce_value(text: str, expected: object) -> None:
    value = coerce_value(text)
    assert value == expected
    assert type(value) is type(expected)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_finite_floats_round_trip(number: float) -> None:
    assert parse_argv_params(["--x", repr(number)]) == {"x": number}


@pytest.mark.parametrize(
    "name",
    [
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "WANDB_API_KEY",
        "OPENAI_API_KEY",
        "DB_PASSWORD",
        "MYSQL_PWD",
        "GITHUB_TOKEN",
        "--api-key",
        "--api_key",
        "--apikey",
        "apiKey",
        "--token",
        "--password",
        "--passwd",
        "key",
        "ssh_key",
        "AUTH_HEADER",
        "google_application_credentials",
        "clientSecret",
        "--hf.token",
    ],
)
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "lr",
        "epochs",
        "key_frames",
        "num_keys",
        "keypoints",
        "monkey",
        "author",
        "tokenizer",
        "max_tokens",
        "num_tokens",
        "pad_token",
        "eos_token",
        "pad_token_id",
        "max_token_length",
        "PWD",
        "OLDPWD",
        "TOKENIZERS_PARALLELISM",
        "",
        "--",
    ],
)
def test_not_secret_names(name: str) -> None:
    assert not is_secret_name(name)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--api-key", "SECRET"], ["--api-key", REDACTED]),
        (["--api-key=SECRET"], ["--api-key=***"]),
        (["api_key=SECRET"], ["api_key=***"]),
        (["env", "HF_TOKEN=hf_x", "python"], ["env", "HF_TOKEN=***", "python"]),
        (["--token", "--lr", "0.1"], ["--token", "--lr", "0.1"]),
        (["--token", "--", "x"], ["--token", "--", "x"]),
        (["--", "--password", "p"], ["--", "--password", REDACTED]),
        (["--lr", "0.1", "--monkey", "m"], ["--lr", "0.1", "--monkey", "m"]),
        (["python", "train.py", "--token"], ["python", "train.py", "--token"]),
    ],
)
def test_redact_argv(argv: list[str], expected: list[str]) -> None:
    assert redact_argv(argv) == expected


def test_redact_argv_returns_a_copy() -> None:
    argv = ["--token", "t"]
    redact_argv(argv)
    assert argv == ["--token", "t"]


def test_redact_params_nested() -> None:
    params = {
        "lr": 0.1,
        "api_key": "sk-1",
        "wandb": {"project": "p", "WANDB_API_KEY": "k", "inner": {"password": "x"}},
        "hosts": [{"name": "a", "token": "t"}, "plain"],
        1: "int keys are kept",
    }
    assert redact_params(params) == {
        "lr": 0.1,
        "api_key": REDACTED,
        "wandb": {"project": "p", "WANDB_API_KEY": REDACTED, "inner": {"password": REDACTED}},
        "hosts": [{"name": "a", "token": REDACTED}, "plain"],
        1: "int keys are kept",
    }
    assert params["api_key"] == "sk-1"


def test_parsed_then_redacted() -> None:
    params = parse_argv_params(["--hf-token", "hf_abc", "--lr", "1e-4"])
    assert redact_params(params) == {"hf_token": REDACTED, "lr": 0.0001}
