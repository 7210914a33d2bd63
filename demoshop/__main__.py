"""Command line: ``python -m demoshop [serve] ...`` or ``python -m demoshop truth ...``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from demoshop.catalogue import Catalogue

COMMANDS = ("serve", "truth")


def _parser(command: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python -m demoshop {command}",
        description="Serve the demo shop." if command == "serve" else "Print the shop's ground truth (JSON lines).",
    )
    parser.add_argument("--products", type=int, default=300, help="number of products (default 300)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    if command == "serve":
        parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
        parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default 0)")
        parser.add_argument("--request-log", metavar="FILE", help="append one JSON line per request to FILE")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    command = args.pop(0) if args and args[0] in COMMANDS else "serve"
    options = _parser(command).parse_args(args)
    catalogue = Catalogue(options.products, options.seed)
    if command == "truth":
        write = sys.stdout.write
        for line in catalogue.truth():
            write(json.dumps(line) + "\n")
        sys.stdout.flush()
        return 0
    from demoshop.server import serve

    serve(catalogue, host=options.host, port=options.port, request_log_path=options.request_log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
