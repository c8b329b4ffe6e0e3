"""Fixtures for the deployment checks: the KubeRay CRDs of ../shared and overlays rendered by kubectl."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from deploy.helpers import OVERLAYS, REPO_ROOT
from taiyi_ray.deploy.manifests import render


@pytest.fixture(scope="session")
def crd_dir(shared_dir: Path) -> Path:
    return shared_dir / "kuberay" / "crds"


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """{overlay: rendered resources}; kubectl is part of the machine image (and so of CI)."""
    if shutil.which("kubectl") is None:
        if os.environ.get("TAIYI_REQUIRE_SHARED") == "1":
            pytest.fail("kubectl is missing but CI needs it to render k8s/overlays")
        pytest.skip("kubectl not on PATH: cannot render the kustomize overlays")
    return {name: render(REPO_ROOT / "k8s" / "overlays" / name) for name in OVERLAYS}
