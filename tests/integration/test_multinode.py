"""A three-node Ray cluster on one machine: a head and two worker nodes, each with its own raylet
(`ray.cluster_utils.Cluster`; `ray start --address` refuses to join while RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
keeps Ray on loopback), with a custom resource `trainer_slot` (one per worker node) standing in for the GPU
node labels of a real cluster. Stage 1 runs with `stage1.resources_per_worker={trainer_slot: 1}`, so its
two Ray Train workers land one per worker node, and checkpoints go to the shared S3 endpoint.

A second run loses a worker node mid-run (every process of that node SIGKILLed, as when a VM
vanishes); the node comes back, Ray Train restarts the worker group (FailureConfig) from the last
checkpoint in S3, and the run consumes exactly the samples of the clean run: same `data_fingerprint`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taiyi_ray.train.checkpoint import COMPLETE_MARKER
from tests.integration.helpers import REPO_ROOT, s3_root

pytestmark = pytest.mark.integration

RAY = str(Path(sys.executable).parent / "ray")
STEPS = 6


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def node_pids(node: Any) -> list[int]:
    """PIDs of the processes a `ray._private.node.Node` started (raylet, GCS, agents...)."""
    return [info.process.pid for infos in node.all_processes.values() for info in infos]


def alive(pids: list[int]) -> list[int]:
    """The PIDs that still run (zombies count as gone)."""
    left = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            continue
        if state != "Z":
            left.append(pid)
    return left


@pytest.fixture
def cluster(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Head (2 CPUs, dashboard) + two worker nodes (2 CPUs, one `trainer_slot` each), on 127.0.0.1.
    Each worker node has its own eviction marker (TAIYI_PREEMPT_MARKER, node-local as in a pod)."""
    from ray.cluster_utils import Cluster

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S", "1")
    if not (Path.home() / ".ray" / "auth_token").exists():
        subprocess.run([RAY, "get-auth-token", "--generate"], check=True, capture_output=True, timeout=60)
    # Token auth on, for this process (which starts the nodes) and its children: what ray.init() does
    # for a local cluster (sets RAY_AUTH_MODE=token and refreshes Ray's cached config).
    from ray._private.authentication.authentication_token_setup import enable_token_auth_by_default

    enable_token_auth_by_default()
    dashboard = free_port()
    store = 256 * 1024**2
    nodes = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 2, "object_store_memory": store, "include_dashboard": True,
                        "dashboard_host": "127.0.0.1", "dashboard_port": dashboard},
    )  # fmt: skip
    started: list[int] = node_pids(nodes.head_node)

    markers: dict[Any, Path] = {}

    def add_worker() -> Any:
        marker = tmp_path / f"node-{len(markers)}" / "preempt"
        node = nodes.add_node(
            num_cpus=2, resources={"trainer_slot": 1}, object_store_memory=store,
            env_vars={"TAIYI_PREEMPT_MARKER": str(marker)},
        )  # fmt: skip
        markers[node] = marker
        started.extend(node_pids(node))
        return node

    try:
        workers = [add_worker(), add_worker()]
        nodes.wait_for_nodes(timeout=120)
        yield {"nodes": nodes, "workers": workers, "add_worker": add_worker, "address": nodes.address,
               "markers": markers,
               "dashboard": f"http://127.0.0.1:{dashboard}", "env": dict(os.environ)}  # fmt: skip
    finally:
        nodes.shutdown()
    deadline = time.monotonic() + 20
    while alive(started) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not alive(started), f"processes of the test cluster still alive after shutdown: {alive(started)}"


