"""Helpers shared by gearpy's own test suite (not part of the installed package).

``tests`` is on ``sys.path`` (``pythonpath`` in ``pyproject.toml``), so test modules write
``from support.raw import Session``. One module per kind of helper:

* :mod:`support.external` - external tools and the ``GEARPY_REQUIRE_EXTERNAL`` rule (skip -> failure).
* :mod:`support.servers` - gearmand as a reference server, next to :mod:`gearpy.testing`'s gearpy-server.
* :mod:`support.raw` - raw-socket protocol helpers: connect, read packets, ECHO barrier sessions, admin.
* :mod:`support.workers` - workers without gearpy's runtime: a threaded scriptable one, the
  ``rawworker.py`` subprocess, and process helpers.
* :mod:`support.waits` - bounded polling: ``wait_until``, ``wait_for_worker``, ``function_status``.
* :mod:`support.schedulers` - a fake timer scheduler and clock for driving ``ServerCore`` without sleeping.
* :mod:`support.pki` - throw-away TLS material made with ``openssl``.
* :mod:`support.stores` - MariaDB/PostgreSQL/Redis/SQLite stores with private tables.
* :mod:`support.faultproxy` - the fault-injecting TCP proxy (latency, blackhole, reset, half-open,
  slow link) for client, worker and store links; also used by ``scripts/soak.py``.
* :mod:`support.reliability` and ``jobtasks.py`` - the reliability tests' worker task (every run
  logged) and its log, the short keepalive flags, connection counts.
* :mod:`support.dashboard` - a gearpy-server with ``--http``, HTTP requests to it, a headless chromium.

The fixtures built on them live in ``tests/conftest.py`` (shared) or next to the tests that use them.
"""
