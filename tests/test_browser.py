"""The real viewer, end to end: View Tomogram in headless Chromium.

A freshly generated and precomputed sample tree is served by the project's own server; each
run's View Tomogram link is opened in the Neuroglancer client (the build shipped in the
``neuroglancer`` wheel) and the viewer itself is asked what it loaded and drew. One browser
serves the whole module; every wait has a timeout. Screenshots are kept under
``$CRYOET_NG_ARTIFACTS/browser`` (default ``test-artifacts/browser`` in the repository).

Without Chromium the module is skipped with install instructions, unless
``CRYOET_NG_REQUIRE_BROWSER=1`` (CI), which turns the skip into a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from browser_support import start_viewer

from tools.browser import (
    PixelDiff,
    ProjectServer,
    Viewer,
    ViewerReport,
    cold_load,
    dropped_layers,
    open_view,
    save_png,
    serve_project,
    serve_stock_client,
    view_screenshot_name,
)

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 45.0


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def viewer() -> Iterator[Viewer]:
    browser = start_viewer()
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture(scope="module")
def artifacts(request: pytest.FixtureRequest) -> Iterator[Path]:
    root = os.environ.get("CRYOET_NG_ARTIFACTS")
    folder = (Path(root) if root else REPO / "test-artifacts") / "browser"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    yield folder
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and any(folder.iterdir()):
        reporter.write_line(f"browser screenshots: {folder}")


@pytest.fixture(scope="module")
def data_root(
    copy_sample: Callable[[Path], Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A private copy of the session's sample tree, precomputed by the real CLI."""
    import cryoet_ng_cli as cli

    root = copy_sample(tmp_path_factory.mktemp("browser") / "data")
    # In-process (--workers 1): a Dask local cluster costs ~15 s of start-up for seconds of work.
    assert cli.main(["precompute", str(root), "--workers", "1"]) == 0, "precompute failed"
    return root


@pytest.fixture(scope="module")
def service(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProjectServer]:
    """``server.create_app`` on a free port, every request recorded."""
    with serve_project(data_root, tmp_path_factory.mktemp("states")) as server:
        yield server


@pytest.fixture(scope="module")
def runs(data_root: Path) -> list[tuple[str, str]]:
    from cryoet_ng.catalogue import Catalogue

    found = [(r.dataset_id, r.name) for r in Catalogue.scan(data_root).runs()]
    assert found, f"no runs in {data_root}"
    return found


@dataclass
class OpenedView:
    """One run's View Tomogram link as the browser ended up showing it."""

    dataset: str
    run: str
    served_state: dict[str, Any]  # what /state/<dataset>/<run>.json answered
    viewer_state: dict[str, Any]  # what the viewer applied
    report: ViewerReport
    url: str
    seconds: float
    screenshot: Path


@pytest.fixture(scope="module")
def opened(
    request: pytest.FixtureRequest,
    viewer: Viewer,
    service: ProjectServer,
    runs: list[tuple[str, str]],
    artifacts: Path,
) -> dict[tuple[str, str], OpenedView]:
    """Open every run's /view link once; the tests below assert on what came back."""
    views = {}
    for dataset, run in runs:
        start = time.monotonic()
        report = open_view(viewer, service, dataset, run, READY_TIMEOUT)
        seconds = time.monotonic() - start
        shot = save_png(viewer.page(), artifacts / view_screenshot_name(dataset, run))
        views[(dataset, run)] = OpenedView(
            dataset=dataset,
            run=run,
            served_state=service.get_json(f"/state/{dataset}/{run}.json"),
            viewer_state=viewer.state(),
            report=report,
            url=viewer.url,
            seconds=seconds,
            screenshot=shot,
        )
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        times = ", ".join(f"{d}/{r} {v.seconds:.1f} s" for (d, r), v in views.items())
        reporter.write_line(f"View Tomogram, link to drawn: {times}")
    return views


# -- helpers -----------------------------------------------------------------------------------


def layer_specs(state: dict[str, Any]) -> list[dict[str, Any]]:
    layers = state.get("layers", [])
    if isinstance(layers, dict):  # the older {name: spec} form
        return [{"name": name, **spec} for name, spec in layers.items()]
    return list(layers)


def visible_names(state: dict[str, Any]) -> set[str]:
    return {
        x["name"]
        for x in layer_specs(state)
        if x.get("visible", True) is not False and not x.get("archived", False)
    }


def source_url(spec: dict[str, Any]) -> str:
    """The first data source of a layer spec, as a URL (``precomputed://http://...``)."""
    source = spec["source"]
    if isinstance(source, list):
        source = source[0]
    if isinstance(source, dict):
        source = source["url"]
    return str(source)


def http_of(url: str) -> str:
    """``precomputed://http://h/p`` -> ``http://h/p`` (any ``|`` pipeline suffix dropped)."""
    url = url.split("|", 1)[0]
    return url.split("://", 1)[1] if url.count("://") > 1 else url


def fetch_info(spec: dict[str, Any]) -> dict[str, Any] | None:
    url = source_url(spec)
    if not url.startswith("precomputed://"):
        return None
    with urllib.request.urlopen(http_of(url).rstrip("/") + "/info", timeout=20) as response:
        return json.load(response)


def describe_failures(failures: list[str]) -> str:
    return "\n".join(failures)


# -- tests -----------------------------------------------------------------------------------


def test_every_view_loads_without_layer_errors(opened: dict[Any, OpenedView]) -> None:
    failures = []
    for view in opened.values():
        if not view.report.ready:
            failures.append(f"{view.dataset}/{view.run}: not ready\n{view.report.describe()}")
        for layer in view.report.layers:
            if layer.errors or layer.messages:
                failures.append(
                    f"{view.dataset}/{view.run} layer {layer.name!r} ({layer.type}): "
                    f"errors={list(layer.errors)} messages={list(layer.messages)}"
                )
        problem = dropped_layers(view.report, view.served_state)
        if problem is not None:
            failures.append(f"{view.dataset}/{view.run}: {problem}")
    assert not failures, describe_failures(failures)


