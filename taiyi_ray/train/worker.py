"""What a training worker builds before its first step: tokenizer, model, optimizer and schedule, the
DeepSpeed engine, and the checkpoint to resume from (converted to DeepSpeed's universal format when it
was written by a different number of workers)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import ray.train
import ray.train.torch
import torch

from taiyi_ray.data.tokenizer import load_tokenizer
from taiyi_ray.model.factory import matmul_parameters
from taiyi_ray.storage import Storage
from taiyi_ray.train.checkpoint import (
    checkpoint_step,
    latest_complete_checkpoint,
    local_copy,
    saved_world_size,
    scratch_dir,
    sweep_abandoned_scratch,
    to_universal,
)
from taiyi_ray.train.model_setup import TrainModel, build_train_model
from taiyi_ray.train.optimization import build_deepspeed_config, build_optimizer, use_bf16
from taiyi_ray.train.preemption import NodePreemption
from taiyi_ray.train.spec import TrainSpec

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class Worker:
    """One training worker's state for a whole stage."""

    spec: TrainSpec
    rank: int
    world: int
    device: torch.device
    on_gpu: bool
    storage: Storage
    scratch: str
    tokenizer: Any
    built: TrainModel
    engine: Any
    scheduler: Any
    matmul_params: int
    initial_trainable_l2: float
    checkpoint_dir: str | None
    universal_dir: str | None
    preemption: NodePreemption  # this node's eviction marker (taiyi_ray.train.preemption)

    @property
    def frozen_base(self) -> bool:
        return self.spec.stage.method != "full"

    @property
    def rows_per_step(self) -> int:
        return self.spec.stage.rows_per_step


def resume_point(storage: Storage, spec: TrainSpec) -> Any:
    """The checkpoint to start from: the newest of Ray Train's latest and the run dir's latest complete
    one (see `latest_complete_checkpoint`), or the one `--resume` named; None for a fresh run."""
    candidates = []
    registered = ray.train.get_checkpoint()
    if registered is not None:
        candidates.append((checkpoint_step(registered.path), registered))
    for location in (latest_complete_checkpoint(storage, spec.run_dir), spec.resume_checkpoint):
        if location is not None:
            filesystem, path = storage.arrow(location)
            candidates.append(
                (checkpoint_step(location), ray.train.Checkpoint(path=path, filesystem=filesystem))
            )
    return max(candidates, key=lambda item: item[0])[1] if candidates else None


def _checkpoint_to_load(
    storage: Storage, spec: TrainSpec, rank: int, world: int, scratch: str
) -> tuple[str | None, str | None]:
    checkpoint = resume_point(storage, spec)
    if checkpoint is None:
        return None, None
    directory = local_copy(checkpoint, storage, spec.run_dir, scratch)
    saved = saved_world_size(directory)
    if saved == world:
        return directory, None
    log.info(
        "rank %d: checkpoint written by %d workers, now %d: converting to a universal checkpoint",
        rank,
        saved,
        world,
    )
    return directory, to_universal(directory, os.path.join(scratch, "universal"))


def start_deepspeed(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, ds_config: dict[str, Any]
) -> Any:
    """DeepSpeed's engine over `model`, in train mode (torch.distributed already initialised).

    from_pretrained leaves a model in eval mode, and `deepspeed.initialize` does not change it: without
    the `train()`, LoRA dropout stayed off until the first validation turned train mode on, and
    bitsandbytes' Linear4bit took its inference-only CPU path during training steps (a crash on
    AVX512-BF16 CPUs)."""
    import deepspeed

    engine, _, _, _ = deepspeed.initialize(
        model=model, optimizer=optimizer, lr_scheduler=scheduler, config=ds_config, dist_init_required=False
    )
    engine.train()
    return engine


def setup_worker(spec: TrainSpec) -> Worker:
    stage = spec.stage
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    on_gpu = stage.use_gpu and torch.cuda.is_available()
    device = ray.train.torch.get_device() if on_gpu else torch.device("cpu")
    storage = Storage(spec.storage)
    sweep_abandoned_scratch()  # what crashed workers of this node left behind
    scratch = scratch_dir("worker")
    tokenizer = load_tokenizer(storage.download_dir(spec.tokenizer_dir, os.path.join(scratch, "tokenizer")))
    torch.manual_seed(stage.seed)  # identical fresh adapter weights on every rank
    dtype = torch.bfloat16 if use_bf16(stage, on_gpu) else torch.float32
    built = build_train_model(spec, storage, scratch, dtype)
    torch.manual_seed(stage.seed + 1 + rank)  # per-rank dropout streams (restored on resume)
    trainable = [parameter for parameter in built.model.parameters() if parameter.requires_grad]
    # Recorded so a test (or a user) can tell continued weights from freshly initialised ones.
    initial_l2 = float(
        torch.sqrt(sum(((parameter.detach().float() ** 2).sum() for parameter in trainable), torch.zeros(())))
    )
    matmul_params = matmul_parameters(built.model)  # before ZeRO-3 partitions the weights
    optimizer, scheduler = build_optimizer(trainable, stage, spec.total_steps, on_gpu)
    checkpoint_dir, universal_dir = _checkpoint_to_load(storage, spec, rank, world, scratch)
    ds_config = build_deepspeed_config(stage, world, on_gpu)
    ds_config["checkpoint"]["load_universal"] = universal_dir is not None
    engine = start_deepspeed(built.model, optimizer, scheduler, ds_config)
    if stage.torch_compile:
        engine.compile()  # inductor on GPU and CPU; the stream pads to a fixed width (static shapes)
    return Worker(
        spec=spec,
        rank=rank,
        world=world,
        device=device,
        on_gpu=on_gpu,
        storage=storage,
        scratch=scratch,
        tokenizer=tokenizer,
        built=built,
        engine=engine,
        scheduler=scheduler,
        matmul_params=matmul_params,
        initial_trainable_l2=initial_l2,
        checkpoint_dir=checkpoint_dir,
        universal_dir=universal_dir,
        preemption=NodePreemption(),
    )
