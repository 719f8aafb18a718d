"""Where a run ran: host, Python and packages, GPUs, and an allowlisted slice of the environment."""

from __future__ import annotations

import csv
import functools
import getpass
import json
import os
import platform
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psutil

from gitexp.argparams import is_secret_name, redact_text
from gitexp.probecache import PROBE_FILE, ProbeCache

PACKAGES_OF_INTEREST: tuple[str, ...] = (
    "gitexp",
    "numpy",
    "scipy",
    "pandas",
    "polars",
    "pyarrow",
    "torch",
    "torchvision",
    "torchaudio",
    "torchtext",
    "torchdata",
    "triton",
    "xformers",
    "flash-attn",
    "bitsandbytes",
    "lightning",
    "pytorch-lightning",
    "torchmetrics",
    "jax",
    "jaxlib",
    "flax",
    "optax",
    "equinox",
    "orbax-checkpoint",
    "tensorflow",
    "tensorflow-cpu",
    "tf-keras",
    "keras",
    "mlx",
    "scikit-learn",
    "xgboost",
    "lightgbm",
    "catboost",
    "statsmodels",
    "transformers",
    "datasets",
    "tokenizers",
    "sentencepiece",
    "tiktoken",
    "safetensors",
    "huggingface-hub",
    "accelerate",
    "deepspeed",
    "peft",
    "trl",
    "diffusers",
    "vllm",
    "timm",
    "einops",
    "onnx",
    "onnxruntime",
    "onnxruntime-gpu",
    "opencv-python",
    "opencv-python-headless",
    "pillow",
    "albumentations",
    "gymnasium",
    "stable-baselines3",
    "networkx",
    "torch-geometric",
    "spacy",
    "nltk",
    "hydra-core",
    "omegaconf",
    "matplotlib",
)

ENV_ALLOWLIST: tuple[str, ...] = (
    "CUDA_VISIBLE_DEVICES",
    "NVIDIA_VISIBLE_DEVICES",
    "PYTORCH_CUDA_ALLOC_CONF",
    "PYTORCH_ENABLE_MPS_FALLBACK",
    "CUBLAS_WORKSPACE_CONFIG",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "PYTHONHASHSEED",
    "PYTHONOPTIMIZE",
    "TF_CPP_MIN_LOG_LEVEL",
    "TF_DETERMINISTIC_OPS",
    "TF_FORCE_GPU_ALLOW_GROWTH",
    "XLA_FLAGS",
    "XLA_PYTHON_CLIENT_PREALLOCATE",
    "XLA_PYTHON_CLIENT_MEM_FRACTION",
    "JAX_PLATFORMS",
    "JAX_ENABLE_X64",
    "TOKENIZERS_PARALLELISM",
    "HF_HUB_OFFLINE",
    "HF_DATASETS_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "CONDA_DEFAULT_ENV",
    "VIRTUAL_ENV",
    "SLURM_JOB_ID",
    "SLURM_JOB_NAME",
    "SLURM_ARRAY_JOB_ID",
    "SLURM_ARRAY_TASK_ID",
    "SLURM_PROCID",
    "SLURM_LOCALID",
    "SLURM_NTASKS",
    "SLURM_JOB_NUM_NODES",
    "RANK",
    "LOCAL_RANK",
    "NODE_RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
)
"""Environment variables a record keeps (unless their name looks secret: `is_secret_name`)."""

ENV_ALLOWED_PREFIXES: tuple[str, ...] = ("CUDA_", "NCCL_", "TORCH_")
"""Every variable starting with one of these is kept too, with the same secret check."""

GPU_QUERY_FIELDS = "index,name,uuid,memory.total,driver_version"


