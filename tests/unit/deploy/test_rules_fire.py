"""Each rule fires on a manifest broken in exactly its way: a valid rendered overlay, one mutation,
and the rule's finding must appear (the unmutated overlay has none, see test_overlays)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from deploy.helpers import find
from taiyi_ray.deploy.validate import validate_docs

Docs = list[dict[str, Any]]


def job(docs: Docs, name: str) -> dict[str, Any]:
    return find(docs, "RayJob", f"taiyi-{name}")["spec"]


def cluster(docs: Docs) -> dict[str, Any]:
    return find(docs, "RayCluster")["spec"]


def service(docs: Docs) -> dict[str, Any]:
    return find(docs, "RayService")["spec"]


def worker_pod(spec: dict[str, Any], index: int = 0) -> dict[str, Any]:
    return spec["workerGroupSpecs"][index]["template"]["spec"]


def head_pod(spec: dict[str, Any]) -> dict[str, Any]:
    return spec["headGroupSpec"]["template"]["spec"]


def every_cluster(docs: Docs, change: Callable[[dict[str, Any]], None]) -> None:
    """Apply `change` to the RayCluster and to every RayJob's copy (so cluster-sync stays quiet)."""
    change(cluster(docs))
    for doc in docs:
        if doc["kind"] == "RayJob":
            change(doc["spec"]["rayClusterSpec"])


def set_entrypoint(docs: Docs, name: str, old: str, new: str) -> None:
    spec = job(docs, name)
    assert old in spec["entrypoint"], f"{old!r} not in {spec['entrypoint']!r}"
    spec["entrypoint"] = spec["entrypoint"].replace(old, new)


def set_serve(docs: Docs, old: str, new: str) -> None:
    spec = service(docs)
    assert old in spec["serveConfigV2"], f"{old!r} not in serveConfigV2"
    spec["serveConfigV2"] = spec["serveConfigV2"].replace(old, new)


def add_doc(docs: Docs, doc: dict[str, Any]) -> None:
    docs.append({**doc, "metadata": {**doc.get("metadata", {}), "namespace": "taiyi-dev"}})


