"""The eviction marker's contract between a pod's preStop hook and the training workers on its node:
only a marker written after the worker started counts; the hook waits for a rank's acknowledgement,
returns at once when no training worker lives on the node, and gives up at its timeout."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from taiyi_ray.train.preemption import MARKER_ENV, NodePreemption, request_and_wait


@pytest.fixture
def marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "node" / "preempt"
    monkeypatch.setenv(MARKER_ENV, str(path))
    return path


def test_only_a_marker_newer_than_the_worker_counts(marker: Path) -> None:
    marker.parent.mkdir(parents=True)
    marker.write_text("stale")
    os.utime(marker, (time.time() - 60, time.time() - 60))  # left by an earlier eviction
    worker = NodePreemption()
    assert not worker.requested()
    marker.write_text("now")
    assert worker.requested()
    worker.close()


def test_the_hook_waits_for_the_checkpoint_of_a_worker_on_its_node(marker: Path) -> None:
    worker = NodePreemption()  # registered under this (live) process

    def train() -> None:
        while not worker.requested():
            time.sleep(0.05)
        worker.acknowledge(7)

    trainer = threading.Thread(target=train)
    trainer.start()
    assert request_and_wait(marker, timeout_s=30, poll_s=0.05) == "checkpointed at step 7"
    trainer.join()
    worker.close()


def test_the_hook_returns_at_once_without_workers_and_gives_up_at_its_timeout(marker: Path) -> None:
    started = time.monotonic()
    assert request_and_wait(marker, timeout_s=30) == "no training worker on this node"
    assert time.monotonic() - started < 5
    worker = NodePreemption()  # a worker that never acknowledges
    assert request_and_wait(marker, timeout_s=0.3, poll_s=0.05) == "timed out after 0.3 s"
    worker.close()
