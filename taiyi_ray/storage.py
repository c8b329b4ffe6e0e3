"""Every read and write of the project goes through here: local paths and `s3://` URIs alike.

Two views of the same store are offered because the libraries we feed want different ones: fsspec
(s3fs) for file-like IO and directory copies, pyarrow's native S3 filesystem for Ray Data and Parquet
(faster, and what `ray.data.read_parquet` / Ray Train's `storage_filesystem` expect). Both get the same
endpoint, region and credentials, and both retry transient errors.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import posixpath
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import urlparse

import fsspec
import pyarrow.fs as pafs
from fsspec import AbstractFileSystem

from taiyi_ray.config.base import is_uri
from taiyi_ray.config.platform import StorageConfig

log = logging.getLogger(__name__)

S3_RETRY_ATTEMPTS = 8

TRANSIENT_MARKERS = (
    "NETWORK_CONNECTION",
    "SLOW_DOWN",
    "SERVICE_UNAVAILABLE",
    "HTTP status 503",
    "Could not connect",
    "Connection refused",
    "Connection reset",
    "timed out",
)
"""Substrings of the errors an object store (or the network to it) raises while it is briefly away."""

T = TypeVar("T")


def with_retries(action: Callable[[], T], what: str, attempts: int = 7, first_delay_s: float = 0.5) -> T:
    """Run `action`, retrying transient object-store errors with exponential backoff (0.5 s, 1 s, 2 s ...
    about 30 s in all): the client libraries' own retries give up within a second when a server is down,
    a restarting endpoint takes longer. Other errors, and the last transient one, are raised."""
    delay = first_delay_s
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except OSError as error:
            if attempt == attempts or not any(marker in str(error) for marker in TRANSIENT_MARKERS):
                raise
            log.warning(
                "%s: transient error (attempt %d of %d), retrying in %.1f s: %s",
                what,
                attempt,
                attempts,
                delay,
                error,
            )
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def join(base: str, *parts: str) -> str:
    """Join path parts onto a local path or URI without breaking the `scheme://` prefix."""
    if is_uri(base):
        scheme, rest = base.split("://", 1)
        return (
            f"{scheme}://{posixpath.join(rest, *parts)}" if rest else f"{scheme}://{posixpath.join(*parts)}"
        )
    return os.path.join(base, *parts)


def parent(location: str) -> str:
    """The directory holding `location` (URI-aware)."""
    if is_uri(location):
        scheme, rest = location.split("://", 1)
        return f"{scheme}://{posixpath.dirname(rest.rstrip('/'))}"
    return os.path.dirname(os.path.abspath(location))


def basename(location: str) -> str:
    return (
        posixpath.basename(location.rstrip("/"))
        if is_uri(location)
        else os.path.basename(location.rstrip(os.sep))
    )


def _endpoint(config: StorageConfig) -> str | None:
    return config.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


def _region(config: StorageConfig) -> str | None:
    return config.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")


class StorageAccessError(RuntimeError):
    """Object storage refused us for want of credentials: retrying cannot help."""


def _credential_sources() -> str:
    """Where AWS credentials were looked for on this process, and which of them are set."""

    def state(name: str) -> str:
        return f"{name} ({'set' if os.environ.get(name) else 'unset'})"

    metadata = (
        "disabled by AWS_EC2_METADATA_DISABLED"
        if os.environ.get("AWS_EC2_METADATA_DISABLED")
        else "none found"
    )
    return (
        f"Looked for {state('AWS_ACCESS_KEY_ID')}, {state('AWS_SECRET_ACCESS_KEY')}, {state('AWS_PROFILE')}, "
        f"a web-identity role ({state('AWS_ROLE_ARN')}, {state('AWS_WEB_IDENTITY_TOKEN_FILE')}), "
        f"an instance profile ({metadata}). Credentials never travel in a job's runtime_env: give every "
        "node its own (a Kubernetes envFrom secret or service-account role, an instance profile, "
        "cluster/local.sh's env file)"
    )


class Storage:
    """Filesystems for one `StorageConfig`, created lazily and cached per scheme."""

    def __init__(self, config: StorageConfig | None = None) -> None:
        self.config = config or StorageConfig()
        self._fsspec: dict[str, AbstractFileSystem] = {}
        self._arrow: dict[str, pafs.FileSystem] = {}

    # -- filesystems -------------------------------------------------------------------------------
    def fsspec(self, location: str) -> tuple[AbstractFileSystem, str]:
        """(fsspec filesystem, path inside it) for a local path or URI."""
        scheme = urlparse(location).scheme if is_uri(location) else "file"
        if scheme not in self._fsspec:
            self._fsspec[scheme] = self._make_fsspec(scheme)
        path = location.split("://", 1)[1] if is_uri(location) else os.path.abspath(location)
        return self._fsspec[scheme], path

    def arrow(self, location: str) -> tuple[pafs.FileSystem, str]:
        """(pyarrow filesystem, path inside it) for a local path or URI."""
        scheme = urlparse(location).scheme if is_uri(location) else "file"
        if scheme not in self._arrow:
            self._arrow[scheme] = self._make_arrow(scheme)
        path = location.split("://", 1)[1] if is_uri(location) else os.path.abspath(location)
        return self._arrow[scheme], path

    def _make_fsspec(self, scheme: str) -> AbstractFileSystem:
        if scheme in ("file", "local"):
            return fsspec.filesystem("file", auto_mkdir=True)
        if scheme in ("s3", "s3a"):
            options: dict[str, Any] = {
                "anon": self.config.anonymous,
                "config_kwargs": {"retries": {"max_attempts": S3_RETRY_ATTEMPTS, "mode": "standard"}},
            }
            client_kwargs: dict[str, Any] = {}
            if _endpoint(self.config):
                options["endpoint_url"] = _endpoint(self.config)
            if _region(self.config):
                client_kwargs["region_name"] = _region(self.config)
            if self.config.access_key_id and self.config.secret_access_key:
                options["key"] = self.config.access_key_id.get_secret_value()
                options["secret"] = self.config.secret_access_key.get_secret_value()
            options["client_kwargs"] = client_kwargs
            # Listings are cached by default; a writer and a reader of the same prefix must agree.
            options["use_listings_cache"] = False
            options["skip_instance_cache"] = True
            return fsspec.filesystem("s3", **options)
        return fsspec.filesystem(scheme)

    def _make_arrow(self, scheme: str) -> pafs.FileSystem:
        if scheme in ("file", "local"):
            return pafs.LocalFileSystem()
        if scheme in ("s3", "s3a"):
            options: dict[str, Any] = {
                "anonymous": self.config.anonymous,
                "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=S3_RETRY_ATTEMPTS),
            }
            endpoint = _endpoint(self.config)
            if endpoint:
                parsed = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
                options["endpoint_override"] = parsed.netloc
                options["scheme"] = parsed.scheme
            if _region(self.config):
                options["region"] = _region(self.config)
            if self.config.access_key_id and self.config.secret_access_key:
                options["access_key"] = self.config.access_key_id.get_secret_value()
                options["secret_key"] = self.config.secret_access_key.get_secret_value()
            return pafs.S3FileSystem(**options)
        return pafs.PyFileSystem(pafs.FSSpecHandler(self._make_fsspec(scheme)))

    def check_access(self, location: str, where: str) -> None:
        """Fail at once, naming what was looked for, when `where` (e.g. a worker's node) has no usable
        credentials for `location`: a worker without them would otherwise fail deep inside a library,
        and Ray Train would restart it into the same failure."""
        if not is_uri(location):
            return
        from botocore.exceptions import CredentialRetrievalError, NoCredentialsError, PartialCredentialsError

        try:
            self.exists(location)
        except (
            NoCredentialsError,
            PartialCredentialsError,
            CredentialRetrievalError,
            PermissionError,
        ) as error:
            raise StorageAccessError(
                f"{where}: cannot reach {location}: {error}. {_credential_sources()}"
            ) from None

    # -- file operations ---------------------------------------------------------------------------
    def open(self, location: str, mode: str = "rb", **kwargs: Any) -> IO[Any]:
        fs, path = self.fsspec(location)
        return fs.open(path, mode, **kwargs)

    def exists(self, location: str) -> bool:
        fs, path = self.fsspec(location)
        return bool(fs.exists(path))

    def is_dir(self, location: str) -> bool:
        fs, path = self.fsspec(location)
        return bool(fs.isdir(path))

    def makedirs(self, location: str) -> None:
        """Create a directory (a no-op on object stores, where prefixes need no creation)."""
        if not is_uri(location):
            os.makedirs(location, exist_ok=True)

    def list(self, location: str) -> list[str]:
        """Full locations of the direct children of a directory, sorted."""
        fs, path = self.fsspec(location)
        names = sorted(fs.ls(path, detail=False))
        if is_uri(location):
            scheme = location.split("://", 1)[0]
            return [f"{scheme}://{name}" for name in names]
        return names

    def read_bytes(self, location: str) -> bytes:
        with self.open(location, "rb") as handle:
            return handle.read()

    def read_text(self, location: str) -> str:
        return self.read_bytes(location).decode("utf-8")

    def write_bytes(self, location: str, data: bytes) -> None:
        """Write atomically on local disk (temp file + rename); S3 PUTs are atomic already."""
        if is_uri(location):
            with self.open(location, "wb") as handle:
                handle.write(data)
            return
        os.makedirs(os.path.dirname(location) or ".", exist_ok=True)
        temporary = f"{location}.tmp-{os.getpid()}"
        with open(temporary, "wb") as handle:
            handle.write(data)
        os.replace(temporary, location)

    def write_text(self, location: str, text: str) -> None:
        self.write_bytes(location, text.encode("utf-8"))

    def read_json(self, location: str) -> Any:
        try:
            return json.loads(self.read_text(location))
        except json.JSONDecodeError as error:
            raise ValueError(f"{location}: not valid JSON ({error})") from error

    def write_json(self, location: str, value: Any) -> None:
        self.write_text(location, json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False) + "\n")

    def remove(self, location: str) -> None:
        fs, path = self.fsspec(location)
        if fs.exists(path):
            fs.rm(path, recursive=True)

    def upload_dir(self, local_dir: str | Path, location: str) -> None:
        """Copy a local directory tree to `location` (a no-op when they are the same directory)."""
        local_dir = os.path.abspath(local_dir)
        if not is_uri(location):
            if os.path.abspath(location) != local_dir:
                shutil.copytree(local_dir, location, dirs_exist_ok=True)
            return
        fs, path = self.fsspec(location)
        fs.put(local_dir.rstrip("/") + "/", path.rstrip("/") + "/", recursive=True)

    def download_dir(self, location: str, local_dir: str | Path) -> str:
        """Copy a directory tree at `location` into `local_dir`; returns the local path."""
        local_dir = os.path.abspath(local_dir)
        if not is_uri(location):
            shutil.copytree(location, local_dir, dirs_exist_ok=True)
            return local_dir
        fs, path = self.fsspec(location)
        os.makedirs(local_dir, exist_ok=True)
        fs.get(path.rstrip("/") + "/", local_dir.rstrip("/") + "/", recursive=True)
        return local_dir

    def cached_dir(self, location: str, scratch: str | Path) -> str:
        """A local directory with the contents of `location`: the path itself when local; with
        `storage.cache_dir` set, the node's cache entry (see NodeCache); else a download into `scratch`."""
        if not is_uri(location):
            return location
        if self.config.cache_dir is None:
            return self.download_dir(
                location, os.path.join(scratch, posixpath.basename(location.rstrip("/")))
            )
        return NodeCache(self.config.cache_dir, self.config.cache_max_gib).fetch(self, location)

    @contextmanager
    def local_dir(self, location: str, scratch: str | Path) -> Iterator[str]:
        """A local directory with the contents of `location`: itself when local, else a download."""
        if not is_uri(location):
            yield os.path.abspath(location)
            return
        target = Path(scratch) / basename(location)
        try:
            yield self.download_dir(location, target)
        finally:
            shutil.rmtree(target, ignore_errors=True)


class NodeCache:
    """Remote directories (base models, checkpoints) downloaded once per node into `root`.

    An entry is named by a digest of the location and its listing (names, sizes, ETags), so a changed
    object is fetched again instead of served stale. A file lock per entry makes the workers of a node
    wait for one download instead of each fetching 15 GB; the download lands in `<entry>.partial` and
    is renamed when whole, so a crash leaves only a partial dir, removed by the next fetch. After each
    fetch the cache is trimmed to `max_gib`, least recently used first, sparing entries used in the last
    `IN_USE_S` seconds (another worker may still be loading them).
    """

    IN_USE_S = 600.0

    def __init__(self, root: str | Path, max_gib: float) -> None:
        self.root = Path(root)
        self.max_bytes = max_gib * 1024**3

    def fetch(self, storage: Storage, location: str) -> str:
        from filelock import FileLock

        filesystem, path = storage.fsspec(location)
        listing = filesystem.find(path, detail=True)
        if not listing:
            raise FileNotFoundError(f"{location}: nothing to download (no such directory or it is empty)")
        signature = [
            (name[len(path) :], info.get("size"), info.get("ETag") or info.get("mtime"))
            for name, info in sorted(listing.items())
        ]
        key = hashlib.sha256(json.dumps([location, signature], default=str).encode()).hexdigest()[:24]
        entry, partial = self.root / key, self.root / f"{key}.partial"
        self.root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.root / f"{key}.lock")):
            if entry.is_dir():
                os.utime(entry)
                log.info("node cache: %s from %s", location, entry)
            else:
                shutil.rmtree(partial, ignore_errors=True)  # left by a download that crashed
                log.info("node cache: downloading %s to %s", location, entry)
                storage.download_dir(location, partial)
                (partial / ".taiyi-cache.json").write_text(json.dumps({"location": location}))
                os.replace(partial, entry)
        self.trim(keep=key)
        return str(entry)

    def trim(self, keep: str) -> None:
        """Remove abandoned partial downloads, then least recently used entries over the size budget."""
        now = time.time()
        entries = sorted(
            (item for item in self.root.iterdir() if item.is_dir()), key=lambda item: item.stat().st_mtime
        )
        total = sum(_tree_bytes(item) for item in entries)
        for item in entries:
            partial = item.name.endswith(".partial")
            if not partial and (total <= self.max_bytes or now - item.stat().st_mtime < self.IN_USE_S):
                continue
            if item.name.removesuffix(".partial") != keep:
                total -= self._remove_unless_locked(item)
        if total > self.max_bytes:
            log.warning(
                "node cache %s holds %.1f GiB, over its %.1f GiB budget: the rest is in use",
                self.root,
                total / 1024**3,
                self.max_bytes / 1024**3,
            )

    def _remove_unless_locked(self, item: Path) -> int:
        """Remove an entry nobody holds the lock of (downloading it right now); returns bytes freed."""
        from filelock import FileLock, Timeout

        try:
            with FileLock(str(self.root / f"{item.name.removesuffix('.partial')}.lock"), timeout=0):
                size = _tree_bytes(item)
                shutil.rmtree(item, ignore_errors=True)
        except Timeout:
            return 0
        log.info("node cache: removed %s (%.2f GiB)", item, size / 1024**3)
        return size


def _tree_bytes(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())
