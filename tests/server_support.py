"""Shared helpers of the tests/test_server_*.py modules: a writable tree and a config.

The tree is a copy of the session's sample tree with placeholder precompute outputs (an
``info`` file, a chunk and a shard, written by
:func:`cryoet_ng.sample.outputs.fill_missing_outputs`) for every annotation file of run
10000/TS_026, so states have annotation layers without running the precompute. conftest.py's
``make_server_tree`` and ``server_tree`` fixtures bind the source to ``sample_root``.
"""

from __future__ import annotations

import json
import shutil
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryoet_ng.catalogue import Catalogue
from cryoet_ng.config import Config, ServerConfig
from cryoet_ng.sample.outputs import ANNOTATIONS_TYPE, fill_missing_outputs

# A fixture that makes a tree at the path it is given and returns that path.
TreeFactory = Callable[[Path], Path]
DATASET, RUN = "10000", "TS_026"
SHARD_BYTES = bytes(range(256)) * 8
PLACEHOLDER_INFO = {"@type": ANNOTATIONS_TYPE, "placeholder": True}
PLACEHOLDER_FILES = {"spatial0/0_0_0": b"\x01\x02\x03", "spatial0/0.shard": SHARD_BYTES}


def make_tree(source: Path, dest: Path) -> Path:
    """Copy ``source`` to ``dest`` and add placeholder outputs for run 10000/TS_026."""
    shutil.copytree(source, dest, symlinks=True)
    catalogue = Catalogue.scan(dest)
    run = catalogue.run(DATASET, RUN)
    assert run is not None, "the sample tree lacks run 10000/TS_026"
    written = fill_missing_outputs(dest, run, PLACEHOLDER_INFO, PLACEHOLDER_FILES)
    assert written, f"no precomputable annotation files in {DATASET}/{RUN}"
    return dest


def make_config(root: Path, states_db: str, **server: object) -> Config:
    """The default configuration over ``root`` with ``server`` settings replaced."""
    return Config(data_root=root, server=ServerConfig(states_db=states_db, **server))  # type: ignore[arg-type]


def fragment_state(location: str, client: Any = None) -> dict:
    """The state a redirect hands the viewer: inline JSON, or fetched from the URL it names."""
    _, fragment = location.split("#!", 1)
    if fragment.startswith(("http://", "https://")):
        assert client is not None, f"{location}: a state URL needs a client to fetch it"
        url = urllib.parse.urlsplit(fragment)
        response = client.get(url.path, query_string=url.query)
        assert response.status_code == 200, (fragment, response.status_code)
        return response.json
    return json.loads(urllib.parse.unquote(fragment))
