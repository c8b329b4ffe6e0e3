"""Training-loop overhead on this machine (CPU, tiny model), one JSON line per case, same run:

    python benchmarks/train_loop.py [--steps 40] [--rounds 3] [--micro-batch 4] [--hidden 256] [--layers 4]

Cases, all full fine-tuning of the same random-weight Qwen2 on the same packed rows of the demo corpus:
- `bare_pytorch`: a plain loop — forward, backward, clip, torch AdamW step (the anchor, like
  ../shared/gpu/sft_anchor.py's `full` case);
- `deepspeed`: the same steps through a DeepSpeed ZeRO-2 engine with our loss, one process;
- `ray_train`: our whole stage-1 job (TorchTrainer, 1 worker, Ray Data stream, metrics, checkpoint
  at the end only), tokens/s read from its metrics.jsonl.
Tokens/s are medians over steps after a warm-up (Ray Train's step time is the wall time between steps,
logging included, checkpointing excluded). The three cases run in turn, `--rounds` times, so slow spells
of a shared machine hit all of them; each line gives the median over rounds, and the ratios are medians
of the per-round ratios (Ray Train against the DeepSpeed loop: the Ray Train overhead).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from taiyi_ray.config import load_job_config
from taiyi_ray.config.jobs import DataJobConfig, PipelineJobConfig, Stage1JobConfig
from taiyi_ray.config.model import TinyQwen2Shape
from taiyi_ray.data.shards import ShardManifest
from taiyi_ray.runtime import prepare_process_env

REPO_ROOT = Path(__file__).resolve().parent.parent
WARMUP = 3


def batches(
    manifest: ShardManifest, micro_batch: int, steps: int, pad_id: int
) -> list[dict[str, torch.Tensor]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from taiyi_ray.data.stream import STREAM_COLUMNS, flatten

    table = pa.concat_tables(
        pq.read_table(location, columns=STREAM_COLUMNS) for location in manifest.source_files().locations
    )
    out: list[dict[str, torch.Tensor]] = []
    while len(out) < steps:
        for start in range(0, table.num_rows - micro_batch + 1, micro_batch):
            out.append(flatten(table.slice(start, micro_batch), pad_id))
    return out[:steps]


def real_tokens(batch: dict[str, torch.Tensor], pad_id: int) -> int:
    """A flattened micro-batch (no token count) holds no padding: every token is real."""
    return int(batch["input_ids"].numel())


def build_model(shape: TinyQwen2Shape, vocab: int, pad_id: int) -> torch.nn.Module:
    from taiyi_ray.model.factory import build_tiny_qwen2

    model = build_tiny_qwen2(shape, vocab, seed=0, eos_token_id=pad_id, pad_token_id=pad_id)
    model.config.use_cache = False
    return model


def bare_pytorch(
    model: torch.nn.Module, data: list[dict[str, torch.Tensor]], lr: float, pad_id: int
) -> float:
    from taiyi_ray.train.loop import micro_batch_loss

    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    rates = []
    for batch in data:
        started = time.perf_counter()
        loss = micro_batch_loss(model, batch, max(int((batch["labels"][:, 1:] != -100).sum()), 1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.3)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        rates.append(real_tokens(batch, pad_id) / (time.perf_counter() - started))
    return statistics.median(rates[WARMUP:])


def deepspeed_loop(
    model: torch.nn.Module, data: list[dict[str, torch.Tensor]], lr: float, micro_batch: int, pad_id: int
) -> float:
    import deepspeed
    import torch.distributed as dist

    from taiyi_ray.config.train import DataSource, StageConfig
    from taiyi_ray.train.loop import micro_batch_loss
    from taiyi_ray.train.optimization import build_deepspeed_config

    os.environ.update(
        {
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": "29517",
            "RANK": "0",
            "WORLD_SIZE": "1",
            "LOCAL_RANK": "0",
        }
    )
    if not dist.is_initialized():
        dist.init_process_group("gloo", rank=0, world_size=1)
    stage = StageConfig(
        data=[DataSource(set="stage1")],
        method="full",
        micro_batch_size=micro_batch,
        num_workers=1,
        zero_stage=2,
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    engine, _, _, _ = deepspeed.initialize(
        model=model,
        optimizer=optimizer,
        config=build_deepspeed_config(stage, 1, False),
        dist_init_required=False,
    )
    rates = []
    for batch in data:
        started = time.perf_counter()
        loss = micro_batch_loss(engine, batch, max(int((batch["labels"][:, 1:] != -100).sum()), 1))
        engine.backward(loss)
        engine.step()
        rates.append(real_tokens(batch, pad_id) / (time.perf_counter() - started))
    return statistics.median(rates[WARMUP:])


def ray_train(config: PipelineJobConfig, run_dir: str, steps: int, waits: list[float]) -> float:
    """Median tokens/s of our stage-1 job; appends the share of its step time spent waiting for data."""
    from taiyi_ray.train.job import run_stage_job

    # Ray gives a worker OMP threads = its CPUs: as many as the in-process loops use (all cores here).
    threads = torch.get_num_threads()
    stage = config.stage1.model_copy(
        update={
            "max_steps": steps,
            "checkpoint_every_steps": 10_000,
            "num_workers": 1,
            "cpus_per_worker": threads,
            "validation": None,  # training throughput only
        }
    )
    job = Stage1JobConfig(
        storage=config.storage, ray=config.ray, model=config.model, data=config.data, stage1=stage
    )
    run_stage_job(job, "stage1", run_dir)
    metrics = [
        json.loads(line) for line in Path(run_dir, "metrics.jsonl").read_text().splitlines() if line.strip()
    ]
    steady = metrics[WARMUP:]
    waits.append(sum(item["data_wait_s"] for item in steady) / sum(item["step_s"] for item in steady))
    return statistics.median(item["tokens_per_s"] for item in steady)


def tiny_model_args(description: str, steps: int) -> argparse.Namespace:
    """The CPU benchmarks' shared flags: steps, rounds, micro-batch rows and the tiny model's size."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--micro-batch", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    return parser.parse_args()


