"""The export job: `export_model` as a Ray task that reserves its memory on a worker.

Merging a 7B LoRA needs the whole model in memory; in the job's driver that is the head pod (no workloads,
8 Gi in our manifests). As a task with a `memory` reservation it lands on a worker that can hold it, and
the reservation keeps other tasks from crowding it out. A budget that no node can hold, now or after the
autoscaler adds one from a worker group, would leave the task pending forever: it is refused at once.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch

from taiyi_ray.config.base import StrictModel
from taiyi_ray.config.jobs import ExportJobConfig
from taiyi_ray.config.platform import StorageConfig
from taiyi_ray.model.convert_weights import declared_dtype, export_dtype
from taiyi_ray.model.result import read_result
from taiyi_ray.runtime import init_ray
from taiyi_ray.storage import Storage, join

log = logging.getLogger(__name__)

GIB = 1024**3
RUNTIME_GIB = 2.0  # Python, torch, transformers and peft in the task's process
PEAK_FACTOR = 1.5  # over the exported weights; measured 1.03 (full) and 1.09 (LoRA merge) on Qwen2.5-0.5B
MIN_FACTOR, MIN_RUNTIME_GIB = 1.1, 1.0  # below this the measured peak cannot fit: refused, not OOM-killed


class ExportedModel(StrictModel):
    """What an export wrote: the figures of its result line and of `taiyi_export.json`."""

    chat_format: str
    end_token: str
    model_name: str
    method: str
    merged: bool
    base_model: str
    from_run: str
    dtype: str


class ExportResult(ExportedModel):
    """The export job's result: where the model is, and the memory its task reserved."""

    model_dir: str
    memory_gib: float


def run_export_job(config: ExportJobConfig, run_dir: str) -> ExportResult:
    """Export `config.export.from_run` to `<run_dir>/model` in a Ray task sized by `export.memory_gib`."""
    import ray

    export = config.export
    if export.from_run is None:
        raise ValueError(
            "export.from_run is not set: give a stage run dir, e.g. --set export.from_run=runs/stage2-20261126-120000"
        )
    storage = Storage(config.storage)
    weight_bytes = export_weight_bytes(storage, export.from_run, export.dtype)
    budget_gib = export.memory_gib or memory_budget_gib(weight_bytes)
    check_budget_covers_the_model(budget_gib, weight_bytes)
    init_ray(config.ray)
    check_memory_fits(budget_gib, node_memory_capacities())
    output = join(run_dir, "model")
    log.info("exporting %s in a Ray task reserving %.1f GiB", export.from_run, budget_gib)
    task = ray.remote(_export_task).options(
        num_cpus=1, memory=int(budget_gib * GIB), max_retries=0, name="taiyi-export"
    )
    arguments = (export.from_run, output, export.merge, export.model_name, export.licence, export.dtype)
    exported: ExportedModel = ray.get(task.remote(config.storage, *arguments))
    return ExportResult(**dict(exported), model_dir=output, memory_gib=budget_gib)


def _export_task(storage_config: StorageConfig, *args: Any) -> ExportedModel:
    from taiyi_ray.runtime import setup_logging
    from taiyi_ray.train.export import export_model

    setup_logging()
    return export_model(Storage(storage_config), *args)


def memory_budget_gib(weight_bytes: float) -> float:
    """1.5x the weights plus the runtime, rounded up to 0.5 GiB."""
    return math.ceil((PEAK_FACTOR * weight_bytes / GIB + RUNTIME_GIB) * 2) / 2


def check_budget_covers_the_model(budget_gib: float, weight_bytes: float) -> None:
    """Refuse, before anything is loaded, a budget under the export's measured peak plus the runtime."""
    needed = MIN_FACTOR * weight_bytes / GIB + MIN_RUNTIME_GIB
    if budget_gib < needed:
        raise ValueError(
            f"export.memory_gib={budget_gib:g} is below what this export needs: {needed:.1f} GiB "
            f"({weight_bytes / GIB:.1f} GiB of weights in the export dtype x {MIN_FACTOR} + "
            f"{MIN_RUNTIME_GIB:g} GiB runtime); raise it or leave it unset "
            f"(default {memory_budget_gib(weight_bytes):g} GiB)"
        )


def export_weight_bytes(storage: Storage, from_run: str, dtype: str) -> float:
    """Bytes of the weights the export holds: the base (LoRA) or the trained weights (full fine-tuning),
    as stored, scaled to the export dtype (float32 training weights exported in bf16 count half)."""
    result, directory = read_result(storage, from_run)
    weights = result.base_model if result.method != "full" else join(directory, str(result.weights))
    stored = declared_dtype(storage, weights)
    target = export_dtype(dtype, storage, result.base_model)
    return weights_bytes(storage, weights) * _itemsize(target) / _itemsize(stored)


def weights_bytes(storage: Storage, location: str) -> int:
    """Bytes of the weight files (*.safetensors, *.bin) of a model directory, local or in object storage."""
    filesystem, path = storage.fsspec(location)
    files = filesystem.find(path, detail=True)
    return sum(int(info["size"]) for name, info in files.items() if name.endswith((".safetensors", ".bin")))


def _itemsize(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def node_memory_capacities() -> dict[str, float]:
    """Memory (GiB) a task can reserve per node that runs tasks (CPU > 0): the alive nodes, and the node
    types of the autoscaler's worker groups (which may have no node yet)."""
    import ray

    capacities = {
        f"node {node['NodeManagerAddress']}": node["Resources"].get("memory", 0) / GIB
        for node in ray.nodes()
        if node["Alive"] and node["Resources"].get("CPU", 0) > 0
    }
    try:
        from ray._private.state import state

        cluster_config = state.get_cluster_config()
    except (ImportError, AttributeError, RuntimeError) as error:  # private API moved: alive nodes only
        log.debug("no autoscaler cluster config: %s", error)
        cluster_config = None
    for group in cluster_config.node_group_configs if cluster_config is not None else []:
        if group.max_count != 0 and group.resources.get("CPU", 0) > 0:
            capacities[f"worker group {group.name}"] = group.resources.get("memory", 0) / GIB
    return capacities


def check_memory_fits(budget_gib: float, capacities: dict[str, float]) -> None:
    """Refuse a budget no node can hold (the task would wait forever), naming the largest node."""
    if not capacities:
        raise ValueError("export: this Ray cluster has no node that runs tasks (CPU > 0) and no worker group")
    where, largest = max(capacities.items(), key=lambda item: item[1])
    if budget_gib > largest:
        raise ValueError(
            f"export.memory_gib={budget_gib:g}: no node of this Ray cluster can reserve that much memory "
            f"(largest: {largest:.1f} GiB, {where}); set export.memory_gib lower or add a worker group "
            "with more memory"
        )
