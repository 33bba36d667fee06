"""Every tunable default that more than one module needs, named once with the reason for its value.

Settings a user changes live in the config dataclasses (gearpy.server.config, gearpy.worker.config,
gearpy.client.config) whose field defaults point here; library code that takes the same value as a
keyword argument uses the same constant, so a default never drifts between a class and a command.
"""

from __future__ import annotations

from typing import Final

#: TCP port of a Gearman server: IANA's "gearman" port, gearmand's default.
PORT: Final = 4730
#: Address the server listens on: loopback, so a fresh server is not reachable from the network.
LISTEN: Final = "127.0.0.1"
#: The server clients and workers use when nothing says otherwise: gearmand's default on this host.
SERVER: Final = f"127.0.0.1:{PORT}"
#: Seconds to wait for a TCP connection (to a job server or a queue database) before giving up on
#: it; long enough for a loaded host, short enough to try the next server soon.
CONNECT_TIMEOUT: Final = 5.0
#: Seconds an admin command (status, workers, cancel ...) may take to answer.
ADMIN_TIMEOUT: Final = 10.0
#: Port of the opt-in Prometheus endpoint when ``--metrics`` names only a host.
METRICS_PORT: Final = 9418
#: Reconnect backoff of clients and workers: the first delay and the cap, in seconds (jittered).
RECONNECT_BACKOFF_BASE: Final = 0.2
RECONNECT_BACKOFF_CAP: Final = 5.0
#: Seconds between refreshes of ``gearpy-client top``: what watch(1) does by default.
TOP_INTERVAL: Final = 2.0