def tiny_shape(args: argparse.Namespace) -> TinyQwen2Shape:
    return TinyQwen2Shape(
        hidden_size=args.hidden,
        intermediate_size=4 * args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=max(4, args.hidden // 64),
        num_key_value_heads=2,
    )


def main() -> None:
    args = tiny_model_args(__doc__.splitlines()[0], steps=40)
    prepare_process_env()
    os.chdir(REPO_ROOT)
    root = tempfile.mkdtemp(prefix="taiyi-bench-train-")
    shape = tiny_shape(args)
    overrides = [
        f"storage.root={root}",
        f"model.tiny.hidden_size={shape.hidden_size}",
        f"model.tiny.intermediate_size={shape.intermediate_size}",
        f"model.tiny.num_hidden_layers={shape.num_hidden_layers}",
        f"model.tiny.num_attention_heads={shape.num_attention_heads}",
        "stage1.method=full",
        "stage1.zero_stage=2",
        f"stage1.micro_batch_size={args.micro_batch}",
        "stage1.epochs=100",
    ]
    config = load_job_config(PipelineJobConfig, REPO_ROOT / "configs" / "demo.yaml", overrides)
    from taiyi_ray.data.job import run_data_job

    summary = run_data_job(
        DataJobConfig(storage=config.storage, ray=config.ray, model=config.model, data=config.data),
        f"{root}/data",
    )
    from taiyi_ray.data.shards import load_manifest
    from taiyi_ray.data.tokenizer import load_tokenizer
    from taiyi_ray.model.factory import padded_vocab_size
    from taiyi_ray.storage import Storage

    manifest = load_manifest(Storage(), summary.shard_sets["stage1"].version_dir)
    tokenizer = load_tokenizer(summary.tokenizer.location)
    pad_id, vocab = tokenizer.pad_token_id, padded_vocab_size(len(tokenizer))
    data = batches(manifest, args.micro_batch, args.steps, pad_id)
    rounds: dict[str, list[float]] = {"bare_pytorch": [], "deepspeed": [], "ray_train": []}
    waits: list[float] = []
    for index in range(args.rounds):
        torch.manual_seed(0)
        lr = config.stage1.learning_rate
        rounds["bare_pytorch"].append(bare_pytorch(build_model(shape, vocab, pad_id), data, lr, pad_id))
        rounds["deepspeed"].append(
            deepspeed_loop(build_model(shape, vocab, pad_id), data, lr, args.micro_batch, pad_id)
        )
        rounds["ray_train"].append(ray_train(config, f"{root}/stage1-{index}", args.steps, waits))
    common = {
        "hidden": args.hidden,
        "layers": args.layers,
        "micro_batch": args.micro_batch,
        "steps": args.steps,
        "rounds": args.rounds,
        "device": "cpu",
    }

    def ratio(case: str, baseline: str) -> float:
        return round(statistics.median(a / b for a, b in zip(rounds[case], rounds[baseline], strict=True)), 3)

    for case, values in rounds.items():
        line = {
            "case": case,
            "tokens_per_s": round(statistics.median(values)),
            "per_round": [round(value) for value in values],
            "ratio_to_bare": ratio(case, "bare_pytorch"),
        }
        if case == "ray_train":
            line["ray_train_overhead"] = round(1 - ratio(case, "deepspeed"), 3)
            line["data_wait_share"] = round(statistics.median(waits), 4)
        print(json.dumps({**line, **common}))


if __name__ == "__main__":
    main()