S3 = "s3://taiyi-dev/taiyi"
CASES: list[tuple[str, str, Callable[[Docs], None]]] = [
    # strict CRD schema (unknown fields rejected, types checked)
    ("crd-schema", "misspelt spec field", lambda d: cluster(d).update(workerGroupSpec=[])),
    ("crd-schema", "unknown container field", lambda d: every_cluster(d, lambda c: head_pod(c)["containers"][0].update(imagePullPolicyy="Always"))),
    ("crd-schema", "wrong type", lambda d: job(d, "stage1").update(backoffLimit="two")),
    # CEL rules of the CRD and the operator's cleanup rules
    ("cleanup-exclusive", "deletionRules with shutdownAfterJobFinishes", lambda d: job(d, "stage1").update(
        deletionStrategy={"deletionRules": [{"policy": "DeleteCluster", "condition": {"jobStatus": "SUCCEEDED"}}]})),
    ("cleanup-exclusive", "ttl without shutdown", lambda d: job(d, "stage1").update(shutdownAfterJobFinishes=False, suspend=False)),
    ("deletion-strategy", "legacy and rules mixed", lambda d: job(d, "export").update(deletionStrategy={
        "onSuccess": {"policy": "DeleteCluster"}, "deletionRules": [{"policy": "DeleteCluster", "condition": {"jobStatus": "FAILED"}}]})),
    ("deletion-strategy", "legacy half given", lambda d: job(d, "export").update(deletionStrategy={"onSuccess": {"policy": "DeleteCluster"}})),
    ("deletion-condition", "both statuses in one condition", lambda d: job(d, "export").update(deletionStrategy={"deletionRules": [
        {"policy": "DeleteCluster", "condition": {"jobStatus": "FAILED", "jobDeploymentStatus": "Failed"}}]})),
    ("cleanup-required", "no cleanup at all", lambda d: [job(d, "prepare-data").pop(key) for key in ("shutdownAfterJobFinishes", "ttlSecondsAfterFinished")]),
    ("suspend", "suspended without shutdown", lambda d: job(d, "stage2").update(shutdownAfterJobFinishes=False, ttlSecondsAfterFinished=0)),
    ("job-deadline", "no activeDeadlineSeconds", lambda d: job(d, "stage1").pop("activeDeadlineSeconds")),
    ("job-backoff", "negative backoffLimit", lambda d: job(d, "stage1").update(backoffLimit=-1)),
    ("job-submitter", "no submitter template", lambda d: job(d, "stage1").pop("submitterPodTemplate")),
    ("managed-by", "unknown managedBy", lambda d: job(d, "stage1").update(managedBy="someone-else")),
    ("name", "RayJob name too long", lambda d: find(d, "RayJob", "taiyi-stage1")["metadata"].update(name="taiyi-" + "x" * 42)),
    ("replicas", "min above max", lambda d: every_cluster(d, lambda c: c["workerGroupSpecs"][0].update(minReplicas=3))),
    ("group-name", "duplicate groups", lambda d: every_cluster(d, lambda c: c["workerGroupSpecs"].append(copy.deepcopy(c["workerGroupSpecs"][0])))),
    ("group-resources", "resources twice", lambda d: every_cluster(d, lambda c: c["workerGroupSpecs"][0].update(
        rayStartParams={"num-cpus": "4"}, resources={"CPU": "4"}))),
    ("auth-ray-version", "token auth on old Ray", lambda d: every_cluster(d, lambda c: c.update(rayVersion="2.50.0"))),
    ("service-upgrade", "no upgrade strategy", lambda d: service(d).pop("upgradeStrategy")),
    # entrypoints and the pipeline's hand-over
    ("entrypoint-script", "missing script", lambda d: set_entrypoint(d, "stage1", "jobs/stage1.py", "jobs/stage_1.py")),
    ("entrypoint-config", "missing config", lambda d: set_entrypoint(d, "stage1", "configs/demo.yaml", "configs/nope.yaml")),
    ("entrypoint-config", "typo in an override", lambda d: set_entrypoint(d, "stage1", "--resume", "--set stage1.num_worker=2 --resume")),
    ("chain", "stage 2 not from stage 1", lambda d: set_entrypoint(d, "stage2", f"init_from={S3}/pipeline/stage1", f"init_from={S3}/old/stage1")),
    ("chain", "evaluation not of the export", lambda d: set_entrypoint(d, "evaluate", "pipeline/export/model", "pipeline/stage2")),
    ("chain", "two storage roots", lambda d: set_entrypoint(d, "export", f"storage.root={S3}", "storage.root=s3://elsewhere/x")),
    ("storage-uri", "local storage root", lambda d: set_entrypoint(d, "stage1", f"storage.root={S3}", "storage.root=runs")),
    ("resume", "retries without --resume", lambda d: set_entrypoint(d, "stage1", " --resume", "")),
    ("pipeline-steps", "a step twice", lambda d: set_entrypoint(d, "export", "jobs/export.py", "jobs/stage1.py")),
    ("cluster-sync", "a job on another cluster", lambda d: head_pod(job(d, "stage1")["rayClusterSpec"]).update(hostNetwork=True)),
    # capacity
    ("cpu-count", "CPU training does not fit", lambda d: every_cluster(d, lambda c: worker_pod(c)["containers"][0].update(
        resources={"requests": {"cpu": "1", "memory": "4Gi"}, "limits": {"cpu": "1", "memory": "4Gi"}}))),
    ("gpu-count", "serving needs more GPUs", lambda d: set_serve(d, "num_gpus_per_replica: 0", "num_gpus_per_replica: 1")),
    # pods: images, users, credentials, references, head, GPU pods, autoscaling, probes
    ("image-pinned", "latest tag", lambda d: every_cluster(d, lambda c: head_pod(c)["containers"][0].update(image="taiyi-ray:latest"))),
    ("image-pinned", "no tag", lambda d: job(d, "stage1")["submitterPodTemplate"]["spec"]["containers"][0].update(image="taiyi-ray")),
    ("image-version", "tag of another version", lambda d: job(d, "stage1")["submitterPodTemplate"]["spec"]["containers"][0].update(
        image="taiyi-ray:0.0.9-cu130")),
    ("ray-version", "rayVersion not the pinned Ray", lambda d: every_cluster(d, lambda c: c.update(rayVersion="2.59.0"))),
    ("non-root", "root user", lambda d: every_cluster(d, lambda c: head_pod(c)["securityContext"].update(runAsUser=0))),
    ("non-root", "privilege escalation", lambda d: every_cluster(d, lambda c: worker_pod(c)["containers"][0]["securityContext"].update(
        allowPrivilegeEscalation=True))),
    ("inline-credentials", "secret in env", lambda d: every_cluster(d, lambda c: head_pod(c)["containers"][0].update(
        env=[{"name": "AWS_SECRET_ACCESS_KEY", "value": "abc123"}]))),
    ("inline-credentials", "Secret with data", lambda d: add_doc(d, {"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "taiyi-s3-credentials"}, "data": {"AWS_SECRET_ACCESS_KEY": "YWJj"}})),
    ("inline-credentials", "key in an override", lambda d: set_entrypoint(d, "stage1", "--resume", "--set storage.secret_access_key=abc --resume")),
    ("inline-credentials", "AWS key id in a ConfigMap", lambda d: find(d, "ConfigMap")["data"].update(NOTE="AKIAIOSFODNN7EXAMPLE")),
    ("inline-credentials", "API key in the Serve config", lambda d: set_serve(d, 'HF_HUB_OFFLINE: "1"', 'HF_HUB_OFFLINE: "1"\n        TAIYI_API_KEY: sk-1')),
    ("s3-credentials", "no S3 secret", lambda d: every_cluster(d, lambda c: worker_pod(c)["containers"][0].update(
        envFrom=[{"configMapRef": {"name": "taiyi-storage"}}]))),
    ("config-map-ref", "ConfigMap name with a hash suffix", lambda d: find(d, "ConfigMap")["metadata"].update(name="taiyi-storage-5f8h2")),
    ("secret-ref", "misspelt Secret", lambda d: every_cluster(d, lambda c: head_pod(c)["containers"][0]["envFrom"][1]["secretRef"].update(
        name="taiyi-s3-credential"))),
    ("head-no-workloads", "head takes tasks", lambda d: every_cluster(d, lambda c: c["headGroupSpec"]["rayStartParams"].update({"num-cpus": "2"}))),
    ("autoscaling", "autoscaler off", lambda d: every_cluster(d, lambda c: c.update(enableInTreeAutoscaling=False))),
    ("service-probes", "serving pod without readiness probe", lambda d: worker_pod(service(d)["rayClusterConfig"])["containers"][0].pop(
        "readinessProbe")),
    # serveConfigV2 against configs/serve.yaml
    ("serve-config-drift", "batch size changed", lambda d: set_serve(d, "max_batch_size: 8", "max_batch_size: 4")),
    ("serve-config", "proxy on loopback", lambda d: set_serve(d, "host: 0.0.0.0", "host: 127.0.0.1")),
    ("serve-args", "args the serve section rejects", lambda d: set_serve(d, "default_max_tokens: 128", "default_max_tokens: 0")),
    ("serve-import", "import path of no module", lambda d: set_serve(d, "taiyi_ray.serve.app:build_app", "taiyi_ray.serve.nope:build_app")),
    ("serve-model", "model synced elsewhere", lambda d: worker_pod(service(d)["rayClusterConfig"])["initContainers"][0]["command"].__setitem__(
        -1, "/models/other")),
    ("chain", "serving another model", lambda d: worker_pod(service(d)["rayClusterConfig"])["initContainers"][0]["command"].__setitem__(
        -2, f"{S3}/pipeline/stage2")),
    # core kinds
    ("core-schema", "ConfigMap value not a string", lambda d: find(d, "ConfigMap")["data"].update(PORT=9000)),
    ("core-schema", "ServiceAccount unknown field", lambda d: find(d, "ServiceAccount").update(spec={})),
    ("unknown-kind", "an unexpected kind", lambda d: add_doc(d, {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}})),
]  # fmt: skip


@pytest.mark.parametrize(
    ("rule", "mutation"),
    [(rule, mutate) for rule, _, mutate in CASES],
    ids=[f"{r}: {w}" for r, w, _ in CASES],
)
def test_rule_fires(
    rule: str, mutation: Callable[[Docs], None], rendered: dict[str, Docs], crd_dir: Path
) -> None:
    docs = copy.deepcopy(rendered["dev"])
    mutation(docs)
    findings = validate_docs(docs, crd_dir)
    assert rule in {finding.rule for finding in findings}, f"expected a {rule!r} finding, got:\n" + "\n".join(
        map(str, findings)
    )


def test_gpu_rules_fire_on_prod(rendered: dict[str, Docs], crd_dir: Path) -> None:
    """On the GPU overlay: a GPU group too big for the recipe, and GPU pods that could not schedule or run NCCL."""

    def gpu_group(c: dict[str, Any]) -> dict[str, Any]:
        return next(group for group in c["workerGroupSpecs"] if group["groupName"] == "gpu")

    mutations: dict[str, Callable[[dict[str, Any]], None]] = {
        "gpu-count": lambda c: gpu_group(c).update(maxReplicas=2),
        "gpu-pod": lambda c: gpu_group(c)["template"]["spec"].pop("tolerations"),
    }
    for rule, change in mutations.items():
        docs = copy.deepcopy(rendered["prod"])
        every_cluster(docs, change)
        assert rule in {finding.rule for finding in validate_docs(docs, crd_dir)}, rule
    for removed in ("nodeSelector", "volumes"):
        docs = copy.deepcopy(rendered["prod"])
        every_cluster(docs, lambda c, key=removed: gpu_group(c)["template"]["spec"].pop(key))
        assert "gpu-pod" in {finding.rule for finding in validate_docs(docs, crd_dir)}, removed
