"""Log refused ACL and admin attempts, without letting a hostile peer flood the log.

An operator wants to see that someone tried ``cancel job`` from the wrong address or registered a
function their certificate does not allow, but one peer repeating it thousands of times a second
must neither fill the disk nor slow the event loop with log I/O. So each kind of refusal logs at
most :data:`BURST` lines per :data:`INTERVAL` seconds, then one line saying how many more there
were (written with the first refusal after the interval). Names and subjects chosen by the peer are
logged with ``repr``, so control bytes cannot forge log lines.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["BURST", "INTERVAL", "RateLimitedLog", "acl_refused", "admin_refused"]

#: Lines per interval for one kind of refusal, and the interval in seconds.
BURST = 10
INTERVAL = 60.0

log = logging.getLogger("gearpy.server.security")


class RateLimitedLog:
    """A warning log of at most ``burst`` lines per ``interval`` seconds, plus a count of the rest."""

    __slots__ = ("burst", "clock", "interval", "logged", "logger", "suppressed", "window_start")

    def __init__(
        self,
        logger: logging.Logger,
        burst: int = BURST,
        interval: float = INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.burst = burst
        self.interval = interval
        self.clock = clock
        self.window_start = -interval
        self.logged = 0
        self.suppressed = 0

    def warning(self, msg: str, *args: object) -> None:
        now = self.clock()
        if now - self.window_start >= self.interval:
            if self.suppressed:
                self.logger.warning(
                    "%d more refusal(s) like these were not logged in %g s", self.suppressed, self.interval
                )
            self.window_start = now
            self.logged = 0
            self.suppressed = 0
        if self.logged < self.burst:
            self.logged += 1
            self.logger.warning(msg, *args)
        else:
            self.suppressed += 1


_acl = RateLimitedLog(log)
_admin = RateLimitedLog(log)


def acl_refused(subject: str | None, action: str, function: bytes) -> None:
    """A CAN_DO (``register``) or submit (``invoke``) the ACL did not allow."""
    who = f"certificate {subject!r}" if subject is not None else "a peer without certificate"
    _acl.warning("acl: refused %s of function %r for %s", action, function, who)


def admin_refused(ip: str, subject: str | None, command: str) -> None:
    """A mutating admin command from a peer ``--admin-allow`` does not list."""
    who = f" (certificate {subject!r})" if subject is not None else ""
    _admin.warning("admin-allow: refused %r from %s%s", command, ip, who)
