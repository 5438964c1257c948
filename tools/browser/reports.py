"""What the viewer says it shows: per-layer and whole-viewer reports, read from its own objects.

Everything here comes from the client's JavaScript objects (``window.viewer``), gathered in
one round trip by :data:`REPORT_JS`:

- per layer: data-source load state and error, layer messages, readiness, visibility, and
  for image and annotation layers whether the user shader compiled (``shaderError``:
  ``undefined`` = not compiled yet, ``null`` = compiled, an Error otherwise);
- ``viewer.isReady()``: true only once the visible chunks are drawn;
- the status bar, where the client says that it could not restore part of a state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LayerReport:
    """One managed layer as the viewer sees it."""

    name: str
    type: str | None
    visible: bool
    ready: bool
    # Data sources still loading (their loadState is undefined).
    loading: int
    errors: tuple[str, ...]
    messages: tuple[str, ...]
    # "none" (no shader of that kind), "pending" (not compiled yet), "ok" or "error".
    shader: str
    shader_error: str = ""

    @property
    def ok(self) -> bool:
        return not self.errors and self.shader != "error"


@dataclass(frozen=True)
class ViewerReport:
    """The whole viewer: readiness plus every layer's report."""

    exists: bool
    ready: bool
    layers: tuple[LayerReport, ...] = ()
    elapsed_s: float = 0.0
    # Messages in the client's status bar (e.g. a part of the state it failed to restore).
    status: tuple[str, ...] = ()

    def layer(self, name: str) -> LayerReport:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no layer {name!r} in the viewer; layers: {[x.name for x in self.layers]}")

    @property
    def visible(self) -> set[str]:
        return {x.name for x in self.layers if x.visible}

    @property
    def settled(self) -> bool:
        """Every data source finished loading (successfully or not): what a cold load waits
        for (:func:`tools.browser.stock.cold_load`)."""
        return self.exists and all(x.loading == 0 for x in self.layers)

    def describe(self) -> str:
        lines = [f"viewer exists={self.exists} ready={self.ready} after {self.elapsed_s:.1f}s"]
        lines += [f"  status bar: {text!r}" for text in self.status]
        for x in self.layers:
            lines.append(
                f"  {x.name!r} type={x.type} visible={x.visible} ready={x.ready} "
                f"loading={x.loading} shader={x.shader} {x.shader_error} errors={list(x.errors)} "
                f"messages={list(x.messages)}"
            )
        return "\n".join(lines)

    @classmethod
    def from_js(cls, raw: dict[str, Any] | None) -> ViewerReport:
        """Parse what :data:`REPORT_JS` returned."""
        if not raw or not raw.get("exists"):
            return cls(exists=False, ready=False)
        layers = tuple(
            LayerReport(
                name=x["name"],
                type=x["type"],
                visible=bool(x["visible"]),
                ready=bool(x["ready"]),
                loading=int(x["loading"]),
                errors=tuple(x["errors"]),
                messages=tuple(x["messages"]),
                shader=x["shader"][0],
                shader_error=x["shader"][1],
            )
            for x in raw["layers"]
        )
        status = tuple(raw["status"])
        return cls(exists=True, ready=bool(raw["ready"]), layers=layers, status=status)


class ViewerTimeout(AssertionError):
    """The viewer did not become ready in time; carries the last report it gave."""

    def __init__(self, message: str, report: ViewerReport | None) -> None:
        detail = "" if report is None else "\n" + report.describe()
        super().__init__(message + detail)
        self.report = report


def layer_names(state: dict[str, Any]) -> list[str]:
    """Layer names of a state, in order (either the list or the older ``{name: spec}`` form)."""
    layers = state.get("layers", [])
    return list(layers) if isinstance(layers, dict) else [x["name"] for x in layers]


def dropped_layers(report: ViewerReport, state: dict[str, Any]) -> str | None:
    """Why the viewer does not show exactly the layers of ``state``, or None if it does.

    Neuroglancer deletes a layer whose restore throws and only says so in the status bar, so
    a dropped layer is otherwise invisible to source and readiness checks.
    """
    shown = [x.name for x in report.layers]
    expected = layer_names(state)
    if shown == expected and not report.status:
        return None
    return (
        f"viewer lacks layers {[x for x in expected if x not in shown]}, "
        f"has extra {[x for x in shown if x not in expected]}; status bar: {list(report.status)}"
    )


# One round trip gathers everything. "ready" is viewer.isReady() except that layers whose
# source failed are ignored: they never become ready, and the test wants their error, not a hang.
_REPORT_BODY = """
const v = window.viewer;
if (!v) return {exists: false};
// Image and annotation layers: their user shader. (A segmentation layer's shaderError belongs
// to its skeleton shader, which never compiles without skeletons.)
const shaderOf = (layer) => {
  const w = layer.type === 'image' ? layer.shaderError
      : (layer.type === 'annotation' ? layer.annotationDisplayState.shaderError : undefined);
  if (w === undefined) return ['none', ''];
  if (w.value === undefined) return ['pending', ''];
  if (w.value === null) return ['ok', ''];
  return ['error', String(w.value.message || w.value)];
};
v.chunkQueueManager.flushPendingChunkUpdates();
const layers = v.layerManager.managedLayers.map((ml) => {
  const layer = ml.layer;
  const sources = layer ? layer.dataSources : [];
  return {
    name: ml.name,
    type: layer ? layer.type : null,
    visible: ml.visible,
    ready: !!ml.isReady(),
    loading: sources.filter((s) => s.loadState === undefined).length,
    errors: sources.filter((s) => s.loadState && s.loadState.error)
        .map((s) => String(s.loadState.error.message || s.loadState.error)),
    messages: layer ? Array.from(layer.messages)
        .filter((m) => m.severity >= 1).map((m) => m.message) : [],
    shader: layer ? shaderOf(layer) : ['none', ''],
  };
});
const ready = v.display.isReady() && layers.every((l) => l.ready || l.errors.length > 0);
// Status-bar messages: where the client reports, e.g., a state it could not restore.
const status = Array.from(document.querySelectorAll(
    '#neuroglancer-status-container > *, #neuroglancer-status-container-modal > *'))
    .map((e) => e.textContent.replace(/Dismiss$/, '').trim())
    .filter((t) => t);
return {exists: true, ready, layers, status};
"""
# Run in an animation frame callback: readiness is only meaningful between drawn frames.
REPORT_JS = (
    "return new Promise((resolve) => requestAnimationFrame(() => resolve((() => {"
    + _REPORT_BODY
    + "})())));"
)
