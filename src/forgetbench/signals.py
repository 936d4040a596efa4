"""SIGTERM as an exception in the main thread: what schedulers send before they preempt a job."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def terminate_raises(interrupted: type[BaseException]) -> Iterator[None]:
    """SIGTERM raises ``interrupted`` while the block runs (main thread only; elsewhere a no-op).

    The command covers the whole job with it (data and model too), so every interruption ends
    with one line; ``run`` covers training, to keep the partial curves.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise interrupted(f"received signal {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
