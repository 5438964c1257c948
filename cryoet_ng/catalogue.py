"""Read a portal-layout data tree: datasets, runs, voxel spacings, tomograms, annotations.

This is the one place that knows the portal's input layout (as the portal's ingestion,
chanzuckerberg/cryoet-data-portal-backend ``ingestion_tools``, writes it; outputs:
:mod:`cryoet_ng.layout`). Both layouts are read: the current
``<run>/Reconstructions/VoxelSpacing<vs>/{Tomograms/<id>,Annotations/<id>}`` and,
read-only, the older ``<run>/Tomograms/VoxelSpacing<vs>/{CanonicalTomogram,Annotations}``.

The tree is read through a :mod:`cryoet_ng.store` (local folder, ``s3://``, ``gs://``,
or ``https://`` with its published index) by :mod:`cryoet_ng.treescan`, which turns
listings and metadata documents into plain records; the same records are what
:mod:`cryoet_ng.index` stores, and this module's :class:`Builder` turns them into items,
so a catalogue built from a live scan (:meth:`Catalogue.scan`) and one loaded from the
index (:meth:`Catalogue.from_index`) are the same. (The builder lives here, not in
treescan, so that imports point one way: catalogue -> index -> treescan -> store.)
Items of a local tree carry :class:`pathlib.Path` objects, those of a remote tree
:class:`cryoet_ng.store.Location` objects (see :data:`TreePath`).

Alignment matching (:meth:`Run.aligned`), as the portal's
``visualization_config.get_annotation_layer_info`` does: an annotation belongs to a
tomogram's state only when its ``alignment_metadata_path`` equals the tomogram's. Where
a link is missing we differ from the portal, which skips unlinked tomograms and drops
unlinked annotations: an unlinked annotation or tomogram is matched only when the run
has at most one alignment (so the missing link cannot name another one). Legacy-layout
trees have no links at all and keep every annotation of the run; a run with several
alignments leaves its unlinked annotations out of every state.

A partial or damaged tree never raises: every problem becomes a
:class:`CatalogueWarning` naming the path, and the item is skipped.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from cryoet_ng import metadata
from cryoet_ng.store import Location, StoreError, TreePath, TreeStore, open_store, tree_path
from cryoet_ng.treescan import CatalogueWarning as CatalogueWarning
from cryoet_ng.treescan import Record, Scanner, is_run, scan_records

if TYPE_CHECKING:
    from cryoet_ng.index import TreeIndex

log = logging.getLogger(__name__)

POINT_SHAPES = ("Point", "OrientedPoint", "InstanceSegmentation")
VOLUME_SHAPES = ("SegmentationMask", "InstanceSegmentationMask")
# Shapes the precompute turns into Neuroglancer data, with the file format it reads.
PRECOMPUTED_FORMATS = {
    "Point": "ndjson",
    "OrientedPoint": "ndjson",
    "InstanceSegmentation": "ndjson",
    "SegmentationMask": "zarr",
    "InstanceSegmentationMask": "zarr",
    "TriangularMesh": "glb",
}
_VS_DIR = re.compile(r"^VoxelSpacing(\d+(?:\.\d+)?)$")
_OLD_ANNOTATION = re.compile(r"^(\d+)-(.+[0-9])\.json$")


def voxel_spacing_dirname(spacing: float) -> str:
    """``13.48`` -> ``VoxelSpacing13.480`` (the portal always writes 3 decimals)."""
    return f"VoxelSpacing{spacing:.3f}"


def slugify(text: str) -> str:
    """Lower-case, every character outside [0-9a-z] replaced by ``_`` (portal rule)."""
    return re.sub(r"[^0-9a-z]", "_", text.lower())


def version_slug(version: Any) -> str:
    return re.sub(r"[^0-9a-z.]", "_", str(version).lower())


def annotation_stem(metadata: dict[str, Any]) -> str:
    """``<slug>-<version>``: the metadata file stem the portal writes."""
    obj = metadata.get("annotation_object") or {}
    description = obj.get("description")
    base = description if description and len(description) <= 50 else obj.get("name", "")
    return f"{slugify(base)}-{version_slug(metadata.get('version', '1.0'))}"


@dataclass(frozen=True)
class AnnotationFile:
    shape: str
    format: str
    path: TreePath  # the data file or directory (local path, or Location on a store)
    relative_path: str  # bucket-relative path as written in the metadata
    is_visualization_default: bool | None  # None when the metadata does not say
    exists: bool = True  # found by the listing (outside the run: assumed)
    # Cheap change signature of the input (sizes and versions of its objects), from the
    # listing; None when unknown.
    signature: str | None = None
    # OrientedPoint: the particle model glb placed at every pick, as declared
    # (``mesh_source_path`` of the entry, else of the metadata: bucket-relative) and as
    # found (None when it leaves the data root: the oriented-mesh job names that error).
    mesh_source_path: str | None = None
    mesh_source: TreePath | None = None
    mesh_source_signature: str | None = None  # as ``signature``, of the model


@dataclass(frozen=True)
class Annotation:
    id: str  # annotation id, unique per VoxelSpacing directory
    voxel_spacing: float  # Å per voxel of the coordinates / volume
    metadata_path: TreePath
    metadata: dict[str, Any] = field(repr=False, compare=False)
    files: tuple[AnnotationFile, ...] = ()

    def converted_file(self, shape: str) -> AnnotationFile | None:
        """The one file of ``shape`` the precompute converts (and a state shows), or None.

        The first file in the format of :data:`PRECOMPUTED_FORMATS`; for a mask, whose
        portal twins are OME-Zarr and MRC, the zarr, or the MRC when the zarr is not
        listed or not there (older depositions). The job types and ngstate both ask here,
        so a mask published as MRC only is converted *and* shown.
        """
        entries = [f for f in self.files if f.shape == shape]
        wanted = PRECOMPUTED_FORMATS.get(shape)
        first = next((f for f in entries if f.format == wanted), None)
        if shape not in VOLUME_SHAPES:
            return first
        mrc = next((f for f in entries if f.format == "mrc"), None)
        return first if first is not None and (first.exists or mrc is None) else mrc

    def is_converted(self, file: AnnotationFile) -> bool:
        return self.converted_file(file.shape) is file

    @property
    def stem(self) -> str:
        """``<slug>-<version>``, taken from the metadata file name."""
        name = self.metadata_path.stem
        match = re.match(r"^\d+-(.+)$", name)
        return match.group(1) if match and not self.metadata_path.parent.name.isdigit() else name

    @property
    def object_name(self) -> str:
        return str((self.metadata.get("annotation_object") or {}).get("name", ""))

    @property
    def object_id(self) -> str | None:
        return (self.metadata.get("annotation_object") or {}).get("id")

    @property
    def method_type(self) -> str:
        return str(self.metadata.get("method_type", "")).lower()

    @property
    def ground_truth(self) -> bool:
        return bool(self.metadata.get("ground_truth_status", False))

    @property
    def curator_recommended(self) -> bool:
        return bool(self.metadata.get("is_curator_recommended", False))

    @property
    def version(self) -> float:
        try:
            return float(self.metadata.get("version", 1.0))
        except (TypeError, ValueError):
            return 0.0

    @property
    def alignment_metadata_path(self) -> str | None:
        return self.metadata.get("alignment_metadata_path")


@dataclass(frozen=True)
class Tomogram:
    id: str
    voxel_spacing: float
    metadata_path: TreePath
    metadata: dict[str, Any] = field(repr=False, compare=False)
    omezarr_path: TreePath | None = None
    omezarr_relative: str | None = None
    mrc_path: TreePath | None = None
    omezarr_signature: str | None = None  # as AnnotationFile.signature

    @property
    def size_xyz(self) -> tuple[int, int, int] | None:
        size = self.metadata.get("size")
        if isinstance(size, dict) and all(k in size for k in "xyz"):
            return int(size["x"]), int(size["y"]), int(size["z"])
        return None

    @property
    def is_visualization_default(self) -> bool:
        return bool(self.metadata.get("is_visualization_default", True))

    @property
    def alignment_metadata_path(self) -> str | None:
        return self.metadata.get("alignment_metadata_path")


@dataclass
class VoxelSpacingDir:
    spacing: float
    path: TreePath  # the VoxelSpacing<vs> folder
    tomograms: dict[str, Tomogram] = field(default_factory=dict)
    annotations: dict[str, Annotation] = field(default_factory=dict)
    legacy: bool = False


@dataclass
class Run:
    dataset_id: str
    name: str
    path: TreePath
    metadata: dict[str, Any] = field(default_factory=dict, repr=False)
    spacings: dict[str, VoxelSpacingDir] = field(default_factory=dict)

    @property
    def tomograms(self) -> list[Tomogram]:
        return [t for vs in self.spacings.values() for t in vs.tomograms.values()]

    @property
    def annotations(self) -> list[Annotation]:
        return [a for vs in self.spacings.values() for a in vs.annotations.values()]

    def tomogram(self, tomogram_id: str) -> Tomogram | None:
        return next((t for t in self.tomograms if t.id == tomogram_id), None)

    def default_tomogram(self) -> Tomogram | None:
        """The tomogram flagged for visualisation, else the one with the lowest id."""
        tomograms = sorted(
            self.tomograms, key=lambda t: (not t.is_visualization_default, _num(t.id))
        )
        return tomograms[0] if tomograms else None

    @property
    def alignments(self) -> set[str]:
        """Distinct alignment links of the run's tomograms and annotations."""
        links = {t.alignment_metadata_path for t in self.tomograms}
        links |= {a.alignment_metadata_path for a in self.annotations}
        return {link for link in links if link}

    def aligned(self, tomogram: Tomogram, annotation: Annotation) -> bool:
        """Whether ``annotation`` belongs to ``tomogram``'s alignment (see the module notes).

        Both linked: the links must be equal, as the portal matches them
        (``visualization_config.get_annotation_layer_info``). One side unlinked: only when
        the run has at most one alignment, so the missing link cannot be another one
        (legacy-layout trees have no links at all and keep every annotation).
        """
        mine, theirs = tomogram.alignment_metadata_path, annotation.alignment_metadata_path
        if mine and theirs:
            return mine == theirs
        return len(self.alignments) <= 1

    def annotations_for(self, tomogram: Tomogram) -> list[Annotation]:
        """Annotations of the tomogram's alignment, ordered by spacing and id."""
        annotations = [a for a in self.annotations if self.aligned(tomogram, a)]
        return sorted(annotations, key=lambda a: (a.voxel_spacing, _num(a.id)))

    def scanned_paths(self) -> list[TreePath]:
        """The folders and metadata files a scan of this run reads: while none of them
        changes (a folder changes when an entry is added, removed or renamed in it), a new
        scan finds the same run. Paths that do not exist are included: their creation counts."""
        paths: list[TreePath] = [
            self.path,
            self.path / "run_metadata.json",
            self.path / "Reconstructions",
            self.path / "Tomograms",
        ]
        for vs in self.spacings.values():
            paths += [vs.path, vs.path / "Tomograms", vs.path / "Annotations"]
            paths += [t.metadata_path for t in vs.tomograms.values()]
            paths += [a.metadata_path for a in vs.annotations.values()]
        return paths

    def spacing_dir(self, spacing: float) -> VoxelSpacingDir | None:
        return next((v for v in self.spacings.values() if abs(v.spacing - spacing) < 1e-6), None)


