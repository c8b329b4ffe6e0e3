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


def take_steps(
    data: DataPlan,
    position: DataPosition,
    epochs: int,
    world: int,
    rows_per_step: int,
    count: int | None = None,
) -> list[tuple[int, list[int]]]:
    """Steps as the training loop takes them: the stream's steps (every rank's, numbered as `RankStream`
    numbers them, from a copy of the position), each counted with `position.advance`. (epoch, rows) each."""
    position.continue_with(world, rows_per_step)
    start, taken = position.copy(), []
    for epoch in range(start.epoch, epochs):
        order, _ = data.epoch_order(epoch)
        segments = start.segments if epoch == start.epoch else []
        chunks = [epoch_chunk(len(order), segments, world, rank, rows_per_step) for rank in range(world)]
        _, done, total = chunks[0]
        for step in range(total - done):
            if len(taken) == count:
                return taken
            rows = [order[chunk[step * rows_per_step : (step + 1) * rows_per_step]] for chunk, _, _ in chunks]
            position.advance(epoch, done + step, total, world, rows_per_step)
            taken.append((epoch, np.concatenate(rows).tolist()))
    return taken


def resumed(position: DataPosition) -> DataPosition:
    """The position a restarted job reads back from its checkpoint."""
    return DataPosition.from_dict(position.to_dict())


def test_continue_with_continues_the_same_layout_and_opens_a_segment_for_another() -> None:
    position = DataPosition()
    position.continue_with(2, 3)
    assert position == DataPosition(0, [Segment(2, 3, 0)], 0)
    position.continue_with(2, 3)
    assert position == DataPosition(0, [Segment(2, 3, 0)], 0)
    interrupted = DataPosition(1, [Segment(2, 3, 5)], 12)
    interrupted.continue_with(2, 3)
    assert interrupted == DataPosition(1, [Segment(2, 3, 5)], 12)
    interrupted.continue_with(3, 3)  # another worker count
    assert interrupted.segments == [Segment(2, 3, 5), Segment(3, 3, 0)]
    interrupted.continue_with(3, 4)  # another batch size
    interrupted.continue_with(2, 3)  # an earlier layout, but not the last one: a new segment
    assert interrupted.segments == [Segment(2, 3, 5), Segment(3, 3, 0), Segment(3, 4, 0), Segment(2, 3, 0)]
    assert (interrupted.epoch, interrupted.global_step) == (1, 12)


def test_advance_counts_steps_and_rolls_over_on_the_epochs_last_step() -> None:
    position = DataPosition()
    position.continue_with(2, 3)
    assert position.advance(0, 0, 3, 2, 3) is False
    assert position == DataPosition(0, [Segment(2, 3, 1)], 1)
    assert position.advance(0, 1, 3, 2, 3) is False
    assert position.advance(0, 2, 3, 2, 3) is True
    assert position == DataPosition(1, [Segment(2, 3, 0)], 3)
    assert position.to_dict() == {"epoch": 1, "global_step": 3, "segments": [[2, 3, 0]]}  # as checkpointed
    assert position.advance(1, 0, 3, 2, 3) is False
    assert position == DataPosition(1, [Segment(2, 3, 1)], 4)


def test_advance_after_a_world_change_counts_in_the_new_segment() -> None:
    position = DataPosition(1, [Segment(2, 3, 4)], 14)
    position.continue_with(3, 3)
    assert position.advance(1, 4, 7, 3, 3) is False
    assert position == DataPosition(1, [Segment(2, 3, 4), Segment(3, 3, 1)], 15)
    assert position.advance(1, 5, 7, 3, 3) is False
    assert position.advance(1, 6, 7, 3, 3) is True
    assert position == DataPosition(2, [Segment(3, 3, 0)], 17)


def test_advance_refuses_a_step_the_position_does_not_expect() -> None:
    position = DataPosition(1, [Segment(2, 3, 4)], 14)
    with pytest.raises(RuntimeError, match="epoch 1 step 4 got step 5 of epoch 1"):
        position.advance(1, 5, 10, 2, 3)
    with pytest.raises(RuntimeError, match="got step 0 of epoch 0"):
        position.advance(0, 0, 10, 2, 3)
    assert position == DataPosition(1, [Segment(2, 3, 4)], 14)


def test_a_resume_with_the_same_world_takes_exactly_the_uninterrupted_steps() -> None:
    data = plan()
    whole = take_steps(data, DataPosition(), epochs=2, world=2, rows_per_step=3)
    assert len(whole) == 2 * 10  # 60 rows, 6 per global step
    position = DataPosition()
    first = take_steps(data, position, epochs=2, world=2, rows_per_step=3, count=13)
    assert position == DataPosition(1, [Segment(2, 3, 3)], 13)
    position = resumed(position)
    assert first + take_steps(data, position, epochs=2, world=2, rows_per_step=3) == whole
    assert position == DataPosition(2, [Segment(2, 3, 0)], 20)


def test_a_resume_mid_epoch_with_other_worker_counts_consumes_every_row_at_most_once() -> None:
    data, rows_per_step = plan(), 3
    position = DataPosition()
    taken = take_steps(data, position, epochs=2, world=2, rows_per_step=rows_per_step, count=4)
    position = resumed(position)
    taken += take_steps(data, position, epochs=2, world=3, rows_per_step=rows_per_step, count=2)
    assert position == DataPosition(0, [Segment(2, 3, 4), Segment(3, 3, 2)], 6)
    position = resumed(position)
    taken += take_steps(data, position, epochs=2, world=1, rows_per_step=rows_per_step)
    assert position.epoch == 2 and position.global_step == len(taken)
    for epoch in range(2):
        rows = [row for step_epoch, step_rows in taken if step_epoch == epoch for row in step_rows]
        assert len(rows) == len(set(rows))  # nothing repeated
    epoch0 = [row for step_epoch, step_rows in taken if step_epoch == 0 for row in step_rows]
    # 24 rows with 2 workers, 18 with 3 (18 left), the 18 left with 1 worker: nothing dropped here
    assert sorted(epoch0) == list(range(60))


def test_a_resume_with_no_whole_step_left_in_the_epoch_moves_the_position_to_the_next() -> None:
    data = plan()
    position = DataPosition()
    take_steps(data, position, epochs=2, world=2, rows_per_step=3, count=9)  # 6 rows of epoch 0 left
    position = resumed(position)
    first = take_steps(data, position, epochs=2, world=3, rows_per_step=3, count=2)  # 9 rows a step
    assert [epoch for epoch, _ in first] == [1, 1]
    assert position == DataPosition(1, [Segment(3, 3, 2)], 11)
    position = resumed(position)
    rest = take_steps(data, position, epochs=2, world=3, rows_per_step=3)
    assert first + rest == take_steps(data, DataPosition(1), epochs=2, world=3, rows_per_step=3)
    assert position == DataPosition(2, [Segment(3, 3, 0)], 9 + 6)
