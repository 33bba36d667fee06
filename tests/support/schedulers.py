"""A scheduler whose timers fire only when the test says so, and a clock the test moves by hand.

:class:`gearpy.server.core.ServerCore` takes both as collaborators; with these, timeouts and epoch
jobs are tested by firing timers and moving the clock, never by sleeping.
"""

from __future__ import annotations

from collections.abc import Callable


class FakeTimer:
    """One ``call_later``: its delay, its callback, and whether it is still pending."""

    def __init__(self, delay: float, fn: Callable[[], None]) -> None:
        self.delay = delay
        self.fn = fn
        self.active = True

    def __repr__(self) -> str:
        return f"FakeTimer(delay={self.delay}, active={self.active})"


class FakeScheduler:
    """Records every timer the core asks for; :meth:`fire` runs one."""

    def __init__(self) -> None:
        self.timers: list[FakeTimer] = []

    def call_later(self, delay: float, fn: Callable[[], None]) -> FakeTimer:
        t = FakeTimer(delay, fn)
        self.timers.append(t)
        return t

    def cancel(self, timer: FakeTimer) -> None:
        timer.active = False

    def active(self) -> list[FakeTimer]:
        """The timers neither fired nor cancelled, oldest first."""
        return [t for t in self.timers if t.active]

    def fire(self, timer: FakeTimer) -> None:
        """Run a pending timer's callback, as the event loop would when its delay is up."""
        assert timer.active
        timer.active = False
        timer.fn()


class Clock:
    """``clock()`` returns :attr:`now`; tests set it."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
