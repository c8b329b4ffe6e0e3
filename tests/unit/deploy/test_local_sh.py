"""cluster/local.sh without starting anything: usage, and status/down on a cluster that is not up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from deploy.helpers import REPO_ROOT

LOCAL_SH = REPO_ROOT / "cluster" / "local.sh"


def run(*args: str, state: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TAIYI_LOCAL_DIR": str(state), "TAIYI_PYTHON": sys.executable}
    return subprocess.run([str(LOCAL_SH), *args], env=env, capture_output=True, text=True, timeout=60)


def test_usage_error(tmp_path: Path) -> None:
    result = run("start", state=tmp_path)
    assert result.returncode == 2 and "usage" in result.stderr


def test_status_and_down_when_nothing_runs(tmp_path: Path) -> None:
    status = run("status", state=tmp_path)
    assert status.returncode == 3, status.stdout + status.stderr
    assert "Ray head: stopped" in status.stdout and "S3 endpoint: stopped" in status.stdout
    assert run("down", state=tmp_path).returncode == 0
    assert run("down", state=tmp_path).returncode == 0


def test_stale_pid_files_are_not_trusted(tmp_path: Path) -> None:
    """A PID file whose process is gone (a reboot, a kill -9) reads as stopped, and down clears it."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / "ray-head.pid").write_text(f"{dead.pid}\n")
    assert run("status", state=tmp_path).returncode == 3
    assert run("down", state=tmp_path).returncode == 0
    assert not (tmp_path / "ray-head.pid").exists()
