"""A training worker's data stream: its rows of the `DataPlan`, read with Ray Data, collated into
padding-free micro-batches (`flatten`), one optimizer step at a time, from any `DataPosition` onwards.

Ray Data does the IO: one streaming `read_parquet` over the files this worker needs, in the order it
needs them (with prefetching, so reads overlap training). The worker loads the files of one shuffle
window, then takes its rows of that window in plan order. Rows keep their global identity, so a step's
sample ids are known exactly (the run's data fingerprint hashes them).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute
import torch

from taiyi_ray.data.encode_samples import IGNORE_INDEX
from taiyi_ray.data.plan import DataPlan, DataPosition, epoch_chunk
from taiyi_ray.storage import Storage, with_retries

log = logging.getLogger(__name__)

STREAM_COLUMNS = ["input_ids", "labels", "position_ids", "sample_ids", "datasets", "num_label_tokens"]


@dataclass
class StepData:
    """The rows one worker consumes in one optimizer step, as flattened forward passes: one per
    micro-batch (more when `max_tokens_per_micro_batch` splits one). `attention_length` is the MFU's T."""

    epoch: int
    step_in_epoch: int
    steps_in_epoch: int
    micro_batches: list[dict[str, torch.Tensor]]
    sample_ids: list[str]
    datasets: list[str]
    label_tokens: int
    tokens: int
    attention_length: float = 0.0


@dataclass
class _Window:
    """The rows of one shuffle window this worker consumes: which files to load, which rows to take."""

    epoch: int
    files: list[int]
    row_ids: np.ndarray


