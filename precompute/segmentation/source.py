"""Open a mask (OME-Zarr level 0, or its MRC twin) and read validated z-slabs of labels.

Everything a converter may not accept is checked here and raised as :class:`InputError`
naming the file: not a zarr/mrc, unreadable chunk, not 3-D, float data without a threshold,
labels that do not fit uint32, a shape that does not match the tomogram.
"""

from __future__ import annotations

import json
import mmap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mrcfile
import numpy as np
import tensorstore as ts

from cryoet_ng.config import PrecomputeConfig
from cryoet_ng.store import TreePath, kvstore_spec
from cryoet_ng.vectors import triple
from precompute.errors import InputError

UINT32_MAX = 2**32 - 1


@dataclass
class MaskSource:
    """A lazily read 3-D label volume, array axes z, y, x, already resampled to ``shape``."""

    path: TreePath
    array: Any  # tensorstore.TensorStore or numpy memmap, axes z, y, x
    native_shape: tuple[int, int, int]  # z, y, x as stored
    shape: tuple[int, int, int]  # z, y, x as converted (the tomogram's size when resampled)
    dtype: np.dtype  # integer dtype of what read() returns
    threshold: float | None = None  # float masks: voxels > threshold become 1

    @property
    def resampled(self) -> bool:
        return self.shape != self.native_shape

    def read(self, box: tuple[slice, slice, slice]) -> np.ndarray:
        """Labels of the output box ``(z, y, x)`` slices (steps of 1) as a C-contiguous array."""
        if not self.resampled:
            return self._labels(self._read_native(box))
        # Nearest neighbour: output index i samples input floor((i + 0.5) * n_in / n_out).
        picks = [
            _nearest(o, n)[s] for o, n, s in zip(self.shape, self.native_shape, box, strict=True)
        ]
        native = triple(slice(int(p[0]), int(p[-1]) + 1) for p in picks)
        raw = self._read_native(native)
        z, y, x = (p - p[0] for p in picks)
        return self._labels(raw[z][:, y][:, :, x])

    def _read_native(self, box: tuple[slice, slice, slice]) -> np.ndarray:
        try:
            if isinstance(self.array, ts.TensorStore):
                return self.array[box].read().result()
            data = np.array(self.array[box])
            _release_pages(self.array)
            return data
        except Exception as exc:  # tensorstore and mrcfile raise assorted error types
            where = ", ".join(f"{s.start}..{s.stop}" for s in box)
            raise InputError(self.path, f"cannot read voxels (z, y, x) {where}: {exc}") from exc

    def _labels(self, raw: np.ndarray) -> np.ndarray:
        if self.threshold is not None:
            return (raw > self.threshold).astype(np.uint8)
        if raw.dtype.kind == "b":
            return raw.astype(np.uint8)
        if raw.dtype.itemsize > 2 or raw.dtype.kind == "i":
            # Values beyond uint32 (or negative) cannot be segment ids in a uint32 volume.
            lo, hi = (int(raw.min()), int(raw.max())) if raw.size else (0, 0)
            if lo < 0 or hi > UINT32_MAX:
                raise InputError(
                    self.path, f"labels must be in 0..{UINT32_MAX}, found values in {lo}..{hi}"
                )
        if raw.dtype.kind == "i":
            raw = raw.view(np.dtype(raw.dtype.str.replace("i", "u")))
        return np.ascontiguousarray(raw)


def open_mask(
    path: TreePath, options: PrecomputeConfig, size_xyz: tuple[int, int, int] | None
) -> MaskSource:
    """Open and validate a mask; ``size_xyz`` is the tomogram's size at the mask's spacing."""
    array: np.ndarray | ts.TensorStore
    if path.suffix.lower() == ".mrc" or path.suffix.lower() == ".rec":
        array = _open_mrc(path)
    elif path.is_dir():
        array = _open_zarr(path)
    else:
        raise InputError(path, "not an OME-Zarr folder or an .mrc file")
    native = tuple(int(n) for n in array.shape)
    if len(native) != 3:
        raise InputError(path, f"mask must be 3-D (z, y, x), got shape {native}")
    dtype = np.dtype(array.dtype.numpy_dtype if isinstance(array, ts.TensorStore) else array.dtype)
    threshold = None
    if dtype.kind == "f":
        if options.mask_threshold is None:
            raise InputError(path, f"float data ({dtype}) in a mask; set precompute.mask_threshold")
        threshold = options.mask_threshold
        out_dtype = np.dtype(np.uint8)
    elif dtype.kind in "iu":
        out_dtype = np.dtype(dtype.str.replace("i", "u")) if dtype.itemsize <= 4 else dtype
    elif dtype.kind == "b":
        out_dtype = np.dtype(np.uint8)
    else:
        raise InputError(path, f"unsupported mask data type {dtype}")
    shape = native
    if size_xyz is not None:
        expected = (size_xyz[2], size_xyz[1], size_xyz[0])
        if expected != native:
            if options.mask_shape_mismatch != "resample":
                raise InputError(
                    path,
                    f"mask shape (z, y, x) {native} does not match the tomogram's {expected}",
                )
            shape = expected
    if min(shape) < 1:
        raise InputError(path, f"mask has an empty dimension: {native}")
    return MaskSource(path, array, native, shape, out_dtype, threshold)


def _release_pages(array: np.ndarray) -> None:
    """Drop the pages of a memory-mapped MRC from this process: they are clean file pages,
    but they count in its resident set (and its peak) until the kernel reclaims them, so a
    whole-file pass would otherwise show the whole file as memory."""
    mapping = getattr(array, "_mmap", None) or getattr(getattr(array, "base", None), "_mmap", None)
    if mapping is not None and hasattr(mmap, "MADV_DONTNEED"):
        mapping.madvise(mmap.MADV_DONTNEED)


def _nearest(n_out: int, n_in: int) -> np.ndarray:
    return np.minimum(((np.arange(n_out) + 0.5) * n_in / n_out).astype(np.int64), n_in - 1)


def _open_mrc(path: TreePath) -> np.ndarray:
    if not isinstance(path, Path):
        # mrcfile maps local files; on an object store the zarr twin is read instead.
        raise InputError(path, "MRC masks are read from local trees only; use the zarr twin")
    if not path.is_file():
        raise InputError(path, "MRC file does not exist")
    try:
        # Kept open on purpose: closing would unmap the data; the mapping is read-only and
        # released with the array.
        mrc = mrcfile.mmap(path, mode="r", permissive=False)
        data = mrc.data
    except Exception as exc:
        raise InputError(path, f"not a readable MRC file: {exc}") from exc
    if data is None:
        raise InputError(path, "MRC file has no data block")
    return data


def _open_zarr(path: TreePath) -> ts.TensorStore:
    level0 = _level0_path(path)
    if not (level0 / ".zarray").is_file():
        raise InputError(path, f"no zarr array at {level0} (.zarray missing)")
    spec = {"driver": "zarr", "kvstore": kvstore_spec(level0)}
    try:
        return ts.open(spec, read=True, open=True).result()
    except Exception as exc:
        raise InputError(path, f"cannot open zarr array: {exc}") from exc


def _level0_path(path: TreePath) -> TreePath:
    """The first multiscales dataset of an OME-Zarr group, or the folder itself for an array."""
    attrs = path / ".zattrs"
    if (path / ".zarray").is_file() or not attrs.is_file():
        return path
    try:
        meta = json.loads(attrs.read_text())
        return path / meta["multiscales"][0]["datasets"][0]["path"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise InputError(attrs, f"OME-Zarr .zattrs without multiscales datasets: {exc}") from exc
