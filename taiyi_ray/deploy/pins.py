"""Versions that must agree across the repo: the clusters' rayVersion with the Ray pin of
constraints.txt (the image installs exactly that), and the image tag with the package version."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from taiyi_ray.deploy import Finding, resource_name
from taiyi_ray.deploy.manifests import cluster_specs, containers, pod_templates


def pinned_version(repo_root: Path, package: str) -> str | None:
    """`package==X` of constraints.txt, or None."""
    pattern = re.compile(rf"^{re.escape(package)}==([^\s;#]+)", re.IGNORECASE | re.MULTILINE)
    match = pattern.search((repo_root / "constraints.txt").read_text())
    return match.group(1) if match else None


def project_version(repo_root: Path) -> str:
    return str(tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]["version"])


def check_versions(doc: dict[str, Any], repo_root: Path, image_name: str = "taiyi-ray") -> list[Finding]:
    """rayVersion == constraints' ray pin; taiyi-ray image tags start with the project version."""
    ray, version, where = pinned_version(repo_root, "ray"), project_version(repo_root), resource_name(doc)
    findings = []
    for path, spec in cluster_specs(doc):
        if str(spec.get("rayVersion")) != ray:
            findings.append(
                Finding(
                    "ray-version",
                    where,
                    f"{path}.rayVersion",
                    f"got {spec.get('rayVersion')!r}, expected {ray!r} (constraints.txt)",
                )
            )
    for pod in pod_templates(doc):
        for name, container in containers(pod.spec):
            image = str(container.get("image", ""))
            repository, _, tag = image.rpartition(":")
            if repository.rsplit("/", 1)[-1] == image_name and not (
                tag == version or tag.startswith(f"{version}-")
            ):
                findings.append(
                    Finding(
                        "image-version",
                        where,
                        f"{pod.path}.{name}.image",
                        f"got tag {tag!r}, expected {version} or {version}-<variant> (pyproject.toml)",
                    )
                )
    return findings
