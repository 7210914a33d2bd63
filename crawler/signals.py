"""The project's own Scrapy signals.

``request_dead_lettered``
    A request was given up: its retries are exhausted, it failed permanently
    (404, 410, invalid URL, ...), its domain's circuit breaker gave up
    (``circuit_open``), or its callback failed.  Sent by the retry and
    circuit-breaker middlewares (``crawler.middlewares.give_up``) with
    ``crawler.signals.send_catch_log(signal=request_dead_lettered, request=...,
    failure_class=..., reason=..., status=..., exception=..., attempts=...)``:

    * ``request``: the :class:`scrapy.Request` given up;
    * ``failure_class``: ``"transient"`` or ``"permanent"``;
    * ``reason``: short snake_case reason (``http_503``, ``timeout``,
      ``http_404``, ``circuit_open``, ``callback_error``, ...);
    * ``status``: the last HTTP status, or None;
    * ``exception``: the last exception as one line (``"Type: message"``), or None;
    * ``attempts``: downloads tried.

    The dead-letter queue (``extensions/dead_letters.py``) stores it; the
    accounting extension counts it.

``request_filtered``
    A request was ignored by a policy (robots.txt, offsite, ...) rather than
    failing: ``request`` and ``reason`` (the IgnoreRequest message).  Sent by
    the retry middleware and the offsite middleware (``crawler/middlewares/offsite.py``);
    the accounting extension counts products so ended.

``breaker_changed``
    A domain's circuit breaker changed state.  Sent by the circuit-breaker
    middleware (``crawler/middlewares/circuit_breaker.py``) with ``key`` (the
    download slot: the domain, or ``meta["download_slot"]``), ``old`` and
    ``new`` (``"closed"``, ``"open"``, ``"half_open"``) and ``reason``
    (e.g. ``"5 consecutive failures"``).  The adaptive controller reads
    ``new == "open"`` as "the site is down", not overloaded: the cuts that led
    into the outage set no ceiling, and once the site is back the limit
    doubles back to where it was (``crawler/middlewares/adaptive.py``).

``item_store_opened``
    The store pipeline (``pipelines/store.py``) is open: products count as
    saved or rejected only once their rows commit (``items_stored``).

``items_stored``
    A batch of the store pipeline was written: ``saved``, ``rejected`` and
    ``failed`` are lists of ``(site, url)`` of its rows, each as it ended:
    committed as a product, committed as a reject (a database refusal of a
    product row included), or not written at all.  Sent on the reactor
    thread after the transaction; the accounting extension ends products so.

``dead_letter_queue_opened``
    The dead-letter queue (``extensions/dead_letters.py``) is open: a product
    counts as dead-lettered once its dead letter commits (``dead_letters_stored``).

``dead_letters_stored``
    A batch of dead letters was written: ``stored`` and ``failed`` are lists
    of the request fingerprints (hex, ``crawler.request_fingerprinter``) of
    its rows, committed or not written.
"""

request_dead_lettered = object()
request_filtered = object()
breaker_changed = object()
item_store_opened = object()
items_stored = object()
dead_letter_queue_opened = object()
dead_letters_stored = object()
