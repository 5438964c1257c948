"""Fuzzing the OME-Zarr ``.zattrs`` readers of the converters (hypothesis): any bytes, and any
JSON value in any field of a multiscales document, give a level path or an InputError
naming the ``.zattrs`` file, never another exception (the catalogue's documents are fuzzed
in test_metadata.py and test_catalogue_fuzz.py)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from precompute.errors import InputError
from precompute.segmentation.source import _level0_path
from precompute.tomogram import _coarsest_level

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)

VALID: dict[str, Any] = {
    "multiscales": [{"version": "0.4", "datasets": [{"path": "0"}, {"path": "1"}]}]
}


@st.composite
def documents(draw: st.DrawFn) -> bytes:
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return draw(st.binary(max_size=40))
    if choice == 1:
        return json.dumps(draw(json_values)).encode()
    doc = json.loads(json.dumps(VALID))
    scale = doc["multiscales"][0]
    target = draw(st.sampled_from(["multiscales", "scale", "datasets", "entry", "path"]))
    value = draw(json_values)
    if target == "multiscales":
        doc["multiscales"] = value
    elif target == "scale":
        doc["multiscales"][0] = value
    elif target == "datasets":
        scale["datasets"] = value
    elif target == "entry":
        scale["datasets"][draw(st.integers(0, 1))] = value
    else:
        scale["datasets"][draw(st.integers(0, 1))]["path"] = value
    return json.dumps(doc).encode()


def read(reader: Callable[[Path], object], data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "x.zarr"
        root.mkdir()
        (root / ".zattrs").write_bytes(data)
        try:
            reader(root)
        except InputError as exc:
            assert exc.path == root / ".zattrs" or exc.path == root, exc


@settings(max_examples=300, deadline=None)
@given(documents())
def test_tomogram_level_reader(data: bytes) -> None:
    read(_coarsest_level, data)


@settings(max_examples=300, deadline=None)
@given(documents())
def test_segmentation_level_reader(data: bytes) -> None:
    read(_level0_path, data)
