"""The complete marker of a checkpoint: rank 0 writes it only when every rank's files are in storage, so
a run resumed after losing a node never picks a checkpoint with a rank's shard missing (stop 24's CI:
the marker was written while rank 1 was still uploading, then its node was killed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from taiyi_ray.storage import Storage
from taiyi_ray.train.checkpoint import (
    COMPLETE_MARKER,
    checkpoint_name,
    latest_complete_checkpoint,
    mark_complete,
    rng_file_name,
)


def write_rank(run_dir: Path, step: int, rank: int) -> None:
    directory = run_dir / "train" / checkpoint_name(step)
    (directory / "deepspeed").mkdir(parents=True, exist_ok=True)
    (directory / "deepspeed" / f"zero_pp_rank_{rank}_mp_rank_00_optim_states.pt").write_bytes(b"x")
    (directory / rng_file_name(rank)).write_bytes(b"x")


def test_a_checkpoint_missing_a_rank_is_not_marked_and_the_previous_one_stays_the_resume_point(
    tmp_path: Path,
) -> None:
    storage = Storage()
    for rank in (0, 1):
        write_rank(tmp_path, 2, rank)
    mark_complete(storage, str(tmp_path), 2, world_size=2)
    write_rank(tmp_path, 4, 0)  # rank 1's upload of step 4 never finished

    with pytest.raises(RuntimeError, match=r"checkpoint-000004.*rng_rank00001\.pt"):
        mark_complete(storage, str(tmp_path), 4, world_size=2)

    assert not (tmp_path / "train" / checkpoint_name(4) / COMPLETE_MARKER).exists()
    assert latest_complete_checkpoint(storage, str(tmp_path)) == str(tmp_path / "train" / checkpoint_name(2))
    write_rank(tmp_path, 4, 1)
    mark_complete(storage, str(tmp_path), 4, world_size=2)
    assert latest_complete_checkpoint(storage, str(tmp_path)) == str(tmp_path / "train" / checkpoint_name(4))