@dataclass
class Dataset:
    id: str
    path: TreePath
    metadata: dict[str, Any] = field(default_factory=dict, repr=False)
    runs: dict[str, Run] = field(default_factory=dict)


class LazyDatasets(Mapping[str, Dataset]):
    """Datasets by id, each built when first asked for (from an index)."""

    def __init__(self, ids: list[str], load: Callable[[str], Dataset | None]) -> None:
        self._ids = list(ids)
        self._load = load
        self._loaded: dict[str, Dataset | None] = {}

    def __getitem__(self, dataset_id: str) -> Dataset:
        if dataset_id not in self._loaded:
            if dataset_id not in self._ids:
                raise KeyError(dataset_id)
            self._loaded[dataset_id] = self._load(dataset_id)
        dataset = self._loaded[dataset_id]
        if dataset is None:
            raise KeyError(dataset_id)
        return dataset

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, dataset_id: object) -> bool:
        return dataset_id in self._ids

    @property
    def loaded(self) -> list[str]:
        return [k for k, v in self._loaded.items() if v is not None]


@dataclass
class Catalogue:
    root: TreePath
    datasets: Mapping[str, Dataset] = field(default_factory=dict)
    warnings: list[CatalogueWarning] = field(default_factory=list)
    # The index it was read from (Catalogue.from_index), else None.
    index: TreeIndex | None = field(default=None, repr=False, compare=False)

    @classmethod
    def scan(
        cls,
        root: str | Path,
        datasets: list[str] | None = None,
        runs: list[str] | None = None,
        index_root: str | Path | None = None,
    ) -> Catalogue:
        """Read the tree at ``root`` (a folder or URL), optionally only the named datasets
        and runs. An ``http(s)://`` tree cannot be listed: its published index is read from
        ``index_root`` when one is there, else from beside the tree."""
        try:
            store = open_store(root)
        except StoreError as exc:
            return cls(Path(str(root)), {}, [CatalogueWarning(Path(str(root)), exc.reason)])
        if not store.can_list:
            return cls.from_index(store, _index_store(store, index_root), datasets, runs)
        records, warnings = scan_records(store, datasets, runs)
        return cls.from_records(store, records, warnings)

    @classmethod
    def from_records(
        cls, store: TreeStore, records: list[Record], warnings: list[CatalogueWarning]
    ) -> Catalogue:
        """The catalogue of dataset records (:mod:`cryoet_ng.treescan`) of ``store``'s tree."""
        catalogue = cls(tree_path(store, ""), {}, list(warnings))
        builder = Builder(store, catalogue.warnings)
        built = {r["dataset"]: builder.dataset(r) for r in records}
        catalogue.datasets = dict(sorted(built.items()))
        return catalogue

    @classmethod
    def from_index(
        cls,
        data_store: TreeStore,
        index_store: TreeStore,
        datasets: list[str] | None = None,
        runs: list[str] | None = None,
    ) -> Catalogue:
        """A catalogue read lazily from the index (:mod:`cryoet_ng.index`) in
        ``index_store``: each dataset is loaded when first asked for.

        No index: an empty catalogue with a warning saying how to build one.
        """
        from cryoet_ng.index import TOP, IndexFormatError, TreeIndex, only_runs

        root = tree_path(data_store, "")
        try:
            index = TreeIndex.load(index_store)
        except (StoreError, IndexFormatError) as exc:
            return cls(root, {}, [CatalogueWarning(root, f"cannot read the index: {exc}")])
        if index is None:
            message = (
                f"no index at {index_store.url_of(TOP)}; build it with "
                f"`cryoet-ng index {data_store.url}` (and publish it beside an https:// tree)"
            )
            return cls(root, {}, [CatalogueWarning(root, message)])
        ids = [
            i
            for i in index.dataset_ids
            if (not datasets or i in datasets) and (not runs or set(runs) & set(index.runs_of(i)))
        ]
        catalogue = cls(root, {}, [])
        builder = Builder(data_store, catalogue.warnings)

        def load(dataset_id: str) -> Dataset | None:
            try:
                record = index.dataset_record(dataset_id)
            except (StoreError, IndexFormatError) as exc:
                where = tree_path(data_store, dataset_id)
                builder.warnings.append(CatalogueWarning(where, str(exc)))
                return None
            return builder.dataset(only_runs(record, runs)) if record is not None else None

        catalogue.datasets = LazyDatasets(ids, load)
        catalogue.index = index
        return catalogue

    @staticmethod
    def scan_run(
        store: TreeStore, dataset_id: str, run_name: str
    ) -> tuple[Run | None, list[CatalogueWarning]]:
        """One run read live (its listings and metadata files, nothing else of the tree):
        None when there is no such run folder."""
        key = f"{dataset_id}/{run_name}"
        warnings: list[CatalogueWarning] = []
        try:
            run_record = Scanner(store).run_record(key, None)
        except StoreError as exc:
            warnings.append(CatalogueWarning(tree_path(store, key), f"cannot list: {exc.reason}"))
            return None, warnings
        if not is_run(run_record):
            return None, warnings
        record = {"dataset": dataset_id, "metadata": {}, "runs": {run_name: run_record}}
        return Catalogue.build_run(store, record, run_name)

    @staticmethod
    def build_run(
        store: TreeStore, record: Record, run_name: str
    ) -> tuple[Run, list[CatalogueWarning]]:
        """One run of a dataset record (:mod:`cryoet_ng.treescan`), and its warnings."""
        warnings: list[CatalogueWarning] = []
        dataset_id = record["dataset"]
        builder = _RunBuilder(
            Builder(store, warnings), f"{dataset_id}/{run_name}", record["runs"][run_name]
        )
        return builder.build(dataset_id, run_name), warnings

    def run(self, dataset_id: str, run_name: str) -> Run | None:
        dataset = self.datasets.get(dataset_id)
        return dataset.runs.get(run_name) if dataset else None

    def runs(self) -> Iterator[Run]:
        for dataset in self.datasets.values():
            yield from dataset.runs.values()

    def problems_under(self, path: TreePath) -> list[str]:
        """The warnings about inputs skipped under ``path`` (a run's folder, say), each as
        ``<path relative to the root>: <message>``: why an item is missing."""
        prefix = str(path).rstrip("/") + "/"
        return [
            f"{self.relative(w.path)}: {w.message}"
            for w in self.warnings
            if w.skipped and (str(w.path) == str(path) or str(w.path).startswith(prefix))
        ]

    def relative(self, path: TreePath) -> str:
        """Path relative to the data root, with forward slashes (bucket-relative form)."""
        if isinstance(path, Location):
            return path.relative_to(self.root)
        assert isinstance(self.root, Path)
        return path.resolve().relative_to(self.root).as_posix()