def _rows_of(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(flat values, row start offsets + final end) of a list<int32> column, without Python lists."""
    array = column.combine_chunks()
    lengths = array.value_lengths().to_numpy(zero_copy_only=False)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    return array.flatten().to_numpy(zero_copy_only=False), starts


def flatten(
    rows: pa.Table, pad_id: int, token_count: int | None = None, pad_block: int | None = None
) -> dict[str, torch.Tensor]:
    """The rows of one micro-batch as ONE sequence of batch size 1, position ids restarting at every
    sample: the padding-free layout (TRL's padding_free, transformers' DataCollatorWithFlattening).

    From the restarting position ids `flash_attention_2` runs variable-length attention (transformers
    derives cu_seqlens from them, `prepare_fa_kwargs_from_position_ids`) and `sdpa`, `eager` and
    `flex_attention` build the block-diagonal causal mask, so no sample attends to another on any backend.
    The label of every sample's first token is ignored: it would be predicted from the previous sample.

    `token_count` pads the sequence to a fixed length (torch.compile: static shapes, one graph): the
    padding carries no label and forms its own blocks of at most `pad_block` positions (default: all of
    it), so it never joins a sample.
    """
    ids, _ = _rows_of(rows.column("input_ids"))
    labels, _ = _rows_of(rows.column("labels"))
    positions, _ = _rows_of(rows.column("position_ids"))
    labels = np.where(positions == 0, IGNORE_INDEX, labels)
    if token_count is not None:
        padding = token_count - len(ids)
        if padding < 0:
            raise ValueError(
                f"a micro-batch of {len(ids)} tokens does not fit the fixed token count {token_count}"
            )
        ids = np.concatenate([ids, np.full(padding, pad_id, dtype=ids.dtype)])
        labels = np.concatenate([labels, np.full(padding, IGNORE_INDEX, dtype=labels.dtype)])
        positions = np.concatenate([positions, np.arange(padding) % max(1, pad_block or padding)])
    return {
        "input_ids": torch.from_numpy(ids.astype(np.int64)).unsqueeze(0),
        "labels": torch.from_numpy(labels.astype(np.int64)).unsqueeze(0),
        "position_ids": torch.from_numpy(positions.astype(np.int64)).unsqueeze(0),
    }


def split_by_tokens(rows: pa.Table, max_tokens: int | None) -> list[pa.Table]:
    """Consecutive groups of whole rows of at most `max_tokens` tokens each (one group without a cap).

    A capped micro-batch becomes several forward passes of the same optimizer step; the rows per step
    do not change, nor the loss (normalised over the global batch's answer tokens)."""
    if max_tokens is None:
        return [rows]
    lengths = pa.compute.list_value_length(rows.column("input_ids")).to_numpy(zero_copy_only=False)
    if len(lengths) and int(lengths.max()) > max_tokens:
        raise ValueError(
            f"a row of {int(lengths.max())} tokens exceeds max_tokens_per_micro_batch {max_tokens}"
        )
    groups, start, used = [], 0, 0
    for index, length in enumerate(lengths.tolist()):
        if used + length > max_tokens:
            groups.append(rows.slice(start, index - start))
            start, used = index, 0
        used += length
    groups.append(rows.slice(start))
    return groups


def attention_length(row_lengths: np.ndarray) -> float:
    """The row length T of the MFU's attention term, token-weighted over rows (sum t^2 / sum t): each
    token attends within its row, and with rows of one length T it is T (the anchor's convention)."""
    total = float(row_lengths.sum())
    return float((row_lengths.astype(np.float64) ** 2).sum()) / total if total else 0.0


@dataclass
class RankStream:
    """Iterate `StepData` for one worker from `start` to the end of `epochs`.

    `start` is read, never changed: the stream keeps no position of its own. Each `StepData` says which
    step of which epoch it is; the caller counts it in its own position (`DataPosition.advance`) and stops
    iterating when it has taken the steps it wants.
    """

    plan: DataPlan
    storage: Storage
    world: int
    rank: int
    micro_batch_size: int
    accumulation: int
    epochs: int
    pad_id: int
    start: DataPosition = field(default_factory=DataPosition)
    prefetch_batches: int = 8  # files read ahead of the consumer
    max_tokens: int | None = None  # cap on a forward pass's flattened tokens (max_tokens_per_micro_batch)
    pad_to: int | None = None  # fixed token count of a forward pass (torch.compile); None: its own length
    pad_block: int | None = None  # the padding's position blocks (the shards' max_seq_len)

    @property
    def rows_per_step(self) -> int:
        return self.micro_batch_size * self.accumulation

    def _epoch_rows(self, epoch: int) -> tuple[np.ndarray, np.ndarray, int, int]:
        """(this worker's global row ids, their positions, steps already done, steps in epoch)."""
        order, _ = self.plan.epoch_order(epoch)
        segments = self.start.segments if epoch == self.start.epoch else []
        mine, done, total = epoch_chunk(len(order), segments, self.world, self.rank, self.rows_per_step)
        return order[mine], mine, done, total

    def _windows(self) -> Iterator[tuple[_Window, int, int]]:
        """Windows to load, in order, with (steps already done in the epoch, steps in the epoch)."""
        for epoch in range(self.start.epoch, self.epochs):
            row_ids, positions, done, total = self._epoch_rows(epoch)
            _, window_starts = self.plan.epoch_order(epoch)
            window_of_row = np.searchsorted(window_starts, positions, side="right") - 1
            boundaries = np.flatnonzero(np.diff(window_of_row)) + 1
            for chunk in np.split(np.arange(len(row_ids)), boundaries):
                if len(chunk):
                    files, _ = self.plan.locate(row_ids[chunk])
                    yield _Window(epoch, sorted(set(files.tolist())), row_ids[chunk]), done, total

    def __iter__(self) -> Iterator[StepData]:
        windows = list(self._windows())
        if not windows:
            return
        tables = self._read_windows([window for window, _, _ in windows])
        pending: list[pa.Table] = []
        pending_rows = 0
        current_epoch = windows[0][0].epoch
        step_in_epoch = windows[0][1]
        for (window, done, total), window_table in zip(windows, tables, strict=True):
            if window.epoch != current_epoch:
                current_epoch, step_in_epoch, pending, pending_rows = window.epoch, done, [], 0
            pending.append(window_table)
            pending_rows += window_table.num_rows
            while pending_rows >= self.rows_per_step:
                rows = pa.concat_tables(pending)
                step_rows, rest = rows.slice(0, self.rows_per_step), rows.slice(self.rows_per_step)
                pending, pending_rows = [rest], rest.num_rows
                yield self._step(window.epoch, step_in_epoch, total, step_rows)
                step_in_epoch += 1

    def _step(self, epoch: int, step_in_epoch: int, total: int, rows: pa.Table) -> StepData:
        micro = [
            flatten(group, self.pad_id, self.pad_to, self.pad_block)
            for start in range(0, rows.num_rows, self.micro_batch_size)
            for group in split_by_tokens(rows.slice(start, self.micro_batch_size), self.max_tokens)
        ]
        row_lengths = pa.compute.list_value_length(rows.column("input_ids")).to_numpy(zero_copy_only=False)
        sample_ids = [item for group in rows.column("sample_ids").to_pylist() for item in group]
        datasets = [item for group in rows.column("datasets").to_pylist() for item in group]
        label_tokens = int(pa.compute.sum(rows.column("num_label_tokens")).as_py())
        tokens = int(row_lengths.sum())
        return StepData(
            epoch,
            step_in_epoch,
            total,
            micro,
            sample_ids,
            datasets,
            label_tokens,
            tokens,
            attention_length(row_lengths),
        )

    def _read_windows(self, windows: list[_Window]) -> Iterator[pa.Table]:
        """For each window, a table of this worker's rows of it in plan order (one Ray Data pipeline)."""
        visits = [file_index for window in windows for file_index in window.files]
        files = _VisitAssembler(
            read_visits(self.storage, [self.plan.locations[i] for i in visits], self.prefetch_batches)
        )
        visit = 0
        for window in windows:
            loaded = []
            for _ in window.files:
                loaded.append(files.next_visit(visit, int(self.plan.file_rows[visits[visit]])))
                visit += 1
            starts = dict(
                zip(window.files, np.cumsum([0] + [table.num_rows for table in loaded[:-1]]), strict=True)
            )
            file_of_row, row_in_file = self.plan.locate(window.row_ids)
            indices = np.array([starts[int(f)] for f in file_of_row], dtype=np.int64) + row_in_file
            table = pa.concat_tables(loaded)
            if len(indices) and np.array_equal(indices, np.arange(indices[0], indices[0] + len(indices))):
                yield table.slice(int(indices[0]), len(indices))  # unshuffled: no gather needed
            else:
                yield table.take(pa.array(indices))


def _read_visits(batch: dict[str, Any], storage: Storage, columns: list[str]) -> pa.Table:
    """Ray Data task: read a few shard files (visits) through the storage layer, each tagged with its
    visit index; several per task keeps the per-task overhead small against the read itself."""
    import pyarrow.parquet as pq

    tables = []
    for visit, location in zip(batch["visit"], batch["location"], strict=True):
        filesystem, path = storage.arrow(str(location))
        try:
            table = with_retries(
                partial(pq.read_table, path, filesystem=filesystem, columns=columns), str(location)
            )
        except (OSError, pa.ArrowInvalid) as error:
            raise RuntimeError(f"{location}: cannot read shard ({error})") from error
        tables.append(
            table.append_column("visit", pa.array(np.full(table.num_rows, int(visit), dtype=np.int64)))
        )
    return pa.concat_tables(tables)


def read_visits(
    storage: Storage, locations: list[str], prefetch_batches: int = 8, files_per_task: int = 4
) -> Iterator[pa.Table]:
    """Stream the given shard files, repeats allowed, in the given order, as Ray Data batches.

    `read_parquet` would de-duplicate paths and merge small files into one block, so the read is a
    `map_batches` over the list of visits instead (a few files per task, order preserved).
    """
    import ray.data

    from taiyi_ray.data.build_shards import ordered_execution

    with ordered_execution():
        items = ray.data.from_items(
            [{"visit": index, "location": location} for index, location in enumerate(locations)],
            override_num_blocks=max(1, min(len(locations) // files_per_task, 256)),
        )
        dataset = items.map_batches(
            _read_visits,  # type: ignore[arg-type]  # extra fn_kwargs are not in Ray's stub
            fn_kwargs={"storage": storage, "columns": STREAM_COLUMNS},
            batch_size=files_per_task,
            batch_format="numpy",
        )
    yield from dataset.iter_batches(
        batch_format="pyarrow", batch_size=None, prefetch_batches=prefetch_batches
    )


class _VisitAssembler:
    """Cuts Ray Data's ordered batches back into whole files, one visit at a time."""

    def __init__(self, batches: Iterator[pa.Table]) -> None:
        self.batches = batches
        self.buffer: pa.Table | None = None

    def next_visit(self, visit: int, expected_rows: int) -> pa.Table:
        parts: list[pa.Table] = []
        while True:
            if self.buffer is None or self.buffer.num_rows == 0:
                self.buffer = next(self.batches, None)
                if self.buffer is None:
                    break
            visits = self.buffer.column("visit").to_numpy()
            if visits[0] != visit:
                if visits[0] < visit:
                    raise RuntimeError(f"data stream out of order: visit {visits[0]} arrived after {visit}")
                break
            length = int(np.argmax(visits != visit)) if (visits != visit).any() else len(visits)
            parts.append(self.buffer.slice(0, length))
            self.buffer = self.buffer.slice(length)
        table = pa.concat_tables(parts).drop(["visit"]) if parts else None
        if table is None or table.num_rows != expected_rows:
            got = 0 if table is None else table.num_rows
            raise RuntimeError(f"shard visit {visit}: {got} rows arrived, the manifest says {expected_rows}")
        return table
