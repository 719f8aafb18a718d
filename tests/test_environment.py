"""The environment probes, run for real against this interpreter and this host."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import platform
import sys
import time
from pathlib import Path

import psutil
import pytest

from gitexp.argparams import is_secret_name
from gitexp.environment import (
    ENV_ALLOWED_PREFIXES,
    ENV_ALLOWLIST,
    PACKAGES_OF_INTEREST,
    host_info,
    parse_nvidia_smi_csv,
    recorded_env,
    start_gpu_probe,
    start_host_probe,
    start_python_probe,
)
from gitexp.probecache import PROBE_FILE

NVIDIA_SMI_SAMPLE = """\
0, NVIDIA A100-SXM4-80GB, GPU-5a3f1c2e-8b7d-4e6f-9a1b-2c3d4e5f6a7b, 81920, 535.104.05
1, NVIDIA GeForce RTX 4090, GPU-0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b, [N/A], 535.104.05
No devices were found
"""


def test_probe_reports_interpreter_and_requested_packages() -> None:
    probe = start_python_probe(sys.executable, ["pytest", "no-such-package-gitexp-test"])
    found = probe.result()
    assert found["version"] == platform.python_version()
    assert found["implementation"] == platform.python_implementation()
    assert Path(found["executable"]).exists()
    assert found["packages"] == {"pytest": importlib.metadata.version("pytest")}
    assert "error" not in found


def test_probe_normalizes_dash_and_underscore() -> None:
    found = start_python_probe(sys.executable, ["typing_extensions", "typing-extensions"]).result()
    version = importlib.metadata.version("typing_extensions")
    assert found["packages"] == {"typing_extensions": version, "typing-extensions": version}


def test_probe_ignores_modules_in_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "json.py").write_text("raise SystemExit(3)\n")
    monkeypatch.chdir(tmp_path)
    found = start_python_probe(sys.executable, ["pytest"]).result()
    assert found["packages"] == {"pytest": importlib.metadata.version("pytest")}


def test_probe_of_missing_interpreter_returns_error(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-python")
    found = start_python_probe(missing, ["pytest"]).result()
    assert found["executable"] == missing
    assert found["version"] is None
    assert found["packages"] == {}
    assert found["error"].startswith(f"cannot start {missing}:")
    assert "\n" not in found["error"]


def test_probe_of_failing_interpreter_returns_error() -> None:
    found = start_python_probe("false", []).result()
    assert found["error"] == "exited with status 1"


def test_probe_of_silent_interpreter_returns_error() -> None:
    found = start_python_probe("true", []).result()
    assert found["error"] == "the probe printed no JSON object"


def test_probe_timeout_kills_and_returns_error(tmp_path: Path) -> None:
    slow = tmp_path / "slow-python"
    slow.write_text("#!/bin/sh\nexec sleep 30\n")
    slow.chmod(0o755)
    probe = start_python_probe(str(slow), [])
    started = time.monotonic()
    found = probe.result(timeout=0.2)
    assert time.monotonic() - started < 5
    assert found["error"] == "timed out after 0.2 s"
    assert probe.result()["error"] == found["error"]


def test_probe_uses_given_environment(tmp_path: Path) -> None:
    (tmp_path / "fake_dist-1.2.3.dist-info").mkdir()
    (tmp_path / "fake_dist-1.2.3.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fake-dist\nVersion: 1.2.3\n"
    )
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(tmp_path)}
    found = start_python_probe(sys.executable, ["fake-dist"], env=env).result()
    assert found["packages"] == {"fake-dist": "1.2.3"}


def test_probe_program_is_python_38_stdlib_only() -> None:
    tree = ast.parse(PROBE_FILE.read_text(), feature_version=(3, 8))
    imported = {
        name.split(".")[0]
        for node in ast.walk(tree)
        for name in (
            [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom)
            else []
        )
    }
    assert imported <= set(sys.stdlib_module_names)


def test_packages_of_interest_are_unique_and_include_the_basics() -> None:
    assert len(set(PACKAGES_OF_INTEREST)) == len(PACKAGES_OF_INTEREST)
    assert {"torch", "numpy", "jax", "tensorflow", "scikit-learn", "transformers"} <= set(
        PACKAGES_OF_INTEREST
    )


def test_host_info_describes_this_process() -> None:
    info = host_info(os.getpid())
    assert info["pid"] == os.getpid()
    assert info["pid_started_at"] == psutil.Process(os.getpid()).create_time()
    assert isinstance(info["pid_started_at"], float)
    assert info["cpu_count"] == os.cpu_count()
    assert info["memory_bytes"] == psutil.virtual_memory().total
    assert info["hostname"]
    assert info["platform"] == platform.platform()


def test_host_probe_in_the_background_is_host_info() -> None:
    assert start_host_probe(os.getpid()).result() == host_info(os.getpid())
    process = psutil.Popen(["true"])
    process.wait()
    assert start_host_probe(process.pid).result()["pid_started_at"] is None


def test_host_info_of_a_finished_process() -> None:
    process = psutil.Popen(["true"])
    process.wait()
    assert host_info(process.pid)["pid_started_at"] is None


def test_parse_nvidia_smi_sample() -> None:
    assert parse_nvidia_smi_csv(NVIDIA_SMI_SAMPLE) == [
        {
            "index": 0,
            "name": "NVIDIA A100-SXM4-80GB",
            "uuid": "GPU-5a3f1c2e-8b7d-4e6f-9a1b-2c3d4e5f6a7b",
            "memory_total_mib": 81920,
            "driver_version": "535.104.05",
        },
        {
            "index": 1,
            "name": "NVIDIA GeForce RTX 4090",
            "uuid": "GPU-0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b",
            "memory_total_mib": None,
            "driver_version": "535.104.05",
        },
    ]
    assert parse_nvidia_smi_csv("") == []


def test_gpu_probe_without_nvidia_smi(tmp_path: Path) -> None:
    assert start_gpu_probe(search_path=str(tmp_path)).result() == []


def test_gpu_probe_with_failing_nvidia_smi(tmp_path: Path) -> None:
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho '0, Broken, GPU-x, 1, 1'\nexit 9\n")
    fake.chmod(0o755)
    assert start_gpu_probe(search_path=str(tmp_path)).result() == []


def test_gpu_probe_runs_nvidia_smi_with_the_query(tmp_path: Path) -> None:
    fake = tmp_path / "nvidia-smi"
    fake.write_text(
        "#!/bin/sh\n"
        '[ "$1" = "--query-gpu=index,name,uuid,memory.total,driver_version" ] || exit 2\n'
        '[ "$2" = "--format=csv,noheader,nounits" ] || exit 2\n'
        "echo '0, Tesla T4, GPU-abc, 15360, 550.54.15'\n"
    )
    fake.chmod(0o755)
    assert start_gpu_probe(search_path=str(tmp_path)).result() == [
        {
            "index": 0,
            "name": "Tesla T4",
            "uuid": "GPU-abc",
            "memory_total_mib": 15360,
            "driver_version": "550.54.15",
        }
    ]


def test_recorded_env_keeps_only_allowlisted_names() -> None:
    environ = {
        "CUDA_VISIBLE_DEVICES": "0,1",
        "NCCL_DEBUG": "INFO",
        "TORCH_HOME": "/cache",
        "OMP_NUM_THREADS": "4",
        "HOME": "/home/u",
        "PATH": "/bin",
        "HF_TOKEN": "hf_secret",
        "CUDA_TOKEN": "leak",
        "TORCH_HUB_API_KEY": "leak",
        "NCCL_PASSWORD": "leak",
        "cuda_visible_devices": "lowercase is a different variable",
    }
    assert recorded_env(environ) == {
        "CUDA_VISIBLE_DEVICES": "0,1",
        "NCCL_DEBUG": "INFO",
        "OMP_NUM_THREADS": "4",
        "TORCH_HOME": "/cache",
    }


def test_allowlist_has_no_secret_looking_names() -> None:
    assert not [name for name in ENV_ALLOWLIST if is_secret_name(name)]
    assert not [p for p in ENV_ALLOWED_PREFIXES if is_secret_name(p)]
