"""`train_loop_per_worker`: one supervised stage on one Ray Train worker, DeepSpeed underneath.

Read it top to bottom: set up (tokenizer, model, DeepSpeed engine), restore the latest checkpoint if
Ray Train hands one back, then for each optimizer step of this worker's data stream: forward/backward
every micro-batch with a loss normalised by the answer tokens of the WHOLE global batch, step, log,
checkpoint. Stage 1 and stage 2 run this same loop; only their data sources and starting weights differ.

The loss of one micro-batch is normalised so that a step's gradient is that of the token mean over the
WHOLE global batch — independent of how its rows are split into micro-batches and workers.

DeepSpeed scales each micro-batch loss by 1/accumulation and averages gradients over workers. With N the
answer tokens of the global batch, giving each micro-batch loss = sum(CE) / (N / (world x accumulation))
makes the update exactly grad(sum of all CE) / N (a mean over answer tokens, not over rows).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any

import ray.train
import torch
import torch.distributed as dist

from taiyi_ray.config.train import StageConfig
from taiyi_ray.data.plan import DataPlan, DataPosition
from taiyi_ray.data.stream import RankStream, StepData
from taiyi_ray.model.factory import unwrapped
from taiyi_ray.runtime import configure_device_env
from taiyi_ray.train.checkpoint import (
    checkpoint_name,
    discard,
    mark_complete,
    maybe_fault,
    restore_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from taiyi_ray.train.metrics import MetricsWriter, flops_per_token, peak_flops
from taiyi_ray.train.outputs import RunOutputs
from taiyi_ray.train.preemption import NodePreempted
from taiyi_ray.train.worker import Worker, setup_worker

log = logging.getLogger(__name__)


def train_loop_per_worker(config: dict[str, Any]) -> None:
    configure_device_env()  # before DeepSpeed picks its accelerator
    worker = setup_worker(config["spec"])
    spec, stage = worker.spec, worker.spec.stage
    outputs = RunOutputs(worker.storage, spec.run_dir, worker.rank)
    outputs.initial_trainable_l2 = worker.initial_trainable_l2
    position = _restore(worker, outputs)
    writer = None
    if worker.rank == 0:
        lines = outputs.metrics_lines(position.global_step)
        writer = MetricsWriter(os.path.join(worker.scratch, "metrics"), lines, spec.total_steps)
    last_loss = None
    tick = waiting_since = time.perf_counter()
    for step_data in _stream(worker, position):
        data_wait = time.perf_counter() - waiting_since  # blocked on the input stream
        loss_sum = _train_step(worker, step_data)
        stop_requested = worker.rank == 0 and outputs.stop_requested()
        totals = StepTotals(
            loss_sum=loss_sum,
            label_tokens=step_data.label_tokens,
            tokens=step_data.tokens,
            samples=len(step_data.sample_ids),
            stop_requests=float(stop_requested),
            data_wait_s=data_wait,
            evicted_ranks=float(worker.preemption.requested()),  # a local stat: is this rank's node evicted?
        ).summed_over_workers(worker.device)
        epoch_done = position.advance(
            step_data.epoch,
            step_data.step_in_epoch,
            step_data.steps_in_epoch,
            worker.world,
            worker.rows_per_step,
        )
        last_loss = totals.loss
        now = time.perf_counter()  # wall time since the last step: data, compute, the last step's logging
        record = _step_record(worker, position, step_data, totals, now - tick)
        tick = now
        outputs.record_step(
            position.global_step, step_data.epoch, step_data.sample_ids, step_data.datasets, record, writer
        )
        preempted = totals.evicted_ranks > 0
        stop = totals.stop_requests > 0 or preempted
        last_step = position.global_step >= spec.total_steps
        if (
            spec.validation is not None
            and not stop
            and spec.validation.due(position.global_step, spec.total_steps)
        ):
            tick += _validate(worker, outputs, writer, position.global_step)  # step times exclude it
        maybe_fault(worker.storage, spec.run_dir, spec.fault_at_step, position.global_step, worker.rank)
        if last_step or stop or epoch_done or position.global_step % stage.checkpoint_every_steps == 0:
            started = time.perf_counter()
            _checkpoint(worker, position, outputs, writer, record)
            tick += time.perf_counter() - started  # step times exclude checkpointing only
        if preempted:
            worker.preemption.acknowledge(position.global_step)
            raise NodePreempted(
                f"a node of the worker group is being evicted: checkpointed at step {position.global_step}, "
                "Ray Train restarts the group from it"
            )
        if stop:
            log.info("stop requested: checkpointed at step %d, exiting", position.global_step)
            break
        if last_step:  # the stream runs to the end of its epochs; the run may stop sooner (max_steps)
            break
        waiting_since = time.perf_counter()
    if writer is not None:
        writer.close()
    outputs.finish(worker.engine, worker.built, worker.tokenizer, spec, last_loss, position)
    worker.preemption.close()
    discard(worker.scratch)


def _restore(worker: Worker, outputs: RunOutputs) -> DataPosition:
    """Load the checkpoint (if any) into the engine; the data position to continue from."""
    position, resumed_from = DataPosition(), None
    if worker.checkpoint_dir is not None:
        restored = restore_checkpoint(
            worker.engine, worker.rank, worker.checkpoint_dir, worker.frozen_base, worker.universal_dir
        )
        position, resumed_from = restored.position, restored.checkpoint_step
        outputs.validation_s = restored.state.validation_s
        log.info("rank %d resumed from step %d (epoch %d)", worker.rank, resumed_from, position.epoch)
    outputs.start_attempt(resumed_from)
    position.continue_with(worker.world, worker.rows_per_step)
    return position


def _stream(worker: Worker, position: DataPosition) -> RankStream:
    stage = worker.spec.stage
    return RankStream(
        DataPlan(list(worker.spec.sources), seed=stage.seed, shuffle=stage.shuffle),
        worker.storage,
        worker.world,
        worker.rank,
        stage.micro_batch_size,
        stage.gradient_accumulation_steps,
        stage.epochs,
        pad_id=worker.tokenizer.pad_token_id,
        start=position.copy(),  # the loop's position moves on; the stream reads where it started
        max_tokens=stage.max_tokens_per_micro_batch,
        pad_to=forward_token_count(stage, worker.spec.max_seq_len) if stage.torch_compile else None,
        pad_block=worker.spec.max_seq_len,
    )


def forward_token_count(stage: StageConfig, max_seq_len: int) -> int:
    """The fixed token count of a compiled forward pass: the cap, else rows x the shards' max_seq_len."""
    return stage.max_tokens_per_micro_batch or stage.micro_batch_size * max_seq_len


