"""Typed configuration loaded from YAML.

Every section is a frozen dataclass. :func:`load_config` validates a YAML file
against these classes and fails with :class:`ConfigError` naming the file and the
dotted key for an unknown key, a wrong type or a missing required value.

Overrides, strongest last: the YAML file, then environment variables of the form
``CRYOET_NG__SECTION__KEY=value`` (values parsed as YAML scalars), then explicit
overrides passed by the CLI (``{"server.port": 9000}``).
"""

from __future__ import annotations

import dataclasses
import os
import textwrap
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from cryoet_ng.store import TreePath, is_url, open_store, tree_path

ENV_PREFIX = "CRYOET_NG__"
# Shipped inside the package, so an installed cryoet-ng finds it; generated from the
# dataclasses below (:func:`default_yaml`), which hold every default once.
DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent / "default.yaml"
# The two values the shipped file sets instead of a default: a checkout's sample tree and
# saved-state folder (relative to the file: this package's folder, so the checkout's root).
SHIPPED_VALUES: dict[str, Any] = {"data_root": "../sample-data", "server.states_db": "../.states"}
T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message names file and key."""


def _doc(default: T, doc: str) -> T:
    """A field's default with its documentation (written into the generated default.yaml)."""
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class ServerConfig:
    """The View Tomogram service."""

    host: str = _doc("127.0.0.1", "Listen address of `cryoet-ng serve`.")
    port: int = _doc(8000, "Listen port of `cryoet-ng serve`.")
    states_db: str = _doc(
        "states", "Saved states: a folder for the SQLite file, or a postgresql://user@host/db URL."
    )
    max_body_bytes: int = _doc(2_000_000, "Largest saved state accepted by POST /states.")
    cors_origins: tuple[str, ...] = _doc(
        (),
        "Origins allowed to read /data/ cross-origin (e.g. a public viewer); same origin "
        "needs none.",
    )
    viewer_token: str = _doc("main", "Token of the self-hosted client path /v/<token>/.")
    state_delivery: Literal["url", "inline"] = _doc(
        "url",
        "How View Tomogram hands the state to the viewer: url (#!<state JSON URL>, fetched by "
        "the viewer; keeps an unpatched Neuroglancer from dropping layers, see README) or "
        "inline (#!<URL-encoded JSON>).",
    )


@dataclass(frozen=True)
class LayerStyle:
    """How layers look in the viewer state."""

    oriented_line_factor: float = _doc(
        1.5, "Oriented points: line length = factor x particle diameter."
    )
    default_diameter_voxels: float | None = _doc(
        None,
        "Legacy fallback particle diameter in voxels (at the annotation's spacing); null = "
        "use default_diameter_nm. The full rule is in cryoet_ng/particles.py.",
    )
    image_gain: float = _doc(
        -1.5,
        "The tomogram layer's volumeRenderingGain (exp(gain) scales opacity); -1.5 suits the "
        "inverted 3-D range of precompute/tomogram.py (the portal's -7.8 left the demo nearly "
        "transparent).",
    )
    mesh_render_scale: float = _doc(2.0, "Segmentation layers' meshRenderScale (level of detail).")
    oriented_mesh_render_scale: float = _doc(
        4.0, "Particle-model layers' meshRenderScale (the portal's: coarser, many models)."
    )
    layout: str = _doc("4panel", "Neuroglancer layout.")
    gpu_memory_limit: int = _doc(1_500_000_000, "Neuroglancer GPU memory limit, bytes.")
    default_diameter_nm: float = _doc(
        10.0,
        "Particle diameter when neither the metadata nor the table of cryoet_ng/particles.py "
        "has one, nm.",
    )
    oriented_line_width: float = _doc(
        2.0, "Oriented picks: axis line width in screen pixels (a shader slider)."
    )
    annotation_opacity: float = _doc(1.0, "Annotation markers' opacity (a shader slider).")
    mask_opacity_2d: float = _doc(1.0, "Masks' opacity in the 2-D panels; 1.0 = opaque.")
    mask_hover_highlight: bool = _doc(
        False, "Highlight a mask's segment under the mouse (off, as the portal's viewer)."
    )
    enclosing_mesh_alpha: float = _doc(
        0.3, "3-D alpha of a mask's mesh that encloses other shown layers."
    )
    enclosure_threshold: float = _doc(
        0.5,
        "Share of a shown layer's content inside a mask's filled outline for the mask to "
        "count as enclosing it.",
    )
    volume_rendering: bool = _doc(False, "Tomogram volume rendering on at load.")
    volume_rendering_depth_samples: int = _doc(128, "Volume rendering depth samples per ray.")
    layer_order: Literal["points-first", "tomogram-first"] = _doc(
        "points-first",
        "Layer list order: picks first (shortest restore window in an unpatched client, see "
        "README 'Neuroglancer restore-order bug'), or the tomogram first.",
    )
    title: str = _doc(
        "{run} · dataset {dataset} · tomogram {tomogram}",
        "Page title; {run}, {dataset}, {tomogram} are filled in.",
    )
    layer_side_panel: bool = _doc(
        True, "The selected layer's side panel (left, under the layer list), on its Rendering tab."
    )
    position_palette: bool = _doc(
        True, "The Position tool palette (the coordinate widgets the portal's viewer shows)."
    )


