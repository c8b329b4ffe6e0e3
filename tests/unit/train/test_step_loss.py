"""Loss invariants on the tiny model (TRL-style): packed == unpacked, and the gradient does not depend
on how a global batch is split into micro-batches, accumulation steps and workers."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch

from taiyi_ray.config.model import TinyQwen2Shape
from taiyi_ray.data.encode_samples import IGNORE_INDEX, TOKENIZED_SCHEMA
from taiyi_ray.data.pack import pack_table
from taiyi_ray.data.stream import collate
from taiyi_ray.model.factory import build_tiny_qwen2
from taiyi_ray.train.loop import items_per_micro_batch, micro_batch_loss

VOCAB, PAD = 512, 0


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    shape = TinyQwen2Shape(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2)
    return build_tiny_qwen2(shape, VOCAB, seed=3, eos_token_id=1, pad_token_id=PAD).eval()


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


def token_mean_loss(model: torch.nn.Module, rows: pa.Table) -> float:
    batch = collate(rows, PAD)
    label_tokens = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
    with torch.no_grad():
        return float(micro_batch_loss(model, batch, label_tokens))


def test_packed_loss_equals_unpacked_loss(model: torch.nn.Module) -> None:
    table = samples(12, seed=1)
    packed = pack_table(table, seq_len=64, packing=True)
    unpacked = pack_table(table, seq_len=64, packing=False)
    assert packed.num_rows < unpacked.num_rows  # several samples share a row
    # unpacked: every sample alone (padded), the mean over all answer tokens of all samples
    assert token_mean_loss(model, packed) == pytest.approx(token_mean_loss(model, unpacked), abs=1e-5)
    # a cross-sample attention leak would change it: the same rows with positions NOT restarting differ
    leaky = collate(packed, PAD)
    leaky["position_ids"] = torch.arange(leaky["input_ids"].shape[1]).expand_as(leaky["input_ids"]).clone()
    label_tokens = int((leaky["labels"][:, 1:] != IGNORE_INDEX).sum())
    with torch.no_grad():
        leaked = float(micro_batch_loss(model, leaky, label_tokens))
    assert abs(leaked - token_mean_loss(model, unpacked)) > 1e-3


def test_fixed_width_padding_leaves_the_loss_unchanged(model: torch.nn.Module) -> None:
    """torch.compile runs pad every micro-batch to the row width: the padding tokens carry no label
    and form their own position block, so the loss over the real answer tokens is the same."""
    packed = pack_table(samples(12, seed=2), seq_len=64, packing=True)
    longest = collate(packed, PAD)
    fixed = collate(packed, PAD, width=64)
    assert longest["input_ids"].shape[1] < 64 == fixed["input_ids"].shape[1]
    assert int((fixed["labels"] != IGNORE_INDEX).sum()) == int((longest["labels"] != IGNORE_INDEX).sum())
    label_tokens = int((longest["labels"][:, 1:] != IGNORE_INDEX).sum())
    with torch.no_grad():
        padded_loss = float(micro_batch_loss(model, fixed, label_tokens))
    assert padded_loss == pytest.approx(token_mean_loss(model, packed), abs=1e-5)
    with pytest.raises(ValueError, match="does not fit the fixed width 8"):
        collate(packed, PAD, width=8)


def gradient(
    model: torch.nn.Module, rows: pa.Table, world: int, accumulation: int, micro: int
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
            loss = micro_batch_loss(model, collate(rows.slice(start, micro), PAD), divisor)
            (loss / accumulation / world).backward()  # DeepSpeed: 1/accumulation, mean over ranks
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]).clone()


def test_gradient_is_independent_of_the_batch_split(model: torch.nn.Module) -> None:
    rows = pack_table(samples(16, seed=2), seq_len=48, packing=False)  # 16 rows of unequal lengths
    reference = gradient(model, rows, world=1, accumulation=1, micro=16)
    for world, accumulation, micro in [(1, 16, 1), (1, 4, 4), (2, 8, 1), (4, 2, 2), (2, 1, 8)]:
        other = gradient(model, rows, world, accumulation, micro)
        torch.testing.assert_close(other, reference, rtol=1e-4, atol=1e-6)
    # the naive alternative (mean per micro-batch) differs, so the test can tell
    model.zero_grad()
    for step in range(16):
        batch = collate(rows.slice(step, 1), PAD)
        (
            micro_batch_loss(model, batch, max(int((batch["labels"][:, 1:] != IGNORE_INDEX).sum()), 1)) / 16
        ).backward()
    naive = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    assert not torch.allclose(naive, reference, rtol=1e-3, atol=1e-6)
