"""summary.json's peak_memory_mb: peak anonymous memory (RssAnon) sampled while a run works."""

import time

import numpy as np
import pytest

from forgetbench import memory as memory_module
from forgetbench.memory import PeakMemory, peak_rss_mb, rss_anon_mb

linux = pytest.mark.skipif(rss_anon_mb() is None, reason="no RssAnon in /proc/self/status")


@linux
def test_sampler_catches_a_transient_allocation_freed_before_the_end():
    with PeakMemory(interval=0.005) as memory:
        before = rss_anon_mb()
        block = np.ones(96 * 2**20 // 8)  # 96 MB, touched, so resident
        time.sleep(0.1)
        del block  # numpy hands large blocks back to the OS at once
        time.sleep(0.02)
    after = rss_anon_mb()
    assert memory.peak >= before + 80
    assert memory.peak >= after + 50, "the peak is not just the value at the end"
    assert memory.peak <= peak_rss_mb()


@linux
def test_memory_mapped_pages_do_not_count(tmp_path):
    path = tmp_path / "big.npy"
    np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(96 * 2**20 // 8,))[:] = 1
    mapped = np.load(path, mmap_mode="r")
    with PeakMemory(interval=0.005) as memory:
        before = rss_anon_mb()
        assert float(mapped.sum()) == len(mapped)  # reads every page: file-backed, not anon
    assert memory.peak < before + 30


def test_no_proc_status_gives_none_and_no_thread(tmp_path, monkeypatch):
    monkeypatch.setattr(memory_module, "PROC", tmp_path / "missing")
    assert rss_anon_mb() is None
    with PeakMemory() as memory:
        assert memory._thread is None
    assert memory.peak is None
    assert peak_rss_mb() > 0
