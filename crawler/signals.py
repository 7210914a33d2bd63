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
"""

request_dead_lettered = object()
request_filtered = object()
