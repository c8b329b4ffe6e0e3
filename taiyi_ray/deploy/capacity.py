"""GPU and CPU counts: what a job's config asks for against what its cluster's worker groups provide.

Training (stage1/stage2): with `use_gpu`, `num_workers x GPUs per worker` must EQUAL the GPUs of the
worker groups at their maximum size (GPUs per pod x maxReplicas x numOfHosts): fewer GPUs never
schedule, more are paid for and idle. CPU training must fit the CPU workers. Evaluation actors and
Serve replicas must fit too."""

from __future__ import annotations

from typing import Any

from taiyi_ray.config.jobs import EvalJobConfig
from taiyi_ray.deploy import Finding
from taiyi_ray.deploy.entrypoints import Invocation
from taiyi_ray.deploy.manifests import as_int, quantity
from taiyi_ray.deploy.pods import GPU


def group_capacity(cluster: dict[str, Any], resource: str) -> float:
    """Total `resource` ("cpu" or nvidia.com/gpu) of the worker groups at maxReplicas (head excluded)."""
    total = 0.0
    for group in cluster.get("workerGroupSpecs") or []:
        container = (((group.get("template") or {}).get("spec") or {}).get("containers") or [{}])[0]
        limits = (container.get("resources") or {}).get("limits") or {}
        if resource in limits:
            total += (
                quantity(limits[resource])
                * as_int(group.get("maxReplicas"))
                * as_int(group.get("numOfHosts"), 1)
            )
    return total


def check_training(invocation: Invocation) -> list[Finding]:
    """GPU/CPU capacity for the training stages and the evaluation actors of one RayJob."""
    config, where = invocation.config, invocation.where
    gpus, cpus = group_capacity(invocation.cluster, GPU), group_capacity(invocation.cluster, "cpu")
    if invocation.job in ("stage1", "stage2"):
        stage = getattr(config, invocation.job)
        if stage.use_gpu:
            need = stage.num_workers * stage.resources_per_worker.get("GPU", 1)
            if need != gpus:
                return [
                    Finding(
                        "gpu-count",
                        where,
                        "spec.rayClusterSpec.workerGroupSpecs",
                        f"{invocation.job}.num_workers {stage.num_workers} x {stage.resources_per_worker.get('GPU', 1)} GPU "
                        f"= {need:g} GPUs, but the worker groups provide {gpus:g} at maxReplicas; expected equal",
                    )
                ]
        elif stage.num_workers * stage.cpus_per_worker > cpus:
            need = stage.num_workers * stage.cpus_per_worker
            return [
                Finding(
                    "cpu-count",
                    where,
                    "spec.rayClusterSpec.workerGroupSpecs",
                    f"{invocation.job} needs {need:g} CPUs, workers provide {cpus:g}",
                )
            ]
    if isinstance(config, EvalJobConfig):
        evaluation = config.eval
        need = evaluation.num_actors * evaluation.gpus_per_actor
        if need > gpus:
            return [
                Finding(
                    "gpu-count",
                    where,
                    "spec.rayClusterSpec.workerGroupSpecs",
                    f"eval needs {need:g} GPUs, workers provide {gpus:g}",
                )
            ]
    return []


def check_serving(where: str, cluster: dict[str, Any], args: dict[str, Any]) -> list[Finding]:
    """Serve replicas x their GPUs/CPUs must fit the RayService's worker groups."""
    replicas = as_int(args.get("num_replicas"), 1)
    if isinstance(args.get("autoscaling"), dict):
        replicas = as_int(args["autoscaling"].get("max_replicas"), replicas)
    findings = []
    for resource, key in ((GPU, "num_gpus_per_replica"), ("cpu", "num_cpus_per_replica")):
        per_replica = args.get(key, 0)
        if not isinstance(per_replica, int | float):
            continue  # the serve-args check reports the type
        need, have = replicas * per_replica, group_capacity(cluster, resource)
        if need > have:
            findings.append(
                Finding(
                    "gpu-count" if resource == GPU else "cpu-count",
                    where,
                    "spec.rayClusterConfig.workerGroupSpecs",
                    f"{replicas} replicas x {key} {args.get(key)} = {need:g}, but the worker groups provide {have:g}",
                )
            )
    return findings
