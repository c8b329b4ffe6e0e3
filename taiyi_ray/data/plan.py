"""The data plan: which rows every worker consumes at every optimizer step — a pure function of the
shard manifests, the seed and the epoch, so that a restarted job can skip exactly what was consumed.

Why not `streaming_split`: Ray Data hands blocks to whichever worker asks first, so the assignment of
rows to workers differs between runs, and Ray Data iterators have no resumable state. Here:

1. Epoch order. The shard files of every source (a source with weight 2 contributes each file twice,
   0.5 a seeded half of its rows) are permuted with rng(seed, epoch); rows are then permuted inside
   windows of `window_files` consecutive files. Rows are global row ids (file offset + row in file).
2. Layout. The rows still to consume in an epoch are split into `world` contiguous chunks of whole
   steps (`rows_per_step` = micro batch x accumulation rows per worker); the tail that does not fill a
   step for every worker is dropped for this epoch (counted). A worker's chunk touches few windows,
   so it reads ~1/world of the files.
3. Position. A checkpoint stores `DataPosition`: the epoch and its segments — (world, rows_per_step,
   steps done) per layout used in this epoch. Replaying the segments gives the exact set consumed,
   so a resume (even with another worker count) continues with exactly the rest: nothing lost,
   nothing repeated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class SourceFiles:
    """The shard files of one source (a manifest) and its epoch weight."""

    locations: tuple[str, ...]
    rows: tuple[int, ...]
    weight: float = 1.0


@dataclass(frozen=True)
class Segment:
    world: int
    rows_per_step: int
    steps: int


@dataclass
class DataPosition:
    """Where a run is in its data: epoch, and the layouts (segments) used so far within it.

    The training loop holds the one live position; `continue_with` and `advance` are the only code that
    moves it. Everything else (the data stream, the step count of a job) reads a position or a `copy`.
    """

    epoch: int = 0
    segments: list[Segment] = field(default_factory=list)
    global_step: int = 0

    def copy(self) -> DataPosition:
        """An independent copy (segments are immutable; the list is not shared)."""
        return DataPosition(self.epoch, list(self.segments), self.global_step)

    def continue_with(self, world: int, rows_per_step: int) -> None:
        """Take the next steps with this layout: continue the epoch's last segment when it used the same
        layout, else open a new segment (0 steps) after it. Either way `epoch_chunk` gives the same rows."""
        last = self.segments[-1] if self.segments else None
        if last is None or (last.world, last.rows_per_step) != (world, rows_per_step):
            self.segments.append(Segment(world, rows_per_step, 0))

    def advance(
        self, epoch: int, step_in_epoch: int, steps_in_epoch: int, world: int, rows_per_step: int
    ) -> bool:
        """Count one step that consumed `step_in_epoch` (of `steps_in_epoch`) of `epoch` with this layout.

        On the epoch's last step the position moves to the start of the next epoch (a fresh segment of
        this layout) and the call returns True. A step of a later epoch than the position's means the
        position's epoch had no whole step left for this layout (a resume with more workers near the
        epoch's end): the stream went on to that epoch, and so does the position. A step that is not the
        next one the position expects raises: the position would no longer say what was consumed.
        """
        if epoch > self.epoch:
            self.epoch, self.segments = epoch, []
        done = sum(segment.steps for segment in self.segments)
        if (epoch, step_in_epoch) != (self.epoch, done):
            raise RuntimeError(
                f"data position at epoch {self.epoch} step {done} got step {step_in_epoch} of epoch {epoch}"
            )
        self.continue_with(world, rows_per_step)
        self.segments[-1] = Segment(world, rows_per_step, self.segments[-1].steps + 1)
        self.global_step += 1
        if step_in_epoch + 1 != steps_in_epoch:
            return False
        self.epoch, self.segments = epoch + 1, []
        self.continue_with(world, rows_per_step)
        return True

    def to_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "global_step": self.global_step,
            "segments": [[segment.world, segment.rows_per_step, segment.steps] for segment in self.segments],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataPosition:
        segments = [Segment(*(int(value) for value in item)) for item in data.get("segments", [])]
        return cls(epoch=int(data["epoch"]), segments=segments, global_step=int(data.get("global_step", 0)))


class DataPlan:
    """Global row ids over several sources and the deterministic epoch orders built from them."""

    def __init__(
        self, sources: list[SourceFiles], seed: int, shuffle: bool = True, window_files: int = 8
    ) -> None:
        self.sources = sources
        self.seed = seed
        self.shuffle = shuffle
        self.window_files = max(1, window_files)
        self.locations: list[str] = [location for source in sources for location in source.locations]
        file_rows = np.array([rows for source in sources for rows in source.rows], dtype=np.int64)
        self.file_rows = file_rows
        self.file_offsets = np.concatenate([[0], np.cumsum(file_rows)]).astype(np.int64)
        self._source_of_file = (
            np.concatenate(
                [np.full(len(source.locations), index) for index, source in enumerate(sources)]
            ).astype(np.int64)
            if self.locations
            else np.zeros(0, np.int64)
        )

    def _visits(self, epoch: int) -> list[np.ndarray]:
        """Row-id arrays, one per file visit of this epoch, in visit order."""
        rng = np.random.default_rng([self.seed, epoch, 17])
        visits: list[np.ndarray] = []
        file_index = 0
        for source in self.sources:
            whole, fraction = int(source.weight), source.weight - int(source.weight)
            source_files = range(file_index, file_index + len(source.locations))
            file_index += len(source.locations)
            for _ in range(whole):
                visits += [self._file_rows(index) for index in source_files]
            if fraction > 0:
                all_rows = np.concatenate([self._file_rows(index) for index in source_files])
                chosen = np.sort(rng.choice(all_rows, size=round(fraction * len(all_rows)), replace=False))
                for index in source_files:
                    mask = (chosen >= self.file_offsets[index]) & (chosen < self.file_offsets[index + 1])
                    if mask.any():
                        visits.append(chosen[mask])
        if self.shuffle:
            visits = [visits[index] for index in rng.permutation(len(visits))]
        return visits

    def _file_rows(self, index: int) -> np.ndarray:
        return np.arange(self.file_offsets[index], self.file_offsets[index + 1], dtype=np.int64)

    def epoch_order(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(global row ids of one epoch in consumption order, start position of each shuffle window).

        Deterministic in (seed, epoch). A window is `window_files` consecutive file visits; a reader
        loads a window's files together and serves its rows in the permuted order.
        """
        visits = self._visits(epoch)
        rng = np.random.default_rng([self.seed, epoch, 29])
        windows, starts, position = [], [], 0
        for start in range(0, len(visits), self.window_files):
            window = np.concatenate(visits[start : start + self.window_files])
            windows.append(rng.permutation(window) if self.shuffle else window)
            starts.append(position)
            position += len(window)
        order = np.concatenate(windows) if windows else np.zeros(0, np.int64)
        return order, np.asarray(starts, dtype=np.int64)

    def locate(self, row_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(file index, row within file) for global row ids."""
        files = np.searchsorted(self.file_offsets, row_ids, side="right") - 1
        return files, row_ids - self.file_offsets[files]


def chunk_bounds(remaining: int, world: int, rows_per_step: int) -> tuple[int, int]:
    """(rows per worker, steps) when `remaining` rows are split into `world` chunks of whole steps."""
    steps = remaining // (world * rows_per_step)
    return steps * rows_per_step, steps


def remaining_positions(length: int, segments: list[Segment]) -> np.ndarray:
    """Positions (indices into the epoch order) not consumed by the given segments, in order."""
    remaining = np.arange(length, dtype=np.int64)
    for segment in segments:
        per_worker, _ = chunk_bounds(len(remaining), segment.world, segment.rows_per_step)
        consumed = np.zeros(len(remaining), dtype=bool)
        for rank in range(segment.world):
            start = rank * per_worker
            consumed[start : start + segment.steps * segment.rows_per_step] = True
        remaining = remaining[~consumed]
    return remaining


def worker_positions(remaining: np.ndarray, world: int, rank: int, rows_per_step: int) -> np.ndarray:
    """The contiguous chunk of `remaining` this rank consumes, whole steps only."""
    per_worker, _ = chunk_bounds(len(remaining), world, rows_per_step)
    return remaining[rank * per_worker : (rank + 1) * per_worker]


def steps_per_epoch(total_rows_per_epoch: int, world: int, rows_per_step: int) -> int:
    return chunk_bounds(total_rows_per_epoch, world, rows_per_step)[1]


def epoch_chunk(
    epoch_length: int, segments: list[Segment], world: int, rank: int, rows_per_step: int
) -> tuple[np.ndarray, int, int]:
    """This rank's positions still to consume in an epoch, the epoch's steps done, and its total steps.

    When the last segment used this very layout (same world and rows per step), the run continues it:
    the same chunks, minus the steps already taken — so an interrupted run consumes exactly what an
    uninterrupted one would, in the same order. A different layout re-splits what is left.
    """
    if segments and (segments[-1].world, segments[-1].rows_per_step) == (world, rows_per_step):
        base, skip = segments[:-1], segments[-1].steps
    else:
        base, skip = segments, 0
    chunk = worker_positions(remaining_positions(epoch_length, base), world, rank, rows_per_step)
    done = sum(segment.steps for segment in segments)
    total = sum(segment.steps for segment in base) + len(chunk) // rows_per_step
    return chunk[skip * rows_per_step :], done, total


def steps_remaining(
    plan: DataPlan, position: DataPosition, epochs: int, world: int, rows_per_step: int
) -> int:
    """Optimizer steps left from `position` to the end of `epochs` with this layout."""
    left = 0
    for epoch in range(position.epoch, epochs):
        length = len(plan.epoch_order(epoch)[0])
        segments = position.segments if epoch == position.epoch else []
        _, done, total = epoch_chunk(length, segments, world, 0, rows_per_step)
        left += total - done
    return left
