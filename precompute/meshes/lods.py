"""Levels of detail of one mesh: real quadric simplification (zmesh's fast-quadric reducer).

Why zmesh's ``simplify_fqmr``: it is already a dependency (mask meshing) and measured
fastest of the three candidates on this machine (``python -m benchmarks.meshes`` prints
the comparison): 20,480 -> 5,000 triangles 70 ms against 105 ms for fast-simplification
and 129 ms for pyfqmr; 327,680 -> 80,000 triangles 1.3 s against 1.8 s and 2.1 s.

Each level is simplified from the previous one (igneous does the same), so the chain costs
about one pass over the full mesh. Open borders are kept in place (a membrane sheet keeps
its outline at every level).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import zmesh

from cryoet_ng.config import MeshConfig
from precompute.meshes.glb import TriangleMesh


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
    """``mesh`` reduced to about ``target`` triangles (never more than it has)."""
    if target >= len(mesh.faces):
        return mesh
    source = zmesh.Mesh(mesh.vertices.astype(np.float32), mesh.faces.astype(np.uint32), None)
    out = zmesh.simplify_fqmr(source, target_count=int(target), preserve_border=True)
    # The simplifier returns a compact indexed mesh (no duplicate or unused vertices).
    return TriangleMesh(out.vertices.astype(np.float64), out.faces.astype(np.int64))


def build_levels(mesh: TriangleMesh, targets: list[int]) -> Levels:
    """The chain of simplified meshes for ``targets`` (the first may already simplify)."""
    chain = Chain(mesh, targets)
    level = 0
    while chain.get(level) is not None:
        level += 1
    return chain.levels()


class Chain:
    """The levels of detail, simplified on first use, so a caller can encode one level
    while the next is simplified. A level that does not have fewer triangles than the one
    before ends the chain (the simplifier stops when every collapse would exceed its error
    bound)."""

    def __init__(self, mesh: TriangleMesh, targets: list[int]) -> None:
        self.meshes = [simplify(mesh, targets[0])]
        self.targets = targets
        self.ended = False

    def get(self, level: int) -> TriangleMesh | None:
        while len(self.meshes) <= level and not self.ended:
            if len(self.meshes) >= len(self.targets):
                self.ended = True
                break
            nxt = simplify(self.meshes[-1], self.targets[len(self.meshes)])
            if len(nxt.faces) >= len(self.meshes[-1].faces) or len(nxt.faces) == 0:
                self.ended = True
                break
            self.meshes.append(nxt)
        return self.meshes[level] if level < len(self.meshes) else None

    def levels(self) -> Levels:
        scales = np.maximum.accumulate([max(median_edge(m), 1e-6) for m in self.meshes])
        return Levels(list(self.meshes), [float(s) for s in scales])


def median_edge(mesh: TriangleMesh, sample: int = 20_000) -> float:
    """Median edge length, from at most ``sample`` evenly spread triangles."""
    step = max(1, len(mesh.faces) // sample)
    v = mesh.vertices[mesh.faces[::step]]
    lengths = np.linalg.norm(v - np.roll(v, 1, axis=1), axis=2)
    return float(np.median(lengths)) if lengths.size else 0.0
