"""`cluster/local.sh up` -> `ray job submit` of data preparation and stage 1 -> `cluster/local.sh down`.

The real thing end to end: a Ray head started by the script (job server on 127.0.0.1), moto's S3 server,
the repository uploaded as the job's working dir, the demo config with the storage root in S3, and the
job's result read back from the job server and from the bucket. The cluster gets ports and a state dir
of its own, so a developer's cluster on the default ports is never touched.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCAL_SH = REPO_ROOT / "cluster" / "local.sh"
RAY_CLI = str(Path(sys.executable).parent / "ray")
LOOPBACK = {"127.0.0.1", "::ffff:127.0.0.1", "::1"}


@dataclass
class LocalCluster:
    """A cluster brought up by local.sh: its state dir, the env file's variables and the leader PIDs."""

    state_dir: Path
    script_env: dict[str, str]
    env: dict[str, str]

    def pid(self, name: str) -> int:
        return int((self.state_dir / f"{name}.pid").read_text())

    def run(self, *args: str, timeout_s: float = 240) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(LOCAL_SH), *args], env=self.script_env, capture_output=True, text=True, timeout=timeout_s
        )

    def api(self, path: str) -> Any:
        """GET a job-server endpoint with the cluster's auth token; returns the parsed JSON."""
        token = Path(self.env["RAY_AUTH_TOKEN_PATH"]).read_text().strip()
        request = urllib.request.Request(
            self.env["RAY_API_SERVER_ADDRESS"] + path, headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())


def distinct_free_ports(count: int) -> list[int]:
    """Ports free right now, all different (sockets held open together), outside Ray's worker range."""
    with ExitStack() as stack:
        ports = []
        while len(ports) < count:
            probe = stack.enter_context(socket.socket())
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
            if not 10002 <= port <= 19999:
                ports.append(port)
        return ports


def read_env_file(path: Path) -> dict[str, str]:
    """`export KEY=value` lines -> dict (the values local.sh writes need no shell unquoting)."""
    env = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = value
    return env


