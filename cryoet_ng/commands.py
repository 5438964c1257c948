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
import contextlib
import dataclasses
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from cryoet_ng.config import Config

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from cryoet_ng.catalogue import Catalogue
    from cryoet_ng.sample.spec import SizeName
    from cryoet_ng.store import TreePath

log = logging.getLogger(__name__)
OptionsT = TypeVar("OptionsT", bound="DataclassInstance")


# Exit status of every sub-command.
EXIT_OK = 0  # everything asked for was done
EXIT_FAILED = 1  # some input failed (named on stderr and in reports); the rest was done
EXIT_USAGE = 2  # nothing was done: bad arguments, configuration, data root or selection


class UsageError(ValueError):
    """Nothing can be done as asked (a missing data root, an unknown dataset id, a busy port):
    the CLI prints the message and exits with :data:`EXIT_USAGE`."""


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    # Exit status: EXIT_OK, EXIT_FAILED or EXIT_USAGE (raising UsageError gives it too).
    run: Callable[[argparse.Namespace, Config], int]
    takes_config: bool = True  # a --config FILE flag; without it the default configuration


def require_selection(
    catalogue: Catalogue,
    datasets: Sequence[str] = (),
    runs: Sequence[str] = (),
    known_datasets: Sequence[str] = (),
    known_runs: Callable[[], Sequence[str]] | None = None,
) -> None:
    """:class:`UsageError` when the data root is missing or not a portal tree (the
    catalogue's warning says which), or when ``datasets`` or ``runs`` name something the
    tree does not have (the message lists what it has: ``known_datasets``, and
    ``known_runs()`` or else the runs of the catalogue, which may hold only the selection)."""
    about_root = [w.message for w in catalogue.warnings if w.path == catalogue.root]
    if about_root and not catalogue.datasets:
        raise UsageError(f"{catalogue.root}: {about_root[0]}")
    unknown = [d for d in datasets if d not in catalogue.datasets]
    if unknown:
        raise UsageError(
            f"{catalogue.root}: unknown dataset{'s' * (len(unknown) > 1)} "
            f"{', '.join(unknown)} (known: {_listing(known_datasets)})"
        )
    if not catalogue.datasets and not (runs and known_datasets):
        raise UsageError(f"{catalogue.root}: no dataset folders (numeric names): not a portal tree")
    names = sorted({run.name for run in catalogue.runs()})
    unknown = [r for r in runs if r not in names]
    if unknown:
        names = sorted(known_runs()) if known_runs is not None else names
        where = (
            f"dataset{'s' * (len(datasets) > 1)} {', '.join(datasets)}" if datasets else "the tree"
        )
        raise UsageError(
            f"{catalogue.root}: unknown run{'s' * (len(unknown) > 1)} {', '.join(unknown)} "
            f"in {where} (known: {_listing(names)})"
        )


def require_tree(
    root: str | Path, datasets: Sequence[str] = (), runs: Sequence[str] = ()
) -> list[str]:
    """The dataset ids of the tree at ``root`` (one listing; a tree that cannot be listed,
    https://, gives none), or :class:`UsageError` when it is missing or not a portal tree,
    or lacks one of ``datasets``, or none of the (selected) datasets has a folder named as
    one of ``runs`` (one more listing per dataset): checked before anything is written."""
    from cryoet_ng.store import StoreError, open_store, tree_path
    from cryoet_ng.treescan import Scanner

    try:
        store = open_store(root)
    except StoreError as exc:
        raise UsageError(f"{root}: {exc.reason}") from exc
    if not store.can_list:
        return []
    ids, warnings = Scanner(store).dataset_ids()
    if warnings:
        raise UsageError(str(warnings[0]))
    unknown = [d for d in datasets if d not in ids]
    if unknown:
        raise UsageError(
            f"{tree_path(store, '')}: unknown dataset"
            f"{'s' * (len(unknown) > 1)} {', '.join(unknown)} (known: {_listing(ids)})"
        )
    if runs:
        folders: set[str] = set()
        for dataset_id in datasets or ids:
            with contextlib.suppress(StoreError):
                folders.update(store.list_folder(dataset_id).folders)
        unknown = [r for r in runs if r not in folders]
        if unknown:
            where = f"dataset{'s' * (len(datasets) > 1)} {', '.join(datasets)}"
            raise UsageError(
                f"{tree_path(store, '')}: unknown run{'s' * (len(unknown) > 1)} "
                f"{', '.join(unknown)} in {where if datasets else 'the tree'} "
                f"(known: {_listing(run_names(tree_path(store, ''), datasets))})"
            )
    return ids


def dataset_ids(root: TreePath) -> list[str]:
    """The dataset folders (numeric names) under a data root, for messages (one listing)."""
    from cryoet_ng.store import StoreError, open_store
    from cryoet_ng.treescan import Scanner

    try:
        return Scanner(open_store(str(root))).dataset_ids()[0]
    except (StoreError, OSError):
        return []


def run_names(root: TreePath, datasets: Sequence[str]) -> list[str]:
    """The run folders of ``datasets`` (all datasets when empty) under a data root, for
    messages: one folder listing per dataset and per folder in it (a run folder has
    run_metadata.json or a layout folder; ``Images/`` has not)."""
    from cryoet_ng.store import StoreError, open_store
    from cryoet_ng.treescan import LAYOUT_FOLDERS

    store = open_store(str(root))
    names: set[str] = set()
    for dataset_id in datasets or dataset_ids(root):
        try:
            for name in store.list_folder(dataset_id).folders:
                listing = store.list_folder(f"{dataset_id}/{name}")
                files = {entry.key.rsplit("/", 1)[-1] for entry in listing.files}
                if "run_metadata.json" in files or set(listing.folders) & set(LAYOUT_FOLDERS):
                    names.add(name)
        except StoreError:
            continue
    return sorted(names)


def _listing(names: Sequence[str], most: int = 20) -> str:
    shown = ", ".join(names[:most]) or "none"
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


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
    """Write the synthetic tree; 2 when ``OUT_DIR`` already exists (nothing written)."""
    options = parse_options(SampleOptions, args)
    from cryoet_ng.sample import generate

    start = time.perf_counter()
    try:
        manifest = generate(options.out_dir, seed=options.seed, size=options.size)
    except FileExistsError as exc:
        raise UsageError(str(exc)) from exc
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
