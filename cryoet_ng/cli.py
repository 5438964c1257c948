"""``cryoet-ng``: one command, one sub-command per job.

Each sub-command parses its arguments here and hands over to the package that does
the work (imported lazily, so ``--help`` stays fast):

    sample         -> cryoet_ng.sample       synthetic portal-layout data tree
    precompute     -> precompute.batch       annotations/masks/tomograms -> precomputed
    validate       -> precompute.validate    re-read outputs with independent readers
    state          -> ngstate.cli            one viewer state (or its explanation)
    export-states  -> ngstate.cli            every tomogram's state file
    index          -> cryoet_ng.index        build or refresh the tree's index
    serve          -> server.cli             the Flask service (development server)
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from cryoet_ng.config import Config, ConfigError, load_config
from cryoet_ng.store import is_url


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, help="YAML configuration (default: configs/default.yaml)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cryoet-ng",
        description="Neuroglancer precompute, viewer states and View Tomogram service for cryo-ET.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("sample", help="write a synthetic portal-layout data tree")
    p.add_argument("out_dir", type=Path, metavar="OUT_DIR")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--size", choices=["test", "demo"], default="test", help="tomogram size")

    p = sub.add_parser("precompute", help="convert annotations and masks to precomputed formats")
    p.add_argument("data_root", metavar="DATA_ROOT", help="folder, s3://, gs:// or https:// URL")
    p.add_argument(
        "--out", type=str, help="output root: folder or s3://, gs:// URL (default: in the tree)"
    )
    p.add_argument("--datasets", nargs="+", metavar="ID", help="only these datasets")
    p.add_argument("--runs", nargs="+", metavar="NAME", help="only these runs")
    p.add_argument("--workers", type=int, help="parallel workers (default: all cores)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler, e.g. tcp://host:8786")
    p.add_argument("--force", action="store_true", help="redo finished, unchanged outputs too")
    p.add_argument("--report", type=Path, metavar="FILE", help="write a JSON report here")
    _add_config(p)

    p = sub.add_parser("validate", help="re-read every output with independent readers")
    p.add_argument("out_root", type=str, metavar="OUT_ROOT")
    _add_config(p)

    p = sub.add_parser("state", help="print the viewer state of one tomogram")
    p.add_argument("data_root", type=Path, metavar="DATA_ROOT")
    p.add_argument("dataset", metavar="DATASET")
    p.add_argument("run", metavar="RUN")
    p.add_argument("--tomogram", metavar="ID", help="tomogram id (default: the run's default)")
    p.add_argument("--explain", action="store_true", help="print the layer decisions instead")
    p.add_argument("--out", type=Path, help="precompute output root (default: the data tree)")
    _add_config(p)

    p = sub.add_parser("export-states", help="write <tomogram_id>-neuroglancer_config.json files")
    p.add_argument("data_root", type=Path, metavar="DATA_ROOT")
    p.add_argument(
        "--out", type=Path, metavar="OUT_ROOT", help="output root (default: the data tree)"
    )
    _add_config(p)

    p = sub.add_parser("index", help="build or refresh the tree's index (beside the outputs)")
    p.add_argument("data_root", metavar="DATA_ROOT", help="folder, s3:// or gs:// URL")
    p.add_argument(
        "--out", type=str, help="index root: folder or s3://, gs:// URL (default: output root)"
    )
    p.add_argument("--datasets", nargs="+", metavar="ID", help="only these datasets")
    p.add_argument("--runs", nargs="+", metavar="NAME", help="only these runs")
    p.add_argument("--rebuild", action="store_true", help="ignore the existing index")
    _add_config(p)

    p = sub.add_parser("serve", help="run the View Tomogram service (development server)")
    _add_config(p)
    p.add_argument("--data-root", type=Path, help="data tree (overrides the configuration)")
    p.add_argument("--host", help="listen address")
    p.add_argument("--port", type=int, help="listen port")
    return parser


def config_for(args: argparse.Namespace) -> Config:
    """The configuration file named by ``--config``, with this command's overrides."""
    overrides: dict[str, object] = {}
    data_root = getattr(args, "data_root", None)
    if data_root is not None and not is_url(data_root):  # URLs stay on args (precompute, index)
        overrides["data_root"] = str(Path(data_root).resolve())
    out = getattr(args, "out", None)
    if isinstance(out, Path):
        overrides["output_root"] = str(out.resolve())
    for key in ("host", "port"):
        if getattr(args, key, None) is not None:
            overrides[f"server.{key}"] = getattr(args, key)
    return load_config(getattr(args, "config", None), overrides)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "sample":
            from cryoet_ng import sample

            return sample.main(args)
        config = config_for(args)
        if args.command == "precompute":
            from precompute import batch

            return batch.main(args, config)
        if args.command == "index":
            from cryoet_ng import index

            return index.main(args, config)
        if args.command == "validate":
            from precompute import validate

            return validate.main(args, config)
        if args.command in ("state", "export-states"):
            from ngstate import cli as ngstate_cli

            return ngstate_cli.main(args, config)
        if args.command == "serve":
            from server import cli as server_cli

            return server_cli.main(args, config)
    except ConfigError as exc:
        print(f"cryoet-ng: configuration error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 1
    raise AssertionError(args.command)  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
