"""Shared by the add benchmarks: run each contender in a fresh process, compare with the floor."""

from __future__ import annotations

import subprocess
import sys


def compare_adds(script: str, kinds: tuple[str, ...], count: int) -> dict[str, tuple[float, float]]:
    """Run ``script --child KIND --adds COUNT`` once per kind, each in a fresh process (so peak
    memory is its own); each prints ``docs_per_s peak_mb``. Print both against the first kind,
    the floor, and return ``{kind: (docs_per_s, peak_mb)}``."""
    results: dict[str, tuple[float, float]] = {}
    for kind in kinds:
        out = subprocess.run(
            [sys.executable, script, "--child", kind, "--adds", str(count)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        results[kind] = (float(out[0]), float(out[1]))
    floor_rate, floor_mb = results[kinds[0]]
    for kind, (rate, mb) in results.items():
        print(
            f"  {kind:7s} {rate:12,.0f} docs/s ({rate / floor_rate:4.2f}x)  "
            f"peak +{mb:7,.0f} MB ({mb / floor_mb:4.2f}x the floor)"
        )
    return results
