"""The workers key: one mapping from a function name to the name on the wire.

Several deployments (AtoM sites, say) can share one Gearman server without taking each other's jobs
by prefixing every function name with a per-site *workers key*. Client and worker must agree on the
exact mapping, so there is exactly one function for it and both sides import it.
"""

from __future__ import annotations

__all__ = ["KEY_SEPARATOR", "apply_key"]

#: Put between the key and the function name. AtoM registers ``<workers key>-<ability>`` (e.g.
#: ``atom1-arFindingAidJob``), so gearpy uses the same ``-`` and interoperates with AtoM workers
#: and clients that share a key.
KEY_SEPARATOR = b"-"


def apply_key(function: str | bytes, key: str | bytes | None) -> bytes:
    """Return the function name as sent on the wire: ``f"{key}-{function}"``, or the bare name.

    ``key`` ``None`` or empty means no key. Names are UTF-8 encoded. Applying the key is not
    idempotent on purpose: callers apply it exactly once, at the point where they build the packet.
    """
    name = function.encode("utf-8") if isinstance(function, str) else bytes(function)
    if not key:
        return name
    k = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    return k + KEY_SEPARATOR + name