Policy = Literal["auto", "author", "auto+author"]


@dataclass(frozen=True)
class SelectionConfig:
    """Which annotation layers are visible by default."""

    policy: Policy = _doc(
        "auto+author",
        "auto: automatic non-occluding choice; author: only is_visualization_default; "
        "auto+author: automatic, with the author's explicit flag as an override.",
    )
    max_visible: int = _doc(
        32,
        "Most visible layers. The curators show up to 30 layers on one tomogram; a lower cap "
        "costs agreement with them.",
    )
    occlusion_threshold: float = _doc(
        0.5, "A mask occludes a layer when at least this share of the layer lies inside it."
    )
    exact_limit: int = _doc(
        25, "Exact maximum-weight search up to this many candidates, greedy beyond."
    )
    clutter_threshold: float = _doc(
        0.3,
        "A prediction's picks are not shown by default when their markers would cover at "
        "least this share of a slice (an author's true flag still shows them, with a warning).",
    )
    clutter_diameter_nm: float = _doc(
        10.0,
        "Marker diameter for the clutter rule when the metadata gives no "
        "annotation_object.diameter.",
    )


@dataclass(frozen=True)
class PrecomputeConfig:
    """The batch converter."""

    annotation_limit: int = _doc(
        5000, "Spatial index: most annotations per cell before the rest go to finer levels."
    )
    shard_min_annotations: int = _doc(
        0, "Below this many annotations outputs are written unsharded."
    )
    out_of_bounds: Literal["error", "drop", "keep"] = _doc(
        "error", "Points outside the tomogram: fail the file, drop them, or keep them."
    )
    rotation_tolerance: float = _doc(
        1e-3, "Oriented points: largest |R R^T - I| element and |det R - 1| accepted."
    )
    mask_threshold: float | None = _doc(
        None, "Float masks: voxels above this become 1; null makes float masks an error."
    )
    mask_shape_mismatch: Literal["error", "resample"] = _doc(
        "error", "A mask whose shape differs from the tomogram's: fail, or resample it."
    )
    shard_min_voxels: int = _doc(
        64 * 1024 * 1024, "Volumes with more voxels than this are written sharded."
    )
    mesh_lods: int = _doc(3, "Levels of detail of segmentation meshes.")
    workers: int = _doc(
        0, "Parallel workers (batch jobs, and meshing processes per mask); 0 = one per core."
    )
    volume_brick: int = _doc(
        256,
        "Masks are read, downsampled and written in cubes of this many voxels per edge (a "
        "multiple of 128): memory per worker follows it, not the mask (256: ~0.5 GB at uint32).",
    )
    points_in_memory: int = _doc(
        5_000_000,
        "Point files with more records than this are sorted on disk in runs of this many, so "
        "memory stays bounded (same output bytes as in memory).",
    )
    contrast_clip_fraction: float = _doc(
        0.01,
        "Tomogram statistics: share of full-resolution voxels the 2-D contrast limits may clip "
        "(split between both ends).",
    )
    job_timeout: float = _doc(
        3600.0,
        "Seconds one job may run; then it fails as timed out and its Dask worker is "
        "restarted. 0 = no limit.",
    )
    start_timeout: float = _doc(
        120.0,
        "Seconds a batch waits for a Dask worker (an existing scheduler may have none); "
        "then its unstarted jobs fail.",
    )
    in_process_bytes: int = _doc(
        256 * 1024 * 1024,
        "Batches whose inputs total at most this many bytes run in this process, without "
        "starting a Dask cluster (which costs seconds before any work).",
    )
    progress_seconds: float = _doc(
        30.0, "Interval of the progress lines printed when stderr is not a terminal."
    )
    lock_wait: float | None = _doc(
        None,
        "Seconds to wait for another batch holding a dataset of the same output root; "
        "null = as long as it runs, 0 = fail at once.",
    )


@dataclass(frozen=True)
class TemplateRule:
    """A particle model for oriented picks without ``mesh_source_path``."""

    path: str  # glb file: relative to the data root, or absolute
    object_id: str | None = _doc(None, "Matches the annotation_object id (GO:...).")
    object_name: str | None = _doc(None, "Matches the annotation_object name (case-insensitive).")


