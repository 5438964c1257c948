"""Shared fixtures: the sample tree, writable copies of it, and a server over one.

One synthetic portal tree (test size, seed 0) is generated per session: ``sample_root``,
read-only. A test that changes files works on a copy:

- ``sample_copy``: a private copy for one test; ``copy_sample(dest)`` makes one at ``dest``
  (for module-scoped fixtures, with ``tmp_path_factory``);
- ``server_tree`` / ``make_server_tree(dest)``: a copy with placeholder precompute outputs
  for run 10000/TS_026 (:func:`server_support.make_tree`), so states have annotation layers;
- ``config``, ``app``: the default configuration and ``server.create_app`` over a private
  ``server_tree``, saved states under the test's ``tmp_path``.

Trees of other shapes are written with :class:`cryoet_ng.sample.builder.TreeBuilder`
(see ``test_ngstate_tree.Tree``).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from server_support import TreeFactory, make_config, make_tree

from cryoet_ng.config import Config
from cryoet_ng.sample import SampleManifest, generate


@pytest.fixture(scope="session")
def _sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SampleManifest]:
    root = tmp_path_factory.mktemp("sample") / "data"
    return root, generate(root, seed=0, size="test")


@pytest.fixture(scope="session")
def sample_root(_sample: tuple[Path, SampleManifest]) -> Path:
    """Root of the generated test-size tree (datasets 10000 and 10001). Read-only."""
    return _sample[0]


@pytest.fixture(scope="session")
def sample_manifest(_sample: tuple[Path, SampleManifest]) -> SampleManifest:
    """What :func:`cryoet_ng.sample.generate` reported writing into ``sample_root``."""
    return _sample[1]


@pytest.fixture(scope="session")
def copy_sample(sample_root: Path) -> TreeFactory:
    """``copy_sample(dest)``: a writable copy of the sample tree at ``dest`` (returned)."""

    def copy(dest: Path) -> Path:
        shutil.copytree(sample_root, dest, symlinks=True)
        return dest

    return copy


@pytest.fixture
def sample_copy(copy_sample: TreeFactory, tmp_path: Path) -> Path:
    """A private, writable copy of the sample tree for one test (``tmp_path / "data"``)."""
    return copy_sample(tmp_path / "data")


@pytest.fixture(scope="session")
def make_server_tree(sample_root: Path) -> TreeFactory:
    """``make_server_tree(dest)``: a sample copy with placeholder outputs for 10000/TS_026."""
    return lambda dest: make_tree(sample_root, dest)


@pytest.fixture
def server_tree(make_server_tree: TreeFactory, tmp_path: Path) -> Path:
    """A private server tree for one test (``tmp_path / "tree"``)."""
    return make_server_tree(tmp_path / "tree")


@pytest.fixture
def config(server_tree: Path, tmp_path: Path) -> Config:
    """The default configuration over ``server_tree``, saved states in ``tmp_path``."""
    return make_config(server_tree, str(tmp_path / "states"))


@pytest.fixture
def app(config: Config) -> Flask:
    """``server.create_app(config)``: its state cache starts empty, so the first request
    after a change to ``server_tree`` sees the change."""
    import server

    return server.create_app(config)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 server (moto's, in a thread) for the session: its URL."""
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
