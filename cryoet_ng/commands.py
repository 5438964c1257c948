"""Sub-commands of ``cryoet-ng``: the :class:`Command` type, and the core's own ``sample``.

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
) -> None:
    """:class:`UsageError` when the data root is missing or not a portal tree (the
    catalogue's warning says which), or when ``datasets`` or ``runs`` name something the
    tree does not have (the message lists what it has: ``known_datasets``, and the runs of
    the datasets scanned)."""
    about_root = [w.message for w in catalogue.warnings if w.path == catalogue.root]
    if about_root and not catalogue.datasets:
        raise UsageError(f"{catalogue.root}: {about_root[0]}")
    unknown = [d for d in datasets if d not in catalogue.datasets]
    if unknown:
        raise UsageError(
            f"{catalogue.root}: unknown dataset{'s' * (len(unknown) > 1)} "
            f"{', '.join(unknown)} (known: {_listing(known_datasets)})"
        )
    if not catalogue.datasets:
        raise UsageError(f"{catalogue.root}: no dataset folders (numeric names): not a portal tree")
    names = sorted({run.name for run in catalogue.runs()})
    unknown = [r for r in runs if r not in names]
    if unknown:
        where = (
            f"dataset{'s' * (len(datasets) > 1)} {', '.join(datasets)}" if datasets else "the tree"
        )
        raise UsageError(
            f"{catalogue.root}: unknown run{'s' * (len(unknown) > 1)} {', '.join(unknown)} "
            f"in {where} (known: {_listing(names)})"
        )


def dataset_ids(root: Path) -> list[str]:
    """The dataset folders (numeric names) under a local data root, for messages."""
    try:
        return sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.isdigit())
    except OSError:
        return []


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


COMMANDS = (
    Command(
        "sample",
        "write a synthetic portal-layout data tree",
        add_sample_arguments,
        run_sample,
        takes_config=False,
    ),
)
