"""Shared fixtures: one synthetic portal tree (test size, seed 0) per test session.

Treat ``sample_root`` as read-only; copy it (``shutil.copytree``) before modifying it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cryoet_ng.sample import SampleManifest, generate


@pytest.fixture(scope="session")
def _sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SampleManifest]:
    root = tmp_path_factory.mktemp("sample") / "data"
    return root, generate(root, seed=0, size="test")


@pytest.fixture(scope="session")
def sample_root(_sample: tuple[Path, SampleManifest]) -> Path:
    """Root of the generated test-size tree (datasets 10000 and 10001)."""
    return _sample[0]


@pytest.fixture(scope="session")
def sample_manifest(_sample: tuple[Path, SampleManifest]) -> SampleManifest:
    """What :func:`cryoet_ng.sample.generate` reported writing into ``sample_root``."""
    return _sample[1]
