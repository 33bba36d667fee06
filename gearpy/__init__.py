"""gearpy: a Gearman job server, worker runtime and client library on gevent."""

__version__ = "0.1.0"

__all__ = ["__version__"]
