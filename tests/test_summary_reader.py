"""The summary reader and the server's state service under many threads, with tiny caches.

The reader used to be a module-level OrderedDict without a lock: ``get`` then
``move_to_end`` raised KeyError when another thread evicted the key in between. Here every
thread reads through one reader (and one state service) whose cache holds far fewer entries
than the threads touch, so evictions happen all the time.
"""

from __future__ import annotations

import json
import random
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from server_support import DATASET, RUN, make_config, make_tree

from cryoet_ng.summaries import Summary
from ngstate.summary_reader import SummaryReader
from server.state_service import StateService

THREADS = 8


@pytest.fixture(autouse=True)
def _frequent_switches() -> Iterator[None]:
    """Switch threads every microsecond, so interleavings inside the cache are common."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def run_threads(work: Callable[[int], None]) -> list[BaseException]:
    errors: list[BaseException] = []

    def guarded(seed: int) -> None:
        try:
            work(seed)
        except BaseException as exc:  # collected: a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_shared_reader_with_evictions(tmp_path: Path) -> None:
    """Three files through a reader that holds two: most reads hit an entry another thread
    is about to evict. Without the lock this raised KeyError in 3 runs of 4 (8 threads x
    3,000 reads, measured with the lock replaced by a no-op)."""
    paths = []
    for i in range(3):
        output = tmp_path / f"layer{i}"
        output.mkdir()
        (output / "info").write_text(json.dumps({"properties": [{"id": f"p{i}"}]}))
        Summary("annotation", count=i).write(tmp_path / f"layer{i}.summary.json")
        paths.append(output)
    reader = SummaryReader(max_entries=2)

    def work(seed: int) -> None:
        rng = random.Random(seed)
        for n in range(6000):
            i = rng.randrange(len(paths))
            summary = reader.summary(tmp_path / f"layer{i}.summary.json")
            assert summary is not None and summary.count == i
            if n % 10 == 0:
                assert reader.info_properties(paths[i]) == frozenset({f"p{i}"})
                assert reader.summary(tmp_path / "absent.summary.json") is None

    assert run_threads(work) == []
    assert len(reader) <= 2


def test_reader_sees_a_rewritten_summary(tmp_path: Path) -> None:
    path = tmp_path / "a.summary.json"
    reader = SummaryReader(max_entries=1)
    Summary("annotation", count=1).write(path)
    assert reader.summary(path).count == 1  # type: ignore[union-attr]
    Summary("annotation", count=2).write(path)  # atomic: a new inode
    assert reader.summary(path).count == 2  # type: ignore[union-attr]


def test_state_service_under_threads(sample_root: Path, tmp_path: Path) -> None:
    """Many threads, two tomograms, three data URLs and room for two states: every answer
    equals the one a single thread gets, and no thread fails."""
    root = make_tree(sample_root, tmp_path / "tree")
    config = make_config(root, str(tmp_path / "states"))
    keys = [
        (DATASET, RUN, tomogram, f"http://host{n}/data")
        for tomogram in (None, "100")
        for n in range(3)
    ]
    reference = StateService(config)
    expected = {key: reference.state(*key).body for key in keys}
    shared = StateService(config, max_entries=2, recheck_seconds=0.0)
    shared.reader.max_entries = 3

    def work(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(150):
            key = rng.choice(keys)
            assert shared.state(*key).body == expected[key]

    assert run_threads(work) == []
