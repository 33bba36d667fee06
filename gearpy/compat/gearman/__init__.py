"""python-gearman 2.x's API on gearpy: change ``import gearman`` to ``from gearpy.compat import gearman``.

The names, signatures and semantics are python-gearman's (Yelp 2.0.2; Artefactual's ``gearman3``
fork, which Archivematica runs): :class:`GearmanClient`, :class:`GearmanWorker`,
:class:`GearmanAdminClient`, :class:`DataEncoder`, the ``JOB_*`` states and ``PRIORITY_*``
constants, and the submodules ``gearman.errors``, ``gearman.constants``, ``gearman.job``.

It runs on plain threads: standard-library sockets and ``selectors``, no gevent and no
monkey-patching. As in python-gearman, one client/worker object belongs to one thread at a time;
give each thread its own. Every packet is encoded and decoded by :mod:`gearpy.protocol`.

Where python-gearman was wrong (an ERROR reply left a request PENDING forever, unknown handles
raised KeyError, TLS used the removed ``ssl.wrap_socket`` and verified nothing ...) this module does
the sane thing; each difference is listed in the module docstrings and in docs/guide.md
("Moving a python-gearman program (Archivematica) to gearpy").
"""

from gearpy.compat.gearman import constants, errors, job
from gearpy.compat.gearman.admin_client import GearmanAdminClient
from gearpy.compat.gearman.client import GearmanClient
from gearpy.compat.gearman.connection_manager import DataEncoder, JSONDataEncoder, NoopEncoder
from gearpy.compat.gearman.constants import (
    DEFAULT_GEARMAN_PORT,
    JOB_COMPLETE,
    JOB_CREATED,
    JOB_FAILED,
    JOB_PENDING,
    JOB_UNKNOWN,
    PRIORITY_HIGH,
    PRIORITY_LOW,
    PRIORITY_NONE,
)
from gearpy.compat.gearman.job import GearmanJob, GearmanJobRequest
from gearpy.compat.gearman.worker import GearmanWorker

#: python-gearman's version this module reproduces.
__version__ = "2.0.2"

__all__ = [
    "DEFAULT_GEARMAN_PORT",
    "DataEncoder",
    "GearmanAdminClient",
    "GearmanClient",
    "GearmanJob",
    "GearmanJobRequest",
    "GearmanWorker",
    "JOB_COMPLETE",
    "JOB_CREATED",
    "JOB_FAILED",
    "JOB_PENDING",
    "JOB_UNKNOWN",
    "JSONDataEncoder",
    "NoopEncoder",
    "PRIORITY_HIGH",
    "PRIORITY_LOW",
    "PRIORITY_NONE",
    "__version__",
    "constants",
    "errors",
    "job",
]
