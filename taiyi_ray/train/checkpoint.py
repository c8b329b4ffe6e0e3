"""Checkpoints: DeepSpeed state (weights, optimizer, scheduler), per-rank RNG and the data position,
saved by every rank into one directory and reported to Ray Train, which merges the ranks' files into
`{run_dir}/train/checkpoint-NNNNNN/` in the run's storage (local or s3://) and keeps the last K.

With LoRA only the trainable (adapter) weights are saved: the frozen base is re-read from its source.

Fault injection for resume tests: env TAIYI_FAULT_AT_STEP=N makes rank 1 exit abruptly (os._exit)
the first time the run reaches step N. A marker in the run dir stops the restarted worker from faulting
again. Ray Train then restarts the worker group, which resumes from the last checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pydantic import Field

from taiyi_ray.config.base import StrictModel, is_uri
from taiyi_ray.data.plan import DataPosition
from taiyi_ray.storage import Storage, join
from taiyi_ray.train.spec import ShardVersion

log = logging.getLogger(__name__)

DEEPSPEED_TAG = "deepspeed"
UNIVERSAL_TAG = "universal"
STATE_FILE = "taiyi_state.json"
COMPLETE_MARKER = "TAIYI_COMPLETE"
CHECKPOINT_PREFIX = "checkpoint-"


class CheckpointState(StrictModel):
    """`taiyi_state.json` of a checkpoint (rank 0 writes it): where the run was in its data, the world
    size that wrote the DeepSpeed state, the step's metrics, and the shard versions `--resume` pins."""

    position: dict[str, Any]  # DataPosition.to_dict()
    world_size: int
    record: dict[str, Any]  # the checkpointed step's metrics line
    validation_s: float = 0.0  # seconds spent validating so far, over every attempt
    shards: list[ShardVersion] = Field(default_factory=list)

    def data_position(self) -> DataPosition:
        return DataPosition.from_dict(self.position)


def read_checkpoint_state(storage: Storage, directory: str) -> CheckpointState:
    return CheckpointState.model_validate(storage.read_json(join(directory, STATE_FILE)))


@dataclass
class RestoredState:
    position: DataPosition
    checkpoint_step: int
    state: CheckpointState


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def save_checkpoint(
    engine: Any,
    rank: int,
    position: DataPosition,
    record: dict[str, Any],
    validation_s: float,
    shards: tuple[ShardVersion, ...],
    frozen_excluded: bool,
) -> str:
    """Collective: every rank writes its part into a fresh local directory, which it returns."""
    from deepspeed.checkpoint.constants import (
        UNIVERSAL_CHECKPOINT_INFO,
        UNIVERSAL_CHECKPOINT_VERSION_KEY,
        UNIVERSAL_CHECKPOINT_VERSION_VALUE,
    )

    directory = scratch_dir("ckpt")
    # The universal-checkpoint info lets ds_to_universal re-partition the state for another world size.
    client_state = {
        UNIVERSAL_CHECKPOINT_INFO: {UNIVERSAL_CHECKPOINT_VERSION_KEY: UNIVERSAL_CHECKPOINT_VERSION_VALUE}
    }
    engine.save_checkpoint(
        directory, tag=DEEPSPEED_TAG, client_state=client_state, exclude_frozen_parameters=frozen_excluded
    )
    torch.save(rng_state(), os.path.join(directory, rng_file_name(rank)))
    if rank == 0:
        state = CheckpointState(
            position=position.to_dict(),
            world_size=engine.world_size,
            record=record,
            validation_s=validation_s,
            shards=list(shards),
        )
        with open(os.path.join(directory, STATE_FILE), "w") as handle:
            json.dump(state.model_dump(mode="json"), handle)
    return directory


def saved_world_size(directory: str) -> int:
    return read_checkpoint_state(Storage(), directory).world_size


def to_universal(directory: str, output: str) -> str:
    """Convert a checkpoint's DeepSpeed state to DeepSpeed's universal format (any world size);
    returns the directory to load with `load_universal` (the tag is `UNIVERSAL_TAG`)."""
    target = os.path.join(output, UNIVERSAL_TAG)
    command = [
        sys.executable,
        "-m",
        "deepspeed.checkpoint.ds_to_universal",
        "--input_folder",
        os.path.join(directory, DEEPSPEED_TAG),
        "--output_folder",
        target,
        "--num_extract_workers",
        "1",
        "--num_merge_workers",
        "1",
    ]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(
            f"{directory}: conversion to a universal checkpoint failed:\n{completed.stderr[-2000:]}"
        )
    return output


