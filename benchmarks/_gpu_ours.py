"""Our side of benchmarks/gpu_train.py: rows with the real length distribution of the shared training
catalogue, packed as the shard pipeline packs them, written as a shard version; a random-weight base of
the case's shape; our stage-1 job on both; its figures read back from the run's own outputs.

The length distribution is a committed file (`benchmarks/data/shared_train_lengths.json`), so the GPU
machine needs no ../shared: token counts of every sample that `benchmarks._samples.training_sample_files()`
prepares from configs/catalogues/shared-train.yaml, tokenized by the Qwen2 tokenizer in the taiyi chat
format (exactly as the shard pipeline tokenizes them). Rewrite it with

    python benchmarks/gpu_train.py --write-lengths

The benchmark draws sample lengths from it (seeded), fills them with random token ids (the weights are
random too: the content does not change the speed), truncates at the row length, and packs windows of
`PACK_WINDOW` samples with the pipeline's own `pack_table` (best-fit decreasing, position ids restarting
per sample, every token learned but each sample's first).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict

from taiyi_ray.config.model import TinyQwen2Shape
from taiyi_ray.data.build_shards import PACK_WINDOW
from taiyi_ray.data.chat_format import get_chat_format
from taiyi_ray.data.encode_samples import TOKENIZED_SCHEMA
from taiyi_ray.data.pack import pack_table
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
from taiyi_ray.storage import Storage, join

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

REPO_ROOT = Path(__file__).resolve().parent.parent
LENGTHS_FILE = REPO_ROOT / "benchmarks" / "data" / "shared_train_lengths.json"
LENGTHS_COMMAND = "python benchmarks/gpu_train.py --write-lengths"
IGNORE_INDEX = -100


class LengthDistribution(BaseModel):
    """Token counts of the shared training samples: `counts[length]` = samples of that many tokens."""

    model_config = ConfigDict(extra="forbid")

    description: str
    command: str
    tokenizer: str
    chat_format: str
    samples: int
    counts: dict[int, int]

    def draw(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """`count` sample lengths drawn with the catalogue's frequencies."""
        lengths = np.array(list(self.counts), dtype=np.int64)
        weights = np.array(list(self.counts.values()), dtype=np.float64)
        return rng.choice(lengths, size=count, p=weights / weights.sum())


def load_lengths(path: Path = LENGTHS_FILE) -> LengthDistribution:
    return LengthDistribution.model_validate_json(path.read_text(encoding="utf-8"))


