"""Where a data tree lives: a local folder, ``s3://``, ``gs://`` or ``http(s)://``.

:func:`open_store` returns the :class:`TreeStore` of a root URL (one per URL and
process). Implementations register by URL scheme (:data:`SCHEMES`); the object-store one
is imported only when such a URL is opened, so reading a local tree needs nothing beyond
the standard library.

Catalogue items of a local tree carry :class:`pathlib.Path` objects, those of a remote
tree carry :class:`Location` objects (root URL + key) that answer the few questions the
converters ask of a path (``/``, ``name``, ``is_dir()``, ``read_bytes()``...) through
the store; :data:`TreePath` is either. :func:`kvstore_spec` gives tensorstore the same
folder (zarr inputs).
"""

from __future__ import annotations

import functools
import io
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cryoet_ng.store.base import (
    Changed,
    Entry,
    Listing,
    NotFound,
    NotListable,
    StoreError,
    TreeStore,
    normalise_key,
)
from cryoet_ng.store.local import LocalStore

__all__ = [
    "SCHEMES",
    "Changed",
    "Entry",
    "Listing",
    "LocalStore",
    "Location",
    "NotFound",
    "NotListable",
    "StoreError",
    "TreePath",
    "TreeStore",
    "forget_stores",
    "input_file",
    "input_size",
    "is_url",
    "kvstore_spec",
    "normalise_key",
    "open_store",
    "public_url",
    "relative_key",
    "tree_path",
    "write_file",
]


def _object_store(url: str) -> TreeStore:
    from cryoet_ng.store.remote import ObjectTreeStore

    return ObjectTreeStore(url)


# scheme -> factory(url); "" is a local path.
SCHEMES: dict[str, Callable[[str], TreeStore]] = {
    "s3": _object_store,
    "gs": _object_store,
    "http": _object_store,
    "https": _object_store,
}


def is_url(root: str | Path) -> bool:
    """True for ``scheme://...`` roots other than ``file://``."""
    text = str(root)
    return "://" in text and not text.startswith("file://")


_lock = threading.Lock()


@functools.lru_cache(maxsize=64)
def _open_cached(url: str) -> TreeStore:
    scheme = url.split("://", 1)[0]
    factory = SCHEMES.get(scheme)
    if factory is None:
        known = ", ".join(f"{s}://" for s in sorted(SCHEMES))
        raise StoreError(url, f"unsupported URL scheme (known: {known}, or a local folder)")
    return factory(url)


def forget_stores() -> None:
    """Drop the cached remote stores (after the environment that configures them changed)."""
    with _lock:
        _open_cached.cache_clear()


def open_store(root: str | Path) -> TreeStore:
    """The store of ``root``: a folder, ``file://`` path, or a registered URL scheme."""
    text = str(root)
    if text.startswith("file://"):
        text = text[len("file://") :]
    if not is_url(text):
        return LocalStore(Path(text))
    with _lock:
        return _open_cached(text.rstrip("/"))


@dataclass(frozen=True)
class Location:
    """A key under a remote root: picklable (two strings), opened lazily on any worker."""

    root: str
    key: str

    @property
    def store(self) -> TreeStore:
        return open_store(self.root)

    @property
    def url(self) -> str:
        return f"{self.root.rstrip('/')}/{self.key}" if self.key else self.root

    def __str__(self) -> str:
        return self.url

    def __truediv__(self, name: str) -> Location:
        key = normalise_key(f"{self.key}/{name}")
        return Location(self.root, key or "")

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    @property
    def suffix(self) -> str:
        name = self.name
        return name[name.rfind(".") :] if "." in name.lstrip(".") else ""

    @property
    def stem(self) -> str:
        return self.name[: len(self.name) - len(self.suffix)]

    def with_name(self, name: str) -> Location:
        return self.parent / name

    @property
    def parent(self) -> Location:
        return Location(self.root, self.key.rsplit("/", 1)[0] if "/" in self.key else "")

    def exists(self) -> bool:
        return self.is_file() or self.is_dir()

    def is_file(self) -> bool:
        return self.store.head(self.key) is not None

    def is_dir(self) -> bool:
        return self.store.is_folder(self.key)

    def read_bytes(self) -> bytes:
        return self.store.read(self.key)

    def read_text(self) -> str:
        return self.read_bytes().decode()

    def read_prefix(self, length: int) -> bytes:
        return self.store.read_prefix(self.key, length)

    def is_relative_to(self, other: TreePath) -> bool:
        if not isinstance(other, Location) or other.root != self.root:
            return False
        return not other.key or self.key == other.key or self.key.startswith(other.key + "/")

    def relative_to(self, other: TreePath) -> str:
        if not self.is_relative_to(other):
            raise ValueError(f"{self} is not under {other}")
        assert isinstance(other, Location)
        return self.key[len(other.key) :].lstrip("/")


TreePath = Path | Location


def tree_path(store: TreeStore, key: str) -> TreePath:
    """The path of ``key`` as catalogue items carry it (local Path, else Location)."""
    local = store.local_path(key)
    return local if local is not None else Location(store.url, key)


def relative_key(path: TreePath, root: TreePath) -> str:
    """``path`` relative to ``root`` with forward slashes (ValueError when it is not under it)."""
    if isinstance(path, Location):
        return path.relative_to(root)
    if not isinstance(root, Path):
        raise ValueError(f"{path} is not under {root}")
    return path.relative_to(root).as_posix()


def public_url(root: str | Path) -> str | None:
    """The https URL a browser reads the tree at ``root`` from (anonymously), None for a
    local folder: ``https://<bucket>.s3.<region>.amazonaws.com/<prefix>`` (path-style
    under ``AWS_ENDPOINT_URL`` when set), ``https://storage.googleapis.com/<bucket>/<prefix>``,
    or an http(s) root itself."""
    if not is_url(root):
        return None
    return open_store(root).public_url


def write_file(path: TreePath, data: bytes) -> None:
    """Replace a file atomically, in a folder or on its store."""
    if isinstance(path, Location):
        path.store.write(path.key, data)
    else:
        from cryoet_ng import atomic

        atomic.write_bytes(path, data)


def input_size(path: TreePath) -> int:
    """Size of an input file in bytes (OSError/StoreError when it is missing)."""
    if isinstance(path, Location):
        entry = path.store.head(path.key)
        if entry is None:
            raise NotFound(path.url, "not found")
        return entry.size
    return path.stat().st_size


def local_input(path: TreePath, folder: Path) -> Path:
    """A local file with the input's bytes: the path itself, or a streamed download of the
    object into ``folder`` (for readers that need a seekable file of any size)."""
    if isinstance(path, Location):
        dest = folder / path.name
        path.store.download(path.key, dest)
        return dest
    return path


def input_file(path: TreePath) -> str | IO[bytes]:
    """What a reader taking a file name or a binary file object (pyarrow, json) opens:
    the local path, or the object's bytes fetched through the store."""
    if isinstance(path, Location):
        return io.BytesIO(path.read_bytes())
    return str(path)


def kvstore_spec(path: TreePath) -> dict[str, Any]:
    """tensorstore kvstore spec of a folder (a zarr array or group), local or remote."""
    if isinstance(path, Location):
        return path.store.kvstore_spec(path.key)
    return {"driver": "file", "path": str(path) + "/"}
