"""``cryoet-ng state`` and ``cryoet-ng export-states`` (arguments parsed in cryoet_ng.cli)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

from cryoet_ng import atomic, layout
from cryoet_ng.catalogue import Catalogue
from cryoet_ng.config import Config
from ngstate.api import BuiltState, NotFoundError, StateOptions, build_state


def main(args: argparse.Namespace, config: Config) -> int:
    options = StateOptions.from_config(config)
    if args.command == "state":
        return _state(args, config, options)
    return _export(config, options)


def _state(args: argparse.Namespace, config: Config, options: StateOptions) -> int:
    catalogue = Catalogue.scan(config.data_root, datasets=[args.dataset])
    try:
        built = build_state(catalogue, args.dataset, args.run, args.tomogram, options)
    except NotFoundError as exc:
        print(f"cryoet-ng state: {exc}", file=sys.stderr)
        return 2
    if args.explain:
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


def _export(config: Config, options: StateOptions) -> int:
    catalogue = Catalogue.scan(config.data_root)
    written = 0
    for run in catalogue.runs():
        for tomogram in sorted(run.tomograms, key=lambda t: t.id):
            built = build_state(catalogue, run.dataset_id, run.name, tomogram.id, options)
            path = layout.state_file(config.out_root, run, tomogram)
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
