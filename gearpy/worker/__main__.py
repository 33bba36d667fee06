"""``python -m gearpy.worker`` and the ``gearpy-worker`` script run ``gearpy-worker``.

gevent's monkey-patching comes first, before anything imports ``socket``, ``ssl`` or ``threading``:
that is why the console script points here and not at :mod:`gearpy.worker.cli`.
"""

from gevent import monkey

monkey.patch_all()

from gearpy.worker.cli import main  # noqa: E402

__all__ = ["main"]

if __name__ == "__main__":
    main()
