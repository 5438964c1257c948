"""How long the client's state restore takes, measured inside the page (for the benchmark).

Neuroglancer's restore-order bug (README) is timing-bound: a layer is lost when its URL-hash
binding's debounced serialisation (lodash ``debounce(setUrlHash, 200, {maxWait: 400})``)
comes due while an annotation layer is constructed but not yet restored. The lodash call
runs synchronously once 400 ms have passed since the first change signal of the restore
(or 200 ms since the previous one), so what matters is the time from the state's
``reset()`` to the end of the last annotation layer's ``restoreState()``.

:data:`RESTORE_TRACE_JS` is installed before any page script runs
(``Page.addScriptToEvaluateOnNewDocument``). When the client assigns ``window.viewer`` it
wraps, on that instance only, ``state.reset``/``state.restoreState``, the layer manager's
``addManagedLayer`` and each new layer's ``restoreState``, and listens to the state's change
signal, recording ``performance.now()`` marks in ``window.__restoreTrace``. The client's own
code is not changed; the wrappers cost microseconds per call.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tools.browser.viewer import Viewer

RESTORE_TRACE_JS = r"""
(() => {
  const marks = window.__restoreTrace = [];
  const mark = (what) => marks.push([performance.now(), what]);
  const wrap = (obj, key, label) => {
    const original = obj[key];
    obj[key] = function (...args) {
      mark(label + '>');
      try { return original.apply(this, args); } finally { mark(label + '<'); }
    };
  };
  let viewer;
  Object.defineProperty(window, 'viewer', {configurable: true, get() { return viewer; },
    set(v) {
      viewer = v;
      v.state.changed.add(() => mark('changed'));
      wrap(v.state, 'reset', 'reset');
      wrap(v.state, 'restoreState', 'restore');
      const manager = v.layerManager, add = manager.addManagedLayer;
      manager.addManagedLayer = function (managed, ...rest) {
        const layer = managed.layer;
        if (layer) wrap(layer, 'restoreState', 'layer ' + layer.constructor.type);
        return add.call(this, managed, ...rest);
      };
    }});
})();
"""


@dataclass(frozen=True)
class RestoreTimes:
    """Milliseconds from the start of the state's ``reset()``."""

    reset_ms: float  # the reset itself (state-independent: the default layout is rebuilt)
    window_ms: float | None  # to the last annotation layer restored (None: no such layer)
    restore_ms: float  # to the end of ``restoreState()``
    max_gap_ms: float  # longest stretch without a change signal up to window_ms (or the end)

    @classmethod
    def from_marks(cls, marks: list[list[Any]]) -> RestoreTimes | None:
        """Parse ``window.__restoreTrace``; None when no restore was recorded."""
        times: dict[str, list[float]] = {}
        for at, what in marks:
            times.setdefault(str(what), []).append(float(at))
        if "reset>" not in times or "restore<" not in times:
            return None
        start = times["reset>"][0]
        annotation = times.get("layer annotation<")
        end = max(annotation) if annotation else times["restore<"][0]
        signals = [t for t in times.get("changed", []) if start <= t <= end]
        gaps = [b - a for a, b in pairwise(signals)]
        return cls(
            reset_ms=times["reset<"][0] - start,
            window_ms=None if annotation is None else end - start,
            restore_ms=times["restore<"][0] - start,
            max_gap_ms=max(gaps, default=0.0),
        )


def install_restore_trace(viewer: Viewer) -> None:
    """Record restore timings in every page this browser opens from now on."""
    viewer.driver.execute_cdp_cmd(
        "Page.addScriptToEvaluateOnNewDocument", {"source": RESTORE_TRACE_JS}
    )


def read_restore_trace(viewer: Viewer) -> RestoreTimes | None:
    """The current page's restore timings (None before a state was restored)."""
    return RestoreTimes.from_marks(viewer.js("return window.__restoreTrace || [];"))
