"""The browser for ``render = "js"`` stages: Chromium found, checked and launched through scrapy-playwright.

Playwright cannot download its own browsers on the machines this project runs
on, so it launches the system's Chromium by path (Debian's ``chromium``
package: ``/usr/bin/chromium``; ``BROWSER_EXECUTABLE`` overrides it).

Nothing here runs unless a stage of the site profile needs the browser: the
spider calls :func:`enable_browser` from ``from_crawler`` (before any request),
which checks the executable (a one-line :class:`~crawler.errors.ConfigError`,
exit status 2, naming how to install it) and only then routes the scheme of the
site's start URLs (``http`` or ``https``) through scrapy-playwright's download handler.  That handler passes requests
without ``meta["playwright"]`` to Scrapy's own HTTP handler and launches the
browser on the first request that has it, so a profile whose list stage is
plain HTTP starts Chromium with its first detail page.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable, Mapping
from typing import Any

from scrapy.settings import SETTINGS_PRIORITIES, BaseSettings

from crawler import defaults
from crawler.errors import ConfigError

logger = logging.getLogger(__name__)

#: scrapy-playwright's download handler, for ``http`` and ``https``.
HANDLER = "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler"
#: Where Chromium is looked for when ``BROWSER_EXECUTABLE`` is empty: Debian's
#: package first, then the names other distributions use, on ``PATH``.
CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "chromium", "chromium-browser", "google-chrome")
#: How to get a browser, for the error line.
INSTALL_HINT = "install it (apt-get install chromium) or set BROWSER_EXECUTABLE to a Chromium binary"
#: Chromium flags: no /dev/shm exhaustion in containers, no GPU and no GPU process, no first-run
#: chores, no site isolation between the catalogue's pages (pages of one site may share a renderer).
#: Renderers are forked from Chromium's zygote: ``--no-zygote`` starts each one from scratch, for
#: about 1.7x the browser's CPU time per page and no less memory (bench/js.py).
LAUNCH_ARGS = (
    "--disable-dev-shm-usage", "--disable-gpu", "--in-process-gpu", "--no-first-run", "--no-default-browser-check",
    "--disable-site-isolation-trials",
)  # fmt: skip
#: Chromium features turned off: the address bar's popups, web pages of their own that headless
#: Chromium preloads in one more renderer process per browser context (~200 MB RSS each).
DISABLED_FEATURES = ("WebUIOmniboxPopup", "WebUIOmniboxAimPopup")
#: Chromium features turned on: the network service inside the browser process (~100 MB RSS less).
ENABLED_FEATURES = ("NetworkServiceInProcess2",)
#: Chromium reads only the last ``--disable-features`` and ``--enable-features`` switch, and Playwright
#: passes its own first: ours repeat Playwright's (``chromiumSwitches.ts`` of the pinned playwright,
#: requirements.txt), else they would be dropped.
PLAYWRIGHT_DISABLED_FEATURES = (
    "AvoidUnnecessaryBeforeUnloadCheckSync", "DestroyProfileOnBrowserClose", "HttpsUpgrades",
    "HttpsFirstBalancedModeAutoEnable", "LensOverlay", "MediaRouter", "PaintHolding", "ThirdPartyStoragePartitioning",
    "AvoidCorsURLLoaderRestartOnRedirect", "TcpPortRandomizationWin", "OptimizationHints",
    "NetworkTimeServiceQuerying", "AimEnabled", "PreconnectToSearch", "msForceBrowserSignIn",
    "msEdgeUpdateLaunchServicesPreferredVersion",
)  # fmt: skip
PLAYWRIGHT_ENABLED_FEATURES = ("CDPScreenshotNewSurface", "SkipListAccountsWithoutGaiaCookies")
#: Settings priority of what :func:`enable_browser` sets: the spider's (a site profile's
#: ``[settings]`` and ``-s`` still win, being set at or above it before).
PRIORITY = "spider"


class BrowserMissing(ConfigError):
    """No usable Chromium: the message says where it was looked for and how to install it."""


def find_chromium(executable: str | None = None) -> str:
    """The absolute path of the Chromium to launch.

    ``executable`` (``BROWSER_EXECUTABLE``): a path or a command name on ``PATH``,
    which must exist and be executable; empty: the first of :data:`CANDIDATES`
    found.  Raises :class:`BrowserMissing` in one line otherwise.
    """
    if executable:
        found = _executable(executable)
        if found is None:
            raise BrowserMissing(f"browser not found: BROWSER_EXECUTABLE={executable!r} is not an executable file; "
                                 f"{INSTALL_HINT}")
        return found
    for candidate in CANDIDATES:
        found = _executable(candidate)
        if found is not None:
            return found
    raise BrowserMissing(f"the site profile renders pages with JavaScript but Chromium was not found "
                         f"(looked for {CANDIDATES[0]} and chromium on PATH): {INSTALL_HINT}")


def _executable(name: str) -> str | None:
    if os.sep in name:
        return os.path.abspath(name) if os.path.isfile(name) and os.access(name, os.X_OK) else None
    return shutil.which(name)


def chromium_args(renderer_processes: int = 1) -> list[str]:
    """Chromium's command-line switches: :data:`LAUNCH_ARGS`, the features, the renderer process limit.

    ``renderer_processes`` (``BROWSER_RENDERER_PROCESSES``) > 0: ``--renderer-process-limit``;
    past it Chromium puts a new page in a renderer process its browser context already has (one
    process holds the pages of one context only, so there is still one per open context at least).
    0: Chromium's own limit (a process per page, up to one per ~100 MB of the machine's memory).
    """
    if renderer_processes < 0:
        raise ValueError(f"renderer_processes must be >= 0, not {renderer_processes}")
    args = [
        *LAUNCH_ARGS,
        "--disable-features=" + ",".join(_unique(PLAYWRIGHT_DISABLED_FEATURES + DISABLED_FEATURES)),
        "--enable-features=" + ",".join(_unique(PLAYWRIGHT_ENABLED_FEATURES + ENABLED_FEATURES)),
    ]
    if renderer_processes:
        args.append(f"--renderer-process-limit={renderer_processes}")
    return args


def _unique(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(names))


def launch_options(executable: str, settings: Any = None) -> dict[str, Any]:
    """``PLAYWRIGHT_LAUNCH_OPTIONS`` for ``executable``: headless, with :func:`chromium_args`.

    Options the settings already give (``PLAYWRIGHT_LAUNCH_OPTIONS``) are kept and win
    (``args`` among them: then Chromium gets those switches instead of ours).
    """
    given = dict(settings.getdict("PLAYWRIGHT_LAUNCH_OPTIONS") or {}) if settings is not None else {}
    renderer_processes = defaults.get_number(settings, "BROWSER_RENDERER_PROCESSES", int, 0)
    options: dict[str, Any] = {"headless": True, "args": chromium_args(renderer_processes)}
    options.update(given)
    options["executable_path"] = executable
    return options


class ResourceBlocker:
    """``PLAYWRIGHT_ABORT_REQUEST``: aborts the browser's requests of the blocked resource types.

    A page's images, fonts and media are never read by a crawler; not loading
    them saves bandwidth, time and browser memory.  Counted by scrapy-playwright
    in ``playwright/request_count/aborted``.
    """

    def __init__(self, resource_types: Iterable[str]) -> None:
        self.resource_types = frozenset(str(t).strip().lower() for t in resource_types if str(t).strip())

    def __call__(self, request: Any) -> bool:
        return request.resource_type in self.resource_types

    def __repr__(self) -> str:
        return f"ResourceBlocker({sorted(self.resource_types)!r})"


def check_playwright() -> None:
    """Raise a one-line ConfigError when scrapy-playwright (or Playwright) cannot be imported."""
    try:
        import playwright.async_api  # noqa: F401
        import scrapy_playwright.handler  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"the site profile renders pages with JavaScript but {exc.name or 'scrapy-playwright'} "
                          "is not installed: pip install -r requirements.txt") from None


def enable_browser(settings: Any, stages: Iterable[str], schemes: Iterable[str] = ("http", "https")) -> str:
    """Route the crawl's downloads of ``schemes`` through scrapy-playwright for ``stages``; return Chromium's path.

    Called before the crawl starts (the settings are not frozen yet), only when a
    stage of the site profile has ``render = "js"``.  Checks Playwright and the
    browser first: a missing one is a :class:`BrowserMissing` (one line, exit
    status 2) before any request.  Sets, at :data:`PRIORITY` unless given higher:
    ``DOWNLOAD_HANDLERS`` (``schemes``: those of the site's start URLs; scrapy-playwright
    starts one Playwright, and could start one browser, per scheme), ``PLAYWRIGHT_LAUNCH_OPTIONS``
    (executable, headless) and ``PLAYWRIGHT_ABORT_REQUEST`` (a
    :class:`ResourceBlocker` of ``BROWSER_BLOCK_RESOURCES``).
    """
    stages = tuple(stages)
    schemes = sorted({scheme for scheme in schemes if scheme in ("http", "https")}) or ["http", "https"]
    check_playwright()
    executable = find_chromium(str(defaults.get(settings, "BROWSER_EXECUTABLE") or ""))
    handlers = settings["DOWNLOAD_HANDLERS"]
    if isinstance(handlers, BaseSettings):  # per scheme: a handler given with -s for a scheme wins
        for scheme in schemes:
            handlers.set(scheme, HANDLER, priority=PRIORITY)
    else:
        routed = {**settings.getdict("DOWNLOAD_HANDLERS"), **dict.fromkeys(schemes, HANDLER)}
        _set(settings, "DOWNLOAD_HANDLERS", routed)
    # the executable is always the one found; other launch options given in the settings are kept
    _set(settings, "PLAYWRIGHT_LAUNCH_OPTIONS", launch_options(executable, settings), force=True)
    if not settings.get("PLAYWRIGHT_ABORT_REQUEST"):
        blocked = settings.getlist("BROWSER_BLOCK_RESOURCES", list(defaults.BROWSER_BLOCK_RESOURCES))
        if blocked:
            _set(settings, "PLAYWRIGHT_ABORT_REQUEST", ResourceBlocker(blocked), force=True)
    logger.info("Stages rendered in the browser: %s (Chromium: %s, started with the first of their requests)",
                ", ".join(stages), executable)
    return executable


def render_meta(render: Any) -> dict[str, Any]:
    """``request.meta`` of a ``render = "js"`` stage's requests (a :class:`crawler.siteprofile.Render`).

    JSON only, so a dead letter or a resumed run replays the request as it was:
    ``crawler.middlewares.browser`` turns it into scrapy-playwright's page methods.
    """
    return {"playwright": True, "browser_render": {"wait_for": render.wait_for, "timeout": render.timeout}}


def routed_schemes(settings: Any) -> frozenset[str]:
    """The URL schemes whose downloads go through scrapy-playwright's handler."""
    handlers = settings.getdict("DOWNLOAD_HANDLERS") or {}
    return frozenset(scheme for scheme, handler in handlers.items() if handler == HANDLER)


def _set(settings: Any, name: str, value: Any, force: bool = False) -> None:
    """Set ``name`` at :data:`PRIORITY`; with ``force``, at the priority it already has when higher."""
    priority = max(settings.getpriority(name) or 0, SETTINGS_PRIORITIES[PRIORITY]) if force else PRIORITY
    settings.set(name, value, priority=priority)


def browser_limits(settings: Any) -> Mapping[str, int]:
    """The browser's resource bounds the settings give, checked (one-line ConfigError when invalid)."""
    return {
        "contexts": defaults.get_number(settings, "PLAYWRIGHT_MAX_CONTEXTS", int, 1),
        "pages_per_context": defaults.get_number(settings, "PLAYWRIGHT_MAX_PAGES_PER_CONTEXT", int, 1),
        "recycle_pages": defaults.get_number(settings, "BROWSER_CONTEXT_RECYCLE_PAGES", int, 0),
    }