class _BackgroundCommand:
    """A child process started at once and collected later; never raises."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._outcome: tuple[str | None, str | None] | None = None
        try:
            self._process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=dict(env) if env is not None else None,
            )
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            self._outcome = (None, f"cannot start {argv[0]}: {reason}")

    def output(self, timeout: float) -> tuple[str | None, str | None]:
        """Wait for the command; return ``(stdout, None)`` or ``(None, one-line error)``."""
        if self._outcome is None:
            self._outcome = self._collect(timeout)
        return self._outcome

    def _collect(self, timeout: float) -> tuple[str | None, str | None]:
        assert self._process is not None
        try:
            stdout, _ = self._process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.communicate()
            return None, f"timed out after {timeout:g} s"
        status = self._process.returncode
        if status < 0:
            return None, f"killed by signal {-status}"
        if status != 0:
            return None, f"exited with status {status}"
        return stdout.decode("utf-8", errors="replace"), None


class PythonProbe:
    """The probe of an interpreter, running in the background or answered from the cache."""

    def __init__(
        self,
        python: str,
        command: _BackgroundCommand | None,
        cached: dict[str, Any] | None = None,
        remember: Callable[[dict[str, Any], dict[str, Any]], None] | None = None,
    ) -> None:
        self._python = python
        self._command = command
        self._cached = cached
        self._remember = remember

    @property
    def from_cache(self) -> bool:
        """True when the answer is a stored one and no interpreter was started."""
        return self._cached is not None

    def result(self, timeout: float = 10.0) -> dict[str, Any]:
        """Wait for the probe and return what it found, or a record of why it failed."""
        if self._cached is not None:
            return {**self._cached, "packages": dict(self._cached["packages"])}
        assert self._command is not None
        stdout, error = self._command.output(timeout)
        if stdout is not None:
            found = _parse_probe_output(stdout)
            if found is not None:
                report = found.pop("cache", None)
                if self._remember is not None and isinstance(report, dict):
                    self._remember(found, report)
                    self._remember = None
                return found
            error = "the probe printed no JSON object"
        return {
            "executable": self._python,
            "version": None,
            "implementation": None,
            "packages": {},
            "error": error,
        }


def _parse_probe_output(stdout: str) -> dict[str, Any] | None:
    # A sitecustomize may print first; the probe's own line is the last one.
    lines = stdout.strip().splitlines()
    if not lines:
        return None
    try:
        found = json.loads(lines[-1])
    except ValueError:
        return None
    if not isinstance(found, dict) or not isinstance(found.get("packages"), dict):
        return None
    return found


def start_python_probe(
    python: str,
    packages: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cache: ProbeCache | None = None,
) -> PythonProbe:
    """Start probing ``python`` for its version and the installed versions of ``packages``.

    Returns at once; call :meth:`PythonProbe.result` to collect. ``env`` is the environment
    the probe runs in (default: this process's), so ``PYTHONPATH`` matches the run's. With a
    ``cache``, a still-valid stored answer is used instead of starting ``python``, and a new
    answer is stored when it is safe to reuse (:mod:`gitexp.probecache`).
    """
    key = cache.key(python, packages, os.environ if env is None else env) if cache else None
    if cache is not None and key is not None:
        cached = cache.lookup(key)
        if cached is not None:
            return PythonProbe(python, None, cached=cached)
    argv = [python, str(cache.probe_file if cache else PROBE_FILE), *packages]
    remember = None
    if cache is not None and key is not None:
        remember = functools.partial(cache.store, key, python)
    return PythonProbe(python, _BackgroundCommand(argv, env), remember=remember)


def host_info(pid: int) -> dict[str, Any]:
    """The host and the process ``pid``; ``pid_started_at`` tells a reused pid apart later.

    ``user`` is None when the user has no name; ``pid_started_at`` is None when ``pid`` does
    not exist.
    """
    try:
        user: str | None = getpass.getuser()
    except (KeyError, OSError):
        user = None
    try:
        started_at: float | None = psutil.Process(pid).create_time()
    except psutil.Error:
        started_at = None
    return {
        "hostname": socket.gethostname(),
        "user": user,
        "platform": platform.platform(),
        "pid": pid,
        "pid_started_at": started_at,
        "cpu_count": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
    }


class HostProbe:
    """:func:`host_info` computed on a thread: ``platform.platform()`` runs ``uname -p``."""

    def __init__(self, pid: int) -> None:
        self._info: dict[str, Any] | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(pid,), daemon=True)
        self._thread.start()

    def _run(self, pid: int) -> None:
        try:
            self._info = host_info(pid)
        except BaseException as exc:  # handed to the caller of result()
            self._error = exc

    def result(self) -> dict[str, Any]:
        """Wait for the thread; what :func:`host_info` returned (or raised)."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._info is not None
        return self._info


def start_host_probe(pid: int) -> HostProbe:
    """Start :func:`host_info` for ``pid`` in the background; returns at once."""
    return HostProbe(pid)


class GpuProbe:
    """The ``nvidia-smi`` query, running in the background (or nothing to run)."""

    def __init__(self, command: _BackgroundCommand | None) -> None:
        self._command = command

    def result(self, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The GPUs found, or ``[]`` without ``nvidia-smi`` or on any failure."""
        if self._command is None:
            return []
        stdout, _ = self._command.output(timeout)
        return parse_nvidia_smi_csv(stdout) if stdout is not None else []


def start_gpu_probe(*, search_path: str | None = None) -> GpuProbe:
    """Start ``nvidia-smi`` if it is on ``search_path`` (default: ``PATH``); returns at once."""
    nvidia_smi = shutil.which("nvidia-smi", path=search_path)
    if nvidia_smi is None:
        return GpuProbe(None)
    argv = [nvidia_smi, f"--query-gpu={GPU_QUERY_FIELDS}", "--format=csv,noheader,nounits"]
    return GpuProbe(_BackgroundCommand(argv))


def parse_nvidia_smi_csv(text: str) -> list[dict[str, Any]]:
    """Parse ``nvidia-smi --query-gpu=<GPU_QUERY_FIELDS> --format=csv,noheader,nounits``.

    Malformed lines are skipped; a memory size nvidia-smi cannot report is None.
    """
    gpus: list[dict[str, Any]] = []
    for row in csv.reader(text.splitlines(), skipinitialspace=True):
        if len(row) != 5:
            continue
        index, name, uuid, memory, driver = (field.strip() for field in row)
        if not index.isdecimal():
            continue
        gpus.append(
            {
                "index": int(index),
                "name": name,
                "uuid": uuid,
                "memory_total_mib": int(memory) if memory.isdecimal() else None,
                "driver_version": driver,
            }
        )
    return gpus


def recorded_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables of ``environ`` a record keeps, sorted by name.

    A name is kept when it is in :data:`ENV_ALLOWLIST` or starts with one of
    :data:`ENV_ALLOWED_PREFIXES`, and :func:`gitexp.argparams.is_secret_name` is false for it.
    Its value is kept with the secrets inside it redacted (:func:`gitexp.argparams.redact_text`:
    ``XLA_FLAGS=--token=***``, ``MASTER_ADDR=https://user:***@host``).
    """
    return {
        name: redact_text(environ[name])
        for name in sorted(environ)
        if (name in ENV_ALLOWLIST or name.startswith(ENV_ALLOWED_PREFIXES))
        and not is_secret_name(name)
    }
