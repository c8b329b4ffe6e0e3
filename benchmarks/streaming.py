"""Streaming throughput into one training consumer, one JSON line per measurement:

    python benchmarks/streaming.py [--micro-batch 8] [--seq-len 2048] [--epochs 10]

Shards of the training files of the stage catalogues are built once (the real shard pipeline), then
delivered as collated torch micro-batches (input_ids, labels, position_ids) to one consumer:
- `bare_pyarrow_local|s3`: a plain loop, pyarrow.parquet.read_table per file in plan order + the
  same padding-free flattening — the baseline;
- `ray_data_local|s3`: our RankStream (the data plan, Ray Data reads with prefetching), world size 1.
S3 is moto's server on 127.0.0.1. Each line gives tokens/s, the ratio to the bare loop on the same
store, and how many GPUs consuming 78,794 tokens/s each (one H200 training a 0.5B model,
../shared/gpu/README.md) that one consumer core keeps fed.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyarrow.parquet as pq

from benchmarks._samples import QWEN2_TOKENIZER, training_sample_files
from taiyi_ray.config.platform import RayConfig, StorageConfig
from taiyi_ray.data.build_shards import build_shard_set
from taiyi_ray.data.chat_format import get_chat_format
from taiyi_ray.data.plan import DataPlan
from taiyi_ray.data.shards import ShardManifest, ShardSettings
from taiyi_ray.data.stream import STREAM_COLUMNS, RankStream, flatten
from taiyi_ray.data.tokenizer import configure_tokenizer, load_tokenizer, tokenizer_fingerprint
from taiyi_ray.runtime import init_ray, prepare_process_env
from taiyi_ray.storage import Storage

H200_TOKENS_PER_S = 78794
PAD_ID = 151643


def build_local_shards(seq_len: int) -> ShardManifest:
    scratch = tempfile.mkdtemp(prefix="taiyi-bench-stream-")
    files = training_sample_files(os.path.join(scratch, "samples"))
    tokenizer = configure_tokenizer(load_tokenizer(QWEN2_TOKENIZER), get_chat_format("taiyi"))
    settings = ShardSettings("taiyi", seq_len, True, "truncate", rows_per_shard=256)
    build = build_shard_set(
        Storage(),
        files,
        os.path.join(scratch, "shards"),
        str(QWEN2_TOKENIZER),
        tokenizer_fingerprint(tokenizer),
        settings,
    )
    return build.manifest


def plan_for(manifest: ShardManifest, root: str) -> DataPlan:
    """The manifest's files, read from `root` (its version dir, or a copy of it elsewhere)."""
    return DataPlan([manifest.model_copy(update={"version_dir": root}).source_files()], seed=0, shuffle=False)


def bare_loop(storage: Storage, plan: DataPlan, micro_batch: int, epochs: int) -> tuple[int, float]:
    started, tokens = time.perf_counter(), 0
    for location in plan.locations * epochs:
        filesystem, path = storage.arrow(location)
        table = pq.read_table(path, filesystem=filesystem, columns=STREAM_COLUMNS)
        for start in range(0, table.num_rows - micro_batch + 1, micro_batch):
            batch = flatten(table.slice(start, micro_batch), PAD_ID)
            tokens += int(batch["input_ids"].numel())  # flattened: no padding
    return tokens, time.perf_counter() - started


def ray_data_stream(storage: Storage, plan: DataPlan, micro_batch: int, epochs: int) -> tuple[int, float]:
    stream = RankStream(
        plan,
        storage,
        world=1,
        rank=0,
        micro_batch_size=micro_batch,
        accumulation=1,
        epochs=epochs,
        pad_id=PAD_ID,
    )
    started, tokens = time.perf_counter(), 0
    for step in stream:
        tokens += sum(int(batch["input_ids"].numel()) for batch in step.micro_batches)
    return tokens, time.perf_counter() - started


def start_s3() -> str:
    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint,
        }
    )
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench")
    return endpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--micro-batch", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--epochs", type=int, default=10, help="passes over the shards (amortises start-up)")
    args = parser.parse_args()
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    endpoint = start_s3()  # before Ray starts, so its workers inherit the endpoint and credentials
    prepare_process_env()
    init_ray(RayConfig(num_cpus=4))
    manifest = build_local_shards(args.seq_len)
    s3_storage = Storage(StorageConfig(endpoint_url=endpoint))
    s3_storage.upload_dir(manifest.version_dir, "s3://bench/shards")
    stores = {"local": (Storage(), manifest.version_dir), "s3": (s3_storage, "s3://bench/shards")}
    ray_data_stream(
        Storage(), plan_for(manifest, manifest.version_dir), args.micro_batch, 1
    )  # warm-up: Ray Data's first pipeline
    for store, (storage, root) in stores.items():
        plan = plan_for(manifest, root)
        bare_tokens, bare_seconds = bare_loop(storage, plan, args.micro_batch, args.epochs)
        ours_tokens, ours_seconds = ray_data_stream(storage, plan, args.micro_batch, args.epochs)
        for name, tokens, seconds in (
            ("bare_pyarrow", bare_tokens, bare_seconds),
            ("ray_data", ours_tokens, ours_seconds),
        ):
            rate = tokens / seconds
            print(
                json.dumps(
                    {
                        "name": f"{name}_{store}",
                        "tokens": tokens,
                        "seconds": round(seconds, 2),
                        "tokens_per_s": round(rate),
                        "ratio_to_bare": round(rate / (bare_tokens / bare_seconds), 3),
                        "h200s_fed_per_core": round(rate / H200_TOKENS_PER_S, 1),
                        "micro_batch": args.micro_batch,
                        "seq_len": args.seq_len,
                        "files": len(plan.locations),
                        "epochs": args.epochs,
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
