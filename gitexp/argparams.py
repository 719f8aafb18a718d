"""Hyperparameters read from a program's argv, and keeping secrets out of them."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

REDACTED = "***"

_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_INT_RE = re.compile(r"[+-]?[0-9]+")
_FLOAT_RE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_WORD_RE = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")

_SECRET_WORDS = frozenset(
    {
        "secret",
        "secrets",
        "password",
        "passwords",
        "passwd",
        "passphrase",
        "credential",
        "credentials",
        "creds",
        "auth",
        "authorization",
        "apikey",
        "accesskey",
        "privatekey",
        "secretkey",
        "authtoken",
        "accesstoken",
    }
)
_SECRET_PAIRS = frozenset({("api", "key"), ("access", "key"), ("private", "key")})
# Names such as pad_token or eos_token hold a tokenizer's vocabulary entry, not a credential.
_SPECIAL_TOKEN_ROLES = frozenset({"pad", "bos", "eos", "unk", "mask", "sep", "cls"})


def is_number(text: str) -> bool:
    """Whether ``text`` is a finite decimal int or float such as ``3``, ``-0.1`` or ``1e-3``."""
    return _coerce_number(text) is not None


def _coerce_number(text: str) -> int | float | None:
    if _INT_RE.fullmatch(text):
        return int(text)
    if _FLOAT_RE.fullmatch(text):
        value = float(text)
        return value if math.isfinite(value) else None
    return None


def coerce_value(text: str) -> Any:
    """Type a value from the command line: int, finite float, bool, or the string itself."""
    number = _coerce_number(text)
    if number is not None:
        return number
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    return text


def _looks_like_flag(token: str) -> bool:
    return token.startswith("-") and len(token) > 1 and not is_number(token)


def _param_key(raw: str) -> str | None:
    """The key for a flag or ``k=v`` name, or None when it is not identifier-ish."""
    stripped = raw.lstrip("-+")
    if not _KEY_RE.fullmatch(stripped):
        return None
    return stripped.replace("-", "_")


def parse_argv_params(args: Sequence[str]) -> dict[str, Any]:
    """Hyperparameters from the arguments that follow the program.

    Recognised forms: ``--lr 0.1``, ``--lr=0.1``, ``-x 3``, ``lr=0.1`` (also Hydra's
    ``+lr=0.1`` and ``++lr=0.1``), and a bare ``--flag`` (followed by another flag, ``--`` or
    nothing), which becomes True. A token that parses as a number (``-0.1``, ``1e-3``) is a
    value, never a flag. Keys lose their leading dashes and have ``-`` replaced by ``_``
    (``--learning-rate`` → ``learning_rate``); a key must match
    ``[A-Za-z_][A-Za-z0-9_.-]*``, so ``data/x=1.csv`` or ``--1x`` are not params. Values are
    typed by :func:`coerce_value`. A later repeat of a key wins. Other positional arguments,
    and everything after a bare ``--``, are not params. A clustered short flag (``-vx``,
    ``-x3``) cannot be told apart from a long name and becomes ``{"vx": True}``.
    """
    params: dict[str, Any] = {}
    index = 0
    while index < len(args):
        token = args[index]
        index += 1
        if token == "--":
            break
        if _looks_like_flag(token):
            name, equals, value = token.partition("=")
            key = _param_key(name)
            if key is None:
                continue
            if equals:
                params[key] = coerce_value(value)
            elif index < len(args) and not _looks_like_flag(args[index]):
                params[key] = coerce_value(args[index])
                index += 1
            else:
                params[key] = True
        elif "=" in token:
            name, _, value = token.partition("=")
            key = _param_key(name)
            if key is not None:
                params[key] = coerce_value(value)
    return params


def _name_words(name: str) -> list[str]:
    words: list[str] = []
    for part in re.split(r"[^A-Za-z0-9]+", name):
        words.extend(word.lower() for word in _WORD_RE.findall(part) if not word.isdigit())
    return words


def is_secret_name(name: str) -> bool:
    """Whether a parameter or environment variable name looks like it holds a credential.

    The name is split into words at every character other than a letter or digit and at
    camelCase boundaries, lowercased, and digit-only words are dropped
    (``--apiKey2`` → ``api key``). It is secret when:

    - any word is one of: secret(s), password(s), passwd, passphrase, credential(s), creds,
      auth, authorization, apikey, accesskey, privatekey, secretkey, authtoken, accesstoken;
    - two adjacent words are ``api key``, ``access key`` or ``private key``
      (``AWS_ACCESS_KEY_ID``);
    - the last word is ``key`` (``key``, ``ssh_key``, ``--sort-key``);
    - the last word is ``token`` (``HF_TOKEN``, ``--token``), unless the word before it is a
      tokenizer's special-token role: pad, bos, eos, unk, mask, sep, cls (``pad_token``);
    - a word is ``pwd`` and the name has other words too (``DB_PWD``; not the shell's ``PWD``).

    Whole words only, so ``author``, ``monkey``, ``keypoints``, ``num_keys``, ``key_frames``,
    ``tokenizer``, ``max_tokens`` and ``pad_token_id`` are not secret.
    """
    words = _name_words(name)
    if not words:
        return False
    if any(word in _SECRET_WORDS for word in words):
        return True
    if any(pair in _SECRET_PAIRS for pair in itertools.pairwise(words)):
        return True
    last = words[-1]
    if last == "key":
        return True
    if last == "token":
        return len(words) == 1 or words[-2] not in _SPECIAL_TOKEN_ROLES
    return "pwd" in words and len(words) > 1


def redact_argv(argv: Sequence[str]) -> list[str]:
    """A copy of ``argv`` with the value of every secret-named argument replaced by ``***``.

    Handles ``--api-key VALUE``, ``--api-key=VALUE`` and ``api_key=VALUE`` (also
    ``HF_TOKEN=VALUE`` as passed to ``env``). Unlike :func:`parse_argv_params` it does not stop
    at ``--``: a secret after it is still a secret. A secret flag followed by any token that
    does not look like a flag has that token redacted, even if the flag was boolean. A value
    attached to a short flag (``-pVALUE``) cannot be recognised and is kept.
    """
    redacted: list[str] = []
    redact_next = False
    for token in argv:
        if redact_next and not _looks_like_flag(token) and token != "--":
            redacted.append(REDACTED)
            redact_next = False
            continue
        redact_next = False
        name, equals, _ = token.partition("=")
        if equals and is_secret_name(name):
            redacted.append(f"{name}={REDACTED}")
            continue
        if not equals and _looks_like_flag(token) and is_secret_name(token):
            redact_next = True
        redacted.append(token)
    return redacted


def redact_params(params: Mapping[Any, Any]) -> dict[Any, Any]:
    """A copy of ``params`` with the value of every secret-named key replaced by ``***``.

    Nested mappings, and mappings inside lists or tuples, are redacted too.
    """
    return {
        key: REDACTED if isinstance(key, str) and is_secret_name(key) else _redact_value(value)
        for key, value in params.items()
    }


def _redact_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return redact_params(value)
    if isinstance(value, list | tuple):
        return [_redact_value(item) for item in value]
    return value
