"""Credentials live only in the process environment: never in Ray's runtime_env, session logs or job
metadata, run dirs or a job's output. Ray writes a job's runtime_env (env_vars included) in plain text
into its session logs, so a secret put there leaks; workers must read it from their own environment
(inherited from the node: Kubernetes envFrom secrets, instance roles, the local cluster's env file)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.integration.helpers import REPO_ROOT, s3_root

pytestmark = pytest.mark.integration


def files_containing(folder: Path, needle: bytes) -> list[str]:
    found = []
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                if needle in path.read_bytes():
                    found.append(str(path))
            except OSError:
                continue
    return found


def test_a_bare_job_leaves_its_secret_nowhere(s3_endpoint: str, shared_dir: Path) -> None:
    """prepare_data on the S3 endpoint (its Ray Data workers read and write s3://), started bare with
    its own local Ray cluster whose session dir is under a fresh RAY_TMPDIR."""
    secret = f"taiyi-secret-{uuid.uuid4().hex}"
    ray_tmp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    root = s3_root("credentials")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("RAY_", "PYTEST")) and key != "PYTHONPATH"
    }
    env.update(
        {
            "AWS_SECRET_ACCESS_KEY": secret,
            "RAY_TMPDIR": str(ray_tmp),
            "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    command = [
        sys.executable,
        "jobs/prepare_data.py",
        "--config",
        "configs/tests.yaml",
        f"--set=storage.root={root}",
        f"--set=model.tokenizer={shared_dir / 'tokenizers' / 'qwen2'}",
        f"--run-dir={root}/runs/data",
    ]
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert '"shard_sets"' in done.stdout.strip().splitlines()[-1]  # it did write shards to S3
    assert secret not in done.stdout and secret not in done.stderr
    sessions = list(ray_tmp.rglob("session_*"))
    assert sessions, f"no Ray session under {ray_tmp}: RAY_TMPDIR was not used"
    leaked = files_containing(ray_tmp, secret.encode())
    shutil.rmtree(ray_tmp, ignore_errors=True)
    assert leaked == []
    assert (
        files_containing(REPO_ROOT / ".cache", secret.encode()) == []
        if (REPO_ROOT / ".cache").is_dir()
        else True
    )
