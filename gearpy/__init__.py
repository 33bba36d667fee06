"""gearpy: a Gearman job server, worker runtime and client library on gevent."""

import os

from gearpy import _accel

__version__ = "0.1.0"

__all__ = ["__version__"]

# Before any hot module is imported: GEARPY_PURE_PYTHON=1, or compiled modules older than their
# sources (an edited editable install), load them from their .py files (see gearpy._accel).
if _accel.pure_requested():
    _accel.install_pure_finder()
elif _accel.compiled_is_stale(os.path.dirname(os.path.abspath(__file__))):
    _accel.stale = True
    _accel.install_pure_finder()