def cluster_processes(sessions: set[int], marker: str) -> list[tuple[int, str]]:
    """Live (non-zombie) processes in the given sessions or carrying the marker env var."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()  # state, ppid, pgrp, session, ...
            environ = (entry / "environ").read_bytes().split(b"\0")
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if fields[0] != "Z" and (int(fields[3]) in sessions or marker.encode() in environ):
            found.append((int(entry.name), cmdline[:160]))
    return found


def listening_addresses(pids: list[int]) -> set[tuple[str, int]]:
    """(ip, port) of every TCP socket these processes listen on."""
    import psutil

    addresses = set()
    for pid in pids:
        try:
            connections = psutil.Process(pid).net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        addresses |= {
            (item.laddr.ip, item.laddr.port) for item in connections if item.status == psutil.CONN_LISTEN
        }
    return addresses


@pytest.fixture
def local_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    dashboard, gcs, client, agent, s3 = distinct_free_ports(5)
    state_dir = tmp_path / "cluster"
    script_env = {
        **{
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("RAY_", "AWS_")) and key != "PYTHONPATH"
        },
        "TAIYI_LOCAL_DIR": str(state_dir),
        "TAIYI_PYTHON": sys.executable,
        "TAIYI_DASHBOARD_PORT": str(dashboard),
        "TAIYI_GCS_PORT": str(gcs),
        "TAIYI_CLIENT_PORT": str(client),
        "TAIYI_AGENT_PORT": str(agent),
        "TAIYI_S3_PORT": str(s3),
        "TAIYI_S3_BUCKET": "taiyi-local-test",
    }
    cluster = LocalCluster(state_dir, script_env, {})
    try:
        up = cluster.run("up")
        assert up.returncode == 0, f"local.sh up failed:\n{up.stderr}"
        env_file = Path(up.stdout.strip().splitlines()[-1])
        assert env_file == state_dir / "env", f"local.sh up printed {up.stdout!r}, expected the env file path"
        cluster.env = read_env_file(env_file)
        yield cluster
    finally:
        cluster.run("down")


def submit(cluster: LocalCluster, submission_id: str, *entrypoint: str) -> subprocess.CompletedProcess[str]:
    """`ray job submit` from the repository root, the way the README shows it."""
    command = [
        RAY_CLI,
        "job",
        "submit",
        "--submission-id",
        submission_id,
        "--working-dir",
        ".",
        "--runtime-env",
        "cluster/runtime_env.yaml",
        "--",
        *entrypoint,
    ]
    env = {**cluster.script_env, **cluster.env}
    return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)


def final_json_line(cluster: LocalCluster, submission_id: str) -> dict[str, Any]:
    """The job must have SUCCEEDED and its log's last line must be the job's JSON result."""
    details = cluster.api(f"/api/jobs/{submission_id}")
    logs = cluster.api(f"/api/jobs/{submission_id}/logs")["logs"]
    assert details["status"] == "SUCCEEDED", (
        f"job {submission_id}: {details['status']}: {details.get('message')}\n{logs[-3000:]}"
    )
    last_line = [line for line in logs.splitlines() if line.strip()][-1]
    try:
        result = json.loads(last_line)
    except json.JSONDecodeError:
        pytest.fail(
            f"job {submission_id}: last log line is not JSON: {last_line[:300]!r}\n(log tail: {logs[-1500:]})"
        )
    assert isinstance(result, dict) and "run_dir" in result, (
        f"job {submission_id}: last line {last_line[:300]!r} lacks run_dir"
    )
    return result


def test_local_cluster_runs_stage1_via_job_submit(local_cluster: LocalCluster) -> None:
    cluster = local_cluster
    head_pid, s3_pid = cluster.pid("ray-head"), cluster.pid("s3")
    marker = f"TAIYI_LOCAL_CLUSTER={cluster.state_dir.resolve()}"

    # Up is idempotent: a second `up` leaves the running cluster alone.
    again = cluster.run("up")
    assert again.returncode == 0 and "already up" in again.stderr, again.stderr
    assert (cluster.pid("ray-head"), cluster.pid("s3")) == (head_pid, s3_pid)
    status = cluster.run("status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert (
        cluster.env["RAY_API_SERVER_ADDRESS"]
        == f"http://127.0.0.1:{cluster.script_env['TAIYI_DASHBOARD_PORT']}"
    )
    assert cluster.env["AWS_ENDPOINT_URL"] == f"http://127.0.0.1:{cluster.script_env['TAIYI_S3_PORT']}"

    # Loopback only: every listening socket of the cluster's processes binds 127.0.0.1.
    pids = [pid for pid, _ in cluster_processes({head_pid, s3_pid}, marker)]
    listening = listening_addresses(pids)
    assert ("127.0.0.1", int(cluster.script_env["TAIYI_DASHBOARD_PORT"])) in listening or (
        "::ffff:127.0.0.1",
        int(cluster.script_env["TAIYI_DASHBOARD_PORT"]),
    ) in listening, f"job server not listening on loopback: {sorted(listening)}"
    assert {ip for ip, _ in listening} <= LOOPBACK, f"non-loopback listeners: {sorted(listening)}"

    # Data preparation, then stage 1, both through `ray job submit`, storage in the S3 endpoint.
    root = f"{cluster.env['TAIYI_STORAGE_ROOT']}/{uuid.uuid4().hex[:8]}"
    common = ("--config", "configs/demo.yaml", "--set", f"storage.root={root}")
    prepared = submit(
        cluster,
        "taiyi-test-prepare",
        "python",
        "jobs/prepare_data.py",
        *common,
        "--run-dir",
        f"{root}/runs/prepare",
    )
    assert prepared.returncode == 0, prepared.stdout[-4000:] + prepared.stderr[-2000:]
    assert final_json_line(cluster, "taiyi-test-prepare")["run_dir"] == f"{root}/runs/prepare"

    stage1 = submit(
        cluster,
        "taiyi-test-stage1",
        "python",
        "jobs/stage1.py",
        *common,
        "--set",
        "stage1.max_steps=2",
        "--run-dir",
        f"{root}/runs/stage1",
    )
    assert stage1.returncode == 0, stage1.stdout[-4000:] + stage1.stderr[-2000:]
    result = final_json_line(cluster, "taiyi-test-stage1")
    assert result["run_dir"] == f"{root}/runs/stage1"
    assert result["steps"] == 2 and result["stage"] == "stage1"

    # The run's summary and checkpoint landed in the bucket (read straight from the S3 endpoint).
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=cluster.env["AWS_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id=cluster.env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=cluster.env["AWS_SECRET_ACCESS_KEY"],
    )
    bucket, _, prefix = root.removeprefix("s3://").partition("/")
    summary = json.loads(
        s3.get_object(Bucket=bucket, Key=f"{prefix}/runs/stage1/summary.json")["Body"].read()
    )
    assert summary["steps"] == 2 and summary["data_fingerprint"] == result["data_fingerprint"]
    keys = [
        item["Key"]
        for item in s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/runs/stage1/train/")["Contents"]
    ]
    assert any("/checkpoint-" in key for key in keys), (
        f"no checkpoint under {root}/runs/stage1/train: {keys[:10]}"
    )

    # Down stops everything it started, by PID, and is idempotent.
    down = cluster.run("down")
    assert down.returncode == 0, down.stderr
    deadline = time.monotonic() + 10
    while (left := cluster_processes({head_pid, s3_pid}, marker)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, f"processes left after down: {left}"
    for port in (
        cluster.script_env[key] for key in ("TAIYI_DASHBOARD_PORT", "TAIYI_GCS_PORT", "TAIYI_S3_PORT")
    ):
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", int(port))) != 0, f"port {port} still answers after down"
    assert cluster.run("status").returncode == 3
    assert cluster.run("down").returncode == 0
    assert not (cluster.state_dir / "env").exists()


def job_logs(cluster: LocalCluster, submission_id: str) -> str:
    return str(cluster.api(f"/api/jobs/{submission_id}/logs")["logs"])


def ray_tmp_dir(cluster: LocalCluster) -> Path:
    """The head's --temp-dir (cluster/local.sh: a checksum of the state dir, under TMPDIR)."""
    digest = subprocess.run(
        ["cksum"], input=str(cluster.state_dir.resolve()), capture_output=True, text=True, check=True
    ).stdout.split()[0]
    return Path(os.environ.get("TMPDIR", "/tmp")) / f"taiyi-ray-{digest}"


