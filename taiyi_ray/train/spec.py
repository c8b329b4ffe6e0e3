"""Everything a training worker needs, resolved on the driver and shipped in `train_loop_config`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from taiyi_ray.config.model import ModelConfig
from taiyi_ray.config.platform import StorageConfig
from taiyi_ray.config.train import StageConfig
from taiyi_ray.data.chat_format import ChatFormat
from taiyi_ray.data.plan import SourceFiles
from taiyi_ray.model.result import TrainedModel


@dataclass(frozen=True)
class ShardVersion:
    """The exact shard set version a stage trains on: pinned in every checkpoint, so that `--resume`
    continues on these very shards even after prepare_data wrote newer versions."""

    location: str
    manifest_sha256: str


class ValidationScore(Protocol):
    """One set's score at one validation (percent), as written to metrics.jsonl."""

    @property
    def metric(self) -> str: ...

    @property
    def score(self) -> float: ...

    @property
    def n(self) -> int: ...

    def to_json(self) -> dict[str, Any]: ...


class Validator(Protocol):
    """Task scores during training (built by the job from `stage.validation`; see
    taiyi_ray.eval.validation). `run` is collective: every rank calls it, rank 0 gets the scores."""

    def due(self, step: int, total_steps: int) -> bool: ...

    def run(
        self, model: Any, tokenizer: Any, chat_format: ChatFormat, rank: int, world: int
    ) -> Mapping[str, ValidationScore] | None: ...


@dataclass(frozen=True)
class TrainSpec:
    stage_name: str
    run_dir: str
    storage: StorageConfig
    model: ModelConfig
    stage: StageConfig
    sources: tuple[SourceFiles, ...]
    max_seq_len: int  # the shards' row width: micro-batches are padded to it when compiling
    tokenizer_dir: str
    tokenizer_fingerprint: str
    steps_per_epoch: int
    total_steps: int
    init_from: TrainedModel | None = None
    init_from_dir: str | None = None
    fault_at_step: int | None = None
    resume_checkpoint: str | None = None  # --resume: the checkpoint a stopped run continues from
    validation: Validator | None = None  # task scores on dev subsets during training
    shard_versions: tuple[ShardVersion, ...] = ()  # of each source, in order: pinned in every checkpoint