def restore_checkpoint(
    engine: Any, rank: int, directory: str, frozen_excluded: bool, universal_dir: str | None = None
) -> RestoredState:
    """Load DeepSpeed state and this rank's RNG from a checkpoint directory (merged by Ray Train);
    from `universal_dir` instead when the worker count changed (see `to_universal`)."""
    saved = read_checkpoint_state(Storage(), directory)
    engine.load_checkpoint(
        universal_dir or directory,
        tag=UNIVERSAL_TAG if universal_dir else DEEPSPEED_TAG,
        load_module_strict=not frozen_excluded,
        load_optimizer_states=True,
        load_lr_scheduler_states=True,
    )
    rng_file = os.path.join(directory, rng_file_name(rank))
    if os.path.exists(rng_file):
        set_rng_state(torch.load(rng_file, weights_only=False))
    else:
        log.warning(
            "no RNG state for rank %d in %s (the worker count changed): RNG continues fresh", rank, directory
        )
    position = saved.data_position()
    return RestoredState(position, position.global_step, saved)


def local_copy(checkpoint: Any, storage: Storage, run_dir: str, scratch: str) -> str:
    """The checkpoint as a local directory: downloaded when it lives in object storage, once per node
    with `storage.cache_dir` (every rank reads the whole DeepSpeed checkpoint)."""
    if is_uri(run_dir):
        return storage.cached_dir(f"{run_dir.split('://', 1)[0]}://{checkpoint.path}", scratch)
    return str(checkpoint.to_directory(os.path.join(scratch, "resume")))


def discard(directory: str) -> None:
    shutil.rmtree(directory, ignore_errors=True)


SCRATCH = re.compile(r"^taiyi-(worker|ckpt|result)-(\d+)-")


def scratch_dir(kind: str, root: str | None = None) -> str:
    """A fresh local directory owned by this process, `{tmp}/taiyi-{kind}-{pid}-...`: the pid lets
    `sweep_abandoned_scratch` tell an abandoned one from one in use."""
    return tempfile.mkdtemp(prefix=f"taiyi-{kind}-{os.getpid()}-", dir=root)


def sweep_abandoned_scratch(root: str | None = None) -> list[str]:
    """Remove the scratch directories whose owning process is gone; returns them.

    A worker that crashes or is killed (OOM, `ray job stop`, a failed step) never reaches its cleanup,
    and Ray Train restarts the group in the same pod: without this, every restart leaves a base model
    download and a local checkpoint copy in /tmp (tens of GB for a 7B model) until the disk fills."""
    root = root or tempfile.gettempdir()
    removed = []
    for entry in os.scandir(root):
        match = SCRATCH.match(entry.name)
        if match and entry.is_dir(follow_symlinks=False) and not _alive(int(match.group(2))):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.path)
    if removed:
        log.info("removed %d scratch directories of processes that are gone: %s", len(removed), removed)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def checkpoint_name(step: int) -> str:
    return f"{CHECKPOINT_PREFIX}{step:06d}"


def checkpoint_step(location: str) -> int:
    return int(location.rstrip("/").rsplit("/", 1)[-1].removeprefix(CHECKPOINT_PREFIX))


def latest_complete_checkpoint(storage: Storage, run_dir: str) -> str | None:
    """The newest checkpoint in `{run_dir}/train` that every rank finished writing.

    Ray Train registers a reported checkpoint when its controller next polls the workers; a worker that
    dies right after `report()` can beat that poll, and the restarted group then gets no checkpoint from
    `ray.train.get_checkpoint()`. Rank 0 marks each checkpoint complete once every rank's `report()` has
    returned (see `mark_complete`), so the run dir itself always tells where to resume.
    """
    train_dir = join(run_dir, "train")
    if not storage.exists(train_dir):
        return None
    candidates = [
        item
        for item in storage.list(train_dir)
        if item.rstrip("/").rsplit("/", 1)[-1].startswith(CHECKPOINT_PREFIX)
        and storage.exists(join(item, COMPLETE_MARKER))
    ]
    return max(candidates, key=checkpoint_step) if candidates else None


def mark_complete(storage: Storage, run_dir: str, step: int, world_size: int) -> None:
    """Write the checkpoint's complete marker, once every rank's files are in storage.

    Call it after a barrier that follows every rank's `report()`: in Ray 2.60, `report()` synchronises
    the ranks before they upload, not after, so one rank's `report()` can return while another's files
    are still uploading, and a node lost then would leave a marked checkpoint that cannot be loaded.
    Each rank writes its RNG file last (after DeepSpeed's state), so its presence is checked for all."""
    directory = join(run_dir, "train", checkpoint_name(step))
    missing = [name for name in rank_files(world_size) if not storage.exists(join(directory, name))]
    if missing:
        raise RuntimeError(f"{directory}: not marking it complete, these ranks' files are missing: {missing}")
    storage.write_text(join(directory, COMPLETE_MARKER), "all ranks wrote this checkpoint\n")


def rank_files(world_size: int) -> list[str]:
    """The per-rank file every rank writes into a checkpoint (its RNG state)."""
    return [rng_file_name(rank) for rank in range(world_size)]


def rng_file_name(rank: int) -> str:
    return f"rng_rank{rank:05d}.pt"


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
