"""Offline checks of the deployment files (k8s/ manifests, Dockerfile, cluster/aws.yaml).

No cluster is needed: overlays are rendered with `kubectl kustomize`, KubeRay resources are validated
strictly against the v1.7 CRD schemas, and the rules the API server (CEL) or the KubeRay operator would
enforce, plus this project's own (entrypoints, GPU counts, images, credentials), are checked by hand.
Every check returns `Finding`s; an empty list means valid. Imports only `taiyi_ray.config`.
"""

from taiyi_ray.deploy.findings import Finding

__all__ = ["Finding"]
