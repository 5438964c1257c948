"""Datasets and runs as pages, with search: what ``/``, ``/datasets/<id>`` and their JSON
twins (``/api/datasets``...) list.

Everything here comes from the tree's index top file (or folder listings without one,
:class:`cryoet_ng.tree_view.TreeView`), never from the runs themselves: listing the 100
datasets of the portal costs the same as listing 2, and a page of runs builds the states
of that page only. Search is by dataset id or title, run name and annotation object name
(case-insensitive substring); the objects of a dataset's runs come from its index record
(one file, read when the dataset is searched), so without an index only ids, titles and
run names are searched.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from cryoet_ng.tree_view import DatasetInfo, RunInfo, TreeView

T = TypeVar("T")
DATASETS_PER_PAGE = 50
RUNS_PER_PAGE = 20  # each run on a dataset page is a built state


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    number: int  # 1-based
    pages: int
    total: int

    @classmethod
    def of(cls, items: Sequence[T], number: int, size: int) -> Page[T]:
        pages = max(1, math.ceil(len(items) / size))
        number = min(max(1, number), pages)
        start = (number - 1) * size
        return cls(list(items[start : start + size]), number, pages, len(items))


@dataclass(frozen=True)
class DatasetRow:
    info: DatasetInfo
    matches: tuple[str, ...] = ()  # why a search found it ("3 runs", "object ribosome"...)

    @property
    def id(self) -> str:
        return self.info.id


def matches(text: str, query: str) -> bool:
    return query in text.lower()


def dataset_rows(tree: TreeView, query: str) -> list[DatasetRow]:
    """Every dataset (``query`` empty) or those the query finds, with why."""
    query = query.strip().lower()
    rows = []
    for dataset_id in tree.dataset_ids():
        info = tree.dataset(dataset_id)
        if info is None:
            continue
        if not query:
            rows.append(DatasetRow(info))
            continue
        why = []
        if matches(dataset_id, query) or matches(info.title, query):
            why.append("dataset")
        runs = sum(matches(r.name, query) for r in info.runs)
        if runs:
            why.append(f"{runs} run{'s' * (runs != 1)} by name")
        objects = [o for o in info.objects if matches(o, query)]
        if objects:
            why.append("objects: " + ", ".join(objects[:5]))
        if why:
            rows.append(DatasetRow(info, tuple(why)))
    return rows


def run_rows(tree: TreeView, info: DatasetInfo, query: str) -> list[RunInfo]:
    """The dataset's runs, or those whose name or annotation objects match ``query``."""
    query = query.strip().lower()
    if not query or matches(info.id, query) or matches(info.title, query):
        return list(info.runs)
    objects = tree.run_objects(info.id) if any(matches(o, query) for o in info.objects) else {}
    return [
        r
        for r in info.runs
        if matches(r.name, query) or any(matches(o, query) for o in objects.get(r.name, ()))
    ]


def inline_runs(tree: TreeView, limit: int) -> bool:
    """Whether the whole tree has at most ``limit`` runs (the front page then shows them)."""
    total = 0
    for dataset_id in tree.dataset_ids():
        info = tree.dataset(dataset_id)
        total += len(info.runs) if info is not None else 0
        if total > limit:
            return False
    return True
