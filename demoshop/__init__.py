"""Local demo shop: a deterministic copy of the csa-iot.org Matter certified-products catalogue.

``python -m demoshop`` serves it on 127.0.0.1 (Twisted web); ``python -m demoshop truth``
prints what a correct crawl must store.  See :mod:`demoshop.catalogue` (products and
truth), :mod:`demoshop.pages` (HTML), :mod:`demoshop.server` (HTTP) and
:mod:`demoshop.process` (run it as a subprocess).
"""
