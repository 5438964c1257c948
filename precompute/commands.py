"""``cryoet-ng precompute`` and ``cryoet-ng validate``: flags, typed options, exit status.

precompute: 0 when every job is done or skipped and every input's metadata was readable
(a catalogue warning means an input was skipped, so it fails the batch too); 1 otherwise;
2 before anything starts when the data root is missing or not a portal tree, a
``--datasets``/``--runs`` id is unknown, the output root cannot be used, or another batch
holds it past ``--lock-wait``. validate: 0 when every output reads back correctly, 1 on any
problem, 2 for a root that is not a local folder.
"""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cryoet_ng.commands import Command, UsageError, parse_options
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
    dashboard: str | None = None  # a LocalCluster's dashboard address; None: none
    job_timeout: float | None = None  # None: precompute.job_timeout
    lock_wait: float | None = None  # None: precompute.lock_wait


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
    parser.add_argument(
        "--dashboard",
        nargs="?",
        const="127.0.0.1:0",
        metavar="ADDRESS",
        help="serve the Dask dashboard of the local cluster (default address: a free port)",
    )
    parser.add_argument(
        "--job-timeout",
        type=float,
        metavar="SECONDS",
        help="fail a job running longer (default: precompute.job_timeout; 0: no limit)",
    )
    parser.add_argument(
        "--lock-wait",
        type=float,
        metavar="SECONDS",
        help="wait this long for another batch on the same output root (0: exit 2 at once)",
    )


def run_precompute(args: argparse.Namespace, config: Config) -> int:
    options = parse_options(PrecomputeOptions, args)
    from cryoet_ng.store import is_url

    overrides: dict[str, object] = {
        "precompute.job_timeout": options.job_timeout,
        "precompute.lock_wait": options.lock_wait,
    }
    data_root: str | Path = options.data_root
    out = options.out
    if is_url(options.data_root):
        # A remote tree's outputs go beside it unless --out or output_root names a root
        # (the configured data root is another tree).
        if out is None and config.output_root is None:
            out = options.data_root
    else:
        overrides["data_root"] = str(Path(options.data_root).resolve())
    config = with_overrides(config, overrides)
    if not is_url(options.data_root):
        data_root = config.data_root  # resolved (validate and the locks compare it)
    from precompute import output_roots
    from precompute.batch import Plan, run_batch

    workers = options.workers or config.precompute.workers or os.cpu_count() or 1
    plan = Plan(
        workers=max(1, workers),
        scheduler=options.scheduler,
        force=options.force,
        datasets=options.datasets,
        runs=options.runs,
        dashboard=options.dashboard,
    )
    try:
        with output_roots.open_output_root(out, config.out_root) as root:
            report = run_batch(data_root, root, config, plan)
    except output_roots.StorageError as exc:
        raise UsageError(str(exc)) from exc
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
        raise UsageError(f"{options.out_root}: only local output roots can be validated")
    from precompute.validate import validate_tree

    # Resolved first: the walk compares paths it finds with paths built from the root.
    root = Path(options.out_root).expanduser().resolve()
    if not root.is_dir():
        raise UsageError(f"{root}: not a folder")
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
