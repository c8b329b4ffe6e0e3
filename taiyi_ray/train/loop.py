"""`train_loop_per_worker`: one supervised stage on one Ray Train worker, DeepSpeed underneath.

Read it top to bottom: set up (tokenizer, model, DeepSpeed engine), restore the latest checkpoint if
Ray Train hands one back, then for each optimizer step of this worker's data stream: forward/backward
every micro-batch with a loss normalised by the answer tokens of the WHOLE global batch, step, log,
checkpoint. Stage 1 and stage 2 run this same loop; only their data sources and starting weights differ.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from typing import Any

import ray.train
import torch
import torch.distributed as dist

from taiyi_ray.data.plan import DataPlan, DataPosition, Segment
from taiyi_ray.data.stream import RankStream, StepData
from taiyi_ray.data.tokenizer import load_tokenizer
from taiyi_ray.model.factory import matmul_parameters
from taiyi_ray.runtime import configure_device_env
from taiyi_ray.storage import Storage
from taiyi_ray.train.checkpoint import (
    checkpoint_name,
    checkpoint_step,
    discard,
    latest_complete_checkpoint,
    local_copy,
    mark_complete,
    restore_checkpoint,
    save_checkpoint,
    saved_world_size,
    to_universal,
)
from taiyi_ray.train.deepspeed_config import build_deepspeed_config, use_bf16
from taiyi_ray.train.fault import maybe_fault
from taiyi_ray.train.metrics import MetricsWriter, flops_per_token, peak_flops
from taiyi_ray.train.model_setup import build_train_model
from taiyi_ray.train.outputs import RunOutputs
from taiyi_ray.train.schedule import lr_multiplier
from taiyi_ray.train.spec import TrainSpec
from taiyi_ray.train.step import items_per_micro_batch, micro_batch_loss

log = logging.getLogger(__name__)


def train_loop_per_worker(config: dict[str, Any]) -> None:
    configure_device_env()  # before DeepSpeed picks its accelerator
    import deepspeed

    spec: TrainSpec = config["spec"]
    stage = spec.stage
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    on_gpu = stage.use_gpu and torch.cuda.is_available()
    device = ray.train.torch.get_device() if on_gpu else torch.device("cpu")
    storage = Storage(spec.storage)
    scratch = tempfile.mkdtemp(prefix="taiyi-worker-")
    torch.manual_seed(stage.seed)  # identical fresh adapter weights on every rank

    tokenizer = load_tokenizer(storage.download_dir(spec.tokenizer_dir, os.path.join(scratch, "tokenizer")))
    dtype = torch.bfloat16 if use_bf16(stage, on_gpu) else torch.float32
    built = build_train_model(spec, tokenizer, storage, scratch, dtype)
    model = built.model
    torch.manual_seed(stage.seed + 1 + rank)  # per-rank dropout streams (restored on resume)
    matmul_params = matmul_parameters(model)
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    # Recorded so a test (or a user) can tell continued weights from freshly initialised ones.
    initial_l2 = float(torch.sqrt(sum((p.detach().float() ** 2).sum() for p in trainable)))
    optimizer = torch.optim.AdamW(
        trainable,
        lr=stage.learning_rate,
        betas=stage.adam_betas,
        eps=stage.adam_epsilon,
        weight_decay=stage.weight_decay,
        fused=on_gpu,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_multiplier(stage.lr_schedule, spec.total_steps, stage.warmup_ratio, stage.min_lr_ratio)
    )
    checkpoint = _resume_point(storage, spec)
    checkpoint_dir = local_copy(checkpoint, scratch) if checkpoint is not None else None
    universal_dir = None
    if checkpoint_dir is not None and saved_world_size(checkpoint_dir) != world:
        log.info(
            "rank %d: checkpoint from %d workers, now %d: converting to a universal checkpoint",
            rank,
            saved_world_size(checkpoint_dir),
            world,
        )
        universal_dir = to_universal(checkpoint_dir, os.path.join(scratch, "universal"))
    ds_config = build_deepspeed_config(stage, world, on_gpu)
    ds_config["checkpoint"]["load_universal"] = universal_dir is not None
    engine, _, _, _ = deepspeed.initialize(
        model=model, optimizer=optimizer, lr_scheduler=scheduler, config=ds_config, dist_init_required=False
    )
    if stage.torch_compile and on_gpu:
        engine.compile()
    frozen_base = stage.method != "full"

    outputs = RunOutputs(storage, spec.run_dir, rank)
    outputs.initial_trainable_l2 = initial_l2
    position, resumed_from = DataPosition(), None
    if checkpoint_dir is not None:
        restored = restore_checkpoint(engine, rank, checkpoint_dir, frozen_base, universal_dir)
        position, resumed_from = restored.position, restored.checkpoint_step
        log.info("rank %d resumed from step %d (epoch %d)", rank, resumed_from, position.epoch)
    outputs.start_attempt(resumed_from)
    rows_per_step = stage.micro_batch_size * stage.gradient_accumulation_steps
    _open_segment(position, world, rows_per_step)

    plan = DataPlan(list(spec.sources), seed=stage.seed, shuffle=stage.shuffle)
    stream = RankStream(
        plan,
        storage,
        world,
        rank,
        stage.micro_batch_size,
        stage.gradient_accumulation_steps,
        stage.epochs,
        pad_id=tokenizer.pad_token_id,
        position=_stream_position(position),
        max_steps=spec.total_steps,
    )
    writer = None
    if rank == 0:
        writer = MetricsWriter(
            os.path.join(scratch, "metrics"), outputs.metrics_lines(position.global_step), spec.total_steps
        )
    shape = (model.get_base_model() if hasattr(model, "get_base_model") else model).config
    peak = peak_flops(stage.peak_flops_per_device)
    last_loss = None
    tick = time.perf_counter()

    for step_data in stream:
        loss_sum = _train_step(engine, step_data, world, stage.gradient_accumulation_steps, device)
        stop_requested = rank == 0 and outputs.stop_requested()
        totals = _all_reduce(
            [
                loss_sum,
                step_data.label_tokens,
                step_data.tokens,
                len(step_data.sample_ids),
                float(stop_requested),
            ],
            device,
        )
        step_ids = _gather_ids(list(zip(step_data.sample_ids, step_data.datasets, strict=True)), world)
        position.global_step += 1
        position.segments[-1] = Segment(world, rows_per_step, position.segments[-1].steps + 1)
        epoch_done = step_data.step_in_epoch + 1 == step_data.steps_in_epoch
        if epoch_done:
            position.epoch, position.segments = step_data.epoch + 1, []
            _open_segment(position, world, rows_per_step)
        elapsed = time.perf_counter() - tick
        last_loss = totals[0] / max(totals[1], 1.0)
        seq_len = max(batch["input_ids"].shape[1] for batch in step_data.micro_batches)
        record = {
            "step": position.global_step,
            "epoch": step_data.epoch,
            "loss": last_loss,
            "lr": scheduler.get_last_lr()[0],
            "grad_norm": _grad_norm(engine),
            "tokens": int(totals[2]),
            "label_tokens": int(totals[1]),
            "samples": int(totals[3]),
            "tokens_per_s": totals[2] / elapsed,
            "samples_per_s": totals[3] / elapsed,
            "step_s": elapsed,
            "mfu": _mfu(
                totals[2] / elapsed / world,
                flops_per_token(
                    matmul_params, shape.num_hidden_layers, shape.hidden_size, seq_len, frozen_base
                ),
                peak,
            ),
            "gpu_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if on_gpu else None,
        }
        outputs.record_step(position.global_step, step_ids, record, writer)
        maybe_fault(storage, spec.run_dir, spec.fault_at_step, position.global_step, rank)
        last_step = position.global_step >= spec.total_steps
        stop = totals[4] > 0
        if last_step or stop or epoch_done or position.global_step % stage.checkpoint_every_steps == 0:
            _checkpoint(engine, rank, position, outputs, writer, frozen_base, record)
        if stop:
            log.info("stop requested: checkpointed at step %d, exiting", position.global_step)
            break
        tick = time.perf_counter()  # step time excludes checkpointing and logging

    if writer is not None:
        writer.close()
    outputs.finish(engine, built, tokenizer, spec, last_loss, position)
    discard(scratch)


def _resume_point(storage: Storage, spec: TrainSpec) -> Any:
    """The checkpoint to start from: the newest of Ray Train's latest and the run dir's latest complete
    one (see `latest_complete_checkpoint`), or the one `--resume` named; None for a fresh run."""
    candidates = []
    registered = ray.train.get_checkpoint()
    if registered is not None:
        candidates.append((checkpoint_step(registered.path), registered))
    on_storage = latest_complete_checkpoint(storage, spec.run_dir)
    for location in (on_storage, spec.resume_checkpoint):
        if location is not None:
            filesystem, path = storage.arrow(location)
            candidates.append(
                (checkpoint_step(location), ray.train.Checkpoint(path=path, filesystem=filesystem))
            )
    return max(candidates, key=lambda item: item[0])[1] if candidates else None


def _open_segment(position: DataPosition, world: int, rows_per_step: int) -> None:
    """Continue the epoch's last layout when it matches this run's, else start a new segment."""
    if not position.segments or (position.segments[-1].world, position.segments[-1].rows_per_step) != (
        world,
        rows_per_step,
    ):
        position.segments.append(Segment(world, rows_per_step, 0))


def _stream_position(position: DataPosition) -> DataPosition:
    return DataPosition(position.epoch, list(position.segments), position.global_step)


def _train_step(engine: Any, step: StepData, world: int, accumulation: int, device: torch.device) -> float:
    """Forward/backward all micro-batches of one step; returns this worker's summed token loss.

    The normalisation (taiyi_ray.train.step) makes the gradient that of the token mean over the whole
    global batch, however it is split into micro-batches and workers.
    """
    global_label_tokens = _all_reduce([float(step.label_tokens)], device)[0]
    divisor = items_per_micro_batch(global_label_tokens, world, accumulation)
    loss_sum = 0.0
    for batch in step.micro_batches:
        loss = micro_batch_loss(
            engine, {key: value.to(device, non_blocking=True) for key, value in batch.items()}, divisor
        )
        engine.backward(loss)
        engine.step()
        loss_sum += float(loss.detach()) * divisor
    return loss_sum


def _all_reduce(values: list[float], device: torch.device) -> list[float]:
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def _gather_ids(items: list[tuple[str, str]], world: int) -> list[tuple[str, str]]:
    """(sample id, dataset) of every worker's rows of this step, ranks in order."""
    gathered: list[list[tuple[str, str]] | None] = [None] * world
    dist.all_gather_object(gathered, items)
    return [item for part in gathered for item in (part or [])]


def _grad_norm(engine: Any) -> float | None:
    norm = engine.get_global_grad_norm()
    if norm is None:
        return None
    return float(norm.item() if hasattr(norm, "item") else norm)


def _mfu(tokens_per_s_per_device: float, flops: float, peak: float | None) -> float | None:
    return None if peak is None else tokens_per_s_per_device * flops / peak


def _checkpoint(
    engine: Any,
    rank: int,
    position: DataPosition,
    outputs: RunOutputs,
    writer: MetricsWriter | None,
    frozen_base: bool,
    record: dict[str, Any],
) -> None:
    directory = save_checkpoint(engine, rank, position, {"record": record}, frozen_base)
    outputs.flush(position.global_step, writer)
    ray.train.report(
        {"step": position.global_step, "loss": record["loss"], "epoch": record["epoch"]},
        checkpoint=ray.train.Checkpoint.from_directory(directory),
        checkpoint_dir_name=checkpoint_name(position.global_step),
    )
    if rank == 0:  # report() is a barrier: every rank's files are in storage now
        mark_complete(outputs.storage, outputs.run_dir, position.global_step)
    discard(directory)
