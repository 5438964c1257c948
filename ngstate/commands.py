"""``cryoet-ng state`` (one tomogram's state or its explanation) and ``cryoet-ng
export-states`` (every tomogram's ``<tomogram_id>-neuroglancer_config.json``).

state: 0, or 2 for an unknown dataset, run or tomogram. export-states: 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from cryoet_ng.commands import Command, parse_options
from cryoet_ng.config import Config, with_overrides

if TYPE_CHECKING:
    from ngstate.api import BuiltState


@dataclass(frozen=True)
class StateCommandOptions:
    data_root: Path
    dataset: str
    run: str
    tomogram: str | None  # None: the run's default tomogram
    explain: bool
    out: Path | None  # precompute output root; None: the configured one


def add_state_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data_root", type=Path, metavar="DATA_ROOT")
    parser.add_argument("dataset", metavar="DATASET")
    parser.add_argument("run", metavar="RUN")
    parser.add_argument("--tomogram", metavar="ID", help="tomogram id (default: the run's default)")
    parser.add_argument("--explain", action="store_true", help="print the layer decisions instead")
    parser.add_argument("--out", type=Path, help="precompute output root (default: the data tree)")


def _roots(config: Config, data_root: Path, out: Path | None) -> Config:
    return with_overrides(
        config,
        {
            "data_root": str(data_root.resolve()),
            "output_root": None if out is None else str(out.resolve()),
        },
    )


def run_state(args: argparse.Namespace, config: Config) -> int:
    options = parse_options(StateCommandOptions, args)
    config = _roots(config, options.data_root, options.out)
    from cryoet_ng.catalogue import Catalogue
    from ngstate.api import NotFoundError, StateOptions, build_state

    catalogue = Catalogue.scan(config.data_root, datasets=[options.dataset])
    try:
        built = build_state(
            catalogue,
            options.dataset,
            options.run,
            options.tomogram,
            StateOptions.from_config(config),
        )
    except NotFoundError as exc:
        print(f"cryoet-ng state: {exc}", file=sys.stderr)
        return 2
    if options.explain:
        print_explanation(built, sys.stdout)
    else:
        json.dump(built.state, sys.stdout, indent=2)
        sys.stdout.write("\n")
        for message in built.messages:
            print(f"note: {message}", file=sys.stderr)
    return 0


def print_explanation(built: BuiltState, out: TextIO) -> None:
    """A readable table: one row per layer, then the messages."""
    rows = [("", "layer", "why")]
    for d in built.decisions:
        rows.append(("on " if d.visible else "off", d.layer, d.reason))
    width = min(max(len(r[1]) for r in rows), 48)
    print(f"tomogram {built.tomogram_id}", file=out)
    for mark, name, why in rows:
        print(f"{mark:3}  {name:<{width}}  {why}", file=out)
    for message in built.messages:
        print(f"note: {message}", file=out)


@dataclass(frozen=True)
class ExportOptions:
    data_root: Path
    out: Path | None  # where state files go (beside the outputs); None: the configured root


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data_root", type=Path, metavar="DATA_ROOT")
    parser.add_argument(
        "--out", type=Path, metavar="OUT_ROOT", help="output root (default: the data tree)"
    )


def run_export(args: argparse.Namespace, config: Config) -> int:
    options = parse_options(ExportOptions, args)
    config = _roots(config, options.data_root, options.out)
    from cryoet_ng import atomic
    from cryoet_ng.catalogue import Catalogue
    from cryoet_ng.layout import Layout
    from ngstate.api import StateOptions, build_state

    state_options = StateOptions.from_config(config)
    layout = Layout(config.out_root)
    catalogue = Catalogue.scan(config.data_root)
    written = 0
    for run in catalogue.runs():
        for tomogram in sorted(run.tomograms, key=lambda t: t.id):
            built = build_state(catalogue, run.dataset_id, run.name, tomogram.id, state_options)
            path = layout.state_file(run, tomogram)
            atomic.write_json(path, built.state)
            written += 1
            visible = sum(d.visible for d in built.decisions)
            print(f"{path}: {len(built.decisions)} layers, {visible} visible")
            for message in built.messages:
                print(f"  note: {message}")
    for warning in catalogue.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{written} state file{'s' * (written != 1)} written")
    return 0


COMMANDS = (
    Command("state", "print the viewer state of one tomogram", add_state_arguments, run_state),
    Command(
        "export-states",
        "write <tomogram_id>-neuroglancer_config.json files",
        add_export_arguments,
        run_export,
    ),
)