def _index_store(data_store: TreeStore, index_root: str | Path | None) -> TreeStore:
    """Where the index of ``data_store`` is: ``index_root`` when it holds one, else beside
    the tree."""
    from cryoet_ng.index import TOP

    if index_root is not None:
        candidate = open_store(index_root)
        try:
            if candidate.head(TOP) is not None:
                return candidate
        except StoreError:
            pass
    return data_store


def _num(text: str) -> tuple[int, str]:
    return (int(text), "") if text.isdigit() else (1 << 62, text)


# -- records -> catalogue items -------------------------------------------------------------


class Builder:
    """Turns records into catalogue items; every problem becomes a warning."""

    def __init__(self, store: TreeStore, warnings: list[CatalogueWarning]) -> None:
        self.store = store
        self.warnings = warnings

    def warn(self, key: str, message: str, skipped: bool = True) -> None:
        warning = CatalogueWarning(tree_path(self.store, key), message, skipped)
        self.warnings.append(warning)
        log.warning("%s", warning)

    def problem(self, key: str, problem: metadata.Problem | None, outcome: str) -> bool:
        """Warn about a document that does not fit its record (naming the file and the
        field, and ``outcome``: what becomes of it); True when there was a problem."""
        if problem is not None:
            self.warn(key, f"{problem}; {outcome}" if outcome else str(problem))
        return problem is not None

    def dataset(self, record: Record) -> Dataset:
        dataset_id = record["dataset"]
        meta = record["metadata"]
        if meta.get("error"):
            self.warn(meta["file"][0], meta["error"])
        doc = meta.get("doc") or {}
        if doc and self.problem(meta["file"][0], metadata.parse_dataset(doc)[1], "ignored"):
            doc = {}
        dataset = Dataset(dataset_id, tree_path(self.store, dataset_id), doc)
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
        if meta and self.b.problem(
            f"{self.key}/run_metadata.json", metadata.parse_run(meta)[1], "ignored"
        ):
            meta = {}
        run = Run(dataset_id, name, self.path(""), meta or {})
        for parent, legacy in (("Reconstructions", False), ("Tomograms", True)):
            for vs_name in self.children(parent)[0]:
                match = _VS_DIR.match(vs_name)
                if not match:
                    self.b.warn(
                        f"{self.key}/{parent}/{vs_name}",
                        "folder name is not VoxelSpacing<number>; its tomograms and "
                        "annotations are skipped",
                    )
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
            tomogram = self.tomogram(tomo_id, vs, rel, meta) if meta is not None else None
            if tomogram is not None:
                vs.tomograms[tomo_id] = tomogram
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
            tomogram = self.tomogram("canonical", vs, rel, meta) if meta is not None else None
            if tomogram is not None:
                vs.tomograms["canonical"] = tomogram
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
    ) -> Tomogram | None:
        folder = rel.rsplit("/", 1)[0]
        meta_key = f"{self.key}/{rel}"
        record, problem = metadata.parse_tomogram(meta)
        self.b.problem(meta_key, problem, "tomogram skipped" if record is None else "")
        if record is None:
            return None
        zarr_key: str | None = None
        zarr_entry: list[Any] | None = None
        declared = record.omezarr_dir
        if declared is not None:
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
        declared_mrc = record.mrc_file
        if declared_mrc is not None:
            key, mrc_entry = self.resolve(declared_mrc)
            # Inside the run the listing says whether the file exists; outside, assumed.
            if key is not None and (mrc_entry is not None or not key.startswith(self.key + "/")):
                mrc_key = key
        if zarr_key is None:
            self.b.warn(f"{self.key}/{folder}", "tomogram has no OME-Zarr", skipped=False)
        spacing = vs.spacing if record.voxel_spacing is msgspec.UNSET else record.voxel_spacing
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
        parsed, problems = metadata.parse_annotation(meta)
        for problem in problems:
            # Entry problems say "entry skipped" already.
            self.b.problem(meta_key, problem, "annotation skipped" if parsed is None else "")
        if parsed is None:
            return None
        files = []
        models = _mesh_sources(meta)
        for entry in parsed.files:
            declared = entry.path
            if declared.startswith("/") or "://" in declared:
                message = f"files path {declared!r} is not relative to the data root; skipped"
                self.b.warn(meta_key, message)
                continue
            key, found = self.resolve(declared)
            if key is None:
                self.b.warn(meta_key, f"files path {declared!r} leaves the data root; skipped")
                continue
            model = models.get((entry.shape, entry.path))
            model_key, model_entry = self.resolve(model) if model else (None, None)
            files.append(
                AnnotationFile(
                    shape=entry.shape,
                    format=entry.format,
                    path=tree_path(self.b.store, key),
                    relative_path=declared,
                    is_visualization_default=entry.is_visualization_default,
                    exists=self.exists(key, found),
                    signature=f"{found[1]}:{found[2]}" if found else None,
                    mesh_source_path=model,
                    mesh_source=tree_path(self.b.store, model_key) if model_key else None,
                    mesh_source_signature=(
                        f"{model_entry[1]}:{model_entry[2]}" if model_entry else None
                    ),
                )
            )
        annotation = Annotation(
            ann_id, vs.spacing, tree_path(self.b.store, meta_key), meta, tuple(files)
        )
        for shape in sorted({f.shape for f in files} & PRECOMPUTED_FORMATS.keys()):
            if annotation.converted_file(shape) is None:
                published = ", ".join(sorted({f.format for f in files if f.shape == shape}))
                wanted = PRECOMPUTED_FORMATS[shape]
                message = f"{shape} published as {published} only; the precompute reads {wanted}"
                self.b.warn(meta_key, f"{message}: no layer for it", skipped=False)
        return annotation


def _mesh_sources(meta: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(shape, path) of each OrientedPoint ``files[]`` entry -> its particle model as
    declared (``mesh_source_path`` of the entry, else of the document; text only)."""
    top = meta.get("mesh_source_path")
    out: dict[tuple[str, str], str] = {}
    for raw in meta.get("files") or []:
        if isinstance(raw, dict) and raw.get("shape") == "OrientedPoint":
            value = raw.get("mesh_source_path") or top
            if isinstance(value, str) and value:
                out[("OrientedPoint", str(raw.get("path")))] = value
    return out
