"""Our training job against the bare-PyTorch anchor on the same shapes, in one call (GPU machine):

    python benchmarks/gpu_train.py --anchor .anchor/sft_anchor.py --shape 0.5b --mb 8 --seq 2048 [--compile]

Runs ../shared/gpu/sft_anchor.py's `full` case (copy it into an ignored folder: ../shared does not travel
to the GPU machine) as the baseline, then our stage-1 job — Ray Train TorchTrainer, 1 GPU worker,
DeepSpeed ZeRO-2 bf16, our data stream over packed Parquet shards of random tokens, full fine-tuning of
a random-weight Qwen2 of the same shape — and prints one JSON line per case with tokens/s, MFU and the
ratio to the anchor. `--shape tiny --device cpu` exercises the same path on a CPU machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from taiyi_ray.data.chat_format import get_chat_format
from taiyi_ray.data.pack import ROW_SCHEMA
from taiyi_ray.data.shards import (
    ShardManifest,
    ShardSettings,
    ShardTokenizer,
    summarise_files,
    write_manifest,
)
from taiyi_ray.data.tokenizer import (
    configure_tokenizer,
    save_tokenizer,
    tokenizer_fingerprint,
    train_bpe_tokenizer,
)
from taiyi_ray.storage import Storage

SHAPES = {  # the anchor's shapes (Qwen2.5-0.5B; tiny for a CPU dry run)
    "0.5b": {
        "hidden_size": 896,
        "intermediate_size": 4864,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
        "tie_word_embeddings": True,
    },
    "tiny": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 1000,
        "tie_word_embeddings": True,
    },
}
WARMUP = 3


def random_shards(directory: str, rows: int, seq_len: int, vocab: int) -> None:
    """Rows of random tokens, every token learned (what the anchor trains on), as one shard version."""
    rng = np.random.default_rng(0)
    ids = rng.integers(0, vocab, size=(rows, seq_len), dtype=np.int32)
    table = pa.Table.from_pydict(
        {
            "input_ids": list(ids),
            "labels": list(ids),
            "position_ids": [np.arange(seq_len, dtype=np.int32)] * rows,
            "sample_ids": [[f"r{index}"] for index in range(rows)],
            "datasets": [["random"]] * rows,
            "sample_tokens": [[seq_len]] * rows,
            "num_tokens": [seq_len] * rows,
            "num_label_tokens": [seq_len - 1] * rows,
            "truncated_samples": [0] * rows,
        },
        schema=ROW_SCHEMA,
    )
    os.makedirs(directory, exist_ok=True)
    pq.write_table(table, os.path.join(directory, "shard-000000-0.parquet"))


def anchor(path: str, args: argparse.Namespace) -> dict:
    """The anchor's bare-PyTorch `full` case on the same shape, batch and device."""
    command = [sys.executable, path, "full", "--shape", args.shape, "--mb", str(args.mb)]
    command += ["--seq", str(args.seq), "--device", args.device]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    results = [line.removeprefix("RESULT ") for line in output.splitlines() if line.startswith("RESULT {")]
    if not results:
        raise RuntimeError(f"the anchor printed no RESULT line:\n{output[-2000:]}")
    return json.loads(results[-1])


def ours(args: argparse.Namespace, root: str) -> dict:
    from taiyi_ray.config import load_job_config
    from taiyi_ray.config.jobs import Stage1JobConfig
    from taiyi_ray.train.job import run_stage_job

    shape = SHAPES[args.shape]
    storage = Storage()
    tokenizer = configure_tokenizer(
        train_bpe_tokenizer(["random tokens"] * 10, 300), get_chat_format("taiyi")
    )
    tokenizer_dir = save_tokenizer(tokenizer, os.path.join(root, "tokenizer"))
    version = os.path.join(root, "shards", "v-random")
    random_shards(version, args.steps * args.mb, args.seq, shape["vocab_size"])
    contents = summarise_files(storage, version, args.seq)
    manifest = ShardManifest(
        **dict(contents),
        format_version=1,
        content_hash="random-tokens",
        input_samples=contents.samples,
        dropped_samples=0,
        settings=ShardSettings("taiyi", args.seq, True, "truncate", args.steps * args.mb),
        tokenizer=ShardTokenizer(fingerprint=tokenizer_fingerprint(tokenizer), location=tokenizer_dir),
        sample_files=[],
    )
    write_manifest(storage, version, manifest)
    overrides = [f"storage.root={root}", f"model.tokenizer={tokenizer_dir}"]
    overrides += [f"model.tiny.{key}={value}" for key, value in shape.items()]
    overrides += [
        f"stage1.data=[{{uri: {version}}}]",
        "stage1.method=full",
        "stage1.zero_stage=2",
        f"stage1.micro_batch_size={args.mb}",
        "stage1.num_workers=1",
        f"stage1.use_gpu={args.device == 'cuda'}",
        f"stage1.max_steps={args.steps}",
        "stage1.checkpoint_every_steps=100000",
        "stage1.epochs=1",
        f"stage1.torch_compile={args.compile}",
        "stage1.precision=" + ("bf16" if args.device == "cuda" else "fp32"),
        "stage1.lora.dropout=0",
        "stage1.shuffle=false",
        f"stage1.cpus_per_worker={os.cpu_count() if args.device == 'cpu' else 8}",
        "stage1.validation=null",  # training throughput only, like the anchor
    ]
    config = load_job_config(
        Stage1JobConfig, Path(__file__).resolve().parent.parent / "configs" / "demo.yaml", overrides
    )
    run_dir = os.path.join(root, "run")
    summary = run_stage_job(config, "stage1", run_dir)
    metrics = [
        json.loads(line) for line in Path(run_dir, "metrics.jsonl").read_text().splitlines() if line.strip()
    ]
    steady = metrics[WARMUP:] or metrics
    return {
        "tokens_per_s": round(statistics.median(item["tokens_per_s"] for item in steady)),
        "mfu": summary.mfu and round(statistics.median(item["mfu"] for item in steady), 4),
        "peak_mem_gib": max((item["gpu_mem_gib"] or 0) for item in metrics) or None,
        "final_loss": summary.final_loss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--anchor", help="path to a copy of ../shared/gpu/sft_anchor.py (baseline, same call)"
    )
    parser.add_argument("--shape", choices=sorted(SHAPES), default="0.5b")
    parser.add_argument("--mb", type=int, default=8)
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    args = parser.parse_args()
    from taiyi_ray.runtime import prepare_process_env

    prepare_process_env()
    common = {"shape": args.shape, "micro_batch": args.mb, "seq": args.seq, "device": args.device}
    baseline = anchor(args.anchor, args) if args.anchor else None
    if baseline:
        print(
            json.dumps(
                {
                    "case": "anchor_bare_pytorch",
                    **common,
                    "tokens_per_s": baseline["tokens_per_s"],
                    "mfu": baseline["mfu"],
                }
            ),
            flush=True,
        )
    result = ours(args, tempfile.mkdtemp(prefix="taiyi-gpu-bench-"))
    ratio = round(result["tokens_per_s"] / baseline["tokens_per_s"], 3) if baseline else None
    print(
        json.dumps(
            {
                "case": "taiyi_ray_stage1",
                **common,
                **result,
                "compile": args.compile,
                "ratio_to_anchor": ratio,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
