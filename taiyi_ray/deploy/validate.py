"""Validate rendered overlays: every rule of this package over every resource.

    python -m taiyi_ray.deploy.validate k8s/overlays/dev k8s/overlays/prod --crds ../shared/kuberay/crds

prints one line per finding and exits 1 if there is any (0 when all overlays are valid).
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

from taiyi_ray.deploy import Finding, resource_name
from taiyi_ray.deploy.capacity import check_training
from taiyi_ray.deploy.core_kinds import check_core
from taiyi_ray.deploy.crd import validate_resource
from taiyi_ray.deploy.credentials import check_credentials
from taiyi_ray.deploy.entrypoints import Invocation, check_pipeline, load_invocation
from taiyi_ray.deploy.kuberay_rules import check_resource
from taiyi_ray.deploy.manifests import render
from taiyi_ray.deploy.pins import check_versions
from taiyi_ray.deploy.pods import check_pods
from taiyi_ray.deploy.serve_config import check_service

REPO_ROOT = Path(__file__).resolve().parents[2]


def validate_docs(
    docs: list[dict[str, Any]], crd_dir: str | Path, repo_root: Path = REPO_ROOT
) -> list[Finding]:
    """Every finding for a set of rendered resources (one overlay)."""
    docs = copy.deepcopy(docs)
    config_maps = {
        str(doc["metadata"]["name"]): doc.get("data") or {} for doc in docs if doc.get("kind") == "ConfigMap"
    }
    findings: list[Finding] = []
    for doc in docs:
        findings += check_core(doc)
        findings += validate_resource(doc, crd_dir)
        findings += check_resource(doc)
        findings += check_pods(doc, set(config_maps))
        findings += check_credentials(doc)
        findings += check_versions(doc, repo_root)
    findings += _cluster_sync(docs)
    env = {key: str(value) for data in config_maps.values() for key, value in data.items()}
    invocations: list[Invocation] = []
    for doc in (item for item in docs if item.get("kind") == "RayJob"):
        invocation, problems = load_invocation(doc, repo_root, env)
        findings += problems
        if invocation is not None:
            invocations.append(invocation)
            findings += check_training(invocation)
    findings += check_pipeline(invocations)
    export = next((item for item in invocations if item.job == "export"), None)
    export_model = f"{export.run_dir}/model" if export is not None else None
    for doc in (item for item in docs if item.get("kind") == "RayService"):
        findings += check_service(doc, repo_root, export_model)
    return findings


def _cluster_sync(docs: list[dict[str, Any]]) -> list[Finding]:
    """Every RayJob runs on the RayCluster's spec (the overlays' replacements keep the copies in step)."""
    clusters = [doc for doc in docs if doc.get("kind") == "RayCluster"]
    if len(clusters) != 1:
        return [
            Finding("cluster-sync", "RayCluster", "", f"got {len(clusters)} RayClusters, expected exactly 1")
        ]
    findings = []
    for doc in (item for item in docs if item.get("kind") == "RayJob"):
        if (doc.get("spec") or {}).get("rayClusterSpec") != clusters[0].get("spec"):
            findings.append(
                Finding(
                    "cluster-sync",
                    resource_name(doc),
                    "spec.rayClusterSpec",
                    "differs from RayCluster/taiyi-ray's spec; expected the copy made by the kustomize replacements (repeat them last in the overlay)",
                )
            )
    return findings


def validate_overlay(overlay: str | Path, crd_dir: str | Path, repo_root: Path = REPO_ROOT) -> list[Finding]:
    """Render `overlay` with kubectl kustomize and validate the result."""
    return validate_docs(render(overlay), crd_dir, repo_root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m taiyi_ray.deploy.validate", description=__doc__.splitlines()[0]
    )
    parser.add_argument("overlays", nargs="+", help="kustomize directories, e.g. k8s/overlays/dev")
    parser.add_argument(
        "--crds", default=str(REPO_ROOT.parent / "shared" / "kuberay" / "crds"), help="KubeRay CRD directory"
    )
    args = parser.parse_args(argv)
    failed = False
    for overlay in args.overlays:
        findings = validate_overlay(overlay, args.crds)
        for finding in findings:
            print(f"{overlay}: {finding}")
        print(f"{overlay}: {'OK' if not findings else f'{len(findings)} finding(s)'}")
        failed = failed or bool(findings)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
