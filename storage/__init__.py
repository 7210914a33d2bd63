"""The crawler's database: SQLAlchemy Core on SQLite (embedded default) or PostgreSQL.

Pure storage, no Scrapy (the glue is ``pipelines/store.py`` and
``extensions/dead_letters.py``), one module one job:

* :mod:`storage.engine`: :func:`~storage.engine.open_engine` (URL checks,
  password hidden, SQLite pragmas and WAL), :class:`~storage.engine.DatabaseError`,
  and the shared helpers ``one_line``, ``utc_iso``, ``is_transient``,
  ``chunks``, ``dialect_insert``, ``IN_CHUNK``.
* :mod:`storage.schema`: every table on one ``metadata`` (``products``,
  ``rejected_items``, ``dead_letters``), the column types and lengths
  (``ID_TYPE``, ``SITE_LENGTH``, ``KEY_LENGTH``, ...) and ``SCHEMA_LOCK_KEY``.
* :mod:`storage.base`: :class:`~storage.base.SqlStore`, the base of the
  stores (engine, writer connection, ``create_schema``).
* :mod:`storage.products`: :class:`~storage.products.ProductStore` and its
  ``ProductRow``, ``RejectRow``, ``BatchResult``, ``StoreWriteError``.
* :mod:`storage.dead_letters`: :class:`~storage.dead_letters.DeadLetterStore`
  and its ``DeadLetterRow``, ``DeadLetterFilter``, ``WriteResult``,
  ``DeadLetterWriteError``.
* :mod:`storage.writer`: :class:`~storage.writer.WriterThread` (the one
  thread that writes, off the reactor) and :class:`~storage.writer.FlushTimer`
  (Twisted; used by both glue modules).

Names are imported from their module (nothing is re-exported here, so
importing one module does not load the others).
"""
