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


COMMANDS = (
    Command(
        "sample",
        "write a synthetic portal-layout data tree",
        add_sample_arguments,
        run_sample,
        takes_config=False,
    ),
)
