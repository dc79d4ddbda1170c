"""The chaos run (benchmarks/chaos.py) for 30 s: workers, the adapter and clients killed under load;
nothing lost, wrong or delivered twice, and no process or shared memory left behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

CHAOS = Path(__file__).resolve().parent.parent / "benchmarks" / "chaos.py"


@pytest.mark.timeout(180)
def test_thirty_seconds_of_chaos_lose_and_leave_nothing() -> None:
    run = subprocess.run(
        [sys.executable, str(CHAOS), "--duration", "30"],
        capture_output=True,
        text=True,
        timeout=150,
        env=dict(os.environ, SCALER_LOG_LEVEL="WARNING"),
    )
    report = run.stdout + run.stderr[-3000:]
    figures = dict(re.findall(r"^([a-z /]+): (\d+)", run.stdout, re.MULTILINE))
    for name in ("lost", "wrong", "delivered twice", "leftover processes", "leftover /dev/shm bytes"):
        assert figures.get(name) == "0", f"{name}: {figures.get(name)}\n{report}"
    assert int(figures["tasks submitted"]) > 100, report
    assert run.returncode == 0, report