def _step_record(
    worker: Worker, position: DataPosition, step: StepData, totals: StepTotals, elapsed: float
) -> dict[str, Any]:
    """The metrics of one step (JSONL, TensorBoard, progress line)."""
    shape = unwrapped(worker.built.model).config
    flops = flops_per_token(
        worker.matmul_params,
        shape.num_hidden_layers,
        shape.hidden_size,
        step.attention_length,
        worker.frozen_base,
    )
    peak = peak_flops(worker.spec.stage.peak_flops_per_device)
    return {
        "step": position.global_step,
        "epoch": step.epoch,
        "loss": totals.loss,
        "lr": worker.scheduler.get_last_lr()[0],
        "grad_norm": _grad_norm(worker.engine),
        "tokens": int(totals.tokens),
        "label_tokens": int(totals.label_tokens),
        "samples": int(totals.samples),
        "tokens_per_s": totals.tokens / elapsed,
        "samples_per_s": totals.samples / elapsed,
        "step_s": elapsed,
        "data_wait_s": totals.data_wait_s / worker.world,  # mean over workers: is the input the bottleneck?
        "mfu": None if peak is None else totals.tokens / elapsed / worker.world * flops / peak,
        "gpu_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if worker.on_gpu else None,
    }


@dataclass(frozen=True)
class StepTotals:
    """What one step sums over the workers: each rank fills in its own values, one all-reduce adds them."""

    loss_sum: float | torch.Tensor  # summed token losses (a device tensor before the reduction)
    label_tokens: float
    tokens: float
    samples: float
    stop_requests: float  # > 0: rank 0 found the run dir's STOP marker (`ray job stop`)
    data_wait_s: float  # seconds blocked on the input stream, summed over workers
    evicted_ranks: float  # > 0: a rank's node is being evicted (taiyi_ray.train.preemption)

    @property
    def loss(self) -> float:
        """The step's token-mean loss over the whole global batch."""
        return float(self.loss_sum) / max(self.label_tokens, 1.0)

    def summed_over_workers(self, device: torch.device) -> StepTotals:
        names = [field.name for field in fields(self)]
        summed = _all_reduce([getattr(self, name) for name in names], device)
        return StepTotals(**dict(zip(names, summed, strict=True)))


