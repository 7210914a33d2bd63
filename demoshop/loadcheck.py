"""Throughput check: requests per CPU-second of the shop process.

``python -m demoshop.loadcheck --products 2000 --concurrency 16 --passes 2``
starts a shop with :class:`~demoshop.process.ShopProcess`, crawls it like a
spider would (every page of the Matter list, then its products) with a keep-alive Twisted
``Agent``, and prints, for each pass, requests, wall time and requests per
CPU-second of the shop (psutil ``cpu_times`` of its pid).  The first pass
renders every page (cold), later passes are served from the page cache.
``--shop-args "--capacity 6 --queue 6 --latency 0.05"`` passes more flags to the
shop (e.g. the capacity model or faults; see ``python -m demoshop serve --help``).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import psutil

from demoshop.catalogue import Catalogue
from demoshop.pages import page_url
from demoshop.process import ShopProcess


def crawl_paths(catalogue: Catalogue) -> list[str]:
    """Every page of the Matter list (the filtered URL) followed by its product pages, in crawl order."""
    paths = []
    for page in range(1, catalogue.pages + 1):
        paths.append(page_url(page))
        paths.extend(catalogue.product(i).path for i in catalogue.page_range(page))
    return paths


def fetch_passes(
    base_url: str, passes: Sequence[Sequence[str]], concurrency: int, probe: Callable[[], float]
) -> list[tuple[float, float, dict[int, int]]]:
    """GET every path of each pass with ``concurrency`` requests in flight.

    Returns per pass: wall seconds, ``probe()`` difference (e.g. shop CPU) and a status histogram.
    """
    from twisted.internet import defer, protocol, reactor, task
    from twisted.web.client import Agent, HTTPConnectionPool, ResponseDone

    class Drain(protocol.Protocol):
        """Reads a response body, fires ``done`` with its size."""

        def __init__(self, done: defer.Deferred[int]) -> None:
            self.done, self.size = done, 0

        def dataReceived(self, data: bytes) -> None:
            self.size += len(data)

        def connectionLost(self, reason: Any = None) -> None:
            if reason is None or reason.check(ResponseDone):
                self.done.callback(self.size)
            else:
                self.done.errback(reason)

    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = concurrency
    pool.retryAutomatically = False
    agent = Agent(reactor, pool=pool)
    base = base_url.rstrip("/").encode()
    results: list[tuple[float, float, dict[int, int]]] = []
    failures: list[Any] = []

    def one_pass(paths: Sequence[str], statuses: dict[int, int]) -> Any:
        def got(response: Any) -> Any:
            statuses[response.code] = statuses.get(response.code, 0) + 1
            done: defer.Deferred[int] = defer.Deferred()
            response.deliverBody(Drain(done))
            return done

        work = (agent.request(b"GET", base + path.encode()).addCallback(got) for path in paths)
        cooperator = task.Cooperator()
        return defer.DeferredList([cooperator.coiterate(work) for _ in range(concurrency)], fireOnOneErrback=True)

    @defer.inlineCallbacks
    def run() -> Any:
        try:
            for paths in passes:
                statuses: dict[int, int] = {}
                wall, probed = time.perf_counter(), probe()
                yield one_pass(paths, statuses)
                results.append((time.perf_counter() - wall, probe() - probed, statuses))
            yield pool.closeCachedConnections()
        except Exception as exc:  # reported after the reactor stops
            failures.append(exc)
        finally:
            reactor.stop()

    reactor.callWhenRunning(run)
    reactor.run()
    if failures:
        raise RuntimeError(f"load check failed: {failures[0]!r}")
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Run the check and print one line per pass."""
    parser = argparse.ArgumentParser(prog="python -m demoshop.loadcheck", description=__doc__.split("\n")[0])
    parser.add_argument("--products", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--shop-args", default="", help="more flags for the shop, as one shell-quoted string")
    options = parser.parse_args(argv)
    paths = crawl_paths(Catalogue(options.products, options.seed))
    extra_args = shlex.split(options.shop_args)
    with ShopProcess(products=options.products, seed=options.seed, extra_args=extra_args) as shop:
        shop_process = psutil.Process(shop.pid)

        def shop_cpu() -> float:
            times = shop_process.cpu_times()
            return times.user + times.system

        results = fetch_passes(shop.url, [paths] * options.passes, options.concurrency, shop_cpu)
        rss = shop_process.memory_info().rss
    for number, (wall, cpu, statuses) in enumerate(results, 1):
        print(
            f"pass {number} ({'cold' if number == 1 else 'cached'}): {len(paths)} requests {statuses}, "
            f"wall {wall:.2f} s ({len(paths) / wall:,.0f} req/s), shop CPU {cpu:.2f} s "
            f"-> {len(paths) / cpu:,.0f} requests per shop CPU-second"
        )
    print(f"shop resident memory at the end: {rss / 2**20:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
