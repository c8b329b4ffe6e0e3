"""A worker node being evicted checkpoints the run first.

Kubernetes evicts a pod by running its `preStop` hook, then sending SIGTERM to PID 1 (`ray start
--block`), never to the training worker, whose loop runs in a Ray Train thread where no signal handler
can be installed. So the hook (`python -m taiyi_ray.train.preemption`, k8s/base/raycluster.yaml) writes a
node-local marker file; every rank looks for its own node's marker at each step (a local stat), the
ranks agree through the step's all-reduce, checkpoint at the step reached, and the ranks on the evicted
node write `<marker>.done`, which ends the hook. Then every rank raises `NodePreempted`: Ray Train
restarts the worker group (counted in `restarts`) from that checkpoint on the nodes left or new.

The marker is `TAIYI_PREEMPT_MARKER` (default /tmp/taiyi-preempt, inside the pod), and only a marker
written after the worker started counts, so a stale one never stops a new run.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)

MARKER_ENV = "TAIYI_PREEMPT_MARKER"
DEFAULT_MARKER = "/tmp/taiyi-preempt"
CLOCK_SLACK_S = 1.0  # file times come from a coarser clock than time.time()


class NodePreempted(RuntimeError):
    """Raised by every rank after the checkpoint an eviction asked for: Ray Train restarts the group."""


def marker_path() -> Path:
    return Path(os.environ.get(MARKER_ENV) or DEFAULT_MARKER)


def _registry(marker: Path) -> Path:
    return marker.with_name(marker.name + ".workers")


def _done(marker: Path) -> Path:
    return marker.with_name(marker.name + ".done")


class NodePreemption:
    """One training worker's view of its node's eviction marker."""

    def __init__(self) -> None:
        self.marker = marker_path()
        self.started = time.time()
        registry = _registry(self.marker)
        registry.mkdir(parents=True, exist_ok=True)
        self._registration = registry / str(os.getpid())
        self._registration.touch()

    def requested(self) -> bool:
        """True once the preStop hook wrote the marker (after this worker started)."""
        try:
            return self.marker.stat().st_mtime >= self.started - CLOCK_SLACK_S
        except FileNotFoundError:
            return False

    def acknowledge(self, step: int) -> None:
        """Tell the waiting hook the checkpoint at `step` is written (only a rank on the evicted node)."""
        if self.requested():
            partial = _done(self.marker).with_suffix(f".{os.getpid()}.tmp")
            partial.write_text(f"{step}\n")
            partial.replace(_done(self.marker))  # the hook never reads a half-written file

    def close(self) -> None:
        self._registration.unlink(missing_ok=True)


def _live_workers(marker: Path) -> list[int]:
    registry = _registry(marker)
    if not registry.is_dir():
        return []
    alive = []
    for entry in registry.iterdir():
        if entry.name.isdigit() and Path(f"/proc/{entry.name}").exists():
            alive.append(int(entry.name))
    return alive


def request_and_wait(marker: Path, timeout_s: float, poll_s: float = 0.5) -> str:
    """The preStop hook: write the marker, wait until a rank on this node has checkpointed (or none runs
    here, or the timeout); returns what ended the wait."""
    marker.parent.mkdir(parents=True, exist_ok=True)
    _done(marker).unlink(missing_ok=True)
    marker.write_text(f"{time.time()}\n")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _done(marker).exists():
            return f"checkpointed at step {_done(marker).read_text().strip()}"
        if not _live_workers(marker):
            return "no training worker on this node"
        time.sleep(poll_s)
    return f"timed out after {timeout_s:g} s"


def main() -> None:
    parser = argparse.ArgumentParser(
        description="preStop hook of a worker pod: make the training workers on this node checkpoint first"
    )
    parser.add_argument(
        "--timeout-s",
        type=float,
        default=570,
        help="stop waiting after this (keep it under the pod's grace period)",
    )
    args = parser.parse_args()
    print(f"taiyi-ray preStop: {request_and_wait(marker_path(), args.timeout_s)}", flush=True)


if __name__ == "__main__":
    main()
