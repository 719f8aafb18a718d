"""Hyperparameters read from a program's argv, and keeping secrets out of them."""

from __future__ import annotations

import functools
import itertools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

REDACTED = "***"
MIN_SECRET_VALUE_LENGTH = 4
"""Shorter values of secret-named arguments and variables are redacted by name only: replacing
every `1` or `yes` in a record would garble it and protect nothing."""

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
        "bearer",
        "cookie",
        "cookies",
    }
)
_SECRET_PAIRS = frozenset(
    {("api", "key"), ("access", "key"), ("private", "key"), ("session", "id")}
)
# A name whose last word ends with one of these is secret: DBPASSWORD, TORCH_PW, --ssh-pass,
# HFTOKEN, oauth, --session.
_SECRET_SUFFIXES = (
    "pass",
    "passwd",
    "pw",
    "password",
    "passwords",
    "secret",
    "secrets",
    "token",
    "apikey",
    "accesskey",
    "privatekey",
    "secretkey",
    "bearer",
    "credential",
    "credentials",
    "auth",
    "cookie",
    "cookies",
    "session",
)
# Every rule below needs one of these inside the name: most names are ruled out at once.
_SECRET_HINT_RE = re.compile(r"pass|pw|secret|token|key|bearer|cred|auth|cookie|session", re.I)
# Desktop sessions set these to the session's name ("ubuntu"), which is no secret and would
# otherwise be blanked out of every string of every record made from that desktop.
_PUBLIC_NAMES = frozenset({"desktop_session", "gdmsession"})
# `--token --lr 0.1`: a long option after a secret flag is the next option, not its value.
_LONG_OPTION_RE = re.compile(r"--[A-Za-z][A-Za-z0-9_.-]*")
# The user information of a URL: `https://user:password@host`, `https://token@host`.
_URL_USERINFO_RE = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<user>[^\s/?#@:]*)(?::(?P<password>[^\s/?#@]*))?@"
)
_QUOTES = "'\"`"
_AUTH_SCHEMES = ("bearer", "basic", "token")
# `--token=x`, `user:pw@host`, `--token x`: a value without these holds no secret form.
_MAY_HOLD_SECRETS_RE = re.compile(r"[=@\s]")
_known_secret_values: set[str] = set()
_pending_environments: list[Mapping[str, str]] = []
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
      auth, authorization, apikey, accesskey, privatekey, secretkey, authtoken, accesstoken,
      bearer, cookie(s);
    - two adjacent words are ``api key``, ``access key``, ``private key`` or ``session id``
      (``AWS_ACCESS_KEY_ID``);
    - the last word is ``key`` (``key``, ``ssh_key``, ``--sort-key``);
    - the last word ends with pass, passwd, pw, password(s), secret(s), token, apikey,
      accesskey, privatekey, secretkey, bearer, credential(s), auth, cookie(s) or session
      (``DBPASSWORD``, ``TORCH_PW``, ``--ssh-pass``, ``HF_TOKEN``, ``oauth``) — except
      ``token`` after a tokenizer's special-token role: pad, bos, eos, unk, mask, sep, cls
      (``pad_token``);
    - a word is ``pwd`` and the name has other words too (``DB_PWD``; not the shell's ``PWD``).

    ``DESKTOP_SESSION`` and ``GDMSESSION`` name a desktop, not a credential. Whole words
    otherwise, so ``author``, ``monkey``, ``keypoints``, ``num_keys``, ``key_frames``,
    ``tokenizer``, ``max_tokens`` and ``pad_token_id`` are not secret.
    """
    if not _SECRET_HINT_RE.search(name):
        return False
    words = _name_words(name)
    if not words or "_".join(words) in _PUBLIC_NAMES:
        return False
    if any(word in _SECRET_WORDS for word in words):
        return True
    if any(pair in _SECRET_PAIRS for pair in itertools.pairwise(words)):
        return True
    last = words[-1]
    if last == "key":
        return True
    if last == "token" and len(words) > 1 and words[-2] in _SPECIAL_TOKEN_ROLES:
        return False
    if last.endswith(_SECRET_SUFFIXES):
        return True
    return "pwd" in words and len(words) > 1


def redact_argv(argv: Sequence[str]) -> list[str]:
    """A copy of ``argv`` with every secret value in it replaced by ``***``.

    Handles ``--api-key VALUE``, ``--api-key=VALUE`` and ``api_key=VALUE`` (also
    ``HF_TOKEN=VALUE`` as passed to ``env``), credentials inside URLs
    (``https://user:***@host``, ``https://***@host``) and, inside an argument that holds
    several words (``bash -c "train --token x"``, ``XLA_FLAGS=--token=x``), each of those
    forms again. Unlike :func:`parse_argv_params` it does not stop at ``--``: a secret after it
    is still a secret. A secret flag has its next token redacted whatever it looks like
    (``--token -abc``), unless that token is ``--`` or a long option (``--lr``). A value
    attached to a short flag (``-pVALUE``) cannot be recognised and is kept.
    """
    return _redact_tokens(argv)[0]


def redact_text(text: str) -> str:
    """``text`` with the secret values in its words redacted as :func:`redact_argv` does.

    For strings that hold options, such as an environment variable's value
    (``XLA_FLAGS=--xla_dump_to=/tmp --token=x``); the spaces between words are kept.
    """
    return _redact_words(text)[0]


def secret_values(argv: Sequence[str], environ: Mapping[str, str]) -> set[str]:
    """The secret values in ``argv`` and ``environ``, as they appear there.

    Those :func:`redact_argv` and :func:`redact_text` would replace, and the value of every
    environment variable whose name looks secret (:func:`is_secret_name`). Values shorter
    than :data:`MIN_SECRET_VALUE_LENGTH` are left out.
    """
    found = set(_redact_tokens(argv)[1])
    for name, value in environ.items():
        if is_secret_name(name):
            found.add(value)
        elif _may_hold_secrets(value):
            found.update(_redact_words(value)[1])
    return {value for value in found if len(value) >= MIN_SECRET_VALUE_LENGTH}


def _may_hold_secrets(text: str) -> bool:
    # Most variables (PATH, LANG, ...) hold no option and no URL: skip the word-by-word scan,
    # which would cost every command a few milliseconds.
    return _MAY_HOLD_SECRETS_RE.search(text) is not None


def remember_secrets(values: Iterable[str]) -> None:
    """Add to the secret values this process keeps out of everything it writes to git."""
    _known_secret_values.update(
        value for value in values if len(value) >= MIN_SECRET_VALUE_LENGTH and value != REDACTED
    )


def remember_environment_secrets(environ: Mapping[str, str]) -> None:
    """Remember the secret values in ``environ`` (:func:`secret_values`) when first needed.

    Commands that write nothing never pay for looking through the environment.
    """
    _pending_environments.append(environ)


def redact_remembered_secrets(value: Any) -> Any:
    """``value`` with every remembered secret replaced by ``***`` in each string inside it.

    Strings, dict keys and the items of lists and tuples are searched, recursively; other
    values are returned as they are. Returns ``value`` itself when no secret is remembered.
    """
    while _pending_environments:
        remember_secrets(secret_values((), _pending_environments.pop()))
    if not _known_secret_values:
        return value
    return _replace_in(value, _secrets_pattern(frozenset(_known_secret_values)))


@functools.lru_cache(maxsize=8)
def _secrets_pattern(values: frozenset[str]) -> re.Pattern[str]:
    # Longest first: a secret that contains another is replaced whole.
    return re.compile("|".join(re.escape(value) for value in sorted(values, key=len, reverse=True)))


def _replace_in(value: Any, pattern: re.Pattern[str]) -> Any:
    if isinstance(value, str):
        return pattern.sub(REDACTED, value)
    if isinstance(value, Mapping):
        return {
            _replace_in(key, pattern): _replace_in(item, pattern) for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_replace_in(item, pattern) for item in value]
    return value


def _redact_tokens(tokens: Sequence[str]) -> tuple[list[str], list[str]]:
    """(``tokens`` with their secrets redacted, the secret values found in them)."""
    redacted: list[str] = []
    found: list[str] = []
    redact_next = False
    for token in tokens:
        if redact_next and token != "--" and not _LONG_OPTION_RE.fullmatch(token):
            redacted.append(REDACTED)
            bare = token.strip(_QUOTES)
            # `Authorization: Bearer TOKEN`: the scheme's name is followed by the secret (and
            # is no secret itself: "Bearer" would be blanked out of every record).
            redact_next = bare.lower() in _AUTH_SCHEMES
            if not redact_next:
                found.append(bare)
            continue
        name, equals, value = token.partition("=")
        if equals and is_secret_name(name):
            redacted.append(f"{name}={REDACTED}")
            found.append(value.strip(_QUOTES))
            redact_next = False
            continue
        redact_next = _names_next_value(token)
        clean, inner = _redact_words(token) if any(c.isspace() for c in token) else (token, [])
        clean, credentials = _redact_urls(clean)
        redacted.append(clean)
        found.extend(inner + credentials)
    return redacted, found


def _names_next_value(token: str) -> bool:
    """Whether ``token`` says that the next one is a secret: ``--token``, ``Authorization:``."""
    bare = token.strip(_QUOTES)
    if "=" in bare:
        return False
    if _looks_like_flag(bare):
        return is_secret_name(bare)
    return bare.lower() == "bearer" or (bare.endswith(":") and is_secret_name(bare))


def _redact_words(text: str) -> tuple[str, list[str]]:
    words = list(re.finditer(r"\S+", text))
    clean, found = _redact_tokens([word.group() for word in words])
    pieces: list[str] = []
    end = 0
    for word, replacement in zip(words, clean, strict=True):
        pieces.append(text[end : word.start()])
        pieces.append(replacement)
        end = word.end()
    pieces.append(text[end:])
    return "".join(pieces), found


def _redact_urls(text: str) -> tuple[str, list[str]]:
    found: list[str] = []

    def hide(match: re.Match[str]) -> str:
        scheme, user, password = match["scheme"], match["user"], match["password"]
        if password is not None:
            found.append(password)
            return f"{scheme}://{user}:{REDACTED}@"
        if user and scheme.lower() in ("http", "https"):
            found.append(user)  # `https://TOKEN@github.com`: a token in the user's place
            return f"{scheme}://{REDACTED}@"
        return match.group()

    return _URL_USERINFO_RE.sub(hide, text), found


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