@dataclass(frozen=True)
class MeshConfig:
    """Mesh annotations (TriangularMesh) and particle models at oriented picks."""

    max_faces: int = _doc(5_000_000, "A glb with more triangles than this is refused.")
    lods: int = _doc(5, "Levels of detail at most.")
    reduction: float = _doc(4.0, "Each coarser level has this many times fewer triangles.")
    min_faces: int = _doc(12, "No level of a model is simplified below this.")
    instance_faces: int = _doc(
        10_000_000,
        "Particle models: total triangles of the finest level at most; above it the model is "
        "simplified to fit (the portal's max_faces_for_first_lod).",
    )
    first_view_faces: int = _doc(
        250_000,
        "Particle models: total triangles of the coarsest level, which the viewer loads for "
        "the whole tomogram first.",
    )
    node_faces: int = _doc(
        16_000, "Triangles per octree node aimed at: one Draco fragment of ~10-20 KB."
    )
    templates: tuple[TemplateRule, ...] = _doc(
        (),
        "Particle models for oriented picks without mesh_source_path: a list of {object_id or "
        "object_name, path}; the first match wins.",
    )

    def template_for(self, object_id: str | None, object_name: str) -> TemplateRule | None:
        """The first ``templates`` rule matching the ontology id or the name (any case)."""
        name = object_name.strip().lower()
        for rule in self.templates:
            if (rule.object_id is not None and rule.object_id == object_id) or (
                rule.object_name is not None and rule.object_name.strip().lower() == name
            ):
                return rule
        return None


@dataclass(frozen=True)
class Config:
    """cryoet-ng configuration."""

    data_root: Path | str = field(
        metadata={
            "doc": "Portal-layout data tree (datasets/runs/Reconstructions/...): a folder, or "
            "s3://bucket/prefix, gs://bucket/prefix, https://host/prefix (with its published "
            "index). Required."
        }
    )
    output_root: Path | str | None = _doc(
        None,
        "Where precompute outputs go (a folder or an s3://, gs:// URL); null = inside the data "
        "tree, as the portal does.",
    )
    data_url: str | None = _doc(
        None,
        "Public URL prefix of the data tree as the browser sees it, e.g. "
        "https://files.example.org; null = served by this server under /data/.",
    )
    viewer_url: str | None = _doc(
        None,
        "Neuroglancer client URL; null = the self-hosted client of the installed "
        "neuroglancer package, at /v/<token>/.",
    )
    server: ServerConfig = field(default_factory=ServerConfig)
    layers: LayerStyle = field(default_factory=LayerStyle)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    precompute: PrecomputeConfig = field(default_factory=PrecomputeConfig)
    meshes: MeshConfig = field(default_factory=MeshConfig)
    source: str = field(default="<defaults>", compare=False)

    @property
    def out_root(self) -> Path | str:
        """The output root: a folder, or a URL (str) on an object store."""
        return self.output_root if self.output_root is not None else self.data_root

    @property
    def data_tree(self) -> TreePath:
        """The data root as catalogue items carry paths (a resolved Path, or a Location)."""
        return tree_path(open_store(self.data_root), "")

    @property
    def out_tree(self) -> TreePath:
        """The output root as :class:`cryoet_ng.layout.Layout` takes it."""
        return tree_path(open_store(self.out_root), "")

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)


def default_yaml() -> str:
    """The text of the shipped default.yaml: every key, its default and its documentation."""
    lines = [
        "# cryoet-ng configuration: every key with its default. Generated from the dataclasses",
        "# of cryoet_ng/config.py (python -m cryoet_ng.config > cryoet_ng/default.yaml);",
        "# tests/test_config.py checks that it is current. Relative paths are relative to this",
        "# file's folder. Any key can be overridden with CRYOET_NG__SECTION__KEY=value (e.g.",
        "# CRYOET_NG__SERVER__PORT=9000) or, for the common ones, with CLI flags (--data-root,",
        "# --host, --port).",
        "",
    ]
    lines += _yaml_fields(Config(data_root=Path()), "")
    return "\n".join(lines) + "\n"


def _yaml_fields(section: Any, prefix: str) -> list[str]:
    indent = "  " * prefix.count(".")
    lines: list[str] = []
    for fld in dataclasses.fields(section):
        if fld.name == "source":
            continue
        value = getattr(section, fld.name)
        if dataclasses.is_dataclass(value):
            lines += ["", *_comment(str(type(value).__doc__), indent), f"{indent}{fld.name}:"]
            lines += _yaml_fields(value, f"{prefix}{fld.name}.")
            continue
        value = SHIPPED_VALUES.get(prefix + fld.name, value)
        plain = list(value) if isinstance(value, tuple) else value
        text = yaml.safe_dump({fld.name: plain}, default_flow_style=True, width=1000)
        lines += [*_comment(fld.metadata["doc"], indent), indent + text.strip()[1:-1]]
    return lines


