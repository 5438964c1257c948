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
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

ENV_PREFIX = "CRYOET_NG__"
DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "configs" / "default.yaml"


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message names file and key."""


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    # Folder of the SQLite saved-state database, or a postgresql:// URL.
    states_db: str = "states"
    max_body_bytes: int = 2_000_000
    cors_origins: tuple[str, ...] = ()
    # Token of the self-hosted client path /v/<token>/.
    viewer_token: str = "main"


@dataclass(frozen=True)
class LayerStyle:
    # Oriented points: line length = factor x particle diameter.
    oriented_line_factor: float = 1.5
    # Point diameter in voxels when the metadata gives none.
    default_diameter_voxels: float = 10.0
    image_gain: float = -7.8
    mesh_render_scale: float = 2.0
    layout: str = "4panel"
    gpu_memory_limit: int = 1_500_000_000


@dataclass(frozen=True)
class SelectionConfig:
    policy: Literal["auto", "author", "auto+author"] = "auto+author"
    # The curators show up to 30 layers on one tomogram; a lower cap costs agreement with them.
    max_visible: int = 32
    # A mask occludes a layer when at least this share of the layer lies inside it.
    occlusion_threshold: float = 0.5
    # Exact maximum-weight search up to this many candidates, greedy beyond.
    exact_limit: int = 25


@dataclass(frozen=True)
class PrecomputeConfig:
    # Spatial index: most annotations per cell before the rest go to finer levels.
    annotation_limit: int = 5000
    # Below this many annotations outputs are written unsharded.
    shard_min_annotations: int = 0
    out_of_bounds: Literal["error", "drop", "keep"] = "error"
    rotation_tolerance: float = 1e-3
    # Float masks: voxels above this become 1; None makes float masks an error.
    mask_threshold: float | None = None
    mask_shape_mismatch: Literal["error", "resample"] = "error"
    # Volumes with more voxels than this are written sharded.
    shard_min_voxels: int = 64 * 1024 * 1024
    mesh_lods: int = 3
    workers: int = 0


def _documented(default: Any, doc: str) -> Any:
    """A field's default with its documentation (``metadata["doc"]``)."""
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class TemplateRule:
    """A particle model for oriented picks without ``mesh_source_path``."""

    path: str  # glb file: relative to the data root, or absolute
    object_id: str | None = _documented(None, "Matches the annotation_object id (GO:...).")
    object_name: str | None = _documented(
        None, "Matches the annotation_object name (case-insensitive)."
    )


@dataclass(frozen=True)
class MeshConfig:
    """Mesh annotations (TriangularMesh) and particle models at oriented picks."""

    max_faces: int = _documented(5_000_000, "A glb with more triangles than this is refused.")
    lods: int = _documented(5, "Levels of detail at most.")
    reduction: float = _documented(4.0, "Each coarser level has this many times fewer triangles.")
    min_faces: int = _documented(12, "No level of a model is simplified below this.")
    instance_faces: int = _documented(
        10_000_000,
        "Particle models: total triangles of the finest level at most; above it the model is "
        "simplified to fit (the portal's max_faces_for_first_lod).",
    )
    first_view_faces: int = _documented(
        250_000,
        "Particle models: total triangles of the coarsest level, which the viewer loads for "
        "the whole tomogram first.",
    )
    node_faces: int = _documented(
        16_000, "Triangles per octree node aimed at: one Draco fragment of ~10-20 KB."
    )
    templates: tuple[TemplateRule, ...] = _documented(
        (),
        "Particle models for oriented picks without mesh_source_path: a list of {object_id or "
        "object_name, path}; the first match wins.",
    )


@dataclass(frozen=True)
class Config:
    data_root: Path
    # Where precompute outputs go; None = inside the data tree, as the portal does.
    output_root: Path | None = None
    # Public URL prefix of the data tree (e.g. https://files.example.org); None = served at /data/
    data_url: str | None = None
    # Neuroglancer client URL; None = the self-hosted client at /v/<token>/.
    viewer_url: str | None = None
    server: ServerConfig = field(default_factory=ServerConfig)
    layers: LayerStyle = field(default_factory=LayerStyle)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    precompute: PrecomputeConfig = field(default_factory=PrecomputeConfig)
    meshes: MeshConfig = field(default_factory=MeshConfig)
    source: str = field(default="<defaults>", compare=False)

    @property
    def out_root(self) -> Path:
        return self.output_root if self.output_root is not None else self.data_root

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)


def load_config(
    path: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Load ``path`` (default: configs/default.yaml), then env and explicit overrides."""
    source = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    try:
        raw = yaml.safe_load(source.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read configuration: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: top level must be a mapping, got {type(raw).__name__}")
    env = os.environ if environ is None else environ
    for name, value in env.items():
        if name.startswith(ENV_PREFIX):
            key = ".".join(part.lower() for part in name[len(ENV_PREFIX) :].split("__"))
            try:
                parsed = yaml.safe_load(value)
            except yaml.YAMLError as exc:
                raise ConfigError(f"environment variable {name}: not a YAML value: {exc}") from exc
            _set_dotted(raw, key, parsed, f"environment variable {name}")
    for key, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(raw, key, value, "command-line override")
    config = _build(Config, raw, "", str(source))
    base = source.parent
    return config.replace(
        data_root=_resolve(config.data_root, base),
        output_root=None if config.output_root is None else _resolve(config.output_root, base),
        source=str(source),
    )


def _resolve(path: Path, base: Path) -> Path:
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


def _build(cls: type, raw: Any, prefix: str, source: str) -> Any:
    where = prefix.rstrip(".") or "top level"
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: '{where}' must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        known = ", ".join(sorted(fields))
        raise ConfigError(f"{source}: unknown key '{prefix}{unknown[0]}' (known here: {known})")
    values: dict[str, Any] = {}
    for name, fld in fields.items():
        key = f"{prefix}{name}"
        if name not in raw:
            no_default = fld.default is dataclasses.MISSING
            if no_default and fld.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{source}: missing required key '{key}'")
            continue
        values[name] = _coerce(hints[name], raw[name], key, source)
    return cls(**values)


def _coerce(hint: Any, value: Any, key: str, source: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, f"{key}.", source)
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
