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
    # How View Tomogram hands the state to the viewer: "url" (#!<state JSON URL>, fetched by
    # the viewer; what keeps an unpatched Neuroglancer from dropping layers, see README) or
    # "inline" (#!<URL-encoded JSON>).
    state_delivery: Literal["url", "inline"] = "url"


@dataclass(frozen=True)
class LayerStyle:
    # Oriented points: line length = factor x particle diameter.
    oriented_line_factor: float = 1.5
    # Legacy fallback diameter in voxels (at the annotation's spacing); null = use
    # default_diameter_nm. See cryoet_ng/particles.py for the full rule.
    default_diameter_voxels: float | None = None
    # Volume rendering gain (exp(gain) scales opacity); -1.5 suits the inverted 3-D range of
    # precompute/tomogram.py (the portal's -7.8 left the demo nearly transparent).
    image_gain: float = -1.5
    mesh_render_scale: float = 2.0
    layout: str = "4panel"
    gpu_memory_limit: int = 1_500_000_000
    # -- viewer look (ngstate/layers.py, ngstate/state.py) --
    # Particle diameter when neither the metadata nor the table of cryoet_ng/particles.py has one.
    default_diameter_nm: float = 10.0
    # Oriented picks: axis line width in screen pixels (a shader slider).
    oriented_line_width: float = 2.0
    # Annotation markers' opacity (a shader slider).
    annotation_opacity: float = 1.0
    # Masks in the 2-D panels: 1.0 = opaque; hover highlight off, as the portal's viewer.
    mask_opacity_2d: float = 1.0
    mask_hover_highlight: bool = False
    # 3-D alpha of a mask's mesh that encloses other shown layers, and the share of such a
    # layer's content that must lie inside the mask's filled outline to count as enclosed.
    enclosing_mesh_alpha: float = 0.3
    enclosure_threshold: float = 0.5
    # Tomogram volume rendering: on at load or not, and depth samples per ray.
    volume_rendering: bool = False
    volume_rendering_depth_samples: int = 128
    # Layer list order: picks first (shortest restore window in an unpatched client, see
    # README "Neuroglancer restore-order bug"), or the tomogram first.
    layer_order: Literal["points-first", "tomogram-first"] = "points-first"
    # Page title; {run}, {dataset}, {tomogram} are filled in.
    title: str = "{run} · dataset {dataset} · tomogram {tomogram}"
    # The selected layer's side panel (left, under the layer list): open on its Rendering tab.
    layer_side_panel: bool = True
    # The Position tool palette (the coordinate widgets the portal's viewer shows).
    position_palette: bool = True


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
    # Tomogram statistics: share of full-resolution voxels the 2-D contrast limits may clip
    # (split between both ends).
    contrast_clip_fraction: float = 0.01


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
