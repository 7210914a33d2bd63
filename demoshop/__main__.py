"""Command line: ``python -m demoshop [serve] ...`` or ``python -m demoshop truth ...``."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from collections.abc import Sequence

from demoshop.catalogue import Catalogue
from demoshop.faults import FaultConfig, add_arguments, add_catalogue_arguments

COMMANDS = ("serve", "truth")


def _parser(command: str, exit_on_error: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python -m demoshop {command}",
        description="Serve the demo shop." if command == "serve" else "Print the shop's ground truth (JSON lines).",
        exit_on_error=exit_on_error,
    )
    parser.add_argument("--products", type=int, default=300, help="number of Matter certified products (default 300)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    add_catalogue_arguments(parser)
    if command == "truth":
        parser.add_argument(
            "--all",
            action="store_true",
            help='also list the non-Matter entries of the unfiltered list ("matter": false), in its order',
        )
    if command == "serve":
        parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
        parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default 0)")
        parser.add_argument("--request-log", metavar="FILE", help="append one JSON line per request to FILE")
        add_arguments(parser)
    return parser


def _catalogue(options: argparse.Namespace) -> Catalogue:
    return Catalogue(
        options.products,
        options.seed,
        gone_share=options.gone_share,
        dead_share=options.dead_share,
        dead_host=options.dead_host,
        grow=options.grow,
        change_share=options.change_share,
        change_seed=options.change_seed,
        js_never_render=options.js_never_render,
        js_never_render_on=options.js_never_render_on,
        js_never_render_seed=options.js_never_render_seed,
    )


def prints_dead_line(serve_args: Sequence[str]) -> bool:
    """Whether ``python -m demoshop serve *serve_args`` prints a ``dead:`` line after its URL."""
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            options, _ = _parser("serve", exit_on_error=False).parse_known_args(list(serve_args))
    except (argparse.ArgumentError, SystemExit):
        return False  # the shop will fail to start and say why
    return options.dead_share > 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    command = args.pop(0) if args and args[0] in COMMANDS else "serve"
    parser = _parser(command)
    options = parser.parse_args(args)
    if command == "serve" and options.new > options.grow:
        parser.error(f"--new {options.new} is more than --grow {options.grow}: --new counts --grow products")
    catalogue = _catalogue(options)
    if command == "truth":
        write = sys.stdout.write
        for line in catalogue.truth(matter_only=not options.all):
            write(json.dumps(line) + "\n")
        sys.stdout.flush()
        return 0
    from demoshop.server import serve

    serve(
        catalogue,
        host=options.host,
        port=options.port,
        request_log_path=options.request_log,
        faults=FaultConfig.from_options(options),
        grow_every=options.grow_every,
        new=options.new,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
