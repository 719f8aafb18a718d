"""Secrets never leave: no value gitexp redacts from the command, the params or the environment
reaches anything it writes to git (an error's message and traceback, a message, an annotation),
and so nothing `git exp push` publishes.

The end-to-end tests look with git itself: `git notes show`, `git log -p`, every object of the
repository and of the bare remote a push went to.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import git
from helpers_e2e import fsck, git_exp, only_run, user_env, write_program

from gitexp.argparams import (
    REDACTED,
    is_secret_name,
    parse_argv_params,
    redact_argv,
    redact_remembered_secrets,
    redact_text,
    remember_secrets,
    secret_values,
)
from gitexp.environment import recorded_env
from gitexp.record import dump_record, load_record, new_record

ENV_SECRETS = {
    "HF_TOKEN": "hf_env_token_5c7e91",
    "DBPASSWORD": "db-env-password-2f8a",
}
API_KEY = "cli-api-key-93b1d0"
DASH_TOKEN = "-dash-token-4e2a"  # a value that begins with `-`
XLA_TOKEN = "xla-flag-token-77c3"
URL_PASSWORD = "url-password-61d9"
TORCH_PASSWORD = "torch-pw-0a5b"
ALL_SECRETS = [*ENV_SECRETS.values(), API_KEY, DASH_TOKEN, XLA_TOKEN, URL_PASSWORD, TORCH_PASSWORD]

# Fails with the token and the key in the exception's message, hence in its traceback too.
FAILING_PROGRAM = """
import os, sys
api_key = sys.argv[sys.argv.index("--api-key") + 1]
raise RuntimeError("login refused for " + os.environ["HF_TOKEN"] + " and " + api_key)
"""


def _all_objects(repo: Path) -> str:
    """Every object in `repo`, with its content, as `git cat-file` prints them."""
    found = subprocess.run(
        ["git", "cat-file", "--batch-all-objects", "--batch"],
        cwd=repo,
        capture_output=True,
        check=True,
    )
    return found.stdout.decode(errors="replace")


def _assert_no_secret(views: dict[str, str]) -> None:
    for where, text in views.items():
        for secret in ALL_SECRETS:
            assert secret not in text, f"{secret} leaked into {where}"


def test_no_secret_in_an_error_message_annotation_or_push(repo_dir: Path, tmp_path: Path) -> None:
    write_program(repo_dir / "train.py", FAILING_PROGRAM)
    git(repo_dir, "add", "train.py")
    git(repo_dir, "commit", "-q", "-m", "train")
    env = user_env(
        {
            **ENV_SECRETS,
            "XLA_FLAGS": f"--xla_force_host_platform_device_count=2 --token={XLA_TOKEN}",
            "MASTER_ADDR": f"https://trainer:{URL_PASSWORD}@example.com/rendezvous",
            "TORCH_PW": TORCH_PASSWORD,
        }
    )
    argv = ["--api-key", API_KEY, "--token", DASH_TOKEN, "--lr", "0.1"]
    message = f"run with {ENV_SECRETS['HF_TOKEN']}"
    result = git_exp(
        repo_dir, "run", "-m", message, "--", sys.executable, "train.py", *argv, env=env
    )
    assert result.returncode == 1, result.stderr
    assert ENV_SECRETS["HF_TOKEN"] in result.stderr  # the program's own traceback, as printed
    # A later command knows the secrets of its own environment (not the run's argv).
    annotation = f"retry with {ENV_SECRETS['DBPASSWORD']}"
    noted = git_exp(repo_dir, "note", "@", "--append", annotation, env=env)
    assert noted.returncode == 0, noted.stderr

    _, commit, record = only_run(repo_dir)
    assert record["error"]["type"] == "RuntimeError"
    assert record["error"]["message"] == f"login refused for {REDACTED} and {REDACTED}"
    assert f"RuntimeError: login refused for {REDACTED}" in record["error"]["traceback"]
    assert record["message"] == f"run with {REDACTED}"
    assert record["params"]["lr"] == 0.1 and record["params"]["token"] == REDACTED
    assert record["env"]["XLA_FLAGS"].endswith(f"--token={REDACTED}")

    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(repo_dir, "remote", "add", "origin", str(bare))
    pushed = git_exp(repo_dir, "push", "origin", env=env)
    assert pushed.returncode == 0, pushed.stderr
    views = {
        "git notes show": git(repo_dir, "notes", "--ref", "experiments", "show", commit),
        "git log -p refs/notes/experiments": git(repo_dir, "log", "-p", "refs/notes/experiments"),
        "git log --all -p": git(repo_dir, "log", "--all", "-p"),
        "every object here": _all_objects(repo_dir),
        "every object of the remote": _all_objects(bare),
        "git log --all -p on the remote": git(bare, "log", "--all", "-p"),
    }
    _assert_no_secret(views)
    remote_refs = git(bare, "for-each-ref", "--format=%(refname)").split()
    for secret in ALL_SECRETS:
        grep = ["git", "grep", "-F", "-e", secret, *remote_refs]
        found = subprocess.run(grep, cwd=bare, capture_output=True, text=True, check=False)
        assert found.returncode == 1, f"{secret} is on the remote:\n{found.stdout}"
    fsck(repo_dir)


# Forms the naming rule gained: suffix forms of every secret word, and whole words that
# were not secret before (each was recorded as typed by earlier versions).
NEW_SECRET_NAMES = [
    "--ssh-pass",
    "DBPASS",
    "DBPASSWD",
    "TORCH_PW",
    "--pw",
    "DBPW",
    "DBPASSWORD",
    "APPSECRET",
    "GHTOKEN",
    "OPENAIAPIKEY",
    "MYACCESSKEY",
    "SSHPRIVATEKEY",
    "--bearer",
    "HTTPBEARER",
    "GCPCREDENTIAL",
    "GCPCREDENTIALS",
    "--oauth",
    "--cookie",
    "SITE_COOKIES",
    "--cookie-jar",
    "SESSION",
    "--session-id",
    "USERSESSION",
]


@pytest.mark.parametrize("name", NEW_SECRET_NAMES)
def test_secret_name_forms(name: str) -> None:
    assert is_secret_name(name)
    assert is_secret_name(name.lower()) and is_secret_name(name.upper())


@pytest.mark.parametrize("name", ["DESKTOP_SESSION", "GDMSESSION", "passes", "num_passes"])
def test_names_that_stay_public(name: str) -> None:
    assert not is_secret_name(name)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--token", "-abc"], ["--token", REDACTED]),
        (["--ssh-pass", "-p4ss"], ["--ssh-pass", REDACTED]),
        (
            ["git", "clone", "https://me:hunter22@example.com/r.git"],
            ["git", "clone", f"https://me:{REDACTED}@example.com/r.git"],
        ),
        (["--url=https://ghp_abcdef@github.com/x"], [f"--url=https://{REDACTED}@github.com/x"]),
        (["ssh://git@example.com/r.git"], ["ssh://git@example.com/r.git"]),
        (
            ["env", "XLA_FLAGS=--xla_a=1 --token=abcd", "python"],
            ["env", f"XLA_FLAGS=--xla_a=1 --token={REDACTED}", "python"],
        ),
        (
            ["bash", "-c", "train --api-key abcd  --lr 1"],
            ["bash", "-c", f"train --api-key {REDACTED}  --lr 1"],
        ),
        (
            ["curl", "-H", "Authorization: Bearer abcd"],
            ["curl", "-H", f"Authorization: {REDACTED} {REDACTED}"],
        ),
    ],
)
def test_redact_argv_forms(argv: list[str], expected: list[str]) -> None:
    assert redact_argv(argv) == expected


def test_secret_values_of_an_authorization_header() -> None:
    argv = ["curl", "-H", "Authorization: Bearer s3cr3t-t0ken", "-u", "x"]
    assert secret_values(argv, {}) == {"s3cr3t-t0ken"}


def test_a_value_that_begins_with_a_dash_is_no_param_name() -> None:
    params = parse_argv_params(redact_argv(["--token", "-abcdef", "--lr", "1"]))
    assert params == {"token": REDACTED, "lr": 1}


def test_recorded_env_redacts_inside_values() -> None:
    environ = {
        "XLA_FLAGS": "--xla_dump_to=/tmp/x  --token=abcd",
        "MASTER_ADDR": "https://user:p4ssword@host:29500",
        "TORCH_PW": "hunter22",
        "TORCH_HOME": "/data/torch",
    }
    assert recorded_env(environ) == {
        "MASTER_ADDR": f"https://user:{REDACTED}@host:29500",
        "TORCH_HOME": "/data/torch",
        "XLA_FLAGS": f"--xla_dump_to=/tmp/x  --token={REDACTED}",
    }
    assert redact_text("a  b\tc") == "a  b\tc"


def test_secret_values_come_from_argv_and_every_secret_variable() -> None:
    found = secret_values(
        ["train.py", "--api-key", "k3y-value", "--token", "-t0ken", "--lr", "1"],
        {
            "HF_TOKEN": "hf_value",
            "XLA_FLAGS": "--token=xla-value",
            "PROXY": "http://u:proxy-pw@h",
            "PATH": "/usr/bin",
            "SHORT_TOKEN": "abc",
        },
    )
    assert found == {"k3y-value", "-t0ken", "hf_value", "xla-value", "proxy-pw"}


def test_every_field_of_a_written_record_is_cleared_of_remembered_secrets() -> None:
    secret = "remembered-secret-d41f"
    remember_secrets([secret])
    record = new_record(
        id="train/20261204.001.abcd",
        name="train",
        commit="0" * 40,
        message=f"uses {secret}",
        annotations=[{"at": "now", "text": f"key {secret}"}],
        error={"type": "E", "message": secret, "traceback": f"E: {secret}\n"},
        problems=[f"skipped {secret}.bin: too large"],
        params={secret: 1},
    )
    written = dump_record(record)
    assert secret.encode() not in written
    loaded = load_record(written)
    assert loaded["error"]["message"] == REDACTED
    assert loaded["problems"] == [f"skipped {REDACTED}.bin: too large"]
    assert loaded["params"] == {REDACTED: 1}
    assert (loaded["id"], loaded["commit"]) == (record["id"], record["commit"])
    assert record["message"] == f"uses {secret}"  # the caller's copy is not changed
    assert redact_remembered_secrets(["a", secret]) == ["a", REDACTED]
