"""``cryoet-ng``: the composition root above the four packages.

It knows which package owns which sub-command and nothing else; each ``commands`` module
declares its flags and runs its work (see :mod:`cryoet_ng.commands`):

    sample         cryoet_ng.commands     synthetic portal-layout data tree
    index          cryoet_ng.commands     build or refresh the tree's index
    precompute     precompute.commands    annotations/masks/tomograms -> precomputed
    validate       precompute.commands    re-read outputs with independent readers
    state          ngstate.commands       one viewer state (or its explanation)
    export-states  ngstate.commands       every tomogram's state file
    serve          server.commands        the Flask service (development server)

Nothing in ``cryoet_ng``, ``precompute``, ``ngstate`` or ``server`` imports this package, so
the core's import graph never reaches the packages built on it.

Exit status, every sub-command (:mod:`cryoet_ng.commands`): 0 everything asked for was
done; 1 some input failed (each named on stderr), the rest was done; 2 nothing was done:
bad arguments, configuration (YAML, keys, environment overrides), a missing data root or
one that is not a portal tree, unknown ``--datasets``/``--runs``, a busy port.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from cryoet_ng.commands import EXIT_FAILED, EXIT_USAGE, Command, UsageError
from cryoet_ng.config import ConfigError, load_config

# Modules holding a COMMANDS tuple, in the order of the help text.
COMMAND_MODULES = (
    "cryoet_ng.commands",
    "precompute.commands",
    "ngstate.commands",
    "server.commands",
)


def commands() -> dict[str, Command]:
    found: dict[str, Command] = {}
    for module in COMMAND_MODULES:
        for command in importlib.import_module(module).COMMANDS:
            found[command.name] = command
    return found


def build_parser(known: dict[str, Command] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cryoet-ng",
        description="Neuroglancer precompute, viewer states and View Tomogram service for cryo-ET.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in (known or commands()).values():
        p = sub.add_parser(command.name, help=command.help)
        command.add_arguments(p)
        if command.takes_config:
            p.add_argument(
                "--config",
                type=Path,
                help="YAML configuration (default: the packaged default.yaml)",
            )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    known = commands()
    args = build_parser(known).parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    command = known[args.command]
    try:
        config = load_config(getattr(args, "config", None))
        return command.run(args, config)
    except ConfigError as exc:
        print(f"cryoet-ng {args.command}: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except UsageError as exc:
        print(f"cryoet-ng {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_FAILED
