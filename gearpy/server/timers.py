"""The core's timers on gevent's loop (the :class:`~gearpy.server.interfaces.Scheduler` it is given)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import gevent

from gearpy.server.interfaces import TimerHandle

log = logging.getLogger("gearpy.server")


class GeventScheduler:
    """Timers on gevent's loop; after each callback, the output it produced is flushed."""

    def __init__(self, after: Callable[[], None]) -> None:
        self._loop = gevent.get_hub().loop
        self._after = after

    def call_later(self, delay: float, fn: Callable[[], None]) -> TimerHandle:
        timer = self._loop.timer(max(0.0, delay))

        def fire() -> None:
            timer.close()
            try:
                fn()
            except Exception:  # pragma: no cover - a bug; keep the server up
                log.exception("timer callback failed")
            self._after()

        timer.start(fire)
        return timer

    def cancel(self, timer: TimerHandle) -> None:
        timer.close()  # type: ignore[attr-defined]