# Serialise the whole state on every change signal, as the client's URL-hash binding does
# synchronously once its debounce deadline has passed (on a slow cold load, in the middle of
# restoring the layer list), then restore the state and report the layers that survived.
_RESTORE_WHILE_SERIALISING = """
const v = window.viewer, state = arguments[0];
const serialise = () => { v.state.toJSON(); };
v.state.changed.add(serialise);
try {
  v.state.reset();
  v.state.restoreState(state);
} finally {
  v.state.changed.remove(serialise);
}
// A layer whose restore threw is deleted, or (if it threw while being added) left disposed.
return v.layerManager.managedLayers.filter((ml) => ml.layer && !ml.wasDisposed)
    .map((ml) => ml.name);
"""


def test_no_layer_dropped_when_state_is_serialised_during_restore(
    opened: dict[Any, OpenedView], viewer: Viewer, service: ProjectServer
) -> None:
    """The race behind "tomogram missing on a cold load", made deterministic.

    Unpatched, Neuroglancer 2.41.2 drops the layer being restored because a constructed but not
    yet restored annotation layer cannot serialise itself; server/client.py patches that.
    """
    view = next(
        v
        for v in opened.values()
        if any(x["type"] == "annotation" for x in layer_specs(v.served_state))
    )
    viewer.open_state(service.url("/v/main/"), view.served_state, READY_TIMEOUT)
    survived = viewer.js(_RESTORE_WHILE_SERIALISING, view.served_state)
    # The status bar carries the error of any layer restore that threw.
    problem = dropped_layers(viewer.report(), view.served_state)
    assert survived == [x["name"] for x in layer_specs(view.served_state)], problem
    assert problem is None, problem


# Cold loads of every run's View Tomogram link in the unpatched client: how many per run, how
# much slower the renderer runs (Chromium's CPU throttling: the load of a busy machine), and
# how the state is handed over (``url``, the default; ``inline`` shows the bug, see below).
STOCK_LOADS = int(os.environ.get("CRYOET_NG_STOCK_LOADS", "20"))
STOCK_SLOWDOWN = float(os.environ.get("CRYOET_NG_STOCK_SLOWDOWN", "2"))
STOCK_DELIVERY = os.environ.get("CRYOET_NG_STOCK_DELIVERY", "url")


# Opt-in: the loss is timing-bound inside the client (README, "Neuroglancer restore-order
# bug"): a layer survives only when the restore ends within the URL-hash binding's 400 ms
# debounce, and no state keeps it there under load (README; benchmarks.stock_restore): at
# 4x and load average 8-12, 11 of 60 cold loads lost a layer, at 2x with two busy processes
# 0 of 60, and even the smallest state with one annotation layer lost one at 4x and load 10.
# Blocked on the upstream fix; a test that fails by load would block every landing.
STOCK_ENV = "CRYOET_NG_STOCK_CLIENT_TEST"