def _comment(text: str, indent: str) -> list[str]:
    width = 92 - len(indent)
    return [f"{indent}# {line}" for line in textwrap.wrap(text, width)]


def load_config(
    path: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Load ``path`` (default: the shipped default.yaml), then env and explicit overrides."""
    source = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    try:
        with source.open(encoding="utf-8") as stream:  # YAML's error marks name the file
            raw = yaml.safe_load(stream) or {}
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 text: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read configuration: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: top level must be a mapping, got {type(raw).__name__}")
    env = os.environ if environ is None else environ
    # Where each overridden key's value came from: errors about it name that, not the file.
    origins: dict[str, str] = {}
    for name, value in env.items():
        if name.startswith(ENV_PREFIX):
            key = ".".join(part.lower() for part in name[len(ENV_PREFIX) :].split("__"))
            origin = f"environment variable {name}"
            try:
                parsed = yaml.safe_load(value)
            except yaml.YAMLError as exc:
                raise ConfigError(f"{origin}: not a YAML value: {exc}") from exc
            _set_dotted(raw, key, parsed, origin)
            origins[key] = origin
    for key, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(raw, key, value, "command-line override")
            origins[key] = "command-line override"
    config = _build(Config, raw, "", str(source), origins)
    base = source.parent
    return config.replace(
        data_root=_resolve(config.data_root, base),
        output_root=None if config.output_root is None else _resolve(config.output_root, base),
        source=str(source),
    )


def with_overrides(config: Config, overrides: Mapping[str, Any]) -> Config:
    """``config`` with command-line overrides (``{"server.port": 9000}``; None = not given),
    validated as :func:`load_config` validates them, and applied last, so they win over the
    file and the environment."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if not given:
        return config
    raw = {f.name: _raw(getattr(config, f.name)) for f in dataclasses.fields(config)}
    raw.pop("source")
    for key, value in given.items():
        _set_dotted(raw, key, value, "command-line override")
    origins = dict.fromkeys(given, "command-line override")
    return _build(Config, raw, "", config.source, origins).replace(source=config.source)


def _raw(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _raw(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):  # e.g. meshes.templates: a tuple of TemplateRule
        return [_raw(v) for v in value]
    return value


def _resolve(path: Path | str, base: Path) -> Path | str:
    if isinstance(path, str):
        return path  # a URL
    path = path.expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def _set_dotted(raw: dict[str, Any], key: str, value: Any, origin: str) -> None:
    parts = key.split(".")
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{origin}: '{part}' is not a section")
        node = child
    node[parts[-1]] = value


def _build(
    cls: type, raw: Any, prefix: str, source: str, origins: Mapping[str, str] | None = None
) -> Any:
    """``cls`` from ``raw``; errors name ``source``, or for an overridden key its origin."""
    origins = origins or {}
    where = prefix.rstrip(".") or "top level"
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: '{where}' must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        known = ", ".join(sorted(fields))
        key = f"{prefix}{unknown[0]}"
        origin = origins.get(key, source)
        raise ConfigError(f"{origin}: unknown key '{key}' (known here: {known})")
    values: dict[str, Any] = {}
    for name, fld in fields.items():
        key = f"{prefix}{name}"
        if name not in raw:
            no_default = fld.default is dataclasses.MISSING
            if no_default and fld.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{source}: missing required key '{key}'")
            continue
        values[name] = _coerce(hints[name], raw[name], key, origins.get(key, source), origins)
    return cls(**values)


def _coerce(
    hint: Any, value: Any, key: str, source: str, origins: Mapping[str, str] | None = None
) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _build(hint, value, f"{key}.", source, origins)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, key, source)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0])
    if origin is Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise ConfigError(f"{source}: '{key}' must be one of {choices}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{source}: '{key}' must be a list, got {type(value).__name__}")
        return tuple(_coerce(args[0], v, f"{key}[{i}]", source) for i, v in enumerate(value))
    if hint is Path:
        if not isinstance(value, str | Path):
            raise ConfigError(f"{source}: '{key}' must be a path string, got {value!r}")
        if is_url(value):  # `Path | str` fields take it as the str
            raise ConfigError(f"{source}: '{key}' must be a local path, got the URL {value!r}")
        return Path(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{source}: '{key}' must be a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: '{key}' must be an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: '{key}' must be true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: '{key}' must be a string, got {value!r}")
        return value
    raise ConfigError(f"{source}: '{key}' has an unsupported type {hint!r}")  # pragma: no cover


if __name__ == "__main__":
    print(default_yaml(), end="")
