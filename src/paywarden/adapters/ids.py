"""Id generation: ULIDs that stay sortable within one millisecond.

Within a process, an id made in the same millisecond as the previous one increments the
random part instead of drawing a new one, so ids from one process are strictly increasing.
"""

from __future__ import annotations

import os
import threading
import time

from paywarden.kernel.ids import format_id

__all__ = ["new_id"]

_lock = threading.Lock()
_last_ms = -1
_last_random = 0
_RANDOM_MAX = 2**80 - 1


def new_id(prefix: str) -> str:
    global _last_ms, _last_random  # noqa: PLW0603 -- one generator per process, by design
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms <= _last_ms and _last_random < _RANDOM_MAX:
            now_ms = _last_ms
            _last_random += 1
        else:
            _last_random = int.from_bytes(os.urandom(10), "big") >> 1
        _last_ms = now_ms
        return format_id(prefix, now_ms, _last_random.to_bytes(10, "big"))
