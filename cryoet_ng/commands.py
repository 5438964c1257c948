"""Sub-commands of ``cryoet-ng``: the :class:`Command` type, and the core's own ``sample``
and ``index``.

Each package owns its sub-commands in its ``commands`` module (``precompute.commands``,
``ngstate.commands``, ``server.commands``, this one), as neuroglancer's ``cli.py`` pairs
``add_server_arguments`` with ``handle_server_arguments``: ``add_arguments(parser)``
declares the flags, and ``run(args, config)`` parses them once into a frozen options
dataclass and hands that, never the namespace, to the code doing the work. The
composition root :mod:`cryoet_ng_cli` lists the modules and dispatches; nothing in the four
packages imports it.

A ``commands`` module must stay cheap to import (``cryoet-ng --help`` imports all of them):
the work is imported inside ``run``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from cryoet_ng.config import Config

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from cryoet_ng.sample.spec import SizeName

log = logging.getLogger(__name__)
OptionsT = TypeVar("OptionsT", bound="DataclassInstance")


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    # Exit status: 0 success, 1 failed work, 2 unusable input or configuration.
    run: Callable[[argparse.Namespace, Config], int]
    takes_config: bool = True  # a --config FILE flag; without it the default configuration


def parse_options(cls: type[OptionsT], args: argparse.Namespace) -> OptionsT:
    """The frozen options dataclass ``cls`` read from ``args``: one field per flag, by name.

    A flag that was not given (None) takes the field's default when it has one; lists
    (``nargs="+"``) become tuples.
    """
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        value = getattr(args, field.name)
        if value is None and field.default is not dataclasses.MISSING:
            value = field.default
        values[field.name] = tuple(value) if isinstance(value, list) else value
    return cls(**values)


@dataclass(frozen=True)
class SampleOptions:
    out_dir: Path
    seed: int
    size: SizeName


def add_sample_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--size", choices=["test", "demo"], default="test", help="tomogram size")


def run_sample(args: argparse.Namespace, config: Config) -> int:
    """Write the synthetic tree; 1 when ``OUT_DIR`` already exists."""
    options = parse_options(SampleOptions, args)
    from cryoet_ng.sample import generate

    start = time.perf_counter()
    try:
        manifest = generate(options.out_dir, seed=options.seed, size=options.size)
    except FileExistsError as exc:
        log.error("%s", exc)
        return 1
    log.info(
        "wrote %s (seed %d, size %s) in %.1f s: %s",
        options.out_dir,
        options.seed,
        options.size,
        time.perf_counter() - start,
        manifest.summary(),
    )
    for ann in manifest.annotations:
        shapes = "+".join(dict.fromkeys(ann.shapes))
        log.info(
            "  %s/%s %.3f %s %s (%s, %d)",
            ann.dataset_id,
            ann.run_name,
            ann.voxel_spacing,
            ann.annotation_id,
            ann.stem,
            shapes,
            ann.object_count,
        )
    return 0


@dataclass(frozen=True)
class IndexOptions:
    data_root: str  # a folder, s3:// or gs:// URL
    out: str | None = None  # index root; None: the data root for a URL, else the output root
    datasets: tuple[str, ...] = ()
    runs: tuple[str, ...] = ()
    rebuild: bool = False


def add_index_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data_root", metavar="DATA_ROOT", help="folder, s3:// or gs:// URL")
    parser.add_argument(
        "--out", type=str, help="index root: folder or s3://, gs:// URL (default: output root)"
    )
    parser.add_argument("--datasets", nargs="+", metavar="ID", help="only these datasets")
    parser.add_argument("--runs", nargs="+", metavar="NAME", help="only these runs")
    parser.add_argument("--rebuild", action="store_true", help="ignore the existing index")


def run_index(args: argparse.Namespace, config: Config) -> int:
    """Build or refresh the tree's index; 1 when an input was skipped, 2 on a store error."""
    options = parse_options(IndexOptions, args)
    from cryoet_ng import index
    from cryoet_ng.store import StoreError, is_url, open_store

    data_root = options.data_root if is_url(options.data_root) else Path(options.data_root)
    index_root = options.out
    if index_root is None:
        index_root = options.data_root if is_url(options.data_root) else str(config.out_root)
    try:
        _, report = index.refresh(
            data_root,
            index_root,
            list(options.datasets) or None,
            list(options.runs) or None,
            rebuild=options.rebuild,
            keep=False,
        )
    except StoreError as exc:
        print(f"cryoet-ng index: {exc}", file=sys.stderr)
        return 2
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"index {open_store(index_root).url_of(index.TOP)}: {report.line()}")
    return 1 if any(w.skipped for w in report.warnings) else 0


COMMANDS = (
    Command(
        "sample",
        "write a synthetic portal-layout data tree",
        add_sample_arguments,
        run_sample,
        takes_config=False,
    ),
    Command(
        "index",
        "build or refresh the tree's index (beside the outputs)",
        add_index_arguments,
        run_index,
    ),
)
