"""Packing efficiency on the training files of the stage catalogues, one JSON line per sequence length:

    python benchmarks/packing.py

{"seq_len": L, "packing_efficiency": e, "padded_efficiency": p, ...}: e is the real (non-pad) token share
of the rows our shard pipeline writes (best-fit decreasing in windows of PACK_WINDOW samples, samples
longer than L truncated); p the same share under Taiyi's scheme on the same samples: file order,
micro-batches of 12, each padded to its longest sample, samples truncated at 1024.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from benchmarks._samples import QWEN2_TOKENIZER, read_samples, training_sample_files
from taiyi_ray.data.build_shards import PACK_WINDOW
from taiyi_ray.data.chat_format import get_chat_format
from taiyi_ray.data.encode_samples import tokenize_conversations
from taiyi_ray.data.pack import best_fit_decreasing, padded_efficiency
from taiyi_ray.data.schema import Message
from taiyi_ray.data.tokenizer import configure_tokenizer, load_tokenizer

TAIYI_MICRO_BATCH, TAIYI_MAX_LEN = 12, 1024


def sample_lengths(samples: list[dict]) -> list[int]:
    """Token counts of the samples, in file order, as the shard pipeline tokenizes them."""
    chat_format = get_chat_format("taiyi")
    tokenizer = configure_tokenizer(load_tokenizer(QWEN2_TOKENIZER), chat_format)
    lengths = []
    for start in range(0, len(samples), 512):
        batch = [[Message(**turn) for turn in sample["messages"]] for sample in samples[start : start + 512]]
        lengths += [len(ids) for ids, _ in tokenize_conversations(tokenizer, chat_format, batch)]
    return lengths


def packed_efficiency(lengths: list[int], seq_len: int) -> tuple[float, int]:
    clipped = [min(length, seq_len) for length in lengths]
    rows = 0
    for start in range(0, len(clipped), PACK_WINDOW):
        rows += len(best_fit_decreasing(clipped[start : start + PACK_WINDOW], seq_len))
    return sum(clipped) / (rows * seq_len), rows


def main() -> None:
    started = time.perf_counter()
    samples = read_samples(training_sample_files())
    lengths = sample_lengths(samples)
    padded = padded_efficiency(lengths, TAIYI_MICRO_BATCH, TAIYI_MAX_LEN)
    for seq_len in (1024, 2048):
        efficiency, rows = packed_efficiency(lengths, seq_len)
        print(
            json.dumps(
                {
                    "seq_len": seq_len,
                    "packing_efficiency": round(efficiency, 4),
                    "padded_efficiency": round(padded, 4),
                    "samples": len(lengths),
                    "tokens": sum(min(length, seq_len) for length in lengths),
                    "rows": rows,
                    "truncated_samples": sum(length > seq_len for length in lengths),
                    "mean_sample_tokens": round(sum(lengths) / len(lengths), 1),
                    "seconds": round(time.perf_counter() - started, 1),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
