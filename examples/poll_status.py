"""Follow a background job by its handle until the server no longer knows it.

    python examples/poll_status.py H:myhost:1
    python examples/poll_status.py -s 10.0.0.5:4730 -s 10.0.0.6:4730 --interval 2 --timeout 600 H:myhost:1

Prints one line per change, e.g. ``H:myhost:1 queued``, ``H:myhost:1 running 3/20``, and finally
``H:myhost:1 done``. Every server is asked (a handle does not say which server holds it), with
``Client.status()`` (GET_STATUS). A background job is forgotten once it ends, so "done" means it
finished, whether it succeeded or failed (the worker records that), or that the handle was never
known (a typo, or a server restarted with an in-memory queue).

Servers default to gearpy's configuration (``GEARPY_SERVERS``, ``--config``), else 127.0.0.1:4730.
Exit status: 0 done, 1 still running after ``--timeout`` seconds, 3 no server reachable.
"""

from __future__ import annotations

import argparse
import sys
import time

from gearpy.client import Client
from gearpy.errors import GearpyConnectionError


def describe(st) -> str:
    if not st.known:
        return "done"
    if not st.running:
        return "queued"
    if st.denominator:
        return f"running {st.numerator}/{st.denominator}"
    return "running"


def poll(client: Client, handle: str, interval: float, timeout: float | None) -> int:
    deadline = None if timeout is None else time.monotonic() + timeout
    last = None
    while True:
        state = describe(client.status(handle))
        if state != last:
            print(f"{handle} {state}", flush=True)
            last = state
        if state == "done":
            return 0
        if deadline is not None and time.monotonic() >= deadline:
            print(f"{handle} still {state} after {timeout:g} s", file=sys.stderr)
            return 1
        time.sleep(interval)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("handle")
    parser.add_argument("-s", "--server", action="append", dest="servers", metavar="HOST[:PORT]")
    parser.add_argument("--config", help="gearpy YAML config file (servers:)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between polls [1]")
    parser.add_argument("--timeout", type=float, default=None, help="give up after this many seconds")
    args = parser.parse_args(argv)
    try:
        with Client(args.servers, config_file=args.config) as client:
            return poll(client, args.handle, args.interval, args.timeout)
    except GearpyConnectionError as exc:
        print(f"poll_status: {exc}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
