"""Run the demo shop as a subprocess (for tests, benchmarks and the demo)."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

from demoshop.pages import MATTER_QUERY

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
_PROJECT_ROOT = str(Path(__file__).resolve().parent.parent)


class ShopProcess:
    """``python -m demoshop serve`` on a free port; a context manager.

    ``url`` is the base URL (with a trailing slash), ``list_url`` the first
    page of the Matter certified products list (the filtered URL, as on
    csa-iot.org; ``js_list_url``: the same on the JavaScript variant),
    ``all_url`` the first page of the unfiltered list (Matter products mixed
    with Zigbee products, platforms and software components),
    ``pid`` the process id.  ``extra_args`` are more ``serve`` flags
    (faults, capacity, ...: ``python -m demoshop serve --help``); with
    ``--dead-share`` > 0, ``dead_url`` is the dead host's base URL (the shop's
    second line), else None.  ``rate`` > 0 limits each client to that many
    requests per second (``--rate``; ``rate_burst``: ``--rate-burst``,
    ``retry_after_format``: ``--retry-after-format``, see :mod:`demoshop.ratelimit`).
    """

    def __init__(
        self,
        products: int = 300,
        seed: int = 1,
        request_log: str | os.PathLike[str] | None = None,
        extra_args: Sequence[str] = (),
        host: str = "127.0.0.1",
        rate: float = 0.0,
        rate_burst: float | None = None,
        retry_after_format: str | None = None,
    ) -> None:
        self.products = products
        self.seed = seed
        self.request_log = request_log
        self.extra_args = tuple(extra_args)
        if rate > 0:
            self.extra_args += ("--rate", repr(float(rate)))
        if rate_burst is not None:
            self.extra_args += ("--rate-burst", repr(float(rate_burst)))
        if retry_after_format is not None:
            self.extra_args += ("--retry-after-format", retry_after_format)
        self.host = host
        self.url = ""
        self.dead_url: str | None = None
        self._buffer = b""
        self.process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("the shop is not running")
        return self.process.pid

    @property
    def list_url(self) -> str:
        return f"{self.url}csa-iot_products/?{MATTER_QUERY}"

    @property
    def js_list_url(self) -> str:
        """The first page of the Matter list of the JavaScript variant (cards rendered by a script)."""
        return f"{self.url}js/csa-iot_products/?{MATTER_QUERY}"

    @property
    def all_url(self) -> str:
        return f"{self.url}csa-iot_products/"

    def start(self) -> ShopProcess:
        """Start the shop and wait for its URL line."""
        if self.process is not None:
            raise RuntimeError("the shop is already started")
        command = [sys.executable, "-m", "demoshop", "serve", "--host", self.host, "--port", "0"]
        command += ["--products", str(self.products), "--seed", str(self.seed)]
        if self.request_log is not None:
            command += ["--request-log", os.fspath(self.request_log)]
        command += self.extra_args
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PROJECT_ROOT, env.get("PYTHONPATH")]))
        self._stderr = tempfile.TemporaryFile()
        self._buffer = b""
        self.dead_url = None
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self._stderr, env=env)
        try:
            line = self._read_line(START_TIMEOUT)
        except BaseException:
            self.stop()
            raise
        if not line.startswith("http://"):
            message = f"demoshop printed {line!r} instead of its URL; stderr:\n{self._stderr_text()}"
            self.stop()
            raise RuntimeError(message)
        self.url = line
        from demoshop.__main__ import prints_dead_line

        if prints_dead_line(command[4:]):
            try:
                line = self._read_line(START_TIMEOUT)
            except BaseException:
                self.stop()
                raise
            if not line.startswith("dead: http://"):
                message = f"demoshop printed {line!r} instead of its dead host; stderr:\n{self._stderr_text()}"
                self.stop()
                raise RuntimeError(message)
            self.dead_url = line.removeprefix("dead: ")
        return self

    def _read_line(self, timeout: float) -> str:
        assert self.process is not None and self.process.stdout is not None
        stdout = self.process.stdout
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    message = f"demoshop did not print its URL within {timeout:g} s; stderr:\n{self._stderr_text()}"
                    self.stop()
                    raise RuntimeError(message)
                chunk = os.read(stdout.fileno(), 4096)
                if not chunk:
                    code = self.process.wait()
                    raise RuntimeError(f"demoshop exited with status {code} before printing its URL; "
                                       f"stderr:\n{self._stderr_text()}")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode("utf-8", "replace").strip()

    def _stderr_text(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")

    def stop(self) -> int | None:
        """SIGTERM, wait up to 10 s, then kill; returns the exit status."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        return process.returncode

    def __enter__(self) -> ShopProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
