"""Levels of detail of one mesh: real quadric simplification (meshoptimizer's edge collapser).

Why meshoptimizer's ``simplify``: it is already a dependency (segmentation meshes), runs
without the GIL (a ctypes call, so the next level simplifies while this one is cut and
encoded), and is the fastest measured here (``python -m benchmarks.meshes`` prints the
comparison): the 200,000-triangle benchmark surface to 57,000 triangles in 0.13 s against
0.26 s for zmesh's ``simplify_fqmr`` (load average 2), which was itself faster than
fast-simplification and pyfqmr. Its collapses keep existing vertices; against zmesh the
enclosed volume moves by 0.11% instead of 0.04% at 14,000 triangles, and the levels stay
closed and manifold.

Each level is simplified from the previous one (igneous does the same), so the chain costs
about one pass over the full mesh. Open borders are locked (a membrane sheet keeps its
outline at every level).
"""

from __future__ import annotations

import math
from concurrent.futures import Executor, Future
from dataclasses import dataclass

import meshoptimizer
import numpy as np

from cryoet_ng.config import MeshConfig
from precompute.meshes.glb import TriangleMesh

# No error bound (1.0 is the whole mesh's extent): the level's triangle target decides.
_ANY_ERROR = 1.0


@dataclass(frozen=True)
class Levels:
    """``meshes[l]`` is level of detail ``l`` (0 finest); ``scales[l]`` its resolution."""

    meshes: list[TriangleMesh]
    scales: list[float]  # median edge length, non-decreasing, in the meshes' units


def face_targets(finest: int, coarsest: int, options: MeshConfig) -> list[int]:
    """Triangle targets from ``finest`` down to ``coarsest``: ``options.reduction`` times
    fewer per level, at most ``options.lods`` levels (the ratio grows to fit)."""
    coarsest = max(1, min(coarsest, finest))
    ratio = max(options.reduction, 1.0 + 1e-9)
    count = 1 + math.ceil(math.log(finest / coarsest, ratio) - 1e-9) if finest > coarsest else 1
    count = max(1, min(count, options.lods))
    if count == 1:
        return [finest]
    ratio = (finest / coarsest) ** (1.0 / (count - 1))
    return [max(coarsest, round(finest / ratio**level)) for level in range(count)]


def simplify(mesh: TriangleMesh, target: int) -> TriangleMesh:
    """``mesh`` reduced to about ``target`` triangles (never more than it has), its unused
    vertices dropped."""
    if target >= len(mesh.faces):
        return mesh
    indices = np.ascontiguousarray(mesh.faces, np.uint32).reshape(-1)
    kept = np.empty_like(indices)
    count = meshoptimizer.simplify(
        kept,
        indices,
        np.ascontiguousarray(mesh.vertices, np.float32),
        target_index_count=3 * int(target),
        target_error=_ANY_ERROR,
        options=meshoptimizer.SIMPLIFY_LOCK_BORDER,
    )
    return compact(mesh.vertices, kept[:count].reshape(-1, 3))


def compact(vertices: np.ndarray, faces: np.ndarray) -> TriangleMesh:
    """The vertices ``faces`` use, in their order, and the faces renumbered (no sort)."""
    used = np.zeros(len(vertices), bool)
    used[faces] = True
    index = np.cumsum(used) - 1
    return TriangleMesh(vertices[used], index[faces].astype(np.int64))


def build_levels(mesh: TriangleMesh, targets: list[int]) -> Levels:
    """The chain of simplified meshes for ``targets`` (the first may already simplify)."""
    chain = Chain(mesh, targets)
    level = 0
    while chain.get(level) is not None:
        level += 1
    return chain.levels()


class Chain:
    """The levels of detail, each simplified from the one before.

    Without an executor a level is simplified on first use; with one (a single worker, so
    the levels run in order) all of them are submitted at once, and a caller cuts and
    encodes one level while the next is simplified (then the chain is only read, so any
    thread may ask for levels). A level that does not have fewer triangles than the one
    before ends the chain (nothing collapses any more)."""

    def __init__(
        self, mesh: TriangleMesh, targets: list[int], executor: Executor | None = None
    ) -> None:
        self.targets = targets
        self._levels: list[TriangleMesh | Future[TriangleMesh | None] | None] = [
            simplify(mesh, targets[0])
        ]
        if executor is not None:
            for target in targets[1:]:
                self._levels.append(executor.submit(_coarser, self._levels[-1], target))

    def get(self, level: int) -> TriangleMesh | None:
        """Level ``level``, or None past the last one."""
        if level >= len(self.targets):
            return None
        while len(self._levels) <= level:  # on first use (no executor)
            self._levels.append(_coarser(self._levels[-1], self.targets[len(self._levels)]))
        item = self._levels[level]
        return item.result() if isinstance(item, Future) else item

    def meshes(self) -> list[TriangleMesh]:
        """Every level's mesh (the whole chain is made first)."""
        meshes = []
        for level in range(len(self.targets)):
            mesh = self.get(level)
            if mesh is None:
                break
            meshes.append(mesh)
        return meshes

    def levels(self) -> Levels:
        """Every level, with its scale."""
        meshes = self.meshes()
        scales = np.maximum.accumulate([max(median_edge(m), 1e-6) for m in meshes])
        return Levels(meshes, [float(s) for s in scales])


def _coarser(
    previous: TriangleMesh | Future[TriangleMesh | None] | None, target: int
) -> TriangleMesh | None:
    """``previous`` simplified to ``target``, or None when it is None or nothing collapses."""
    mesh = previous.result() if isinstance(previous, Future) else previous
    if mesh is None:
        return None
    nxt = simplify(mesh, target)
    if len(nxt.faces) >= len(mesh.faces) or len(nxt.faces) == 0:
        return None
    return nxt


def median_edge(mesh: TriangleMesh, sample: int = 20_000) -> float:
    """Median edge length, from at most ``sample`` evenly spread triangles."""
    step = max(1, len(mesh.faces) // sample)
    v = mesh.vertices[mesh.faces[::step]]
    lengths = np.linalg.norm(v - np.roll(v, 1, axis=1), axis=2)
    return float(np.median(lengths)) if lengths.size else 0.0
