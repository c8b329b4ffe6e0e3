"""What the API server (CEL `x-kubernetes-validations`) and the KubeRay operator (validation.go) would
reject, checked by hand because jsonschema does not evaluate them; plus the cleanup and deadline fields
this project requires on every RayJob.

`CEL_RULES` maps every CEL rule of the v1.7 CRDs to the check here that implements it (a test keeps the
map complete: a rule added to the CRDs fails until it is mirrored). Transition rules (`oldSelf`) only
apply to updates and cannot fire on a manifest.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from taiyi_ray.deploy import Finding, resource_name
from taiyi_ray.deploy.manifests import as_int, cluster_specs

MAX_NAME_LENGTH = {"RayCluster": 53, "RayJob": 47, "RayService": 47}  # KubeRay: cluster names get a suffix
MANAGED_BY = ("ray.io/kuberay-operator", "kueue.x-k8s.io/multikueue")
DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
TOKEN_AUTH_MIN_RAY = (2, 52, 0)
UPGRADE_TYPES = ("NewCluster", "NewClusterWithIncrementalUpgrade", "None")

CEL_RULES: dict[str, str] = {
    "self == oldSelf": "transition rule (updates only)",
    "self in ['ray.io/kuberay-operator', 'kueue.x-k8s.io/multikueue']": "managed-by",
    "!(has(self.jobStatus) && has(self.jobDeploymentStatus))": "deletion-condition",
    "has(self.jobStatus) || has(self.jobDeploymentStatus)": "deletion-condition",
    "!((has(self.onSuccess) || has(self.onFailure)) && has(self.deletionRules))": "deletion-strategy",
    "((has(self.onSuccess) && has(self.onFailure)) || has(self.deletionRules))": "deletion-strategy",
}


def check_resource(doc: dict[str, Any]) -> list[Finding]:
    """All KubeRay rules that apply to one resource."""
    kind = doc.get("kind")
    if kind not in MAX_NAME_LENGTH:
        return []
    checks: list[Callable[[dict[str, Any]], Iterator[Finding]]] = [_name, _managed_by, _cluster_specs]
    if kind == "RayJob":
        checks += [_deletion_strategy, _cleanup, _job_fields]
    if kind == "RayService":
        checks += [_service_fields]
    return [finding for check in checks for finding in check(doc)]


def _finding(rule: str, doc: dict[str, Any], field: str, message: str) -> Finding:
    return Finding(rule, resource_name(doc), field, message)


def _name(doc: dict[str, Any]) -> Iterator[Finding]:
    name = str((doc.get("metadata") or {}).get("name", ""))
    limit = MAX_NAME_LENGTH[str(doc["kind"])]
    if len(name) > limit or not DNS1035.match(name):
        yield _finding(
            "name",
            doc,
            "metadata.name",
            f"got {name!r}, expected a DNS-1035 label of at most {limit} characters",
        )


def _managed_by(doc: dict[str, Any]) -> Iterator[Finding]:
    places = [("spec", doc.get("spec") or {}), *cluster_specs(doc)]
    for path, spec in places:
        if "managedBy" in spec and spec["managedBy"] not in MANAGED_BY:
            yield _finding(
                "managed-by",
                doc,
                f"{path}.managedBy",
                f"got {spec['managedBy']!r}, expected one of {MANAGED_BY}",
            )


def _cluster_specs(doc: dict[str, Any]) -> Iterator[Finding]:
    for path, spec in cluster_specs(doc):
        yield from _auth(doc, path, spec)
        names: set[str] = set()
        yield from _group_params(doc, f"{path}.headGroupSpec", spec.get("headGroupSpec") or {})
        for index, group in enumerate(spec.get("workerGroupSpecs") or []):
            where = f"{path}.workerGroupSpecs[{index}]"
            name = group.get("groupName")
            if name in names:
                yield _finding(
                    "group-name",
                    doc,
                    f"{where}.groupName",
                    f"got {name!r} twice, expected unique group names",
                )
            names.add(name)
            yield from _group_params(doc, where, group)
            yield from _replicas(doc, where, group)


def _auth(doc: dict[str, Any], path: str, spec: dict[str, Any]) -> Iterator[Finding]:
    if (spec.get("authOptions") or {}).get("mode") != "token":
        return
    version = str(spec.get("rayVersion", ""))
    parts = tuple(int(part) for part in re.findall(r"\d+", version)[:3])
    if len(parts) < 3 or parts < TOKEN_AUTH_MIN_RAY:
        yield _finding(
            "auth-ray-version",
            doc,
            f"{path}.rayVersion",
            f"got {version!r}, expected >= 2.52.0 with authOptions.mode token",
        )


def _group_params(doc: dict[str, Any], where: str, group: dict[str, Any]) -> Iterator[Finding]:
    params = group.get("rayStartParams") or {}
    set_in_params = [key for key in ("num-cpus", "num-gpus", "memory", "resources") if params.get(key)]
    if set_in_params and group.get("resources"):
        yield _finding(
            "group-resources",
            doc,
            where,
            f"got resources in both rayStartParams ({', '.join(set_in_params)}) and `resources`, expected one of them",
        )
    if "labels" in params:
        yield _finding(
            "group-labels",
            doc,
            f"{where}.rayStartParams.labels",
            "got rayStartParams labels, expected the group's `labels` field",
        )


def _replicas(doc: dict[str, Any], where: str, group: dict[str, Any]) -> Iterator[Finding]:
    low, high = as_int(group.get("minReplicas")), as_int(group.get("maxReplicas"))
    replicas = as_int(group.get("replicas"), low)
    if not low <= high:
        yield _finding(
            "replicas", doc, where, f"got minReplicas {low} > maxReplicas {high}, expected min <= max"
        )
    elif not low <= replicas <= high:
        yield _finding(
            "replicas",
            doc,
            f"{where}.replicas",
            f"got {replicas}, expected between minReplicas {low} and maxReplicas {high}",
        )


def _deletion_strategy(doc: dict[str, Any]) -> Iterator[Finding]:
    """The CRD's CEL rules on spec.deletionStrategy and its conditions."""
    strategy = (doc.get("spec") or {}).get("deletionStrategy")
    if strategy is None:
        return
    legacy = "onSuccess" in strategy or "onFailure" in strategy
    rules = "deletionRules" in strategy
    if legacy and rules:
        yield _finding(
            "deletion-strategy",
            doc,
            "spec.deletionStrategy",
            "got onSuccess/onFailure and deletionRules, expected one style",
        )
    if not ((("onSuccess" in strategy) and ("onFailure" in strategy)) or rules):
        yield _finding(
            "deletion-strategy",
            doc,
            "spec.deletionStrategy",
            "got neither both onSuccess and onFailure nor deletionRules, expected one",
        )
    for index, rule in enumerate(strategy.get("deletionRules") or []):
        condition = rule.get("condition") or {}
        if ("jobStatus" in condition) == ("jobDeploymentStatus" in condition):
            yield _finding(
                "deletion-condition",
                doc,
                f"spec.deletionStrategy.deletionRules[{index}].condition",
                "expected exactly one of jobStatus and jobDeploymentStatus",
            )