def write_lengths(path: Path = LENGTHS_FILE) -> LengthDistribution:
    """Prepare the shared training catalogue (needs ../shared) and write its length distribution."""
    from benchmarks._samples import CATALOGUE, read_samples, training_sample_files
    from benchmarks.packing import sample_lengths

    lengths = sample_lengths(read_samples(training_sample_files()))
    distribution = LengthDistribution(
        description=f"token counts of the instruction samples prepared from {CATALOGUE.relative_to(REPO_ROOT)}",
        command=LENGTHS_COMMAND,
        tokenizer="qwen2 (../shared/tokenizers/qwen2)",
        chat_format="taiyi",
        samples=len(lengths),
        counts=dict(sorted(Counter(lengths).items())),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(distribution.model_dump_json() + "\n", encoding="utf-8")
    return distribution


def random_samples(
    drawn: np.ndarray, seq_len: int, vocab: int, rng: np.random.Generator, prefix: str
) -> pa.Table:
    """Tokenized samples (TOKENIZED_SCHEMA) of random ids with the drawn lengths, truncated at `seq_len`
    (the pipeline's `overlong: truncate`); every token learned but each sample's first."""
    lengths = np.minimum(drawn, seq_len)
    ids = rng.integers(0, vocab, size=int(lengths.sum()), dtype=np.int32)
    input_ids = np.split(ids, np.cumsum(lengths)[:-1])
    return pa.Table.from_pydict(
        {
            "sample_id": [f"{prefix}-{index}" for index in range(len(lengths))],
            "dataset": ["shared-train-lengths"] * len(lengths),
            "input_ids": input_ids,
            "labels": [np.concatenate([[IGNORE_INDEX], sample[1:]]).astype(np.int32) for sample in input_ids],
            "num_tokens": lengths.astype(np.int32),
            "num_label_tokens": (lengths - 1).astype(np.int32),
            "truncated": drawn > seq_len,
        },
        schema=TOKENIZED_SCHEMA,
    )


def packed_rows(distribution: LengthDistribution, rows: int, seq_len: int, vocab: int, seed: int) -> pa.Table:
    """At least `rows` packed rows (ROW_SCHEMA) in a seeded random order, so the rows the steps read are
    a fair sample of every window's rows (its few under-filled last rows included)."""
    rng = np.random.default_rng(seed)
    tables: list[pa.Table] = []
    while sum(table.num_rows for table in tables) < rows:
        samples = random_samples(distribution.draw(PACK_WINDOW, rng), seq_len, vocab, rng, f"w{len(tables)}")
        tables.append(pack_table(samples, seq_len, packing=True))
    table = pa.concat_tables(tables)
    return table.take(pa.array(rng.permutation(table.num_rows)))


def write_shard_version(
    storage: Storage, version: str, table: pa.Table, seq_len: int, tokenizer: ShardTokenizer
) -> ShardManifest:
    """The rows as one shard version (one file and its manifest), as the data job would write them."""
    os.makedirs(version, exist_ok=True)
    pq.write_table(table, os.path.join(version, "shard-000000-0.parquet"))
    contents = summarise_files(storage, version, seq_len)
    manifest = ShardManifest(
        **dict(contents),
        format_version=1,
        content_hash="random-tokens-real-lengths",
        input_samples=contents.samples,
        dropped_samples=0,
        settings=ShardSettings(
            chat_format="taiyi",
            max_seq_len=seq_len,
            packing=True,
            overlong="truncate",
            rows_per_shard=table.num_rows,
        ),
        tokenizer=tokenizer,
        sample_files=[],
    )
    write_manifest(storage, version, manifest)
    return manifest


@dataclass(frozen=True)
class OursSetup:
    """One case of ours: the model shape, the batch, how many steps, and the case's config overrides."""

    shape: TinyQwen2Shape  # vocab_size set: the anchor's
    micro_batch: int
    seq_len: int
    warmup_steps: int  # left out of the figures (compile, allocator warm-up)
    measured_steps: int
    device: str  # cuda | cpu
    overrides: tuple[str, ...]

    @property
    def total_steps(self) -> int:
        return self.warmup_steps + self.measured_steps


class StepLine(BaseModel):
    """The fields of a metrics.jsonl step line this benchmark reads (written by taiyi_ray.train.loop)."""

    model_config = ConfigDict(extra="ignore")

    step: int
    tokens: int  # real tokens of the step (padding for torch.compile's static shapes not counted)
    step_s: float
    mfu: float | None
    gpu_mem_gib: float | None


def read_steps(storage: Storage, run_dir: str) -> list[StepLine]:
    from taiyi_ray.train.metrics import is_validation

    records = [
        json.loads(line)
        for line in storage.read_text(join(run_dir, "metrics.jsonl")).splitlines()
        if line.strip()
    ]
    return [StepLine.model_validate(record) for record in records if not is_validation(record)]


def steady_figures(steps: list[StepLine], warmup_steps: int) -> dict[str, float | int | None]:
    """Real tokens/s over the steps after warm-up (their tokens over their time), mean MFU and step time
    over the same steps, peak GPU memory over all steps."""
    steady = [line for line in steps if line.step > warmup_steps] or steps
    seconds = sum(line.step_s for line in steady)
    mfus = [line.mfu for line in steady if line.mfu is not None]
    memory = [line.gpu_mem_gib for line in steps if line.gpu_mem_gib is not None]
    return {
        "tokens_per_s": round(sum(line.tokens for line in steady) / seconds),
        "mfu": round(statistics.mean(mfus), 4) if mfus else None,
        "step_s": round(seconds / len(steady), 4),
        "peak_mem_gib": round(max(memory), 1) if memory else None,
        "measured_steps": len(steady),
    }


@dataclass(frozen=True)
class RunLayout:
    """Where one case of ours keeps its files (all under `root`, removed when the case ends)."""

    root: str

    @property
    def tokenizer(self) -> str:
        return join(self.root, "tokenizer")

    @property
    def base(self) -> str:
        return join(self.root, "base")

    @property
    def shards(self) -> str:
        return join(self.root, "shards", "v-real-lengths")

    @property
    def run(self) -> str:
        return join(self.root, "run")


def save_random_base(
    shape: TinyQwen2Shape, tokenizer: PreTrainedTokenizerFast, directory: str, device: str
) -> str:
    """A random-weight Qwen2 of the shape, built on the benchmark's device (a 7B model in seconds, not a
    30 GB fp32 build on the CPU as the stage job's own tiny base would be) and saved in the dtype the
    stage loads it in (bf16 on GPU), with the tokenizer."""
    import torch

    from taiyi_ray.model.factory import build_tiny_qwen2

    with torch.device(device):
        model = build_tiny_qwen2(
            shape,
            shape.vocab_size or 0,
            seed=0,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    if device == "cuda":
        model = model.bfloat16()  # the dtype the stage loads it in
    model.save_pretrained(directory)
    save_tokenizer(tokenizer, directory)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return directory


def stage_overrides(setup: OursSetup, layout: RunLayout) -> list[str]:
    """The stage-1 settings every case shares (full fine-tuning, ZeRO-2, one worker, no validation,
    no mid-run checkpoint), then the case's own overrides, which win."""
    gpu, cpus = setup.device == "cuda", os.cpu_count() or 2
    return [
        f"storage.root={layout.root}",
        f"model.base={layout.base}",
        f"model.tokenizer={layout.tokenizer}",
        f"ray.num_cpus={max(4, cpus)}",
        f"stage1.data=[{{uri: {layout.shards}}}]",
        "stage1.method=full",
        "stage1.zero_stage=2",
        f"stage1.micro_batch_size={setup.micro_batch}",
        "stage1.gradient_accumulation_steps=1",
        "stage1.num_workers=1",
        f"stage1.use_gpu={gpu}",
        f"stage1.cpus_per_worker={cpus // 2 if gpu else cpus}",
        f"stage1.max_steps={setup.total_steps}",
        "stage1.epochs=1",
        "stage1.checkpoint_every_steps=100000",
        "stage1.max_failures=0",
        "stage1.precision=" + ("bf16" if gpu else "fp32"),
        "stage1.learning_rate=1e-5",
        "stage1.shuffle=false",  # the rows are in a seeded random order already
        "stage1.validation=null",  # training throughput only, like the anchor
        *setup.overrides,
    ]


def scratch_parent(min_free_gib: float = 40) -> str | None:
    """/dev/shm where it has room, else the temporary folder: a case writes its base (15 GB at 7B, bf16)
    and final checkpoint (7 GB for the 0.5B full case) and reads the base back; in memory that is
    seconds of the budget, not tens."""
    try:
        free = shutil.disk_usage("/dev/shm").free
    except OSError:
        return None
    return "/dev/shm" if free >= min_free_gib * 2**30 else None


def run_ours(setup: OursSetup) -> dict[str, object]:
    """Our stage-1 job on packed rows of the real length distribution; its figures (see steady_figures)."""
    root = tempfile.mkdtemp(prefix="taiyi-gpu-bench-", dir=scratch_parent())
    try:
        return _run_in(setup, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)  # a 0.5B full run leaves GBs of checkpoint behind


def _run_in(setup: OursSetup, root: str) -> dict[str, object]:
    from taiyi_ray.config import load_job_config
    from taiyi_ray.config.jobs import Stage1JobConfig
    from taiyi_ray.train.job import run_stage_job
    from taiyi_ray.train.outputs import read_stage_summary

    layout = RunLayout(root)
    # validated first: a case the config refuses fails in a second, not after building its model
    config = load_job_config(
        Stage1JobConfig, REPO_ROOT / "configs" / "demo.yaml", stage_overrides(setup, layout)
    )
    storage = Storage()
    tokenizer = configure_tokenizer(
        train_bpe_tokenizer(["random tokens"] * 10, 300), get_chat_format("taiyi")
    )
    save_tokenizer(tokenizer, layout.tokenizer)
    save_random_base(setup.shape, tokenizer, layout.base, setup.device)
    rows = packed_rows(
        load_lengths(),
        setup.total_steps * setup.micro_batch,
        setup.seq_len,
        setup.shape.vocab_size or 0,
        seed=0,
    )
    shard_tokenizer = ShardTokenizer(fingerprint=tokenizer_fingerprint(tokenizer), location=layout.tokenizer)
    manifest = write_shard_version(storage, layout.shards, rows, setup.seq_len, shard_tokenizer)
    run_stage_job(config, "stage1", layout.run)
    summary = read_stage_summary(storage, layout.run)
    return {
        **steady_figures(read_steps(storage, layout.run), setup.warmup_steps),
        "fill": round(manifest.packing_efficiency, 4),
        "final_loss": summary.final_loss,
        "steps": summary.steps,
    }
