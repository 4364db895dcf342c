"""Runs last (file order): no library handle and no fd outlives the suite."""

from __future__ import annotations

import gc
import time

import gunmetal
from conftest import BASELINE, fd_count


def test_no_leaked_handles_or_fds() -> None:
    assert BASELINE, "the leak baseline fixture did not run"
    deadline = time.monotonic() + 5
    while True:
        gc.collect()
        handles, fds = gunmetal.live_handles(), fd_count()
        if (handles, fds) == (BASELINE["handles"], BASELINE["fds"]) or time.monotonic() > deadline:
            break
        time.sleep(0.05)  # sockets of exited connections close in the background
    assert handles == BASELINE["handles"], f"{handles - BASELINE['handles']} library handles leaked"
    assert fds == BASELINE["fds"], f"{fds - BASELINE['fds']} fds leaked"
