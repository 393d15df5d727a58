"""glibc heap settings: large buffers reused inside the block, freed memory handed back after.

Each check runs in a child process: the settings are process-wide and would leak into the tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from pipeline import heap

pytestmark = pytest.mark.skipif(heap._LIBC is None, reason="glibc only")

CHILD = textwrap.dedent(
    """
    import json, resource, sys
    import torch  # not numpy: it asks for huge pages on large arrays, which fault less often
    from pipeline import heap

    MB = 2**20

    def faults_per_buffer(size, repeats=8):
        # Above glibc's 32 MB adaptive ceiling a buffer is mmapped and faulted in on every
        # allocation unless the heap keeps it (which takes a few rounds to settle: an aligned
        # request does not fit exactly in the chunk freed before it, until two have merged).
        for _ in range(16):
            torch.ones(size, dtype=torch.uint8)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(repeats):
            torch.ones(size, dtype=torch.uint8)
        pages = size / resource.getpagesize()
        return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / repeats / pages

    def rss_mb():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / MB

    out = {}
    scenario = sys.argv[1]
    if scenario == "outside_inside":
        out["outside"] = faults_per_buffer(48 * MB)
        with heap.large_buffers_in_heap():
            out["inside"] = faults_per_buffer(48 * MB)
    elif scenario == "nested":
        with heap.large_buffers_in_heap():
            with heap.large_buffers_in_heap():
                pass
            out["after_inner_exit"] = faults_per_buffer(64 * MB)
    elif scenario == "exited":
        with heap.large_buffers_in_heap():
            pass
        out["after_exit"] = faults_per_buffer(64 * MB)
    elif scenario == "slack":
        with heap.large_buffers_in_heap():
            buffer = torch.ones(200 * MB, dtype=torch.uint8)
            del buffer
            out["held_mb"] = rss_mb()
            heap.release_freed_memory(keep_bytes=1024 * MB)
            out["kept_mb"] = rss_mb()
            heap.release_freed_memory(keep_bytes=16 * MB)
            out["trimmed_mb"] = rss_mb()
    print(json.dumps(out))
    """
)


MALLOC_REPLACEMENTS = ("jemalloc", "tcmalloc", "mimalloc", "malloc")


def child_env() -> dict[str, str]:
    """This environment without what tunes or replaces glibc's malloc (MALLOC_MMAP_THRESHOLD_,
    MALLOC_TOP_PAD_, GLIBC_TUNABLES, an LD_PRELOADed allocator): the child measures glibc's
    defaults, as the thresholds asserted below assume, whatever the caller exported."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("MALLOC_") and name != "GLIBC_TUNABLES"
    }
    preload = [
        lib
        for lib in env.pop("LD_PRELOAD", "").replace(":", " ").split()
        if not any(word in os.path.basename(lib) for word in MALLOC_REPLACEMENTS)
    ]
    if preload:
        env["LD_PRELOAD"] = " ".join(preload)
    return env


def child(scenario: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, scenario],
        capture_output=True,
        text=True,
        check=True,
        env=child_env(),
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_large_buffers_are_reused_inside_the_block() -> None:
    faults = child("outside_inside")  # page faults per page of each buffer
    assert faults["outside"] > 0.5, faults
    assert faults["inside"] < 0.05, faults


def test_a_nested_block_keeps_the_setting_until_the_outer_one_exits() -> None:
    assert child("nested")["after_inner_exit"] < 0.05


def test_after_the_block_large_buffers_are_mmapped_again() -> None:
    assert child("exited")["after_exit"] > 0.5


@pytest.mark.skipif(heap._FREE_BYTES is None, reason="needs mallinfo2 (glibc >= 2.33)")
def test_freed_memory_is_kept_up_to_the_slack_then_handed_back() -> None:
    rss = child("slack")
    assert rss["kept_mb"] > rss["held_mb"] - 20, rss  # 200 MB free < 1 GB slack: kept
    assert rss["trimmed_mb"] < rss["kept_mb"] - 150, rss  # > 16 MB slack: trimmed