@pytest.fixture
def s3_secret(monkeypatch: pytest.MonkeyPatch) -> str:
    """A unique S3 secret for the next local cluster (local.sh reads TAIYI_S3_SECRET; moto takes any)."""
    secret = f"taiyi-secret-{uuid.uuid4().hex}"
    monkeypatch.setenv("TAIYI_S3_SECRET", secret)
    return secret


@pytest.fixture
def secret_cluster(s3_secret: str, local_cluster: LocalCluster) -> tuple[LocalCluster, str]:
    """A local cluster started with that secret (fixtures set up in argument order: the secret first)."""
    assert local_cluster.env["AWS_SECRET_ACCESS_KEY"] == s3_secret
    return local_cluster, s3_secret


def test_ray_job_stop_checkpoints_then_resume_matches_an_uninterrupted_run(
    secret_cluster: tuple[LocalCluster, str],
) -> None:
    """`ray job stop` gives the driver RAY_JOB_STOP_WAIT_TIME_S (local.sh sets it) after its SIGTERM: the
    stage checkpoints at the step it reached, the job ends STOPPED, and `--resume` ends with the data
    fingerprint of an uninterrupted run. The unique S3 secret shows up in no job metadata or head log."""
    cluster, secret = secret_cluster
    root = f"{cluster.env['TAIYI_STORAGE_ROOT']}/{uuid.uuid4().hex[:8]}"
    common = ("--config", "configs/demo.yaml", "--set", f"storage.root={root}")
    # 60 steps (12 epochs of the demo's 5): long enough to stop in the middle even on a busy machine.
    stage = (
        "--set",
        "stage1.validation=null",
        "--set",
        "stage1.checkpoint_every_steps=100",
        "--set",
        "stage1.epochs=12",
    )
    prepared = submit(cluster, "taiyi-stop-prepare", "python", "jobs/prepare_data.py", *common)
    assert prepared.returncode == 0, prepared.stdout[-3000:] + prepared.stderr[-2000:]
    clean = submit(
        cluster, "taiyi-stop-clean", "python", "jobs/stage1.py", *common, *stage, "--run-dir", f"{root}/clean"
    )
    assert clean.returncode == 0, clean.stdout[-3000:] + clean.stderr[-2000:]
    uninterrupted = final_json_line(cluster, "taiyi-stop-clean")

    run_dir = f"{root}/stopped"
    env = {**cluster.script_env, **cluster.env}
    command = [
        RAY_CLI,
        "job",
        "submit",
        "--no-wait",
        "--submission-id",
        "taiyi-stop-me",
        "--working-dir",
        ".",
    ]
    command += [
        "--runtime-env",
        "cluster/runtime_env.yaml",
        "--",
        "python",
        "jobs/stage1.py",
        *common,
        *stage,
    ]
    started = subprocess.run(
        [*command, "--run-dir", run_dir], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert started.returncode == 0, started.stderr[-2000:]
    deadline = time.monotonic() + 300
    while "step 2/" not in job_logs(cluster, "taiyi-stop-me"):
        assert time.monotonic() < deadline, job_logs(cluster, "taiyi-stop-me")[-3000:]
        time.sleep(1)
    stopped = subprocess.run(
        [RAY_CLI, "job", "stop", "taiyi-stop-me"], env=env, capture_output=True, text=True, timeout=300
    )
    assert stopped.returncode == 0, stopped.stderr[-2000:]
    assert cluster.api("/api/jobs/taiyi-stop-me")["status"] == "STOPPED"
    reached = json.loads(
        [line for line in job_logs(cluster, "taiyi-stop-me").splitlines() if line.strip()][-1]
    )
    assert reached["stopped_early"] and 2 <= reached["steps"] < uninterrupted["steps"], reached

    resumed = submit(
        cluster,
        "taiyi-stop-resume",
        "python",
        "jobs/stage1.py",
        *common,
        *stage,
        "--resume",
        "--run-dir",
        run_dir,
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-2000:]
    result = final_json_line(cluster, "taiyi-stop-resume")
    assert result["resumed_from_step"] == reached["steps"] and result["steps"] == uninterrupted["steps"]
    assert result["data_fingerprint"] == uninterrupted["data_fingerprint"]
    print(  # the figures a closing note reports (pytest -s)
        f"ray job stop: stopped at step {reached['steps']} of {uninterrupted['steps']}, "
        f"resumed from step {result['resumed_from_step']}"
    )

    # Credentials: in the env file by design (that is where they live), nowhere Ray keeps or shows jobs.
    for listing in (["job", "list"], ["job", "status", "taiyi-stop-resume"]):
        shown = subprocess.run([RAY_CLI, *listing], env=env, capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0 and secret not in shown.stdout + shown.stderr, listing
    assert secret not in json.dumps(cluster.api("/api/jobs/"))
    head = ray_tmp_dir(cluster)
    assert head.is_dir(), head
    leaked = [
        str(path)
        for path in head.rglob("*")
        if path.is_file() and not path.is_symlink() and secret.encode() in path.read_bytes()
    ]
    assert leaked == []
