"""The data plan: deterministic epoch orders, weights, and exact resume (same or another worker count)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from taiyi_ray.data.plan import (
    DataPlan,
    DataPosition,
    Segment,
    SourceFiles,
    epoch_chunk,
    remaining_positions,
    steps_per_epoch,
    steps_remaining,
    worker_positions,
)


def plan(weight: float = 1.0, seed: int = 7) -> DataPlan:
    sources = [
        SourceFiles(tuple(f"a/{index}" for index in range(5)), (10, 10, 10, 10, 7), 1.0),
        SourceFiles(("b/0", "b/1"), (9, 4), weight),
    ]
    return DataPlan(sources, seed=seed, window_files=2)


def consumed_by(order: np.ndarray, world: int, rows_per_step: int, steps: int) -> list[list[int]]:
    """Rows each rank consumed in the first `steps` steps of a fresh epoch."""
    remaining = remaining_positions(len(order), [])
    return [
        order[worker_positions(remaining, world, rank, rows_per_step)[: steps * rows_per_step]].tolist()
        for rank in range(world)
    ]


def test_epoch_order_is_deterministic_and_a_permutation() -> None:
    first, _ = plan().epoch_order(0)
    again, _ = plan().epoch_order(0)
    other_epoch, _ = plan().epoch_order(1)
    assert first.tolist() == again.tolist()
    assert first.tolist() != other_epoch.tolist()
    assert sorted(first.tolist()) == list(range(47 + 13))
    assert plan(seed=8).epoch_order(0)[0].tolist() != first.tolist()


def test_weights_repeat_and_subsample_deterministically() -> None:
    doubled, _ = plan(weight=2.0).epoch_order(0)
    counts = Counter(doubled.tolist())
    assert len(doubled) == 47 + 26
    assert all(counts[row] == 2 for row in range(47, 60)) and all(counts[row] == 1 for row in range(47))
    half, _ = plan(weight=0.5).epoch_order(3)
    from_b = [row for row in half.tolist() if row >= 47]
    assert len(from_b) == round(0.5 * 13) and len(set(from_b)) == len(from_b)
    assert half.tolist() == plan(weight=0.5).epoch_order(3)[0].tolist()


def test_resume_with_same_world_continues_the_same_chunks() -> None:
    order, _ = plan().epoch_order(0)
    world, rows_per_step = 2, 3
    full = consumed_by(order, world, rows_per_step, steps=steps_per_epoch(len(order), world, rows_per_step))
    # after 4 steps: replaying the segment gives exactly the remaining rows of each chunk
    remaining = remaining_positions(len(order), [])
    for rank in range(world):
        rest = order[worker_positions(remaining, world, rank, rows_per_step)[4 * rows_per_step :]].tolist()
        assert full[rank][4 * rows_per_step :] == rest


@pytest.mark.parametrize(("old_world", "new_world", "steps_done"), [(2, 1, 4), (3, 2, 2), (1, 3, 5)])
def test_resume_with_another_world_loses_and_repeats_nothing(
    old_world: int, new_world: int, steps_done: int
) -> None:
    order, _ = plan().epoch_order(2)
    rows_per_step = 3
    consumed = [row for part in consumed_by(order, old_world, rows_per_step, steps_done) for row in part]
    remaining = remaining_positions(len(order), [Segment(old_world, rows_per_step, steps_done)])
    after = [
        row
        for rank in range(new_world)
        for row in order[worker_positions(remaining, new_world, rank, rows_per_step)].tolist()
    ]
    assert not set(consumed) & set(after)  # nothing repeated
    dropped = set(range(len(order))) - set(consumed) - set(after)
    assert len(dropped) < new_world * rows_per_step  # only the tail that cannot fill one global step
    assert len(consumed) + len(after) + len(dropped) == len(order)


def test_position_round_trips_through_a_checkpoint_dict() -> None:
    position = DataPosition(epoch=2, segments=[Segment(2, 4, 3), Segment(1, 4, 1)], global_step=17)
    restored = DataPosition.from_dict(position.to_dict())
    assert restored == position


def test_epoch_chunk_continues_an_interrupted_layout_exactly() -> None:
    order, _ = plan().epoch_order(1)
    world, rows_per_step = 2, 3
    for rank in range(world):
        fresh, done, total = epoch_chunk(
            len(order), [Segment(world, rows_per_step, 0)], world, rank, rows_per_step
        )
        assert (done, total) == (0, len(fresh) // rows_per_step)
        resumed, done, total_after = epoch_chunk(
            len(order), [Segment(world, rows_per_step, 4)], world, rank, rows_per_step
        )
        assert (done, total_after) == (4, total)
        assert resumed.tolist() == fresh[4 * rows_per_step :].tolist()


def test_steps_remaining_counts_the_rest_of_the_run() -> None:
    data = plan()
    per_epoch = steps_per_epoch(len(data.epoch_order(0)[0]), 2, 3)
    assert steps_remaining(data, DataPosition(), epochs=3, world=2, rows_per_step=3) == 3 * per_epoch
    middle = DataPosition(epoch=1, segments=[Segment(2, 3, 4)], global_step=per_epoch + 4)
    assert steps_remaining(data, middle, epochs=3, world=2, rows_per_step=3) == 2 * per_epoch - 4