@pytest.mark.skipif(
    os.environ.get(STOCK_ENV) != "1",
    reason=f"the unpatched client drops layers under load (upstream bug); set {STOCK_ENV}=1",
)
def test_unpatched_client_opens_every_state_completely_on_cold_loads(
    request: pytest.FixtureRequest,
    viewer: Viewer,
    data_root: Path,
    runs: list[tuple[str, str]],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The client of the installed wheel, as it ships, from another origin, data from /data.

    Neuroglancer 2.41.2 (and upstream) can drop a layer while restoring a state (README,
    "Neuroglancer restore-order bug"). Our states avoid it; this opens every run's View
    Tomogram link cold ``STOCK_LOADS`` times in that client and requires every layer, every
    time. With ``CRYOET_NG_STOCK_DELIVERY=inline`` (the JSON in the URL) the same test fails:
    measured 60 of 60 loads losing a layer at the default slowdown (README).
    """
    with serve_stock_client() as client:
        origin = client.split("/v/", 1)[0]
        overrides = {
            "viewer_url": client,
            "server.cors_origins": [origin],
            "server.state_delivery": STOCK_DELIVERY,
        }
        with serve_project(data_root, tmp_path_factory.mktemp("stock"), overrides) as project:
            expected = {
                (d, r): [x["name"] for x in project.get_json(f"/state/{d}/{r}.json")["layers"]]
                for d, r in runs
            }
            failures, seconds = [], []
            for attempt in range(STOCK_LOADS):
                for dataset, run in runs:
                    url = project.url(f"/view/{dataset}/{run}")
                    load = cold_load(
                        viewer, url, expected[(dataset, run)], READY_TIMEOUT, STOCK_SLOWDOWN
                    )
                    assert viewer.url.startswith(client), viewer.url  # the stock client opened it
                    seconds.append(load.seconds)
                    problem = load.problem(expected[(dataset, run)])
                    if problem is not None:
                        failures.append(f"load {attempt} of {dataset}/{run}: {problem}")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            f"unpatched client, {STOCK_DELIVERY} delivery, CPU /{STOCK_SLOWDOWN:g}: "
            f"{len(failures)} of {len(seconds)} cold loads lost a layer; "
            f"median {float(np.median(seconds)):.1f} s per load"
        )
    assert not failures, describe_failures(failures)


def test_view_redirects_to_self_hosted_client(
    opened: dict[Any, OpenedView], service: ProjectServer
) -> None:
    for view in opened.values():
        assert view.url.startswith(service.url("/v/")), view.url
        assert "#!" in view.url
    slowest = max(v.seconds for v in opened.values())
    assert slowest < READY_TIMEOUT


def test_self_hosted_client_opens_no_event_stream(
    opened: dict[Any, OpenedView], service: ProjectServer
) -> None:
    """No Python viewer is behind the served client, so it must not hold /events open.

    An unpatched client would, and its status bar would say "Disconnected from Python server"
    each time the stream ends (every 5 s here); the viewer reports count any status message.
    """
    paths = [r.path for r in service.requests.entries]
    assert any(p.startswith("/v/main/main.") for p in paths), "the client bundle was not served"
    assert not [p for p in paths if p.startswith("/events/")]


def test_visible_layers_are_ngstates_choice(opened: dict[Any, OpenedView]) -> None:
    failures = []
    for view in opened.values():
        chosen = visible_names(view.served_state)
        shown = view.report.visible
        applied = visible_names(view.viewer_state)
        if not (chosen == shown == applied):
            failures.append(
                f"{view.dataset}/{view.run}: ngstate chose {sorted(chosen)}, viewer shows "
                f"{sorted(shown)}, viewer state says {sorted(applied)}"
            )
    assert not failures, describe_failures(failures)


def test_image_shader_compiles(opened: dict[Any, OpenedView]) -> None:
    for view in opened.values():
        images = [x for x in view.report.layers if x.type == "image"]
        assert images, f"{view.dataset}/{view.run}: no image layer"
        for layer in images:
            assert layer.shader == "ok", (
                f"{view.dataset}/{view.run} image layer {layer.name!r}: shader {layer.shader} "
                f"{layer.shader_error}"
            )


def annotation_layers(
    opened: dict[Any, OpenedView],
) -> Iterator[tuple[OpenedView, dict[str, Any], dict[str, Any]]]:
    """(view, layer spec, precomputed info) of every precomputed annotation layer."""
    for view in opened.values():
        for spec in layer_specs(view.served_state):
            if spec.get("type") == "annotation":
                info = fetch_info(spec)
                if info is not None:
                    yield view, spec, info


def only_visible(state: dict[str, Any], names: set[str], **changes: Any) -> dict[str, Any]:
    """A copy of ``state`` showing just ``names`` (others hidden), with top-level ``changes``."""
    state = json.loads(json.dumps(state))
    for spec in layer_specs(state):
        spec["visible"] = spec["name"] in names
    state.update(changes)
    return state


def hex_colour(value: str) -> np.ndarray:
    value = value.lstrip("#")
    return np.array([int(value[i : i + 2], 16) for i in (0, 2, 4)], dtype=np.float64)


def toggle_diff(
    viewer: Viewer,
    service: ProjectServer,
    state: dict[str, Any],
    name: str,
    artifacts: Path,
    tag: str,
) -> PixelDiff:
    """Screenshots of ``state`` with layer ``name`` drawn and hidden, and where they differ."""
    viewer.open_state(service.url("/v/main/"), state, READY_TIMEOUT)
    on = viewer.canvas()
    viewer.set_visible(name, False)
    off = viewer.settled_canvas(READY_TIMEOUT)
    save_png(on, artifacts / f"{tag}-on.png")
    save_png(off, artifacts / f"{tag}-off.png")
    return PixelDiff.between(on, off)


def test_many_point_layer_renders_from_sharded_multilevel_index(
    opened: dict[Any, OpenedView], viewer: Viewer, service: ProjectServer, artifacts: Path
) -> None:
    candidates = [
        (view, spec, info)
        for view, spec, info in annotation_layers(opened)
        if len(info.get("spatial", [])) > 1 and all("sharding" in x for x in info["spatial"])
    ]
    assert candidates, "no annotation layer with a sharded multi-level spatial index"
    view, spec, info = max(candidates, key=lambda c: len(c[2]["spatial"]))
    name = spec["name"]
    image = next(x["name"] for x in layer_specs(view.served_state) if x["type"] == "image")
    state = only_visible(view.served_state, {image, name})
    mark = service.requests.mark()
    diff = toggle_diff(viewer, service, state, name, artifacts, "many-points")
    assert diff.fraction > 1e-3, f"layer {name!r} draws nothing visible ({diff.fraction:.2e})"
    colour = spec.get("annotationColor")
    if colour:
        on_colour = np.asarray(diff.mean_colour)
        cosine = (
            on_colour
            @ hex_colour(colour)
            / (np.linalg.norm(on_colour) * np.linalg.norm(hex_colour(colour)) + 1e-9)
        )
        assert cosine > 0.9, f"changed pixels {on_colour} are not the layer colour {colour}"
    # The viewer read the index through byte ranges of shard files (HTTP 206).
    folder = urllib.parse.urlparse(http_of(source_url(spec))).path.rstrip("/") + "/"
    spatial_keys = {x["key"] for x in info["spatial"]}
    reads = [r for r in service.requests.since(mark) if r.path.startswith(folder)]
    ranged = [
        r for r in reads if r.status == 206 and r.path[len(folder) :].split("/")[0] in spatial_keys
    ]
    assert ranged, f"no ranged reads of {name!r}'s spatial shards; requests: {reads[:20]}"
    assert all(r.status in (200, 206, 304) for r in reads), [r for r in reads if r.status >= 400]


def test_segmentation_meshes_render(
    opened: dict[Any, OpenedView], viewer: Viewer, service: ProjectServer, artifacts: Path
) -> None:
    found = []
    for view in opened.values():
        for spec in layer_specs(view.served_state):
            if spec.get("type") == "segmentation":
                info = fetch_info(spec)
                if info is not None and info.get("mesh"):
                    found.append((view, spec, info))
    assert found, "no segmentation layer with meshes in any view"
    failures = []
    for view, spec, info in found:
        name = spec["name"]
        # 3-D panel only, without cross-section planes: whatever changes is the mesh.
        state = only_visible(view.served_state, {name}, layout="3d", showSlices=False)
        mark = service.requests.mark()
        tag = f"mesh-{view.dataset}-{view.run}-{name}".replace(" ", "_")
        diff = toggle_diff(viewer, service, state, name, artifacts, tag)
        folder = urllib.parse.urlparse(http_of(source_url(spec))).path.rstrip("/") + "/"
        mesh_reads = [
            r for r in service.requests.since(mark) if r.path.startswith(folder + info["mesh"])
        ]
        if diff.fraction < 1e-3 or not mesh_reads:
            failures.append(
                f"{view.dataset}/{view.run} {name!r}: changed {diff.fraction:.2e} of the 3-D "
                f"view, {len(mesh_reads)} mesh requests, segments={spec.get('segments')}"
            )
    assert not failures, describe_failures(failures)


# The 3-D panel's box on the canvas (logical pixels: left, top, width, height).
PERSPECTIVE_BOX_JS = """
const p = Array.from(window.viewer.display.panels)
    .find((x) => x.visible && x.sliceView === undefined && x.projectionParameters);
const pp = p.projectionParameters.value;
return [p.canvasRelativeLogicalLeft, p.canvasRelativeLogicalTop, pp.logicalWidth,
        pp.logicalHeight, window.devicePixelRatio || 1];
"""


def _central(pixels: np.ndarray, box: list[float], half: float = 0.02) -> np.ndarray:
    """The middle of the 3-D panel (where the camera position is drawn): a square of
    ``2 * half`` of the panel's smaller side."""
    left, top, width, height, ratio = box
    x, y = round((left + width / 2) * ratio), round((top + height / 2) * ratio)
    r = max(2, round(half * min(width, height) * ratio))
    return pixels[y - r : y + r, x - r : x + r]


def first_mesh_layer(opened: dict[Any, OpenedView], suffix: str) -> tuple[OpenedView, dict]:
    """The first view with a mesh layer whose output folder ends in ``suffix``, and the layer."""
    for view in opened.values():
        for spec in layer_specs(view.served_state):
            if spec.get("type") == "segmentation" and source_url(spec).rstrip("/").endswith(suffix):
                return view, spec
    raise AssertionError(f"no {suffix} layer in any view")


def assert_ranged_mesh_reads(service: ProjectServer, mark: int, spec: dict[str, Any]) -> None:
    """The viewer read the layer's mesh shard through byte ranges since ``mark``."""
    folder = urllib.parse.urlparse(http_of(source_url(spec))).path.rstrip("/") + "/mesh/"
    reads = [r for r in service.requests.since(mark) if r.path.startswith(folder)]
    assert any(r.status == 206 for r in reads), f"no ranged mesh reads: {reads[:10]}"


def test_particle_models_draw_where_the_picks_are(
    opened: dict[Any, OpenedView],
    viewer: Viewer,
    service: ProjectServer,
    artifacts: Path,
    data_root: Path,
) -> None:
    """The 3-D panel centred on a pick shows its model there (and nothing with the layer
    hidden); centred beside the tomogram, nothing; the mesh shards were read."""
    from cryoet_ng.catalogue import Catalogue

    view, spec = first_mesh_layer(opened, "_orientedmesh")
    name = spec["name"]
    assert name in visible_names(view.served_state)  # shown by default
    run = Catalogue.scan(data_root, [view.dataset]).run(view.dataset, view.run)
    assert run is not None
    annotation = next(a for a in run.annotations if any(f.mesh_source_path for f in a.files))
    ndjson = next(f.path for f in annotation.files if f.shape == "OrientedPoint")
    tomogram = run.default_tomogram()
    assert isinstance(ndjson, Path) and tomogram is not None and tomogram.size_xyz
    records = [json.loads(line) for line in ndjson.read_text().splitlines()]
    ratio = annotation.voxel_spacing / tomogram.voxel_spacing
    pick = [records[0]["location"][a] * ratio for a in "xyz"]
    model_voxels = 8 * ratio  # the sample's model: head radius 3 voxels, stalk below
    camera = {
        "layout": "3d",
        "showSlices": False,
        "showAxisLines": False,
        "projectionScale": 5 * model_voxels,
    }

    mark = service.requests.mark()
    state = only_visible(view.served_state, {name}, position=pick, **camera)
    viewer.open_state(service.url("/v/main/"), state, READY_TIMEOUT)
    on = viewer.canvas()
    box = viewer.js(PERSPECTIVE_BOX_JS)
    viewer.set_visible(name, False)
    off = viewer.settled_canvas(READY_TIMEOUT)
    save_png(on, artifacts / "particle-models-on.png")
    save_png(off, artifacts / "particle-models-off.png")
    centre = _central(PixelDiff.between(on, off).changed, box)
    assert centre.mean() > 0.5, f"the model at {pick} covers {centre.mean():.0%} of the centre"
    assert _central(off, box).max() < 24, "something is drawn at the pick with the layer hidden"
    assert_ranged_mesh_reads(service, mark, spec)

    beside = [-4.0 * max(tomogram.size_xyz), pick[1], pick[2]]  # no pick within reach
    state = only_visible(view.served_state, {name}, position=beside, **camera)
    viewer.open_state(service.url("/v/main/"), state, READY_TIMEOUT)
    empty = viewer.canvas()
    save_png(empty, artifacts / "particle-models-beside.png")
    assert _central(empty, viewer.js(PERSPECTIVE_BOX_JS)).max() < 24, "model where no pick is"


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """``mask`` grown by ``radius`` pixels (a square neighbourhood)."""
    grown = mask.copy()
    padded = np.pad(mask, radius)
    h, w = mask.shape
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            grown |= padded[dy : dy + h, dx : dx + w]
    return grown


def test_triangular_mesh_draws_where_the_surface_is(
    opened: dict[Any, OpenedView],
    viewer: Viewer,
    service: ProjectServer,
    artifacts: Path,
    data_root: Path,
) -> None:
    """The TriangularMesh layer is shown by default, loads without a layer error, and in an
    orthographic 3-D view its pixels lie on the glb's own vertices (read from the annotation
    file, scaled from its spacing to the tomogram's): most of the surface's footprint is
    drawn, nothing outside it, and nothing at all with the layer hidden."""
    from cryoet_ng.catalogue import Catalogue
    from precompute.meshes.glb import read_glb

    view, spec = first_mesh_layer(opened, "_triangularmesh")
    name = spec["name"]
    assert name in visible_names(view.served_state), f"{name!r} is hidden by default"
    layer = next(x for x in view.report.layers if x.name == name)
    assert layer.ok and not layer.errors, f"{name!r} failed to load: {layer.errors}"

    annotation = annotation_of(data_root, view, spec)
    glb = next(f.path for f in annotation.files if f.shape == "TriangularMesh")
    run = Catalogue.scan(data_root, [view.dataset]).run(view.dataset, view.run)
    tomogram = None if run is None else run.default_tomogram()
    assert tomogram is not None
    mesh = read_glb(glb, 10**7)
    vertices = mesh.vertices * (annotation.voxel_spacing / tomogram.voxel_spacing)
    state = only_visible(
        view.served_state,
        {name},
        layout={"type": "3d", "orthographicProjection": True},
        projectionOrientation=[0.0, 0.0, 0.0, 1.0],  # looking along z
        showSlices=False,
        showScaleBar=False,
        **NO_CHROME,
    )
    mark = service.requests.mark()
    viewer.open_state(service.url("/v/main/"), state, READY_TIMEOUT)
    on = viewer.canvas()
    geometry = viewer.panel_geometry("perspective")
    viewer.set_visible(name, False)
    off = viewer.settled_canvas(READY_TIMEOUT)
    save_png(on, artifacts / "triangular-mesh-on.png")
    save_png(off, artifacts / "triangular-mesh-off.png")

    # The surface's footprint: its vertices' pixels, grown by the longest projected edge.
    uv = geometry.pixel_of(vertices)
    corners = uv[mesh.faces]
    edge = float(np.linalg.norm(corners - np.roll(corners, 1, axis=1), axis=2).max())
    footprint = np.zeros(on.shape[:2], bool)
    u, v = np.round(uv).astype(np.int64).T
    inside = (u >= 0) & (u < on.shape[1]) & (v >= 0) & (v < on.shape[0])
    footprint[v[inside], u[inside]] = True
    footprint = _dilate(footprint, max(2, int(np.ceil(edge))))
    changed = PixelDiff.between(on, off).changed
    left, top, width, height = geometry.box
    panel = np.zeros_like(changed)
    panel[top : top + height, left : left + width] = True
    assert footprint[panel].mean() > 0.02, "the surface is not in the 3-D panel's view"
    drawn = changed[footprint & panel].mean()
    stray = changed[panel & ~_dilate(footprint, 3)].mean()
    print(f"triangular mesh: {drawn:.0%} of its footprint drawn, {stray:.2%} of the rest")
    assert drawn > 0.5, f"only {drawn:.0%} of the surface's footprint is drawn"
    assert stray < 1e-3, f"{stray:.2%} of the 3-D panel outside the surface changed"
    background = np.median(off[panel], axis=0)
    lit = np.abs(off.astype(np.int16) - background).max(axis=-1) > 24
    assert lit[panel].mean() < 1e-3, "something is drawn with the mesh layer hidden"
    assert_ranged_mesh_reads(service, mark, spec)


def test_saved_state_round_trip(
    opened: dict[Any, OpenedView], viewer: Viewer, service: ProjectServer, artifacts: Path
) -> None:
    view = next(iter(opened.values()))
    # Change something a regenerated state would not have, so /s/<id> must be *this* state.
    state = json.loads(json.dumps(view.served_state))
    layers = layer_specs(state)
    flipped = layers[-1]
    flipped["visible"] = flipped.get("visible", True) is False
    request = urllib.request.Request(
        service.url("/states"),
        data=json.dumps(state).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=20) as response:
        saved = json.load(response)
    assert set(saved) >= {"id", "url"}, saved
    viewer.get(saved["url"])
    report = viewer.wait_ready(READY_TIMEOUT)
    save_png(viewer.canvas(), artifacts / "saved-state.png")
    assert dropped_layers(report, state) is None, dropped_layers(report, state)
    assert [x.name for x in report.layers] == [x["name"] for x in layers]
    assert report.visible == visible_names(state)
    assert all(x.ok for x in report.layers), report.describe()
    assert "/s/" not in viewer.url and "#!" in viewer.url


def test_index_page_view_tomogram_link_opens_ready_viewer(
    opened: dict[Any, OpenedView], viewer: Viewer, service: ProjectServer, artifacts: Path
) -> None:
    from selenium.webdriver.common.by import By

    viewer.get(service.url("/"))
    links = viewer.driver.find_elements(By.LINK_TEXT, "View Tomogram")
    assert len(links) == len(opened), f"{len(links)} View Tomogram links for {len(opened)} runs"
    href = links[-1].get_attribute("href")
    links[-1].click()
    report = viewer.wait_ready(READY_TIMEOUT)
    save_png(viewer.canvas(), artifacts / "index-link.png")
    dataset, run = urllib.parse.urlparse(href).path.split("/")[-2:]
    view = opened[(dataset, run)]
    assert viewer.url.startswith(service.url("/v/")), viewer.url
    assert dropped_layers(report, view.served_state) is None, dropped_layers(
        report, view.served_state
    )
    assert all(x.ok for x in report.layers), report.describe()
    assert report.visible == visible_names(view.served_state)


def read_omezarr_level0(path: Path) -> np.ndarray:
    """Level 0 of an OME-Zarr image (z, y, x), read with tensorstore."""
    import tensorstore as ts

    spec = {"driver": "zarr", "kvstore": {"driver": "file", "path": str(path / "0")}}
    return np.asarray(ts.open(spec, read=True).result().read().result())


def sample_at(volume_zyx: np.ndarray, index_xyz: np.ndarray, fill: float = 0) -> np.ndarray:
    """``volume[z, y, x]`` at integer xyz indices (..., 3); ``fill`` outside or at NaN."""
    valid = ~np.isnan(index_xyz).any(axis=-1)
    out = np.full(index_xyz.shape[:-1], fill, dtype=np.float64)
    ii = np.floor(index_xyz[valid]).astype(np.int64)
    shape_xyz = np.array(volume_zyx.shape[::-1])
    ok = np.all((ii >= 0) & (ii < shape_xyz), axis=1)
    values = np.full(len(ii), fill, dtype=np.float64)
    values[ok] = volume_zyx[ii[ok, 2], ii[ok, 1], ii[ok, 0]]
    out[valid] = values
    return out


def test_binned_mask_lands_on_the_full_resolution_structure(
    data_root: Path,
    opened: dict[Any, OpenedView],
    viewer: Viewer,
    artifacts: Path,
    service: ProjectServer,
) -> None:
    """A mask stored at 2x binning is drawn where its voxels are in the full-size tomogram.

    Both are checked against the data files through the viewer's own pixel -> global mapping:
    the tomogram's full-resolution voxel i spans global [i, i + 1), so binned voxel j must span
    [2j, 2j + 2). The screenshot of the binned layer alone is compared with the binned mask
    sampled at floor(global / 2); the screenshot of the tomogram alone with the tomogram
    sampled at floor(global).
    """
    from cryoet_ng.catalogue import Catalogue

    catalogue = Catalogue.scan(data_root)
    found = []
    for run in catalogue.runs():
        tomogram = run.default_tomogram()
        for annotation in run.annotations:
            for file in annotation.files:
                if (
                    tomogram is not None
                    and file.shape == "SegmentationMask"
                    and file.format == "zarr"
                    and annotation.voxel_spacing > 1.5 * tomogram.voxel_spacing
                ):
                    found.append((run, tomogram, annotation, file))
    assert found, "the sample has no binned segmentation mask"
    run, tomogram, annotation, file = found[0]
    ratio = annotation.voxel_spacing / tomogram.voxel_spacing
    view = opened[(run.dataset_id, run.name)]
    from cryoet_ng.layout import output_name

    folder = output_name(annotation, file.shape)
    name = next(x["name"] for x in layer_specs(view.served_state) if folder in source_url(x))
    image = next(x["name"] for x in layer_specs(view.served_state) if x["type"] == "image")

    mask = read_omezarr_level0(file.path) != 0
    jz = int(np.argmax(mask.sum(axis=(1, 2))))
    ys, xs = np.nonzero(mask[jz])
    # Centre of the mask's fullest binned slice, in full-resolution (global) voxels.
    position = [ratio * (xs.mean() + 0.5), ratio * (ys.mean() + 0.5), ratio * (jz + 0.5)]
    hidden_ui = {"layerListPanel": {"visible": False}, "selectedLayer": {"visible": False}}
    state = only_visible(view.served_state, {name}, layout="xy", position=position, **hidden_ui)
    viewer.open_state(service.url("/v/main/"), state, READY_TIMEOUT)
    drawn = viewer.canvas()
    where = viewer.slice_geometry().global_coordinates(drawn.shape[:2])
    save_png(drawn, artifacts / "binned-mask.png")

    shown = drawn.max(axis=-1) > 30  # the background is black
    expected = sample_at(mask, where / ratio) > 0
    iou = (shown & expected).sum() / max((shown | expected).sum(), 1)
    print(
        f"binned mask {name!r}: drawn {shown.sum()} px, expected {expected.sum()} px, IoU {iou:.3f}"
    )
    assert iou > 0.7, (
        f"layer {name!r} ({annotation.voxel_spacing} Å voxels) is drawn {shown.sum()} px, "
        f"expected {expected.sum()} px at its physical place; overlap (IoU) only {iou:.2f}"
    )

    # The tomogram in the same view: its pixels follow its full-resolution voxels.
    state = only_visible(view.served_state, {image}, layout="xy", position=position, **hidden_ui)
    viewer.open_state(service.url("/v/main/"), state, READY_TIMEOUT)
    grey = viewer.canvas().mean(axis=-1)
    save_png(viewer.canvas(), artifacts / "binned-mask-tomogram.png")
    assert tomogram.omezarr_path is not None
    values = sample_at(read_omezarr_level0(tomogram.omezarr_path), where, fill=np.nan)
    inside = ~np.isnan(values)
    correlation = np.corrcoef(grey[inside], values[inside])[0, 1]
    print(f"tomogram pixels vs voxels: r = {correlation:.3f} over {inside.sum()} px")
    assert correlation > 0.5, f"tomogram pixels do not follow its voxels (r={correlation:.2f})"


# -- what a biologist sees: particles at their size, orientation, volume rendering, shells ---

NO_CHROME = {
    "layerListPanel": {"visible": False},
    "selectedLayer": {"visible": False},
    "toolPalettes": {},
    "showAxisLines": False,
}


def first_run_with(
    opened: dict[Any, OpenedView], needle: str, layer_type: str, shader_has: str = ""
) -> tuple[OpenedView, dict[str, Any]]:
    """The first opened run with a layer of ``layer_type`` whose name contains ``needle`` (and
    whose shader contains ``shader_has``: layer names do not say the shape), and that layer."""
    for view in opened.values():
        for spec in layer_specs(view.served_state):
            if (
                needle in spec["name"]
                and spec["type"] == layer_type
                and shader_has in spec.get("shader", "")
            ):
                return view, spec
    raise AssertionError(f"no {layer_type} layer named like {needle!r} in {list(opened)}")


def annotation_of(data_root: Path, view: OpenedView, spec: dict[str, Any]) -> Any:
    """The catalogue annotation behind a layer (its output folder ends the source URL)."""
    from cryoet_ng.catalogue import Catalogue
    from cryoet_ng.layout import Layout

    run = Catalogue.scan(data_root).run(view.dataset, view.run)
    assert run is not None
    layout = Layout(data_root)
    url = urllib.parse.unquote(source_url(spec)).rstrip("/")
    for annotation in run.annotations:
        for file in annotation.files:
            output = layout.annotation_output(run, annotation, file.shape).relative_to(data_root)
            if annotation.is_converted(file) and url.endswith(output.as_posix()):
                return annotation
    raise AssertionError(f"no annotation for layer {spec['name']!r} ({url})")


def locations(annotation: Any) -> np.ndarray:
    """(n, 3) xyz voxel locations of a point-like annotation's ndjson file."""
    path = next(f.path for f in annotation.files if f.format == "ndjson")
    rows = [json.loads(line)["location"] for line in path.read_text().splitlines() if line]
    return np.array([[r["x"], r["y"], r["z"]] for r in rows], dtype=np.float64)


def ring_radius(pixels: np.ndarray, centre_uv: np.ndarray, colour: str, within: float) -> float:
    """Median distance from ``centre_uv`` of the pixels drawn in ``colour`` (a marker's ring)."""
    rgb = pixels.astype(np.float64)
    target = hex_colour(colour)
    cosine = (rgb @ target) / (np.linalg.norm(rgb, axis=-1) * np.linalg.norm(target) + 1e-9)
    lit = (cosine > 0.97) & (rgb.sum(axis=-1) > 0.6 * target.sum())
    v, u = np.mgrid[0 : pixels.shape[0], 0 : pixels.shape[1]]
    distance = np.hypot(u - centre_uv[0], v - centre_uv[1])
    ring = lit & (distance < within)
    assert ring.sum() > 10, f"no marker in {colour} within {within:.0f} px of {centre_uv}"
    return float(np.median(distance[ring]))


def test_particle_markers_cover_the_physical_diameter_at_every_zoom(
    data_root: Path,
    opened: dict[Any, OpenedView],
    viewer: Viewer,
    service: ProjectServer,
    artifacts: Path,
) -> None:
    from cryoet_ng.particles import metadata_diameter

    view, spec = first_run_with(opened, "cytosolic ribosome", "annotation", "setPointMarkerSize")
    annotation = annotation_of(data_root, view, spec)
    diameter = metadata_diameter(annotation.metadata["annotation_object"])
    assert diameter is not None, "the sample's ribosomes carry a metadata diameter"
    radius_voxels = diameter / annotation.voxel_spacing / 2
    points = locations(annotation)
    centre = points[len(points) // 2] + 0.5  # voxel centre (integers are voxel corners)
    radii = []
    for scale in (0.5, 0.25):  # tomogram voxels per screen pixel: then twice the zoom
        state = only_visible(
            view.served_state,
            {spec["name"]},
            layout="xy",
            position=centre.tolist(),
            crossSectionScale=scale,
            **NO_CHROME,
        )
        viewer.open_state(service.url("/v/main/"), state, READY_TIMEOUT)
        pixels = viewer.canvas()
        save_png(pixels, artifacts / f"marker-size-{scale}.png")
        geometry = viewer.slice_geometry()
        uv = geometry.pixel_of(centre)
        px_per_voxel = float(
            np.linalg.norm(geometry.pixel_of(centre + np.array([1.0, 0.0, 0.0])) - uv)
        )
        expected = radius_voxels * px_per_voxel
        radius = ring_radius(pixels, uv, spec["annotationColor"], within=1.5 * expected)
        print(
            f"zoom {1 / scale:g} px/voxel: ring radius {radius:.1f} px, particle {expected:.1f} px"
        )
        assert abs(radius - expected) <= 0.2 * expected, (scale, radius, expected)
        radii.append(radius)
    assert radii[1] / radii[0] == pytest.approx(2.0, rel=0.2)


def test_oriented_pick_centre_marker_has_the_layer_colour(
    data_root: Path,
    opened: dict[Any, OpenedView],
    viewer: Viewer,
    service: ProjectServer,
    artifacts: Path,
) -> None:
    view, spec = first_run_with(opened, "", "annotation", "prop_line_color")
    centre = locations(annotation_of(data_root, view, spec))[0]
    state = only_visible(
        view.served_state,
        {spec["name"]},
        layout="xy",
        position=centre.tolist(),
        crossSectionScale=0.25,
        **NO_CHROME,
    )
    viewer.open_state(service.url("/v/main/"), state, READY_TIMEOUT)
    pixels = viewer.canvas()
    save_png(pixels, artifacts / "oriented-centre.png")
    u, v = np.round(viewer.slice_geometry().pixel_of(centre)).astype(int)
    drawn = pixels[v - 1 : v + 2, u - 1 : u + 2].reshape(-1, 3).astype(np.float64).mean(axis=0)
    expected = hex_colour(spec["annotationColor"])
    assert np.abs(drawn - expected).max() < 30, f"centre {drawn} vs layer colour {expected}"
    # The axes: the particle's z axis is drawn in the layer colour beyond the marker.
    assert (np.abs(pixels.astype(np.float64) - expected).max(axis=-1) < 30).sum() > 60


def test_enclosing_shell_mesh_does_not_hide_the_particles_inside(
    opened: dict[Any, OpenedView], viewer: Viewer, service: ProjectServer, artifacts: Path
) -> None:
    view, shell = first_run_with(opened, "membrane", "segmentation")
    assert shell["objectAlpha"] < 1.0, "the membrane encloses the shown picks: see-through mesh"
    _, picks = first_run_with(opened, "cytosolic ribosome", "annotation", "setPointMarkerSize")
    state = only_visible(
        view.served_state,
        {shell["name"], picks["name"]},
        layout="3d",
        showSlices=False,
        **NO_CHROME,
    )
    shown = toggle_diff(viewer, service, state, picks["name"], artifacts, "shell-see-through")
    # The same with the mesh opaque, as before: the picks inside would be hidden.
    for spec in layer_specs(state):
        if spec["name"] == shell["name"]:
            spec["objectAlpha"] = 1.0
    hidden = toggle_diff(viewer, service, state, picks["name"], artifacts, "shell-opaque")
    print(
        f"picks inside the shell change {shown.fraction:.2%} of the 3-D view "
        f"(opaque mesh: {hidden.fraction:.2%})"
    )
    assert shown.fraction > 2e-3 and shown.fraction > 3 * hidden.fraction


# -- what each layer is (issue 15) -------------------------------------------------------------

LAYER_NAME = r"^\d+ .+ · (ground truth|prediction) · \S.*$"
_SEGMENT_PROPERTIES_JS = """
const ml = window.viewer.layerManager.managedLayers.find((m) => m.name === arguments[0]);
if (!ml || !ml.layer) return null;
const group = ml.layer.displayState.originalSegmentationGroupState
    || ml.layer.displayState.segmentationGroupState.value;
const map = group.segmentPropertyMap.value;
if (!map || !map.segmentPropertyMap.inlineProperties) return null;
return {
  properties: map.segmentPropertyMap.inlineProperties.properties.map((p) => ({
    id: p.id, type: p.type, first: typeof p.values[0] === "string" ? p.values[0] : null})),
  label: map.getSegmentLabel(1n) || null,
};
"""
_LAYER_BAR_JS = """
return Array.from(document.querySelectorAll('.neuroglancer-layer-item-label'))
    .map((e) => e.textContent);
"""


def test_layer_names_carry_status_and_method(
    opened: dict[Any, OpenedView], viewer: Viewer, service: ProjectServer
) -> None:
    import re

    view = opened[("10000", "TS_026")]
    names = [x.name for x in view.report.layers if x.type != "image"]
    assert names and all(re.match(LAYER_NAME, name) for name in names), names
    for expected in (
        "100 cytosolic ribosome · ground truth · manual",
        "101 cytosolic ribosome · prediction · pyTOM + DeePiCt",
        "105 membrane · prediction · MemBrain-seg",
        "106 vesicle instances · ground truth · manual",
    ):
        assert expected in names
    # The names people read: the layer bar of the page itself.
    viewer.open_state(service.url("/v/main/"), view.served_state, READY_TIMEOUT)
    assert set(names) <= set(viewer.js(_LAYER_BAR_JS))


def test_mask_segment_properties_show_its_authors(
    opened: dict[Any, OpenedView], viewer: Viewer, service: ProjectServer
) -> None:
    view = opened[("10000", "TS_026")]
    name = "106 vesicle instances · ground truth · manual"
    viewer.open_state(service.url("/v/main/"), view.served_state, READY_TIMEOUT)
    deadline = time.monotonic() + 20
    loaded = viewer.js(_SEGMENT_PROPERTIES_JS, name)
    while loaded is None and time.monotonic() < deadline:
        time.sleep(0.2)
        loaded = viewer.js(_SEGMENT_PROPERTIES_JS, name)
    assert loaded is not None, f"{name}: the viewer loaded no segment properties"
    props = {p["id"]: p for p in loaded["properties"]}
    assert props["authors"]["first"] == "Ada Lamella, Ben Tiltseries"
    assert "authors: Ada Lamella, Ben Tiltseries" in props["description"]["first"]
    assert "ground truth" in props["description"]["first"]
    # Segment 1's label as the segment list shows it: the label, then its tags.
    assert loaded["label"] == "vesicle 1 #ground-truth #manual #curator-recommended"


_PROPERTY_TITLES_JS = """
return Array.from(document.querySelectorAll('.neuroglancer-annotation-shader-property'))
    .map((e) => [
        e.querySelector('.neuroglancer-annotation-shader-property-identifier').textContent,
        e.title]);
"""


def test_pick_layer_rendering_tab_describes_the_annotation(
    opened: dict[Any, OpenedView], viewer: Viewer, service: ProjectServer, artifacts: Path
) -> None:
    """The annotation's description (status, method, authors, deposition) is the tool tip of
    the ``name`` property in the pick layer's Rendering tab, where the viewer lists them."""
    view = opened[("10000", "TS_026")]
    name = "100 cytosolic ribosome · ground truth · manual"
    state = json.loads(json.dumps(view.served_state))
    [spec] = [x for x in layer_specs(state) if x["name"] == name]
    spec["tab"] = "rendering"
    state["selectedLayer"] = {"layer": name, "visible": True}
    viewer.open_state(service.url("/v/main/"), state, READY_TIMEOUT)
    deadline, titles = time.monotonic() + 20, {}
    while "prop_name" not in titles and time.monotonic() < deadline:
        time.sleep(0.2)
        titles = dict(viewer.js(_PROPERTY_TITLES_JS))
    save_png(viewer.page(), artifacts / "pick-layer-rendering-tab.png")
    assert "prop_name" in titles, f"{name}: no name property in the Rendering tab: {titles}"
    text = titles["prop_name"]
    assert text.startswith("cytosolic ribosome: ground truth; method: manual"), text
    assert "authors: Ada Lamella, Ben Tiltseries" in text and "deposition" in text, text
    assert titles.get("prop_diameter") == "particle diameter (voxels)"


_PAGE_WIDTH_JS = "return [document.documentElement.scrollWidth, window.innerWidth];"


def test_index_page_shows_missing_and_stale_layers(
    viewer: Viewer, service: ProjectServer, data_root: Path, artifacts: Path
) -> None:
    """A stale layer (failed re-run beside an older output) and a layer left out (its output
    missing after a failed first run), on the page as a browser shows it, also at phone
    width. The tree is put back afterwards."""
    from cryoet_ng.catalogue import Catalogue
    from cryoet_ng.failures import FailureRecord, write_failure
    from cryoet_ng.layout import Layout, failure_path, summary_path
    from tools.browser.chromium import WINDOW_SIZE

    catalogue = Catalogue.scan(data_root)
    layout = Layout(data_root)

    def output(dataset: str, run: str, object_name: str) -> Path:
        found = catalogue.run(dataset, run)
        assert found is not None
        annotation = next(a for a in found.annotations if a.object_name == object_name)
        return layout.annotation_output(found, annotation, "Point")

    stale, gone = (
        output("10000", "TS_026", "cytosolic ribosome"),
        output("10001", "TS_100", "nucleosome"),
    )
    aside = gone.with_name(".aside-" + gone.name)
    records = [failure_path(summary_path(stale)), failure_path(summary_path(gone))]
    gone.rename(aside)
    write_failure(records[0], FailureRecord("a", "10000/TS_026/x.ndjson", "bad rotation", 5))
    write_failure(records[1], FailureRecord("b", "10001/TS_100/y.ndjson", "not JSON", 9))
    try:
        deadline, text = time.monotonic() + 20, ""
        while "stale" not in text and time.monotonic() < deadline:
            time.sleep(0.5)  # the state service re-checks its inputs every second
            viewer.get(service.url("/"))
            text = viewer.js("return document.body.innerText;")
        assert "10000/TS_026/x.ndjson line 5: bad rotation" in text
        assert "stale: the last precompute of its input failed" in text
        left = viewer.js(
            "return Array.from(document.querySelectorAll('li.left-out')).map(e => e.innerText);"
        )
        [failed] = [x for x in left if x.startswith("101 nucleosome")]
        assert "failed" in failed and "10001/TS_100/y.ndjson line 9: not JSON" in failed
        viewer.driver.save_screenshot(str(artifacts / "index-stale-missing.png"))
        viewer.driver.set_window_size(390, 844)  # a phone
        viewer.get(service.url("/"))
        scroll_width, inner_width = viewer.js(_PAGE_WIDTH_JS)
        viewer.driver.save_screenshot(str(artifacts / "index-phone.png"))
        assert scroll_width <= inner_width, "the page scrolls sideways at phone width"
    finally:
        viewer.driver.set_window_size(*WINDOW_SIZE)
        for record in records:
            record.unlink(missing_ok=True)
        aside.rename(gone)
