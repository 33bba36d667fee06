"""The gearpy job server: a drop-in replacement for gearmand.

Embed one with :class:`GearServer` (``start()``, then ``serve_forever()`` or ``stop()``), or run
the process as ``gearpy-server`` (:func:`run` is what the command calls)::

    from gearpy.server import GearServer, ServerConfig, open_store

    server = GearServer(ServerConfig(port=4730), open_store("sqlite:///var/lib/gearpy/queue.db"))
    server.start()
    server.serve_forever()

Layout (the import-linter contracts in pyproject.toml keep it): :mod:`.core` (the protocol's
semantics, sans I/O) with :mod:`.jobs`, :mod:`.queues`, :mod:`.index`, :mod:`.durable`,
:mod:`.admin`, :mod:`.wire`, :mod:`.state` and the collaborator types in :mod:`.interfaces`;
:mod:`.net` (the gevent layer) with :mod:`.sockets` and :mod:`.timers`; :mod:`.tls`, :mod:`.acl`
(with :mod:`.certsubject` and :mod:`.refusals`), :mod:`.metrics`; :mod:`.store` (the interface
and the memory store) and :mod:`.stores` (the registry and the durable stores); :mod:`.process`
(signals, pid file) and :mod:`.cli` (the command).
"""

from gearpy.server.config import ServerConfig
from gearpy.server.core import ServerCore
from gearpy.server.net import GearServer
from gearpy.server.process import run
from gearpy.server.store import MemoryStore, QueueStore, StoredJob
from gearpy.server.stores import open_store

__all__ = [
    "GearServer",
    "MemoryStore",
    "QueueStore",
    "ServerConfig",
    "ServerCore",
    "StoredJob",
    "open_store",
    "run",
]