def _train_step(worker: Worker, step: StepData) -> torch.Tensor:
    """Forward/backward every flattened pass of one step, then one optimizer step; returns this
    worker's summed token loss.

    The accumulation boundary is set by hand (DeepSpeed's `set_gradient_accumulation_boundary`), so a
    step may hold more passes than `gradient_accumulation_steps` when `max_tokens_per_micro_batch`
    splits a micro-batch. The normalisation (`micro_batch_loss`) makes the gradient that of the token
    mean over the whole global batch, however it is split into passes and workers.
    """
    engine, device = worker.engine, worker.device
    global_label_tokens = _all_reduce([float(step.label_tokens)], device)[0]
    divisor = items_per_micro_batch(
        global_label_tokens, worker.world, worker.spec.stage.gradient_accumulation_steps
    )
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)  # on the device: no sync per pass
    last = len(step.micro_batches) - 1
    for index, batch in enumerate(step.micro_batches):
        engine.set_gradient_accumulation_boundary(index == last)
        loss = micro_batch_loss(
            engine, {key: value.to(device, non_blocking=True) for key, value in batch.items()}, divisor
        )
        engine.backward(loss)
        loss_sum += loss.detach().double() * divisor
    engine.step()
    return loss_sum


def items_per_micro_batch(global_label_tokens: float, world: int, accumulation: int) -> float:
    """The divisor handed to the model's loss (`num_items_in_batch`)."""
    return max(global_label_tokens, 1.0) / (world * accumulation)


def micro_batch_loss(model: Any, batch: dict[str, torch.Tensor], divisor: float) -> torch.Tensor:
    """sum(CE over the batch's answer tokens) / divisor, through the model's own loss (so fused or
    kernel-replaced losses, e.g. liger's, apply). No attention mask: the batch is one flattened sequence
    whose position ids restart per sample (`taiyi_ray.data.stream.flatten`), from which every backend
    keeps samples apart (varlen flash attention, or a block-diagonal causal mask)."""
    divisor_tensor = torch.tensor(divisor, device=batch["input_ids"].device)
    output = model(
        input_ids=batch["input_ids"],
        position_ids=batch["position_ids"],
        labels=batch["labels"],
        num_items_in_batch=divisor_tensor,
        use_cache=False,
    )
    return output.loss


def _all_reduce(values: list[float | torch.Tensor], device: torch.device) -> list[float]:
    """Sum over workers in one collective, then one host sync (`tolist`) for all the values."""
    tensor = torch.stack([torch.as_tensor(value, dtype=torch.float64, device=device) for value in values])
    dist.all_reduce(tensor)
    return tensor.tolist()


def _grad_norm(engine: Any) -> float | None:
    norm = engine.get_global_grad_norm()
    if norm is None:
        return None
    return float(norm.item() if hasattr(norm, "item") else norm)


def _validate(worker: Worker, outputs: RunOutputs, writer: MetricsWriter | None, step: int) -> float:
    """Collective: score the validation subsets with the model being trained; returns the seconds taken.

    Training must not notice: the model goes back to train mode and every RNG (Python, NumPy, torch,
    CUDA: dropout and anything else drawn later) is restored, so losses are the same with it on and off.
    """
    from taiyi_ray.data.chat_format import get_chat_format

    validator = worker.spec.validation
    assert validator is not None
    started = time.perf_counter()
    model, saved_rng = worker.engine.module, rng_state()
    chat_format = get_chat_format(worker.spec.model.chat_format)
    model.eval()
    try:
        with torch.inference_mode(), _whole_model(worker):
            scores = validator.run(model, worker.tokenizer, chat_format, worker.rank, worker.world)
    finally:
        model.train()
        set_rng_state(saved_rng)
    elapsed = time.perf_counter() - started
    outputs.validation_s += elapsed
    if writer is not None and scores is not None:
        writer.write_validation(step, scores, elapsed)
    return elapsed


@contextmanager
def _whole_model(worker: Worker) -> Iterator[None]:
    """Under ZeRO-3 each rank holds a slice of every weight: DeepSpeed's own generation helper gathers
    them for the duration and lifts its fetch/release hooks (every rank holds the whole model once, as at
    export), so each rank can generate alone. ZeRO-0/1/2 ranks hold the whole model already."""
    if worker.spec.stage.zero_stage != 3:
        yield
        return
    from deepspeed.runtime.zero.stage3 import unwrap_model_for_generation

    with unwrap_model_for_generation(worker.engine):
        yield


def _checkpoint(
    worker: Worker,
    position: DataPosition,
    outputs: RunOutputs,
    writer: MetricsWriter | None,
    record: dict[str, Any],
) -> None:
    directory = save_checkpoint(
        worker.engine,
        worker.rank,
        position,
        record,
        outputs.validation_s,
        worker.spec.shard_versions,  # what --resume pins
        worker.frozen_base,
    )
    outputs.flush(position.global_step, writer)
    ray.train.report(
        {"step": position.global_step, "loss": record["loss"], "epoch": record["epoch"]},
        checkpoint=ray.train.Checkpoint.from_directory(directory),
        checkpoint_dir_name=checkpoint_name(position.global_step),
    )
    dist.barrier()  # report() syncs the ranks before their uploads, not after: wait for every upload
    if worker.rank == 0:
        mark_complete(outputs.storage, outputs.run_dir, position.global_step, worker.world)
    discard(directory)
