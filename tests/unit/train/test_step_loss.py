"""Loss invariants of the padding-free layout on the tiny model (TRL-style): packed == unpacked on every
attention backend that runs on CPU, a leak would show, and the gradient does not depend on how a global
batch is split into micro-batches, token-capped passes, accumulation steps and workers."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch

from taiyi_ray.config.model import TinyQwen2Shape
from taiyi_ray.data.encode_samples import IGNORE_INDEX, TOKENIZED_SCHEMA
from taiyi_ray.data.pack import pack_table
from taiyi_ray.data.stream import flatten, split_by_tokens
from taiyi_ray.model.factory import build_tiny_qwen2
from taiyi_ray.train.loop import items_per_micro_batch, micro_batch_loss

VOCAB, PAD = 512, 0


def tiny_model(backend: str = "sdpa") -> torch.nn.Module:
    shape = TinyQwen2Shape(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2)
    return build_tiny_qwen2(
        shape, VOCAB, seed=3, eos_token_id=1, pad_token_id=PAD, attn_implementation=backend
    ).eval()


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return tiny_model()


def samples(count: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    rows = {name: [] for name in TOKENIZED_SCHEMA.names}
    for index in range(count):
        length = int(rng.integers(6, 40))
        ids = rng.integers(2, VOCAB, size=length).astype(np.int32)
        answer_start = int(rng.integers(2, length - 2))
        labels = np.where(np.arange(length) >= answer_start, ids, IGNORE_INDEX).astype(np.int32)
        for name, value in (
            ("sample_id", f"s{index}"),
            ("dataset", "d"),
            ("input_ids", ids),
            ("labels", labels),
            ("num_tokens", length),
            ("num_label_tokens", int((labels[1:] != IGNORE_INDEX).sum())),
            ("truncated", False),
        ):
            rows[name].append(value)
    return pa.Table.from_pydict(rows, schema=TOKENIZED_SCHEMA)


def token_mean_loss(model: torch.nn.Module, rows: pa.Table, **flat: int) -> float:
    batch = flatten(rows, PAD, **flat)
    label_tokens = int((batch["labels"] != IGNORE_INDEX).sum())
    with torch.no_grad():
        return float(micro_batch_loss(model, batch, label_tokens))


@pytest.mark.parametrize("backend", ["sdpa", "eager", "flex_attention"])
def test_packed_loss_equals_unpacked_loss(backend: str) -> None:
    """Forward only: flex attention has no backward on CPU (training through it is refused there)."""
    model = tiny_model(backend)
    table = samples(12, seed=1)
    packed = pack_table(table, seq_len=64, packing=True)
    unpacked = pack_table(table, seq_len=64, packing=False)
    assert packed.num_rows < unpacked.num_rows  # several samples share a row
    reference = token_mean_loss(model, unpacked)
    assert token_mean_loss(model, packed) == pytest.approx(reference, rel=1e-5)
    # a cross-sample attention leak would change it: the same tokens with positions NOT restarting differ
    leaky = flatten(packed, PAD)
    leaky["position_ids"] = torch.arange(leaky["input_ids"].shape[1]).unsqueeze(0)
    with torch.no_grad():
        leaked = float(micro_batch_loss(model, leaky, int((leaky["labels"] != IGNORE_INDEX).sum())))
    assert abs(leaked - reference) > 1e-3


def test_a_micro_batch_is_one_sequence_with_restarting_positions() -> None:
    packed = pack_table(samples(12, seed=4), seq_len=64, packing=True)
    batch = flatten(packed, PAD)
    lengths = packed.column("num_tokens").to_pylist()
    assert batch["input_ids"].shape == (1, sum(lengths))
    starts = torch.nonzero(batch["position_ids"][0] == 0).flatten()
    assert len(starts) == sum(len(ids) for ids in packed.column("sample_ids").to_pylist())
    assert (batch["labels"][0, starts] == IGNORE_INDEX).all()  # never predicted from the previous sample


def test_fixed_token_count_padding_leaves_the_loss_unchanged(model: torch.nn.Module) -> None:
    """torch.compile pads every pass to a fixed token count: the padding carries no label and forms its
    own position blocks, so the loss over the real answer tokens is the same."""
    packed = pack_table(samples(12, seed=2), seq_len=64, packing=True)
    width = packed.num_rows * 64  # rows x max_seq_len: the default fixed count
    natural = flatten(packed, PAD)
    fixed = flatten(packed, PAD, token_count=width, pad_block=64)
    assert natural["input_ids"].shape[1] < width == fixed["input_ids"].shape[1]
    assert int(fixed["position_ids"].max()) < 64  # the padding never runs past a row's positions
    assert int((fixed["labels"] != IGNORE_INDEX).sum()) == int((natural["labels"] != IGNORE_INDEX).sum())
    padded = token_mean_loss(model, packed, token_count=width, pad_block=64)
    assert padded == pytest.approx(token_mean_loss(model, packed), rel=1e-5)
    with pytest.raises(ValueError, match="does not fit the fixed token count 8"):
        flatten(packed, PAD, token_count=8)


def test_a_token_cap_splits_a_micro_batch_into_passes_of_whole_rows() -> None:
    rows = pack_table(samples(16, seed=5), seq_len=48, packing=False)
    groups = split_by_tokens(rows, 100)
    assert sum(group.num_rows for group in groups) == rows.num_rows
    assert all(sum(group.column("num_tokens").to_pylist()) <= 100 for group in groups)
    assert len(groups) > 1 and split_by_tokens(rows, None) == [rows]
    with pytest.raises(ValueError, match="exceeds max_tokens_per_micro_batch 20"):
        split_by_tokens(rows, 20)


def gradient(
    model: torch.nn.Module, rows: pa.Table, world: int, accumulation: int, micro: int, cap: int | None = None
) -> torch.Tensor:
    """What DeepSpeed computes: per rank, accumulation micro-batches of `micro` rows, loss/accumulation,
    gradients averaged over ranks. Rows are split contiguously across ranks like the data plan does."""
    model.zero_grad()
    label_tokens = sum(rows.column("num_label_tokens").to_pylist())
    divisor = items_per_micro_batch(label_tokens, world, accumulation)
    per_rank = rows.num_rows // world
    for rank in range(world):
        for step in range(accumulation):
            start = rank * per_rank + step * micro
            for group in split_by_tokens(rows.slice(start, micro), cap):
                loss = micro_batch_loss(model, flatten(group, PAD), divisor)
                (loss / accumulation / world).backward()  # DeepSpeed: 1/accumulation, mean over ranks
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]).clone()


def test_gradient_is_independent_of_the_batch_split(model: torch.nn.Module) -> None:
    rows = pack_table(samples(16, seed=2), seq_len=48, packing=False)  # 16 rows of unequal lengths
    reference = gradient(model, rows, world=1, accumulation=1, micro=16)
    for world, accumulation, micro, cap in [
        (1, 16, 1, None), (1, 4, 4, None), (2, 8, 1, None), (4, 2, 2, None), (2, 1, 8, None), (1, 1, 16, 100),
    ]:  # fmt: skip
        other = gradient(model, rows, world, accumulation, micro, cap)
        torch.testing.assert_close(other, reference, rtol=1e-4, atol=1e-6)
    # the naive alternative (mean per micro-batch) differs, so the test can tell
    model.zero_grad()
    for step in range(16):
        batch = flatten(rows.slice(step, 1), PAD)
        (micro_batch_loss(model, batch, max(int((batch["labels"] != IGNORE_INDEX).sum()), 1)) / 16).backward()
    naive = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    assert not torch.allclose(naive, reference, rtol=1e-3, atol=1e-6)
