"""Padding-free micro-batches against the padded layout they replaced, CPU, tiny model, same run:

    python benchmarks/padding_free.py [--steps 30] [--rounds 3] [--micro-batch 4] [--hidden 256] [--layers 4]

The demo corpus is prepared twice (packed rows, and one sample per row as Taiyi trained) with the real
Qwen2 tokenizer. On the same rows, full fine-tuning steps (forward, backward, AdamW) of the same random
Qwen2 run with (a) `padded`: each micro-batch padded to its longest row, the layout training used before
(kept here only as this baseline), and (b) `padding_free`: the rows flattened into one sequence with
restarting position ids (`taiyi_ray.data.stream.flatten`, what training runs now). One JSON line per
layout and data, tokens/s of REAL tokens (median over steps after a warm-up, median over rounds), and
the ratio padding-free / padded (median of per-round ratios; the layouts alternate within each round).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from benchmarks.train_loop import build_model, tiny_model_args, tiny_shape
from taiyi_ray.config import load_job_config
from taiyi_ray.config.jobs import DataJobConfig, PipelineJobConfig
from taiyi_ray.data.encode_samples import IGNORE_INDEX
from taiyi_ray.data.stream import STREAM_COLUMNS, flatten
from taiyi_ray.runtime import prepare_process_env

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("TAIYI_SHARED", REPO_ROOT.parent / "shared"))
WARMUP = 3
Batch = dict[str, torch.Tensor]


def padded(rows: pa.Table, pad_id: int) -> Batch:
    """The padded layout: rows padded to the longest with label -100 and their own position ids."""
    lengths = pa.compute.list_value_length(rows.column("input_ids")).to_numpy(zero_copy_only=False)
    width = int(lengths.max())
    batch = {
        "input_ids": np.full((len(lengths), width), pad_id, dtype=np.int64),
        "labels": np.full((len(lengths), width), IGNORE_INDEX, dtype=np.int64),
        "position_ids": np.tile(np.arange(width, dtype=np.int64), (len(lengths), 1)),
    }
    for index, length in enumerate(lengths):
        for name in ("input_ids", "labels", "position_ids"):
            batch[name][index, :length] = rows.column(name)[index].values.to_numpy(zero_copy_only=False)
    return {name: torch.from_numpy(value) for name, value in batch.items()}


def micro_batches(
    table: pa.Table, micro_batch: int, steps: int, layout: Callable[[pa.Table, int], Batch], pad_id: int
) -> list[tuple[Batch, int]]:
    """(batch, real tokens) for `steps` micro-batches, cycling over the rows."""
    out: list[tuple[Batch, int]] = []
    while len(out) < steps:
        for start in range(0, table.num_rows - micro_batch + 1, micro_batch):
            rows = table.slice(start, micro_batch)
            real = int(pa.compute.sum(pa.compute.list_value_length(rows.column("input_ids"))).as_py())
            out.append((layout(rows, pad_id), real))
    return out[:steps]


def tokens_per_s(model: torch.nn.Module, data: list[tuple[Batch, int]]) -> float:
    from taiyi_ray.train.loop import micro_batch_loss

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    rates = []
    for batch, real in data:
        started = time.perf_counter()
        loss = micro_batch_loss(model, batch, max(int((batch["labels"] != IGNORE_INDEX).sum()), 1))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        rates.append(real / (time.perf_counter() - started))
    return statistics.median(rates[WARMUP:])


def prepared_rows(root: str, packing: bool) -> tuple[pa.Table, int, int]:
    """The demo's stage-1 rows (packed or not), the pad id and the padded vocabulary size."""
    from taiyi_ray.data.job import run_data_job
    from taiyi_ray.data.shards import load_manifest
    from taiyi_ray.data.tokenizer import load_tokenizer
    from taiyi_ray.model.factory import padded_vocab_size
    from taiyi_ray.storage import Storage

    overrides = [
        f"storage.root={root}",
        f"model.tokenizer={SHARED / 'tokenizers' / 'qwen2'}",
        f"data.packing={str(packing).lower()}",
    ]
    config = load_job_config(PipelineJobConfig, REPO_ROOT / "configs" / "demo.yaml", overrides)
    summary = run_data_job(
        DataJobConfig(storage=config.storage, ray=config.ray, model=config.model, data=config.data),
        f"{root}/data",
    )
    manifest = load_manifest(Storage(), summary.shard_sets["stage1"].version_dir)
    table = pa.concat_tables(
        pq.read_table(location, columns=STREAM_COLUMNS) for location in manifest.source_files().locations
    )
    tokenizer = load_tokenizer(summary.tokenizer.location)
    return table, tokenizer.pad_token_id, padded_vocab_size(len(tokenizer))


def main() -> None:
    args = tiny_model_args(__doc__.splitlines()[0], steps=30)
    prepare_process_env()
    os.chdir(REPO_ROOT)
    shape = tiny_shape(args)
    for packing in (False, True):
        table, pad_id, vocab = prepared_rows(tempfile.mkdtemp(prefix="taiyi-bench-pf-"), packing)
        layouts = {"padded": padded, "padding_free": flatten}
        data = {
            name: micro_batches(table, args.micro_batch, args.steps, layout, pad_id)
            for name, layout in layouts.items()
        }
        rounds: dict[str, list[float]] = {name: [] for name in layouts}
        for _ in range(args.rounds):
            for name in layouts:
                torch.manual_seed(0)
                rounds[name].append(tokens_per_s(build_model(shape, vocab, pad_id), data[name]))
        ratio = statistics.median(
            a / b for a, b in zip(rounds["padding_free"], rounds["padded"], strict=True)
        )
        for name, values in rounds.items():
            print(json.dumps({
                "layout": name, "packing": packing, "tokens_per_s": round(statistics.median(values)),
                "per_round": [round(value) for value in values], "micro_batch": args.micro_batch,
                "hidden": args.hidden, "layers": args.layers, "steps": args.steps, "device": "cpu",
            }), flush=True)  # fmt: skip
        print(
            json.dumps(
                {"metric": "padding_free_gain", "packing": packing, "throughput_ratio": round(ratio, 3)}
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
