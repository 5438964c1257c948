"""``cryoet-ng state`` (one tomogram's state or its explanation) and ``cryoet-ng
export-states`` (every tomogram's ``<tomogram_id>-neuroglancer_config.json``).

state: 0, or 2 for a missing data root or an unknown dataset, run or tomogram.
export-states: 0; 1 when an input was skipped (a catalogue warning) or a state could not be
built; 2 for a missing data root, or when ``data_url`` is not set and ``--local-urls`` not
given: the portal's state files would then point at this machine's own server
(``http://127.0.0.1:8000/data/...``), which no other browser can reach.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from cryoet_ng.commands import (
    EXIT_FAILED,
    EXIT_OK,
    Command,
    UsageError,
    dataset_ids,
    parse_options,
    require_selection,
    run_names,
)
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

    # Only the run asked for: warnings about other runs are not this command's business.
    catalogue = Catalogue.scan(config.data_root, [options.dataset], [options.run])
    root = catalogue.root
    require_selection(
        catalogue,
        (options.dataset,),
        (options.run,),
        dataset_ids(root),
        lambda: run_names(root, (options.dataset,)),
    )
    try:
        built = build_state(
            catalogue,
            options.dataset,
            options.run,
            options.tomogram,
            StateOptions.from_config(config),
        )
    except NotFoundError as exc:
        raise UsageError(str(exc)) from exc
    if options.explain:
        print_explanation(built, sys.stdout)
    else:
        json.dump(built.state, sys.stdout, indent=2)
        sys.stdout.write("\n")
        for message in built.messages:
            print(f"note: {message}", file=sys.stderr)
    return 0


def print_explanation(built: BuiltState, out: TextIO) -> None:
    """A readable table: one row per layer (``--``: left out), then the messages (the first
    says whether the run is curated)."""
    rows = [("", "layer", "why")]
    for d in built.decisions:
        rows.append(("on " if d.visible else "off", d.layer, d.reason))
    for item in built.left_out:  # no layer: the output is missing
        rows.append(("--", item.name, f"left out: {item.reason}"))
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
    data_url: str | None = None  # None: the configured data_url
    local_urls: bool = False  # write states pointing at this server when data_url is unset


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data_root", type=Path, metavar="DATA_ROOT")
    parser.add_argument(
        "--out", type=Path, metavar="OUT_ROOT", help="output root (default: the data tree)"
    )
    parser.add_argument(
        "--data-url", metavar="URL", help="public URL of the data tree (overrides data_url)"
    )
    parser.add_argument(
        "--local-urls",
        action="store_true",
        help="without data_url, write states pointing at this machine's server anyway",
    )


def run_export(args: argparse.Namespace, config: Config) -> int:
    options = parse_options(ExportOptions, args)
    config = with_overrides(
        _roots(config, options.data_root, options.out), {"data_url": options.data_url}
    )
    from cryoet_ng import atomic
    from cryoet_ng.catalogue import Catalogue
    from cryoet_ng.layout import Layout
    from ngstate.api import StateOptions, build_state

    state_options = StateOptions.from_config(config)
    if config.data_url is None and not options.local_urls:
        raise UsageError(
            "data_url is not set: the state files would point at this machine's server "
            f"({state_options.data_url}/...), which the portal's browsers cannot reach; set "
            "data_url (configuration, CRYOET_NG__DATA_URL or --data-url), or pass "
            "--local-urls to write them anyway"
        )
    layout = Layout(config.out_root)
    catalogue = Catalogue.scan(config.data_root)
    require_selection(catalogue)
    written = failed = 0
    for run in catalogue.runs():
        for tomogram in sorted(run.tomograms, key=lambda t: t.id):
            path = layout.state_file(run, tomogram)
            try:
                built = build_state(catalogue, run.dataset_id, run.name, tomogram.id, state_options)
                atomic.write_json(path, built.state)
            except Exception as exc:  # one tomogram's problem must not stop the others
                print(f"error: {path}: not written: {type(exc).__name__}: {exc}", file=sys.stderr)
                failed += 1
                continue
            written += 1
            visible = sum(d.visible for d in built.decisions)
            print(f"{path}: {len(built.decisions)} layers, {visible} visible")
            for message in built.messages:
                print(f"  note: {message}")
    for warning in catalogue.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{written} state file{'s' * (written != 1)} written")
    skipped = any(w.skipped for w in catalogue.warnings)
    return EXIT_FAILED if failed or skipped else EXIT_OK


COMMANDS = (
    Command("state", "print the viewer state of one tomogram", add_state_arguments, run_state),
    Command(
        "export-states",
        "write <tomogram_id>-neuroglancer_config.json files",
        add_export_arguments,
        run_export,
    ),
)
