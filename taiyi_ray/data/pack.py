"""Packing tokenized samples into rows of at most `seq_len` tokens, with per-sample position ids.

Rows are filled by best-fit decreasing (each sample, longest first, goes into the fullest row it still
fits in), which wastes no more than first-fit decreasing. `position_ids` restart at 0 for every sample;
at load time the rows of a micro-batch are flattened into one sequence (`taiyi_ray.data.stream.flatten`)
from whose restarting position ids every attention backend keeps samples apart (varlen flash attention,
or a block-diagonal causal mask), and the loss is a mean over answer tokens, identical to training the
samples unpacked.

Without packing each sample is its own row (Taiyi's scheme); flattening needs no padding either way.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

ROW_SCHEMA = pa.schema(
    [
        ("input_ids", pa.list_(pa.int32())),
        ("labels", pa.list_(pa.int32())),
        ("position_ids", pa.list_(pa.int32())),
        ("sample_ids", pa.list_(pa.string())),
        ("datasets", pa.list_(pa.string())),
        ("sample_tokens", pa.list_(pa.int32())),
        ("num_tokens", pa.int32()),
        ("num_label_tokens", pa.int32()),
        ("truncated_samples", pa.int32()),
    ]
)
"""One training row per Parquet row: the shard schema."""


def best_fit_decreasing(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Group item indices into bins of total length <= capacity (best-fit decreasing).

    Returns bins in creation order; items inside a bin in insertion (longest-first) order. Every item
    must fit on its own (callers truncate first).
    """
    order = sorted(range(len(lengths)), key=lambda index: (-lengths[index], index))
    bins: list[list[int]] = []
    open_bins: list[tuple[int, int]] = []  # (remaining capacity, bin index), sorted
    for index in order:
        length = lengths[index]
        if length > capacity:
            raise ValueError(f"item {index} has length {length} > capacity {capacity}")
        position = bisect.bisect_left(open_bins, (length, -1))
        if position < len(open_bins):
            remaining, bin_index = open_bins.pop(position)
            bins[bin_index].append(index)
            remaining -= length
        else:
            bin_index = len(bins)
            bins.append([index])
            remaining = capacity - length
        if remaining > 0:
            bisect.insort(open_bins, (remaining, bin_index))
    return bins


def _row(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    input_ids = np.concatenate([sample["input_ids"] for sample in samples]).astype(np.int32)
    labels = np.concatenate([sample["labels"] for sample in samples]).astype(np.int32)
    positions = np.concatenate([np.arange(len(sample["input_ids"]), dtype=np.int32) for sample in samples])
    return {
        "input_ids": input_ids,
        "labels": labels,
        "position_ids": positions,
        "sample_ids": [sample["sample_id"] for sample in samples],
        "datasets": [sample["dataset"] for sample in samples],
        "sample_tokens": [len(sample["input_ids"]) for sample in samples],
        "num_tokens": len(input_ids),
        "num_label_tokens": int(sum(sample["num_label_tokens"] for sample in samples)),
        "truncated_samples": int(sum(bool(sample.get("truncated")) for sample in samples)),
    }


def pack_table(table: pa.Table, seq_len: int, packing: bool) -> pa.Table:
    """Tokenized samples (tokenize.TOKENIZED_SCHEMA) -> training rows (ROW_SCHEMA); empty samples skipped."""
    samples = [row for row in table.to_pylist() if row["num_tokens"] > 0]
    for sample in samples:
        sample["input_ids"] = np.asarray(sample["input_ids"], dtype=np.int32)
        sample["labels"] = np.asarray(sample["labels"], dtype=np.int32)
    if packing:
        groups = best_fit_decreasing([len(sample["input_ids"]) for sample in samples], seq_len)
    else:
        groups = [[index] for index in range(len(samples))]
    rows = [_row([samples[index] for index in group]) for group in groups]
    columns = {name: [row[name] for row in rows] for name in ROW_SCHEMA.names}
    return pa.Table.from_pydict(columns, schema=ROW_SCHEMA)


class RowPacker:
    """Ray Data `map_batches` UDF around `pack_table` (a batch is one packing window)."""

    def __init__(self, seq_len: int, packing: bool) -> None:
        self.seq_len = seq_len
        self.packing = packing

    def __call__(self, batch: pa.Table) -> pa.Table:
        return pack_table(batch, self.seq_len, self.packing)


def padded_efficiency(lengths: Sequence[int], micro_batch_size: int, max_len: int) -> float:
    """Real-token share under Taiyi's scheme: samples in file order, micro-batches padded to their longest,
    each sample truncated at `max_len`."""
    clipped = [min(length, max_len) for length in lengths]
    real = sum(clipped)
    slots = 0
    for start in range(0, len(clipped), micro_batch_size):
        batch = clipped[start : start + micro_batch_size]
        slots += max(batch) * len(batch)
    return real / slots if slots else 0.0
