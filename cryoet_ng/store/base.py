"""The storage interface every data-tree store implements, and its errors.

Keys are posix paths relative to the store's root URL, without a leading slash
(``10000/TS_026/run_metadata.json``); a "directory" is a key prefix. Every store counts
its requests in :attr:`TreeStore.requests` (tests use it to prove that an index refresh
reads only what changed).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Entry:
    """One object: its key, size and version (the store's ETag, or a local mtime_ns)."""

    key: str
    size: int
    version: str


@dataclass(frozen=True)
class Listing:
    """One level of a folder: sub-folder names and the files directly in it."""

    folders: tuple[str, ...]  # names, not keys
    files: tuple[Entry, ...]

    @property
    def empty(self) -> bool:
        return not self.folders and not self.files


class StoreError(OSError):
    """A request failed for good (after retries); the message names the URL of the key.

    An :class:`OSError`, so code written for local files reports it the same way."""

    def __init__(self, url: str, message: str) -> None:
        super().__init__(f"{url}: {message}")
        self.url = url
        self.reason = message


class NotFound(StoreError):
    """No object under that key (or no such bucket)."""


class Changed(StoreError):
    """The object changed between listing and reading (its version differs)."""


class NotListable(StoreError):
    """The store cannot list (plain HTTP): the tree needs its published index."""


def normalise_key(key: str) -> str | None:
    """``a/./b/../c`` -> ``a/c``; None when the key leaves the root or names the root itself.

    A leading slash is ignored: metadata paths are bucket-relative either way.
    """
    parts: list[str] = []
    for part in key.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts) or None


class TreeStore(ABC):
    """Read access (and index writes) to one tree, addressed by keys under :attr:`url`."""

    url: str
    can_list: bool = True
    public_url: str | None = None  # where a browser reads the tree (None: not on the web)

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()

    def url_of(self, key: str) -> str:
        return f"{self.url.rstrip('/')}/{key}" if key else self.url

    @abstractmethod
    def list_folder(self, prefix: str) -> Listing:
        """Sub-folders and files directly under ``prefix`` (``""``: the root)."""

    @abstractmethod
    def list_tree(self, prefix: str) -> list[Entry]:
        """Every object under ``prefix`` (recursively), in no particular order."""

    @abstractmethod
    def read(self, key: str, version: str | None = None) -> bytes:
        """The object's bytes; :class:`Changed` when ``version`` is given and differs."""

    def read_prefix(self, key: str, length: int) -> bytes:
        """The object's first ``length`` bytes (fewer when it is shorter): a file header
        without the file. Stores that can read a range override this; the default reads
        the whole object."""
        return self.read(key)[:length]

    def download(self, key: str, dest: Path) -> None:
        """Copy the object to the local file ``dest``. Stores that can stream override this
        so a large input never sits in memory whole."""
        dest.write_bytes(self.read(key))

    @abstractmethod
    def head(self, key: str) -> Entry | None:
        """The object's entry, None when there is none."""

    @abstractmethod
    def write(self, key: str, data: bytes) -> None:
        """Replace the object atomically (readers see the old or the new bytes)."""

    def write_if(self, key: str, data: bytes, version: str | None) -> str | None:
        """Write only if the object is absent (``version`` None) or still at ``version``;
        its new version, or None when the condition failed (a compare-and-swap: locks)."""
        raise StoreError(self.url_of(key), "this store has no conditional writes")

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; no error when it is already gone."""

    @abstractmethod
    def kvstore_spec(self, key: str) -> dict[str, Any]:
        """A tensorstore kvstore spec of the folder ``key`` (e.g. an OME-Zarr group)."""

    def is_folder(self, key: str) -> bool:
        """True when some object lives under ``key/``."""
        listing = self.list_folder(key)
        return not listing.empty

    def contains(self, key: str) -> str | None:
        """The normalised key when it stays inside the root, else None."""
        return normalise_key(key)

    def local_path(self, key: str) -> Path | None:
        """The local file of ``key``, for stores on a local file system."""
        return None
