"""A run started without a terminal (a batch job) behaves as one started from a shell."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

from helpers_e2e import BIN_DIR, git_exp, user_env, wait_for, write_program


def test_batch_job_without_terminal_records_and_forwards_sigterm(repo_dir: Path) -> None:
    write_program(
        repo_dir / "job.py",
        "import gitexp, signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *a: (print('saving', flush=True), sys.exit(3)))\n"
        "gitexp.log(step=1, loss=0.5)\n"
        "gitexp.flush()\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n",
    )
    # git-exp itself (as a job script would call it): through `git exp`, git re-raises a
    # SIGTERM on itself after forwarding it, so its own exit status would be 143.
    process = subprocess.Popen(
        [str(BIN_DIR / "git-exp"), "run", "job.py"],
        cwd=repo_dir,
        env=user_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # no controlling terminal, like a SLURM or cron job
    )
    [running] = wait_for(
        lambda: [
            r for r in json.loads(git_exp(repo_dir, "log", "--json").stdout) if r.get("run_dir")
        ]
    )
    run_dir = Path(running["run_dir"])
    log = run_dir / "output.log"
    wait_for(lambda: log.exists() and "ready" in log.read_text())
    process.send_signal(signal.SIGTERM)  # what a scheduler sends before the time limit
    assert process.wait(timeout=30) == 3
    [record] = json.loads(git_exp(repo_dir, "log", "--json").stdout)
    assert record["status"] == "interrupted"
    assert record["interrupted_by"] == signal.SIGTERM
    assert record["exit_code"] == 3
    assert record["metrics"]["loss"]["count"] == 1
    assert "saving" in (run_dir / "output.log").read_text()
