"""Packing: every sample placed once, rows within capacity, position ids restart per sample."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pytest

from taiyi_ray.data.encode_samples import TOKENIZED_SCHEMA
from taiyi_ray.data.pack import best_fit_decreasing, pack_table, padded_efficiency


def first_fit_decreasing_bins(lengths: list[int], capacity: int) -> int:
    bins: list[int] = []
    for length in sorted(lengths, reverse=True):
        for index, used in enumerate(bins):
            if used + length <= capacity:
                bins[index] += length
                break
        else:
            bins.append(length)
    return len(bins)


@pytest.mark.parametrize("seed", range(5))
def test_best_fit_decreasing_is_a_valid_packing_no_worse_than_ffd(seed: int) -> None:
    rng = random.Random(seed)
    lengths = [rng.randint(1, 1024) for _ in range(500)]
    bins = best_fit_decreasing(lengths, 1024)
    placed = sorted(index for group in bins for index in group)
    assert placed == list(range(len(lengths)))
    assert all(sum(lengths[index] for index in group) <= 1024 for group in bins)
    assert len(bins) <= first_fit_decreasing_bins(lengths, 1024)
    assert len(bins) >= -(-sum(lengths) // 1024)  # at least the lower bound


def test_item_longer_than_capacity_is_refused() -> None:
    with pytest.raises(ValueError, match="length 9 > capacity 8"):
        best_fit_decreasing([3, 9], 8)


def _tokenized(lengths: list[int]) -> pa.Table:
    rows = {name: [] for name in TOKENIZED_SCHEMA.names}
    for index, length in enumerate(lengths):
        ids = np.arange(100 * index, 100 * index + length, dtype=np.int32)
        labels = np.where(np.arange(length) >= length // 2, ids, -100).astype(np.int32)
        rows["sample_id"].append(f"s{index}")
        rows["dataset"].append("d" if index % 2 else "e")
        rows["input_ids"].append(ids)
        rows["labels"].append(labels)
        rows["num_tokens"].append(length)
        rows["num_label_tokens"].append(int((labels != -100).sum()))
        rows["truncated"].append(index == 0)
    return pa.Table.from_pydict(rows, schema=TOKENIZED_SCHEMA)


def test_pack_table_keeps_samples_intact_and_restarts_positions() -> None:
    lengths = [5, 3, 7, 2, 8, 4]
    packed = pack_table(_tokenized(lengths), seq_len=10, packing=True).to_pylist()
    assert sum(len(row["sample_ids"]) for row in packed) == 6
    for row in packed:
        assert row["num_tokens"] == len(row["input_ids"]) <= 10
        assert sum(row["sample_tokens"]) == row["num_tokens"]
        start = 0
        for sample_id, length in zip(row["sample_ids"], row["sample_tokens"], strict=True):
            index = int(sample_id[1:])
            assert row["input_ids"][start : start + length] == list(range(100 * index, 100 * index + length))
            assert row["position_ids"][start : start + length] == list(range(length))
            start += length
    assert sum(row["truncated_samples"] for row in packed) == 1
    unpacked = pack_table(_tokenized(lengths), seq_len=10, packing=False).to_pylist()
    assert [row["num_tokens"] for row in unpacked] == lengths


def test_padded_efficiency_of_taiyi_scheme() -> None:
    # micro-batches of 2: [4, 2] -> 8 slots, [6, 6] -> 12, [1] -> 1: 21 slots for 19 real tokens
    assert padded_efficiency([4, 2, 6, 6, 1], micro_batch_size=2, max_len=100) == pytest.approx(19 / 21)
    # truncation at max_len caps both the real tokens and the slots
    assert padded_efficiency([10, 2], micro_batch_size=2, max_len=5) == pytest.approx(7 / 10)
