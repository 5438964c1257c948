"""``cryoet-ng precompute`` and ``cryoet-ng validate``: flags, typed options, exit status.

precompute: 0 when every job is done or skipped and every input's metadata was readable
(a catalogue warning means an input was skipped, so it fails the batch too); 1 otherwise;
2 when the output root cannot be used. validate: 0 when every output reads back
correctly, 1 on any problem, 2 for an object-store root (only local roots are read).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from cryoet_ng.commands import Command, parse_options
from cryoet_ng.config import Config, with_overrides

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrecomputeOptions:
    data_root: str  # a folder, s3://, gs:// URL, or https:// with its published index
    out: str | None = None  # a folder or an s3:// / gs:// URL; None = the configured root
    datasets: tuple[str, ...] = ()  # empty: all
    runs: tuple[str, ...] = ()
    workers: int | None = None  # None: precompute.workers, else every core
    scheduler: str | None = None
    force: bool = False
    report: Path | None = None


def add_precompute_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "data_root", metavar="DATA_ROOT", help="folder, s3://, gs:// or https:// URL"
    )
    parser.add_argument(
        "--out", type=str, help="output root: folder or s3://, gs:// URL (default: in the tree)"
    )
    parser.add_argument("--datasets", nargs="+", metavar="ID", help="only these datasets")
    parser.add_argument("--runs", nargs="+", metavar="NAME", help="only these runs")
    parser.add_argument("--workers", type=int, help="parallel workers (default: all cores)")
    parser.add_argument(
        "--scheduler", metavar="ADDRESS", help="Dask scheduler, e.g. tcp://host:8786"
    )
    parser.add_argument("--force", action="store_true", help="redo finished, unchanged outputs too")
    parser.add_argument("--report", type=Path, metavar="FILE", help="write a JSON report here")


def run_precompute(args: argparse.Namespace, config: Config) -> int:
    options = parse_options(PrecomputeOptions, args)
    from cryoet_ng.store import is_url
    from precompute import output_roots
    from precompute.batch import Plan, run_batch

    data_root: str | Path = options.data_root
    out = options.out
    if is_url(options.data_root):
        # A remote tree's outputs go beside it unless --out or output_root names a root
        # (the configured data root is another tree).
        if out is None and config.output_root is None:
            out = options.data_root
    else:
        config = with_overrides(config, {"data_root": str(Path(options.data_root).resolve())})
        data_root = config.data_root

    workers = options.workers or config.precompute.workers or os.cpu_count() or 1
    plan = Plan(
        workers=max(1, workers),
        scheduler=options.scheduler,
        force=options.force,
        datasets=options.datasets,
        runs=options.runs,
    )
    try:
        with output_roots.open_output_root(out, config.out_root) as root:
            report = run_batch(data_root, root, config, plan)
    except output_roots.StorageError as exc:
        print(f"cryoet-ng precompute: {exc}", file=sys.stderr)
        return 2
    print(report.table())
    if options.report is not None:
        report.write(options.report)
        log.info("report written to %s", options.report)
    return 0 if report.ok else 1


@dataclass(frozen=True)
class ValidateOptions:
    out_root: str


def add_validate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_root", type=str, metavar="OUT_ROOT")


def run_validate(args: argparse.Namespace, config: Config) -> int:
    options = parse_options(ValidateOptions, args)
    if "://" in options.out_root:
        print(f"cryoet-ng validate: {options.out_root}: only local output roots can be validated")
        return 2
    from precompute.validate import validate_tree

    root = Path(options.out_root).expanduser()
    checked, problems = validate_tree(root)
    for problem in problems:
        print(problem)
    print(f"{checked} outputs checked under {root}, {len(problems)} problems")
    return 1 if problems else 0


COMMANDS = (
    Command(
        "precompute",
        "convert annotations and masks to precomputed formats",
        add_precompute_arguments,
        run_precompute,
    ),
    Command(
        "validate",
        "re-read every output with independent readers",
        add_validate_arguments,
        run_validate,
    ),
)
