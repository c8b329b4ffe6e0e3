"""Fault injection for resume tests: env TAIYI_FAULT_AT_STEP=N makes rank 1 exit abruptly (os._exit)
the first time the run reaches step N. A marker in the run dir stops the restarted worker from faulting
again. Ray Train then restarts the worker group, which resumes from the last checkpoint."""

from __future__ import annotations

import logging
import os
import sys

from taiyi_ray.storage import Storage, join

log = logging.getLogger(__name__)

FAULT_ENV = "TAIYI_FAULT_AT_STEP"
FAULT_RANK = 1


def fault_step_from_env() -> int | None:
    value = os.environ.get(FAULT_ENV)
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{FAULT_ENV}={value!r}: expected a step number") from None


def maybe_fault(storage: Storage, run_dir: str, fault_at_step: int | None, step: int, rank: int) -> None:
    if fault_at_step is None or step != fault_at_step or rank != FAULT_RANK:
        return
    marker = join(run_dir, f"fault-injected-step-{step}")
    if storage.exists(marker):
        return
    storage.write_text(marker, f"rank {rank} exited at step {step}\n")
    log.warning("fault injection: rank %d exits abruptly at step %d", rank, step)
    sys.stderr.flush()
    os._exit(1)
