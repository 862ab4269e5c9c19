"""Which arithmetic runs ``moss-minilm`` on this machine: int8 or float32.

The int8 graph (moss.embeddings.int8_graph) is the faster one where the CPU has int8
dot-product instructions (AVX-512 VNNI, AVX-VNNI, AMX, Arm dot-product), but onnxruntime runs it
on every CPU, and on some without them it is no faster, or its uint8 x int8 kernel saturates
(AVX2's ``vpmaddubsw``). So the choice is made by measuring, once per process at model load:
both graphs embed the same probe texts, and int8 is used only if it agrees with float32 and is
clearly faster. The verdict is kept in the cache directory beside the int8 graph, keyed by the
CPU (model name and feature flags), so later loads on the machine build one graph only.
``MOSS_MINILM_ARITHMETIC=int8|float`` skips the measurement (tests, benchmarks).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..atomic_files import write_file_atomic
from ..errors import MossError
from .base import FloatArray
from .int8_graph import cache_path

ARITHMETIC_ENV = "MOSS_MINILM_ARITHMETIC"
ARITHMETICS = ("int8", "float")

#: int8 must agree this well (cosine of every probe vector with the float32 one): measured on
#: SciFact abstracts its mean is 0.998; a kernel that saturates falls far below.
MIN_AGREEMENT = 0.99
#: int8 must take at most this share of float32's time: on a noisy machine a near tie must not
#: switch to the int8 graph for nothing.
MAX_TIME_SHARE = 0.85
#: Timed rounds per graph, after a warm-up; the fastest round counts (noise only adds time).
ROUNDS = 3

#: Two texts of about 60 tokens each: long enough that the matrix products dominate, as they do
#: in real batches, short enough that the measurement costs a fraction of a second.
PROBE_TEXTS = [
    "Agents share retrieval sessions by name: one agent adds the customer's invoices, refunds "
    "and support tickets, another queries them minutes later from a different machine, and "
    "both see the same ranked documents with their metadata and scores.",
    "Mitochondrial DNA copy number was measured in 1,204 blood samples; lower copy number was "
    "associated with frailty and with all-cause mortality over a median follow-up of nine "
    "years (hazard ratio 1.31, 95% CI 1.12 to 1.53), independent of age and sex.",
]

Embed = Callable[[list[str]], FloatArray]


def arithmetic_override() -> str | None:
    """The arithmetic ``MOSS_MINILM_ARITHMETIC`` forces, or None when it is unset or empty."""
    value = os.environ.get(ARITHMETIC_ENV, "").strip().lower()
    if not value:
        return None
    if value not in ARITHMETICS:
        raise MossError(
            f"{ARITHMETIC_ENV}={os.environ[ARITHMETIC_ENV]!r} is not valid: use 'int8', "
            f"'float', or leave it unset to let moss measure which is faster here"
        )
    return value


def pick_arithmetic(embed: dict[str, Embed]) -> str:
    """``"int8"`` if ``embed["int8"]`` agrees with ``embed["float"]`` on the probe texts and is
    clearly faster on this machine, else ``"float"``."""
    reference = embed["float"](PROBE_TEXTS)  # also the warm-up of each graph
    candidate = embed["int8"](PROBE_TEXTS)
    if float(np.min(np.sum(reference * candidate, axis=1))) < MIN_AGREEMENT:
        return "float"
    best = {name: float("inf") for name in ARITHMETICS}
    for _ in range(ROUNDS):
        for name in ARITHMETICS:  # interleaved, so a burst of load hits both alike
            start = time.perf_counter()
            embed[name](PROBE_TEXTS)
            best[name] = min(best[name], time.perf_counter() - start)
    return "int8" if best["int8"] <= MAX_TIME_SHARE * best["float"] else "float"


def _cpu_identity() -> str:
    """The CPU's model name and feature flags (what decides which kernels onnxruntime runs)."""
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            lines = {
                line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip()
                for line in info
                if ":" in line
            }
        return f"{lines.get('model name', '')}|{lines.get('flags', lines.get('Features', ''))}"
    return f"{platform.machine()}|{platform.processor()}"


def verdict_path(source_sha256: str, cache_dir: Path | None = None) -> Path:
    """Where the measured arithmetic of this CPU is kept."""
    cpu = hashlib.sha256(_cpu_identity().encode()).hexdigest()[:16]
    return cache_path(source_sha256, cache_dir, suffix=f"-cpu{cpu}.arithmetic")


def read_verdict(source_sha256: str) -> str | None:
    """The arithmetic measured earlier on this CPU, or None (never measured, or unreadable)."""
    try:
        value = verdict_path(source_sha256).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return value if value in ARITHMETICS else None


def keep_verdict(source_sha256: str, value: str) -> None:
    """Keep ``value`` for the next loads on this CPU (a cache that cannot be written is skipped)."""
    with contextlib.suppress(OSError):
        write_file_atomic(verdict_path(source_sha256), f"{value}\n".encode("ascii"), durable=False)
