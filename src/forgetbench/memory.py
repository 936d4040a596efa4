"""Memory of a process as Linux reports it: anonymous memory apart from mapped files.

``summary.json`` reports the run's peak anonymous memory (:class:`PeakMemory`) and its peak
resident set (:func:`peak_rss_mb`); ``bench/memory.py`` reads another process's figures with
:func:`proc_status_kb`.
"""

from __future__ import annotations

import resource
import sys
import threading
from pathlib import Path

PROC = Path("/proc")
STATUS_KEYS = ("RssAnon", "RssFile", "RssShmem", "VmRSS", "VmHWM")
MEMORY_SAMPLE_SECONDS = 0.02


def proc_status_kb(pid: int | str = "self") -> dict[str, int]:
    """``STATUS_KEYS`` of a process from ``/proc/PID/status``, in kB; empty where unreadable."""
    out = {}
    try:
        with open(PROC / str(pid) / "status", "rb") as status:
            for line in status:
                key, _, value = line.partition(b":")
                if key.decode() in STATUS_KEYS:
                    out[key.decode()] = int(value.split()[0])
    except (OSError, ValueError, IndexError):
        return {}
    return out


def rss_anon_mb() -> float | None:
    """The process's anonymous resident memory now (Linux ``RssAnon``), in MB; else ``None``.

    Unlike the resident set size it leaves out file-backed pages, such as memory-mapped shards
    in the page cache (reclaimable, and as large as the data set and free RAM allow).
    """
    kb = proc_status_kb().get("RssAnon")
    return None if kb is None else kb / 1024


def peak_rss_mb() -> float:
    """The process's peak resident set size so far (``ru_maxrss``, with mapped files), in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, else kB


class PeakMemory:
    """Peak anonymous memory while a block runs: ``RssAnon`` sampled by a background thread.

    ``RssAnon`` is a current value, not a high-water mark (the kernel keeps one only for the
    whole resident set, ``VmHWM``/``ru_maxrss``), so a daemon thread reads it every
    ``interval`` seconds (about 50 µs a read), and once more on entry and exit. A peak shorter
    than the interval can be missed. Where ``/proc`` has no ``RssAnon`` (not Linux), no thread
    starts and ``peak`` stays ``None``.

    Attributes:
        peak: The largest value read, in MB, or ``None``.
    """

    def __init__(self, interval: float = MEMORY_SAMPLE_SECONDS, read=rss_anon_mb) -> None:
        self.interval, self.read = interval, read
        self.peak: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> None:
        """Reads the current value and keeps it if it is the largest so far."""
        value = self.read()
        if value is not None and (self.peak is None or value > self.peak):
            self.peak = value

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> PeakMemory:
        self.sample()
        if self.peak is not None:
            self._thread = threading.Thread(target=self._loop, name="peak-memory", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()