def _cleanup(doc: dict[str, Any]) -> Iterator[Finding]:
    """Cleanup after the job: shutdownAfterJobFinishes + ttlSecondsAfterFinished, or deletionRules, never both."""
    spec = doc.get("spec") or {}
    shutdown = bool(spec.get("shutdownAfterJobFinishes", False))
    ttl = as_int(spec.get("ttlSecondsAfterFinished"))
    rules = bool((spec.get("deletionStrategy") or {}).get("deletionRules"))
    if rules and (shutdown or "ttlSecondsAfterFinished" in spec):
        yield _finding(
            "cleanup-exclusive",
            doc,
            "spec",
            "got deletionStrategy.deletionRules together with shutdownAfterJobFinishes/ttlSecondsAfterFinished, expected one of them",
        )
    if ttl > 0 and not shutdown:
        yield _finding(
            "cleanup-exclusive",
            doc,
            "spec.ttlSecondsAfterFinished",
            f"got {ttl} without shutdownAfterJobFinishes: true, expected both",
        )
    if spec.get("suspend") and not shutdown:
        yield _finding(
            "suspend",
            doc,
            "spec.suspend",
            "got suspend: true without shutdownAfterJobFinishes: true, which KubeRay rejects",
        )
    if not rules and not (shutdown and "ttlSecondsAfterFinished" in spec):
        yield _finding(
            "cleanup-required",
            doc,
            "spec",
            "got no cleanup, expected shutdownAfterJobFinishes: true with ttlSecondsAfterFinished, or deletionRules",
        )


def _job_fields(doc: dict[str, Any]) -> Iterator[Finding]:
    spec = doc.get("spec") or {}
    deadline = spec.get("activeDeadlineSeconds")
    if not isinstance(deadline, int) or deadline <= 0:
        yield _finding(
            "job-deadline",
            doc,
            "spec.activeDeadlineSeconds",
            f"got {deadline!r}, expected a positive number of seconds",
        )
    backoff = spec.get("backoffLimit")
    if not isinstance(backoff, int) or backoff < 0:
        yield _finding("job-backoff", doc, "spec.backoffLimit", f"got {backoff!r}, expected an integer >= 0")
    if not spec.get("rayClusterSpec") and not spec.get("clusterSelector"):
        yield _finding(
            "job-cluster",
            doc,
            "spec.rayClusterSpec",
            "got neither rayClusterSpec nor clusterSelector, expected one",
        )
    if not isinstance(spec.get("submitterPodTemplate"), dict):
        yield _finding(
            "job-submitter",
            doc,
            "spec.submitterPodTemplate",
            "missing; expected a pinned, non-root submitter pod template",
        )
    if not str(spec.get("entrypoint", "")).strip():
        yield _finding(
            "job-entrypoint", doc, "spec.entrypoint", "empty; expected `python jobs/<job>.py --config ...`"
        )


def _service_fields(doc: dict[str, Any]) -> Iterator[Finding]:
    spec = doc.get("spec") or {}
    upgrade = (spec.get("upgradeStrategy") or {}).get("type")
    if upgrade not in UPGRADE_TYPES:
        yield _finding(
            "service-upgrade",
            doc,
            "spec.upgradeStrategy.type",
            f"got {upgrade!r}, expected one of {UPGRADE_TYPES}",
        )
    if not str(spec.get("serveConfigV2", "")).strip():
        yield _finding(
            "service-serve-config",
            doc,
            "spec.serveConfigV2",
            "empty; expected the Serve config of configs/serve.yaml",
        )
    delay = spec.get("rayClusterDeletionDelaySeconds", 0)
    if not isinstance(delay, int) or delay < 0:
        yield _finding(
            "service-deletion-delay",
            doc,
            "spec.rayClusterDeletionDelaySeconds",
            f"got {delay!r}, expected an integer >= 0",
        )
