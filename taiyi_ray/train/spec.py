"""Everything a training worker needs, resolved on the driver and shipped in `train_loop_config`."""

from __future__ import annotations

from dataclasses import dataclass

from taiyi_ray.config.model import ModelConfig
from taiyi_ray.config.platform import StorageConfig
from taiyi_ray.config.train import StageConfig
from taiyi_ray.data.plan import SourceFiles
from taiyi_ray.model.result import TrainedModel


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
