"""``python -m gearpy.worker`` runs ``gearpy-worker``.

gevent's monkey-patching comes first, before anything imports ``socket``, ``ssl`` or ``threading``.
"""

from gevent import monkey

monkey.patch_all()

from gearpy.worker.cli import main  # noqa: E402

main()
