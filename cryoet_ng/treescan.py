"""Store -> records -> catalogue: list a tree, read its metadata documents, build items.

A *dataset record* is plain JSON (what :mod:`cryoet_ng.index` stores)::

    {"dataset": "10000", "signature": "<hex>",
     "metadata": {"file": [key, size, version] | null, "doc": {...} | null, "error": str | null},
     "runs": {"TS_026": {"signature": "<hex>" | null,
                         "files": [[relative key, size, version], ...],
                         "docs": {relative key: {...}}, "errors": {relative key: "message"}}}}

``files`` is the run's listing: ``run_metadata.json`` and everything under
``Reconstructions/`` and (old layout) ``Tomograms/``, except precompute outputs
(``NeuroglancerPrecompute/``), with every ``*.zarr`` folder folded into one entry
(``x.zarr/``, total size, digest of its objects' keys, sizes and versions): a run of the
portal lists as a few dozen entries instead of thousands of chunks, and the zarr entry's
version is the cheap change signature of that input. ``docs`` holds the metadata
documents as parsed JSON, untouched, so typed records can later be parsed from them
without changing the format. A run whose documents could not all be read (a store
error, as opposed to a malformed file) gets ``signature`` null, so the next refresh
reads it again instead of trusting a partial record.

Listing costs per run: one folder listing of the run and one recursive listing per
layout folder; per dataset one folder listing. Remote runs are scanned 16 at a time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from cryoet_ng.catalogue import (
    Annotation,
    AnnotationFile,
    Catalogue,
    CatalogueWarning,
    Dataset,
    Run,
    Tomogram,
    VoxelSpacingDir,
)
from cryoet_ng.store import Entry, StoreError, TreeStore, open_store, tree_path

log = logging.getLogger(__name__)

LAYOUT_FOLDERS = ("Reconstructions", "Tomograms")  # current and old layout
OUTPUT_FOLDER = "NeuroglancerPrecompute"
REMOTE_THREADS = 16
_VS_DIR = re.compile(r"^VoxelSpacing(\d+(?:\.\d+)?)$")
_OLD_ANNOTATION = re.compile(r"^(\d+)-(.+[0-9])\.json$")
_DOC_PATTERNS = (
    re.compile(r"^run_metadata\.json$"),
    re.compile(r"^Reconstructions/VoxelSpacing[^/]+/Tomograms/[^/]+/tomogram_metadata\.json$"),
    re.compile(r"^Reconstructions/VoxelSpacing[^/]+/Annotations/[^/]+/[^/]*[0-9]\.json$"),
    re.compile(r"^Tomograms/VoxelSpacing[^/]+/CanonicalTomogram/tomogram_metadata\.json$"),
    re.compile(r"^Tomograms/VoxelSpacing[^/]+/Annotations/\d+-[^/]*[0-9]\.json$"),
)

Record = dict[str, Any]


def digest(items: Iterable[Any]) -> str:
    return hashlib.blake2b(json.dumps(list(items)).encode(), digest_size=16).hexdigest()


# -- listing -----------------------------------------------------------------------------


def fold(entries: Iterable[Entry], base: str) -> list[list[Any]]:
    """Run listing -> sorted ``[relative key, size, version]``, zarr folders folded."""
    files: dict[str, list[Any]] = {}
    zarrs: dict[str, list[tuple[str, int, str]]] = {}
    for entry in entries:
        rel = entry.key[len(base) + 1 :] if base else entry.key
        parts = rel.split("/")
        if OUTPUT_FOLDER in parts[:-1]:
            continue
        cut = next((i for i, p in enumerate(parts[:-1]) if p.endswith(".zarr")), None)
        if cut is None:
            files[rel] = [rel, entry.size, entry.version]
        else:
            folder = "/".join(parts[: cut + 1]) + "/"
            zarrs.setdefault(folder, []).append(
                ("/".join(parts[cut + 1 :]), entry.size, entry.version)
            )
    for folder, objects in zarrs.items():
        objects.sort()
        files[folder] = [folder, sum(o[1] for o in objects), digest(objects)]
    return [files[k] for k in sorted(files)]


def is_document(rel: str) -> bool:
    return any(p.match(rel) for p in _DOC_PATTERNS)


def parse_document(data: bytes) -> tuple[dict[str, Any] | None, str | None]:
    try:
        doc = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return None, f"not valid JSON ({exc}); skipped"
    if not isinstance(doc, dict):
        return None, "metadata is not a JSON object; skipped"
    return doc, None


class Scanner:
    """Lists and reads one tree through its store, reusing a previous record where the
    listing shows nothing changed (:mod:`cryoet_ng.index`)."""

    def __init__(self, store: TreeStore) -> None:
        self.store = store

    def run_record(self, run_key: str, previous: Record | None) -> Record:
        listing = self.store.list_folder(run_key)
        entries: list[Entry] = [e for e in listing.files if e.key.endswith("/run_metadata.json")]
        for folder in LAYOUT_FOLDERS:
            if folder in listing.folders:
                entries += self.store.list_tree(f"{run_key}/{folder}")
        files = fold(entries, run_key)
        signature = digest(files)
        if previous is not None and previous.get("signature") == signature:
            return previous
        old_files = {f[0]: f for f in (previous or {}).get("files", [])}
        old_docs = (previous or {}).get("docs", {})
        old_errors = (previous or {}).get("errors", {})
        docs: dict[str, Any] = {}
        errors: dict[str, str] = {}
        complete = True
        for rel, _size, version in files:
            if not is_document(rel):
                continue
            if old_files.get(rel) == [rel, _size, version] and (
                rel in old_docs or rel in old_errors
            ):
                if rel in old_docs:
                    docs[rel] = old_docs[rel]
                else:
                    errors[rel] = old_errors[rel]
                continue
            try:
                data = self.store.read(f"{run_key}/{rel}", version)
            except StoreError as exc:
                errors[rel] = exc.reason
                complete = False
                continue
            doc, error = parse_document(data)
            if doc is not None:
                docs[rel] = doc
            else:
                errors[rel] = error or "unreadable"
        return {
            "signature": signature if complete else None,
            "files": files,
            "docs": docs,
            "errors": errors,
            "folders": [f for f in LAYOUT_FOLDERS if f in listing.folders],
        }

    def dataset_record(
        self, dataset_id: str, runs: list[str] | None, previous: Record | None
    ) -> Record:
        listing = self.store.list_folder(dataset_id)
        meta: dict[str, Any] = {"file": None, "doc": None, "error": None}
        meta_entry = next(
            (e for e in listing.files if e.key.endswith("/dataset_metadata.json")), None
        )
        if meta_entry is not None:
            meta["file"] = [meta_entry.key, meta_entry.size, meta_entry.version]
            old = (previous or {}).get("metadata") or {}
            if old.get("file") == meta["file"] and old.get("error") is None:
                meta = old
            else:
                try:
                    doc, error = parse_document(self.store.read(meta_entry.key, meta_entry.version))
                except StoreError as exc:
                    doc, error = None, exc.reason
                meta.update(doc=doc, error=error)
        old_runs: dict[str, Record] = dict((previous or {}).get("runs", {}))
        names = [n for n in listing.folders if not runs or n in runs]
        keys = [f"{dataset_id}/{n}" for n in names]

        def scan(key: str, name: str) -> Record:
            return self.run_record(key, old_runs.get(name))

        records = self._map(scan, keys, names)
        new_runs = dict(old_runs) if runs else {}
        for name, record in zip(names, records, strict=True):
            if _is_run(record):
                new_runs[name] = record
            else:
                new_runs.pop(name, None)
        ordered = {n: new_runs[n] for n in sorted(new_runs)}
        record = {"dataset": dataset_id, "metadata": meta, "runs": ordered}
        record["signature"] = digest(
            [meta["file"], *[(n, r.get("signature")) for n, r in ordered.items()]]
        )
        return record

    def _map(
        self, fn: Callable[[str, str], Record], keys: list[str], names: list[str]
    ) -> list[Record]:
        if self.store.local_path("") is not None or len(keys) < 2:
            return [fn(k, n) for k, n in zip(keys, names, strict=True)]
        with ThreadPoolExecutor(REMOTE_THREADS) as pool:
            return list(pool.map(fn, keys, names))

    def dataset_ids(self) -> tuple[list[str], list[CatalogueWarning]]:
        """Numeric folders at the root, with a warning when the root is not a portal tree."""
        root = tree_path(self.store, "")
        try:
            listing = self.store.list_folder("")
        except StoreError as exc:
            return [], [CatalogueWarning(root, f"cannot list the data root: {exc.reason}")]
        if listing.empty:
            local = self.store.local_path("")
            missing = local is not None and not local.is_dir()
            what = "data root is not a directory" if missing else "data root is empty or missing"
            return [], [CatalogueWarning(root, what)]
        ids = [f for f in listing.folders if f.isdigit()]
        if not ids:
            return [], [
                CatalogueWarning(
                    root, "no dataset folders (numeric names) here: not a portal data tree"
                )
            ]
        return sorted(ids), []


def _is_run(record: Record) -> bool:
    """A run folder has run_metadata.json or a layout folder (Images/ and such are not)."""
    return bool(record["folders"]) or any(f[0] == "run_metadata.json" for f in record["files"])


# -- records -> catalogue items ------------------------------------------------------------


class Builder:
    """Turns records into catalogue items; every problem becomes a warning."""

    def __init__(self, store: TreeStore, warnings: list[CatalogueWarning]) -> None:
        self.store = store
        self.warnings = warnings

    def warn(self, key: str, message: str, skipped: bool = True) -> None:
        warning = CatalogueWarning(tree_path(self.store, key), message, skipped)
        self.warnings.append(warning)
        log.warning("%s", warning)

    def dataset(self, record: Record) -> Dataset:
        dataset_id = record["dataset"]
        meta = record["metadata"]
        if meta.get("error"):
            self.warn(meta["file"][0], meta["error"])
        dataset = Dataset(dataset_id, tree_path(self.store, dataset_id), meta.get("doc") or {})
        for name, run_record in record["runs"].items():
            dataset.runs[name] = _RunBuilder(self, f"{dataset_id}/{name}", run_record).build(
                dataset_id, name
            )
        return dataset


class _RunBuilder:
    def __init__(self, builder: Builder, key: str, record: Record) -> None:
        self.b = builder
        self.key = key
        self.record = record
        self.files: dict[str, list[Any]] = {f[0]: f for f in record["files"]}
        self.folders: set[str] = set()
        for rel in self.files:
            parts = rel.rstrip("/").split("/")
            self.folders.update("/".join(parts[:i]) for i in range(1, len(parts)))
            if rel.endswith("/"):
                self.folders.add(rel.rstrip("/"))

    def path(self, rel: str) -> Any:
        return tree_path(self.b.store, f"{self.key}/{rel}" if rel else self.key)

    def doc(self, rel: str) -> dict[str, Any] | None:
        if rel in self.record["errors"]:
            self.b.warn(f"{self.key}/{rel}", self.record["errors"][rel])
            return None
        return self.record["docs"].get(rel)

    def children(self, folder: str) -> tuple[list[str], list[str]]:
        """(sub-folder names, file names) directly in ``folder`` (relative to the run)."""
        depth = folder.count("/") + 1
        subs = sorted(
            f.rsplit("/", 1)[-1]
            for f in self.folders
            if f.startswith(folder + "/") and f.count("/") == depth
        )
        names = sorted(
            rel.rsplit("/", 1)[-1]
            for rel in self.files
            if not rel.endswith("/") and rel.startswith(folder + "/") and rel.count("/") == depth
        )
        return subs, names

    def build(self, dataset_id: str, name: str) -> Run:
        meta = self.doc("run_metadata.json") if "run_metadata.json" in self.files else {}
        run = Run(dataset_id, name, self.path(""), meta or {})
        for parent, legacy in (("Reconstructions", False), ("Tomograms", True)):
            for vs_name in self.children(parent)[0]:
                match = _VS_DIR.match(vs_name)
                if not match:
                    continue
                vs = VoxelSpacingDir(float(match.group(1)), self.path(f"{parent}/{vs_name}"))
                vs.legacy = legacy
                prefix = f"{parent}/{vs_name}"
                if legacy:
                    self.legacy_spacing(vs, prefix)
                else:
                    self.spacing(vs, prefix)
                run.spacings[f"legacy/{vs_name}" if legacy else vs_name] = vs
        if not run.tomograms:
            self.b.warn(self.key, "run has no tomogram", skipped=False)
        return run

    def spacing(self, vs: VoxelSpacingDir, prefix: str) -> None:
        for tomo_id in self.children(f"{prefix}/Tomograms")[0]:
            rel = f"{prefix}/Tomograms/{tomo_id}/tomogram_metadata.json"
            if rel not in self.files:
                self.b.warn(
                    f"{self.key}/{prefix}/Tomograms/{tomo_id}",
                    "tomogram folder without tomogram_metadata.json; skipped",
                )
                continue
            meta = self.doc(rel)
            if meta is not None:
                vs.tomograms[tomo_id] = self.tomogram(tomo_id, vs, rel, meta)
        for ann_id in self.children(f"{prefix}/Annotations")[0]:
            folder = f"{prefix}/Annotations/{ann_id}"
            metas = [n for n in self.children(folder)[1] if re.search(r"[0-9]\.json$", n)]
            if not metas:
                self.b.warn(
                    f"{self.key}/{folder}", "annotation folder without metadata file; skipped"
                )
                continue
            for extra in metas[1:]:
                self.b.warn(
                    f"{self.key}/{folder}/{extra}",
                    f"second metadata file in one annotation folder; {metas[0]} is used",
                )
            meta = self.doc(f"{folder}/{metas[0]}")
            if meta is not None:
                ann = self.annotation(ann_id, vs, f"{folder}/{metas[0]}", meta)
                if ann is not None:
                    vs.annotations[ann.id] = ann

    def legacy_spacing(self, vs: VoxelSpacingDir, prefix: str) -> None:
        rel = f"{prefix}/CanonicalTomogram/tomogram_metadata.json"
        if rel in self.files:
            meta = self.doc(rel)
            if meta is not None:
                vs.tomograms["canonical"] = self.tomogram("canonical", vs, rel, meta)
        for name in self.children(f"{prefix}/Annotations")[1]:
            match = _OLD_ANNOTATION.match(name)
            if not match:
                continue
            meta = self.doc(f"{prefix}/Annotations/{name}")
            if meta is not None:
                ann = self.annotation(match.group(1), vs, f"{prefix}/Annotations/{name}", meta)
                if ann is not None:
                    vs.annotations[ann.id] = ann

    def resolve(self, relative: str) -> tuple[str | None, list[Any] | None]:
        """A bucket-relative path -> (root key or None if it leaves the root, its entry)."""
        key = self.b.store.contains(relative)
        if key is None:
            return None, None
        if key.startswith(self.key + "/"):
            rel = key[len(self.key) + 1 :]
            return key, self.files.get(rel) or self.files.get(rel + "/")
        return key, None

    def exists(self, key: str, entry: list[Any] | None) -> bool:
        if entry is not None:
            return True
        if key.startswith(self.key + "/"):
            rel = key[len(self.key) + 1 :]
            return rel in self.folders
        return True  # outside the run's listing: assumed; the converter names it if missing

    def tomogram(
        self, tomo_id: str, vs: VoxelSpacingDir, rel: str, meta: dict[str, Any]
    ) -> Tomogram:
        folder = rel.rsplit("/", 1)[0]
        meta_key = f"{self.key}/{rel}"
        zarr_key: str | None = None
        zarr_entry: list[Any] | None = None
        declared = meta.get("omezarr_dir")
        if isinstance(declared, str):
            zarr_key, zarr_entry = self.resolve(declared)
            if zarr_key is not None and not self.exists(zarr_key, zarr_entry):
                zarr_key = None
        if zarr_key is None:
            found = sorted(
                f for f in self.files if f.startswith(folder + "/") and f.endswith(".zarr/")
            )
            found = [f for f in found if f.rstrip("/").count("/") == folder.count("/") + 1]
            if found:
                zarr_entry = self.files[found[0]]
                zarr_key = f"{self.key}/{found[0].rstrip('/')}"
        mrc_key: str | None = None
        declared_mrc = meta.get("mrc_file")
        if isinstance(declared_mrc, str):
            key, mrc_entry = self.resolve(declared_mrc)
            # Inside the run the listing says whether the file exists; outside, assumed.
            if key is not None and (mrc_entry is not None or not key.startswith(self.key + "/")):
                mrc_key = key
        if zarr_key is None:
            self.b.warn(f"{self.key}/{folder}", "tomogram has no OME-Zarr", skipped=False)
        raw_spacing = meta.get("voxel_spacing", vs.spacing)
        try:
            spacing = float(raw_spacing)
        except (TypeError, ValueError):
            self.b.warn(
                meta_key, f"voxel_spacing {raw_spacing!r} is not a number; using {vs.spacing}"
            )
            spacing = vs.spacing
        store = self.b.store
        return Tomogram(
            tomo_id,
            spacing,
            tree_path(store, meta_key),
            meta,
            tree_path(store, zarr_key) if zarr_key else None,
            zarr_key,
            tree_path(store, mrc_key) if mrc_key else None,
            omezarr_signature=str(zarr_entry[2]) if zarr_entry else None,
        )

    def annotation(
        self, ann_id: str, vs: VoxelSpacingDir, rel: str, meta: dict[str, Any]
    ) -> Annotation | None:
        meta_key = f"{self.key}/{rel}"
        obj = meta.get("annotation_object")
        if not isinstance(obj, dict) or not obj.get("name"):
            self.b.warn(meta_key, "annotation metadata lacks annotation_object.name; skipped")
            return None
        files = []
        entries = meta.get("files")
        if not isinstance(entries, list):
            if entries is not None:
                self.b.warn(meta_key, f"files is not a list ({type(entries).__name__}); skipped")
            entries = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or not {"shape", "format", "path"} <= set(entry):
                self.b.warn(meta_key, f"files[{i}] lacks shape/format/path; entry skipped")
                continue
            declared = str(entry["path"])
            key, found = self.resolve(declared)
            if key is None:
                self.b.warn(meta_key, f"files[{i}] path {declared!r} leaves the data root; skipped")
                continue
            flag = entry.get("is_visualization_default")
            files.append(
                AnnotationFile(
                    shape=str(entry["shape"]),
                    format=str(entry["format"]),
                    path=tree_path(self.b.store, key),
                    relative_path=declared,
                    is_visualization_default=None if flag is None else bool(flag),
                    exists=self.exists(key, found),
                    signature=f"{found[1]}:{found[2]}" if found else None,
                )
            )
        return Annotation(ann_id, vs.spacing, tree_path(self.b.store, meta_key), meta, tuple(files))


# -- entry points ----------------------------------------------------------------------------


def root_of(store: TreeStore) -> Any:
    return tree_path(store, "")


def scan_records(
    store: TreeStore, datasets: list[str] | None, runs: list[str] | None
) -> tuple[list[Record], list[CatalogueWarning]]:
    scanner = Scanner(store)
    ids, warnings = scanner.dataset_ids()
    records = []
    for dataset_id in ids:
        if datasets and dataset_id not in datasets:
            continue
        try:
            records.append(scanner.dataset_record(dataset_id, runs, None))
        except StoreError as exc:
            warnings.append(
                CatalogueWarning(tree_path(store, dataset_id), f"cannot list: {exc.reason}")
            )
    return records, warnings


def scan(root: str | Path, datasets: list[str] | None, runs: list[str] | None) -> Catalogue:
    """``Catalogue.scan``: a live scan, or the published index of a tree that cannot list."""
    try:
        store = open_store(root)
    except StoreError as exc:
        return Catalogue(Path(str(root)), {}, [CatalogueWarning(Path(str(root)), exc.reason)])
    if not store.can_list:
        from cryoet_ng import index

        return index.open_catalogue(store, store, datasets, runs)
    records, warnings = scan_records(store, datasets, runs)
    return build(store, records, warnings)


def build(store: TreeStore, records: list[Record], warnings: list[CatalogueWarning]) -> Catalogue:
    catalogue = Catalogue(root_of(store), {}, list(warnings))
    builder = Builder(store, catalogue.warnings)
    built = {r["dataset"]: builder.dataset(r) for r in records}
    catalogue.datasets = dict(sorted(built.items()))
    return catalogue
