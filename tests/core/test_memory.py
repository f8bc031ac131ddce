import os
import subprocess
import sys

import pytest

from multihot.core import memory


def test_bound_primitive_cache_keeps_the_users_setting(monkeypatch):
    monkeypatch.setenv(memory.PRIMITIVE_CACHE_ENV, "12")
    assert memory.bound_primitive_cache() == 12
    assert os.environ[memory.PRIMITIVE_CACHE_ENV] == "12"


def test_bound_primitive_cache_sets_the_serving_default(monkeypatch):
    monkeypatch.delenv(memory.PRIMITIVE_CACHE_ENV, raising=False)
    assert memory.bound_primitive_cache() == memory.SERVING_PRIMITIVE_CACHE
    assert os.environ[memory.PRIMITIVE_CACHE_ENV] == str(memory.SERVING_PRIMITIVE_CACHE)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc, glibc's malloc_trim")
def test_release_free_memory_returns_freed_heap_pages():
    # A child process, so the measurement is not disturbed by the test runner's own heap.
    code = """
import sys
from multihot.core.memory import release_free_memory

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1])

keep, spread = [], []
for _ in range(10_000):  # 16 KB blocks (below the mmap threshold), each pinned by a small one
    spread.append(bytearray(16384))
    keep.append(bytearray(64))
del spread  # ~160 MB freed between blocks still in use: free() cannot hand it back
before = rss()
assert release_free_memory()
print(before - rss())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout) > 50_000  # kB handed back
