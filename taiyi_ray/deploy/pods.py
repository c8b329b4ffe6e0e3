"""Pod-level rules: images pinned, non-root, credentials only through `envFrom` of known Secrets,
ConfigMap references that resolve, a workload-free head, GPU pods that can schedule and run NCCL,
autoscaling bounds, and readiness probes on serving pods."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import Any

from taiyi_ray.deploy import Finding, resource_name
from taiyi_ray.deploy.manifests import (
    KUBERAY_KINDS,
    PodTemplate,
    as_int,
    cluster_specs,
    containers,
    pod_templates,
)

S3_SECRET = "taiyi-s3-credentials"
EXTERNAL_SECRETS = frozenset({S3_SECRET, "taiyi-serve-api-key"})  # created by the operator of the cluster
GPU = "nvidia.com/gpu"
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def image_pinned(image: str) -> bool:
    """True for `name:tag` (tag not `latest`) or `name@sha256:<digest>`."""
    if DIGEST.search(image):
        return True
    last = image.rsplit("/", 1)[-1]
    return ":" in last and last.rsplit(":", 1)[1] not in ("", "latest")


def check_pods(doc: dict[str, Any], config_maps: set[str]) -> list[Finding]:
    """Pod rules for one KubeRay resource; `config_maps` are the ConfigMap names rendered beside it."""
    if doc.get("kind") not in KUBERAY_KINDS:
        return []
    findings = [finding for pod in pod_templates(doc) for finding in _pod(doc, pod, config_maps)]
    findings += list(_autoscaling(doc))
    return findings


def _pod(doc: dict[str, Any], pod: PodTemplate, config_maps: set[str]) -> Iterator[Finding]:
    where = resource_name(doc)
    security = pod.spec.get("securityContext") or {}
    if security.get("runAsNonRoot") is not True or security.get("runAsUser", 1000) == 0:
        yield Finding(
            "non-root",
            where,
            f"{pod.path}.securityContext",
            f"got {security!r}, expected runAsNonRoot: true and a non-zero runAsUser",
        )
    for name, container in containers(pod.spec):
        yield from _container(where, f"{pod.path}.{name}", container, config_maps)
    if pod.role == "head":
        yield from _head(where, pod)
    if pod.role == "worker" and _gpus(pod.spec) > 0:
        yield from _gpu_pod(where, pod)
    if pod.role in ("head", "worker"):
        ray = (pod.spec.get("containers") or [{}])[0]
        if not any(
            (item.get("secretRef") or {}).get("name") == S3_SECRET for item in ray.get("envFrom") or []
        ):
            yield Finding(
                "s3-credentials",
                where,
                f"{pod.path}.containers[0].envFrom",
                f"expected a secretRef to {S3_SECRET!r} (S3 access)",
            )
        if doc.get("kind") == "RayService" and not ray.get("readinessProbe"):
            yield Finding(
                "service-probes",
                where,
                f"{pod.path}.containers[0].readinessProbe",
                "missing; expected a readiness probe on every serving pod",
            )


def _container(where: str, path: str, container: dict[str, Any], config_maps: set[str]) -> Iterator[Finding]:
    image = str(container.get("image", ""))
    if not image_pinned(image):
        yield Finding(
            "image-pinned",
            where,
            f"{path}.image",
            f"got {image!r}, expected name:TAG (not latest) or name@sha256:DIGEST",
        )
    security = container.get("securityContext") or {}
    if (
        security.get("allowPrivilegeEscalation") is not False
        or security.get("privileged")
        or security.get("runAsUser") == 0
    ):
        yield Finding(
            "non-root",
            where,
            f"{path}.securityContext",
            f"got {security!r}, expected allowPrivilegeEscalation: false, not privileged, not uid 0",
        )
    if "ALL" not in ((security.get("capabilities") or {}).get("drop") or []):
        yield Finding("non-root", where, f"{path}.securityContext.capabilities.drop", "expected [ALL]")
    for index, item in enumerate(container.get("env") or []):
        if is_credential_name(str(item.get("name", ""))):
            yield Finding(
                "inline-credentials",
                where,
                f"{path}.env[{index}]",
                f"got credential variable {item.get('name')!r} in env, expected it only through envFrom of a Secret",
            )
    for index, item in enumerate(container.get("envFrom") or []):
        config_map = (item.get("configMapRef") or {}).get("name")
        secret = (item.get("secretRef") or {}).get("name")
        if config_map is not None and config_map not in config_maps:
            yield Finding(
                "config-map-ref",
                where,
                f"{path}.envFrom[{index}]",
                f"got ConfigMap {config_map!r}, expected one of {sorted(config_maps)}",
            )
        if secret is not None and secret not in EXTERNAL_SECRETS:
            yield Finding(
                "secret-ref",
                where,
                f"{path}.envFrom[{index}]",
                f"got Secret {secret!r}, expected one of {sorted(EXTERNAL_SECRETS)}",
            )


def _head(where: str, pod: PodTemplate) -> Iterator[Finding]:
    if str(pod.ray_start_params.get("num-cpus")) != "0":
        got = pod.ray_start_params.get("num-cpus")
        yield Finding(
            "head-no-workloads",
            where,
            f"{pod.path} rayStartParams.num-cpus",
            f'got {got!r}, expected "0" (no tasks on the head)',
        )
    if _gpus(pod.spec) > 0:
        yield Finding(
            "head-no-workloads",
            where,
            f"{pod.path}.containers[0].resources",
            "got GPUs on the head, expected a CPU-only head",
        )


def _gpus(pod: dict[str, Any]) -> float:
    resources = ((pod.get("containers") or [{}])[0].get("resources")) or {}
    return float((resources.get("limits") or {}).get(GPU, 0) or 0)


def _gpu_pod(where: str, pod: PodTemplate) -> Iterator[Finding]:
    resources = (pod.spec.get("containers") or [{}])[0].get("resources") or {}
    requested = (resources.get("requests") or {}).get(GPU)
    if requested is not None and str(requested) != str((resources.get("limits") or {}).get(GPU)):
        yield Finding(
            "gpu-pod",
            where,
            f"{pod.path}.containers[0].resources",
            f"got {GPU} requests {requested} != limits, expected equal",
        )
    if not any(item.get("key") == GPU for item in pod.spec.get("tolerations") or []):
        yield Finding(
            "gpu-pod", where, f"{pod.path}.tolerations", f"expected a toleration for the {GPU} taint"
        )
    if not pod.spec.get("nodeSelector"):
        yield Finding("gpu-pod", where, f"{pod.path}.nodeSelector", "expected a GPU node selector")
    volumes = {item.get("name"): item for item in pod.spec.get("volumes") or []}
    mounts = [
        item
        for item in (pod.spec.get("containers") or [{}])[0].get("volumeMounts") or []
        if item.get("mountPath") == "/dev/shm"
    ]
    shm = volumes.get(mounts[0].get("name")) if mounts else None
    if shm is None or (shm.get("emptyDir") or {}).get("medium") != "Memory":
        yield Finding(
            "gpu-pod",
            where,
            f"{pod.path}.volumes",
            "expected /dev/shm mounted from an emptyDir with medium: Memory (NCCL)",
        )


def _autoscaling(doc: dict[str, Any]) -> Iterator[Finding]:
    for path, spec in cluster_specs(doc):
        if spec.get("enableInTreeAutoscaling") is not True:
            yield Finding(
                "autoscaling",
                resource_name(doc),
                f"{path}.enableInTreeAutoscaling",
                "expected true (worker groups scale between their bounds)",
            )
        for index, group in enumerate(spec.get("workerGroupSpecs") or []):
            if as_int(group.get("maxReplicas")) < 1:
                yield Finding(
                    "autoscaling",
                    resource_name(doc),
                    f"{path}.workerGroupSpecs[{index}].maxReplicas",
                    "expected >= 1",
                )


CREDENTIAL_WORDS = frozenset({"secret", "password", "passwd", "token", "credential", "credentials", "apikey"})


def is_credential_name(name: str) -> bool:
    """AWS_SECRET_ACCESS_KEY, TAIYI_API_KEY, storage.access_key_id, RAY_AUTH_TOKEN... (TOKENIZERS_* is not)."""
    words = [word for word in re.split(r"[^a-z0-9]+", name.lower()) if word]
    pairs = {f"{first}{second}" for first, second in itertools.pairwise(words)}
    return bool(CREDENTIAL_WORDS & set(words)) or bool({"accesskey", "apikey", "privatekey"} & pairs)
