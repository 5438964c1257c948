"""Baseline child for ``benchmarks.meshes``: the portal's helper library, called as the
portal backend calls it (``ingestion_tools/scripts/importers/visualization_precompute.py``).

Runs in the helper library's own virtualenv (its pinned numpy < 2, igneous 4.30, cloud-volume
10.5), with the library's source on ``PYTHONPATH``; imports nothing from this project.

    python benchmarks/portal_meshes.py oriented|triangular INPUT_DIR OUT_DIR SPACING

Prints one JSON line: wall and CPU seconds (all threads), peak RSS.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path


def main() -> None:
    case, source, out, spacing = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
    voxel_spacing = float(spacing)
    # Imports before the clock, as for ours.
    from cryoet_data_portal_neuroglancer.io import load_glb_file
    from cryoet_data_portal_neuroglancer.precompute import mesh
    from cryoet_data_portal_neuroglancer.precompute.instance_mesh import encode_oriented_mesh
    from cryoet_data_portal_neuroglancer.precompute.mesh import generate_mesh_from_lods

    start, cpu = time.perf_counter(), time.process_time()
    if case == "oriented":
        scene = load_glb_file(source / "template.glb")
        with (source / "picks.ndjson").open() as handle:
            data = [json.loads(line) for line in handle if line.strip()]
        lods = encode_oriented_mesh(
            scene,
            data,
            max_lod=2,
            max_faces_for_first_lod=10e6,
            decimation_aggressiveness=5.5,
            data_scale_in_nm=voxel_spacing * 0.1,
        )
        generate_mesh_from_lods(lods, out, min_mesh_chunk_dim=2)
    else:
        scene = load_glb_file(source / "surface.glb")
        mesh.generate_multiresolution_mesh(
            scene, out, min_mesh_chunk_dim=8, max_lod=2, string_label="surface"
        )
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(json.dumps({"seconds": seconds, "cpu_s": cpu, "peak_rss_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    """This process's own peak (VmHWM). ``ru_maxrss`` is not: Linux carries the parent's
    resident size at fork into it, so every child would report the benchmark's own."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
