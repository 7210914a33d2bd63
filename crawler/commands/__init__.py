"""The project's Scrapy commands (``COMMANDS_MODULE``), and what they share.

Each command is a :class:`scrapy.commands.ScrapyCommand` with the
:class:`OneLineErrors` mixin: it implements ``execute()`` instead of ``run()``
and raises :class:`CommandError` (or a :class:`crawler.errors.ConfigError`)
for bad input, which becomes one line ``error: <message>`` on stderr and exit
status 2, never a traceback.  (A module here must not define a
``ScrapyCommand`` subclass that is not a command: Scrapy would list it.)
"""

from __future__ import annotations

import argparse
import os
import sys

from crawler.errors import ConfigError

__all__ = ["CommandError", "OneLineErrors"]


class CommandError(Exception):
    """A command's one-line error: ``error: <message>`` on stderr, exit status 2."""


class OneLineErrors:
    """Mixin of the project's commands: ``run()`` calls ``execute()`` and turns its errors into one line.

    :class:`CommandError` and :class:`~crawler.errors.ConfigError`: ``error: <message>``
    on stderr, exit status 2.  A closed stdout (``scrapy dlq list | head``): stop
    quietly, exit status 1.
    """

    exitcode: int

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        try:
            self.execute(args, opts)
        except (CommandError, ConfigError) as exc:
            print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
            self.exitcode = 2
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            self.exitcode = 1

    def execute(self, args: list[str], opts: argparse.Namespace) -> None:
        raise NotImplementedError
