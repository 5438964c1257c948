"""Shared helpers of the tests/test_server_*.py modules: a writable tree and a config.

The tree is a copy of the session's sample tree (``sample_root`` from conftest.py) with
placeholder precompute outputs
(an ``info`` file, a chunk and a shard) for every annotation file of run 10000/TS_026, so
states have annotation layers without running the precompute.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cryoet_ng.catalogue import Catalogue
from cryoet_ng.config import Config, ServerConfig
from cryoet_ng.layout import Layout

DATASET, RUN = "10000", "TS_026"
SHARD_BYTES = bytes(range(256)) * 8


def sample_source(request: pytest.FixtureRequest) -> Path:
    """The session's read-only sample tree (conftest.py's ``sample_root``)."""
    return Path(request.getfixturevalue("sample_root"))


def make_tree(source: Path, dest: Path) -> Path:
    """Copy ``source`` to ``dest`` and add placeholder outputs for run 10000/TS_026."""
    shutil.copytree(source, dest, symlinks=True)
    catalogue = Catalogue.scan(dest)
    run = catalogue.run(DATASET, RUN)
    assert run is not None, "the sample tree lacks run 10000/TS_026"
    for annotation in run.annotations:
        for file in annotation.files:
            if not file.is_precomputable:
                continue
            output = Layout(dest).annotation_output(run, annotation, file.shape)
            if output.exists():
                continue
            (output / "spatial0").mkdir(parents=True)
            info = {"@type": "neuroglancer_annotations_v1", "placeholder": True}
            (output / "info").write_text(json.dumps(info))
            (output / "spatial0" / "0_0_0").write_bytes(b"\x01\x02\x03")
            (output / "spatial0" / "0.shard").write_bytes(SHARD_BYTES)
    return dest


def make_config(root: Path, states_db: str, **server: object) -> Config:
    return Config(data_root=root, server=ServerConfig(states_db=states_db, **server))  # type: ignore[arg-type]