def _job(cluster: dict[str, Any], script: str, *overrides: str, run_dir: str) -> subprocess.Popen[str]:
    """A job's driver started by hand on this machine, joining the cluster (ray.address)."""
    command = [sys.executable, f"jobs/{script}.py", "--config", "configs/tests.yaml", "--run-dir", run_dir]
    for override in (f"ray.address={cluster['address']}", *overrides):
        command += ["--set", override]
    return subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=cluster["env"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(process: subprocess.Popen[str], timeout_s: float = 900) -> dict[str, Any]:
    output, _ = process.communicate(timeout=timeout_s)
    assert process.returncode == 0, output[-6000:]
    return json.loads([line for line in output.splitlines() if line.strip()][-1])


def _train_worker_nodes(cluster: dict[str, Any]) -> tuple[set[str], str]:
    """(node ids that ran RayTrainWorker actors, the head's node id), from the state API."""

    def listing(kind: str, *args: str) -> list[dict[str, Any]]:
        result = subprocess.run(
            [RAY, "list", kind, "--address", cluster["dashboard"], "--format", "json", "--detail", "--limit", "1000", *args],
            env=cluster["env"], capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        return json.loads(result.stdout)

    workers = listing("actors", "--filter", "class_name=RayTrainWorker")
    head = next(node["node_id"] for node in listing("nodes") if node.get("is_head_node"))
    return {actor["node_id"] for actor in workers}, head


def _checkpoint_keys(bucket: str, prefix: str) -> list[str]:
    import boto3

    client = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")
    response = client.list_objects_v2(Bucket=bucket, Prefix=prefix)
    # A checkpoint is complete once rank 0 marks it (after every rank's upload, see mark_complete): killing a
    # node before that could leave only partial files, which nothing may resume from.
    return [
        item["Key"]
        for item in response.get("Contents", [])
        if "/checkpoint-" in item["Key"] and item["Key"].endswith(f"/{COMPLETE_MARKER}")
    ]


def _wait_for_first_checkpoint(process: subprocess.Popen[str], root: str, run: str) -> None:
    bucket, _, prefix = f"{root}/runs/{run}/train/".removeprefix("s3://").partition("/")
    deadline = time.monotonic() + 600
    while not _checkpoint_keys(bucket, prefix):
        assert process.poll() is None, (
            f"run ended before its first checkpoint:\n{process.communicate()[0][-4000:]}"
        )
        assert time.monotonic() < deadline, "no checkpoint in S3 after 600 s"
        time.sleep(1)


def test_two_node_training_survives_losing_a_node(cluster: dict[str, Any], shared_dir: Path) -> None:
    root = s3_root("multinode")
    common = (
        f"storage.root={root}",
        f"model.tokenizer={shared_dir / 'tokenizers' / 'qwen2'}",
        "stage1.resources_per_worker={trainer_slot: 1}",
        f"stage1.max_steps={STEPS}",
    )
    _finish(_job(cluster, "prepare_data", *common[:2], run_dir=f"{root}/runs/data"))

    clean = _finish(_job(cluster, "stage1", *common, run_dir=f"{root}/runs/clean"))
    assert clean["steps"] == STEPS and clean["restarts"] == 0
    worker_nodes, head = _train_worker_nodes(cluster)
    assert len(worker_nodes) == 2 and head not in worker_nodes, (
        f"train workers on {worker_nodes}, head {head}"
    )

    faulted = _job(cluster, "stage1", *common, run_dir=f"{root}/runs/faulted")
    _wait_for_first_checkpoint(faulted, root, "faulted")
    cluster["nodes"].remove_node(cluster["workers"][1], allow_graceful=False)  # SIGKILL: the node vanishes
    time.sleep(5)
    cluster["add_worker"]()  # the node comes back (a replacement VM with the same label)

    result = _finish(faulted)
    assert result["restarts"] >= 1, result
    assert result["resumed_from_step"] is not None and 2 <= result["resumed_from_step"] < STEPS, result
    assert result["steps"] == clean["steps"] and result["samples"] == clean["samples"]
    assert result["data_fingerprint"] == clean["data_fingerprint"], (
        "samples were lost or repeated across the restart"
    )

    # A worker pod evicted: its preStop hook (the command k8s/base/raycluster.yaml runs) writes the node's
    # marker and waits; the group checkpoints at the step reached, Ray Train restarts it, then the node
    # goes (SIGKILL after the hook, as kubelet's SIGTERM + grace period would end it) and a new one comes.
    evicted_node = cluster["workers"][0]
    evicted = _job(cluster, "stage1", *common, "stage1.max_failures=4", run_dir=f"{root}/runs/evicted")
    _wait_for_first_checkpoint(evicted, root, "evicted")
    hook = subprocess.run(
        [sys.executable, "-m", "taiyi_ray.train.preemption", "--timeout-s", "300"],
        env={**cluster["env"], "TAIYI_PREEMPT_MARKER": str(cluster["markers"][evicted_node])},
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=320,
    )  # fmt: skip
    assert hook.returncode == 0 and "checkpointed at step" in hook.stdout, hook.stdout + hook.stderr
    acknowledged = int(hook.stdout.rsplit("checkpointed at step", 1)[1].split()[0])
    cluster["nodes"].remove_node(evicted_node, allow_graceful=False)
    cluster["add_worker"]()
    result = _finish(evicted)
    assert result["restarts"] >= 1 and result["resumed_from_step"] == acknowledged < STEPS, (
        acknowledged,
        result,
    )
    assert result["steps"] == clean["steps"] and result["data_fingerprint"] == clean["data_fingerprint"]
    print(  # the figures a closing note reports (pytest -s)
        f"eviction: checkpointed at step {acknowledged} of {clean['steps']}, "
        f"resumed from step {result['resumed_from_step']}, restarts {result['restarts']}"
    )
