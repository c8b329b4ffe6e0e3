"""Shared building blocks for config sections: a strict base model and the location type."""

from __future__ import annotations

import os
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Base of every config section, and of every file or result one stage hands another (shard manifest,
    checkpoint state, summaries, job results): unknown keys are errors (a typo must never be silently
    ignored) and values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())


def is_uri(location: str) -> bool:
    """True for `scheme://...` locations (s3://, gs://, file://...), False for plain paths."""
    return "://" in location


def absolute_location(location: str) -> str:
    """Make a plain relative path absolute against the current directory; URIs are returned unchanged.

    Jobs run from the repository root (`ray job submit --working-dir .` puts workers there too), so a
    path in a config means the same thing on the driver and on every worker once it is absolute.
    """
    if not location or is_uri(location):
        return location
    return os.path.abspath(os.path.expanduser(location))


Location = Annotated[str, AfterValidator(absolute_location)]
"""A local path (made absolute) or a URI such as `s3://bucket/prefix`."""
