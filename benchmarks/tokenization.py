"""Tokenisation throughput: ours against Hugging Face `datasets.map(tokenize, batched=True)` on the same
samples in the same run, one JSON line per measurement:

    python benchmarks/tokenization.py [--samples N]

Both sides run the same per-batch work (render with the chat format, one fast-tokenizer call with
offsets, loss mask), so the ratio measures the pipelines around it:
- `datasets_map`: Dataset.from_list(...).map(fn, batched=True, batch_size=256) in this process;
- `ours_in_process`: our SampleTokenizer UDF called on the same batches (what one Ray Data actor runs);
- `ours_ray_data_N`: the shard pipeline's Ray Data stage (read_json -> map_batches over N actors),
  end to end including Ray's scheduling, for N = 1 and 2 (scaling across workers; this machine has 2 cores).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyarrow as pa

from benchmarks._samples import QWEN2_TOKENIZER, read_samples, training_sample_files
from taiyi_ray.data.build_shards import _TableTokenizer, ordered_execution
from taiyi_ray.data.chat_format import get_chat_format
from taiyi_ray.data.encode_samples import SampleTokenizer, tokenize_conversations
from taiyi_ray.data.schema import Message
from taiyi_ray.data.tokenizer import configure_tokenizer, load_tokenizer

BATCH = 256


def line(name: str, samples: int, tokens: int, seconds: float, cores: int, **extra: object) -> dict:
    record = {
        "name": name,
        "samples": samples,
        "tokens": tokens,
        "seconds": round(seconds, 3),
        "samples_per_s": round(samples / seconds, 1),
        "tokens_per_s": round(tokens / seconds),
        "tokens_per_s_per_core": round(tokens / seconds / cores),
        **extra,
    }
    print(json.dumps(record), flush=True)
    return record


def hf_datasets(samples: list[dict]) -> tuple[float, int]:
    import datasets

    datasets.disable_progress_bars()
    chat_format = get_chat_format("taiyi")
    tokenizer = configure_tokenizer(load_tokenizer(QWEN2_TOKENIZER), chat_format)

    def tokenize(batch: dict) -> dict:
        conversations = [[Message(**turn) for turn in messages] for messages in batch["messages"]]
        encoded = tokenize_conversations(tokenizer, chat_format, conversations)
        return {"input_ids": [ids for ids, _ in encoded], "labels": [labels for _, labels in encoded]}

    dataset = datasets.Dataset.from_list(samples)
    started = time.perf_counter()
    mapped = dataset.map(tokenize, batched=True, batch_size=BATCH, remove_columns=dataset.column_names)
    seconds = time.perf_counter() - started
    tokens = sum(len(ids) for ids in mapped["input_ids"])
    return seconds, tokens


def ours_in_process(samples: list[dict]) -> tuple[float, int]:
    udf = SampleTokenizer(str(QWEN2_TOKENIZER), "taiyi", max_seq_len=1 << 20, overlong="truncate")
    started = time.perf_counter()
    tokens = 0
    for start in range(0, len(samples), BATCH):
        part = samples[start : start + BATCH]
        table = udf(
            {
                "id": [s["id"] for s in part],
                "dataset": [s["dataset"] for s in part],
                "messages": [s["messages"] for s in part],
            }
        )
        tokens += sum(table.column("num_tokens").to_pylist())
    return time.perf_counter() - started, tokens


def ours_ray_data(files: list[str], actors: int) -> tuple[float, int, float, float]:
    """(total seconds, tokens, seconds to the first batch, steady-state tokens/s after it)."""
    import pyarrow.json as pajson
    import ray.data
    from ray.data import ActorPoolStrategy

    started = time.perf_counter()
    with ordered_execution():
        dataset = ray.data.read_json(files, read_options=pajson.ReadOptions(block_size=4 << 20)).map_batches(
            _TableTokenizer,
            fn_constructor_kwargs={
                "tokenizer_dir": str(QWEN2_TOKENIZER),
                "chat_format": "taiyi",
                "max_seq_len": 1 << 20,
                "overlong": "truncate",
            },
            batch_size=BATCH,
            batch_format="pyarrow",
            compute=ActorPoolStrategy(size=actors),
        )
    tokens, first_at, first_tokens = 0, started, 0
    for batch in dataset.iter_batches(batch_format="pyarrow", batch_size=None):
        assert isinstance(batch, pa.Table)
        tokens += int(pa.compute.sum(batch.column("num_tokens")).as_py())
        if first_tokens == 0:
            first_at, first_tokens = time.perf_counter(), tokens
    ended = time.perf_counter()
    steady = (tokens - first_tokens) / max(ended - first_at, 1e-9)
    return ended - started, tokens, first_at - started, steady


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--samples", type=int, default=50000, help="samples from the shared training catalogue"
    )
    args = parser.parse_args()
    files = training_sample_files()
    samples = read_samples(files)[: args.samples]
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as handle:
        handle.writelines(json.dumps(sample, ensure_ascii=False) + "\n" for sample in samples)
        subset = handle.name

    hf_seconds, hf_tokens = hf_datasets(samples)
    baseline = line("datasets_map", len(samples), hf_tokens, hf_seconds, cores=1)
    seconds, tokens = ours_in_process(samples)
    assert tokens == hf_tokens, (tokens, hf_tokens)
    ours = line(
        "ours_in_process",
        len(samples),
        tokens,
        seconds,
        cores=1,
        speedup_vs_datasets_map=round(hf_seconds / seconds, 2),
    )

    from taiyi_ray.config.platform import RayConfig
    from taiyi_ray.runtime import init_ray, prepare_process_env

    prepare_process_env()
    init_ray(RayConfig(num_cpus=4))
    for actors in (1, 2):
        seconds, tokens, startup, steady = ours_ray_data([subset], actors)
        assert tokens == hf_tokens, (tokens, hf_tokens)
        line(
            f"ours_ray_data_{actors}",
            len(samples),
            tokens,
            seconds,
            cores=actors,
            speedup_vs_datasets_map=round(hf_seconds / seconds, 2),
            startup_s=round(startup, 2),
            steady_tokens_per_s=round(steady),
            steady_speedup_vs_datasets_map=round(steady / baseline["tokens_per_s"], 2),
        )
    del ours


if __name__ == "__main__":
    main()
