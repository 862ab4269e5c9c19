"""Incremental sync under stress (issue 18): concurrent merge pushes and SIGKILL trials.

Run: .venv/bin/python benchmarks/bench_sync_stress.py [--writers 20] [--seconds 30]
     [--trials 20] [--base 20000] [--targets file,serve,postgres]
     [--out benchmarks/results/sync_stress.json]

Stores: the file store directly, a real `moss serve` subprocess over a file store
(tests/service.py), and PostgreSQL (tests/pg.py, a throw-away schema per experiment).

1. Merge stress: ``--writers`` real processes open the same index (``--base`` documents,
   custom 16-d vectors) and, for ``--seconds``, each adds one document ``writer-i-n`` and
   pushes it with ``merge=True``; any exception is a give-up. Afterwards a fresh client opens
   the index and every id a writer reported pushed must be in it (lost = missing ids).
2. Crash trials: a writer process pushes one document per push (plain pushes, a compaction
   every 3 deltas: ``COMPACT_CHAIN_LENGTH = 3``), printing ``begin <kind> <n>`` before and
   ``done <version> <n>`` after each push; it is SIGKILLed 0.2-1.5 s after it is ready. A fresh
   client then opens the index: it must open, hold the newest listed version, and hold exactly
   the writer's documents up to that version (the in-flight push may have landed: then one
   more). Every listed version must open too.

The script is its own worker: ``bench_sync_stress.py worker-merge|worker-crash ...``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from moss import DocumentInfo, MossClient, refresh_policy

PROJECT = "bench"
KEY = "bench-key-0123456789abcdefghijkl"
DIM = 16
SCRIPT = str(Path(__file__).resolve())


def client(url: str, key: str | None, cache: Path | None = None) -> MossClient:
    cache = cache or Path(tempfile.mkdtemp(prefix="moss-stress-cache-"))
    return MossClient(PROJECT, key, store=url, cache_dir=cache)


def doc(doc_id: str, rng: np.random.Generator) -> DocumentInfo:
    vector = rng.standard_normal(DIM).astype(np.float32)
    return DocumentInfo(id=doc_id, text=f"turn {doc_id}", embedding=vector)


def create_index(url: str, key: str | None, name: str, base: int) -> None:
    rng = np.random.default_rng(0)
    with client(url, key) as owner:
        session = owner.sync.session(name, model_id="custom")
        session.add_docs([doc(f"base-{i}", rng) for i in range(base)])
        session.push_index()


# -- workers (run as subprocesses) -------------------------------------------------------------


def worker_merge(url: str, key: str, name: str, tag: str, seconds: float, start: str) -> None:
    """Add one document and merge-push it until the time is up; print a JSON summary."""
    session = client(url, key or None).sync.session(name, model_id="custom")
    rng = np.random.default_rng(abs(hash(tag)) % 2**32)
    while not os.path.exists(start):
        time.sleep(0.01)
    pushed: list[str] = []
    errors: list[str] = []
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        doc_id = f"{tag}-{n}"
        n += 1
        session.add_docs([doc(doc_id, rng)])
        try:
            session.push_index(merge=True)
        except Exception as exc:  # any exception is a give-up: count it, go on
            errors.append(f"{type(exc).__name__}: {exc}"[:300])
            continue
        pushed.append(doc_id)
    print(json.dumps({"pushed": pushed, "errors": errors}), flush=True)


def worker_crash(url: str, key: str, name: str) -> None:
    """Push one new document per push forever (plain pushes, frequent compactions)."""
    refresh_policy.COMPACT_CHAIN_LENGTH = 3
    session = client(url, key or None).sync.session(name, model_id="custom")
    first = sum(1 for d in session.get_docs() if d.id.startswith("k-"))
    rng = np.random.default_rng(first)
    print(f"ready {session.version} {first}", flush=True)
    n = first
    while True:
        session.add_docs([doc(f"k-{n}", rng)])
        kind = "full" if session._core.compact_due() else "delta"
        print(f"begin {kind} {n + 1}", flush=True)
        result = session.push_index()
        n += 1
        print(f"done {result.version} {n}", flush=True)


# -- stores ------------------------------------------------------------------------------------


class Stores:
    """The stores under test: each gives a URL and project key per experiment."""

    def __init__(self, wanted: list[str], temp: Path) -> None:
        self.wanted, self.temp = wanted, temp
        self.server: Any = None
        self.cluster: Any = None
        self.experiments = 0

    def __enter__(self) -> Stores:
        from service import Server

        if "serve" in self.wanted:
            self.server = Server(self.temp / "serve", keys={PROJECT: KEY}).start()
        if "postgres" in self.wanted:
            from pg import Cluster

            self.cluster = Cluster().start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.stop()
        if self.cluster is not None:
            self.cluster.stop()

    def url(self, label: str) -> tuple[str, str | None]:
        """Where ``label`` is reached: a file store and a PostgreSQL schema never used before."""
        self.experiments += 1
        if label == "file":
            return (self.temp / f"file-{self.experiments}").as_uri(), None
        if label == "serve":
            return self.server.url, KEY
        return self.cluster.fresh_url(), None


# -- experiments -------------------------------------------------------------------------------


def merge_stress(
    url: str, key: str | None, writers: int, seconds: float, base: int
) -> dict[str, Any]:
    name = "stress"
    create_index(url, key, name, base)
    start = Path(tempfile.mkdtemp(prefix="moss-stress-")) / "go"
    worker = [sys.executable, SCRIPT, "worker-merge", url, key or "", name]
    procs = [
        subprocess.Popen(
            [*worker, f"writer-{i}", str(seconds), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(writers)
    ]
    time.sleep(min(5.0 + writers * 0.5, 20.0))  # every writer imported and opened the index
    start.touch()
    began = time.monotonic()
    pushed: list[str] = []
    errors: list[str] = []
    crashed = 0
    for proc in procs:
        out, err = proc.communicate(timeout=seconds + 300)
        lines = [line for line in out.splitlines() if line.startswith("{")]
        if proc.returncode != 0 or not lines:
            crashed += 1
            errors.append(f"writer exited {proc.returncode}: {err[-500:]}")
            continue
        summary = json.loads(lines[-1])
        pushed += summary["pushed"]
        errors += summary["errors"]
    elapsed = time.monotonic() - began
    with client(url, key) as reader:
        fresh = reader.sync.session(name)
        present = {d.id for d in fresh.get_docs()}
    lost = sorted(set(pushed) - present)
    return {
        "writers": writers,
        "seconds": seconds,
        "pushes": len(pushed),
        "lost": len(lost),
        "lost_ids": lost[:20],
        "give_ups": len(errors),
        "errors": errors[:10],
        "writers_crashed": crashed,
        "pushes_per_s": len(pushed) / seconds,
        "wall_s": elapsed,
        "final_version": fresh.version,
        "final_docs": fresh.doc_count,
        "expected_docs": base + len(pushed),
    }


def _run_until_killed(command: list[str], rng: random.Random) -> list[str]:
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.strip())
            if line.startswith("ready"):
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if not ready.wait(60):
        proc.kill()
        proc.wait()
        raise RuntimeError(f"crash writer never got ready: {lines}")
    time.sleep(rng.uniform(0.2, 1.5))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    reader.join(5)
    return lines


def settled_versions(reader: MossClient, name: str) -> list[Any]:
    """The kept versions once they stop changing: `moss serve` finishes an upload it had fully
    received after its client was killed, so a listing made at once can miss that version."""
    listed = reader.sync.versions(name)
    while True:
        time.sleep(0.5)
        again = reader.sync.versions(name)
        if [v.version for v in again] == [v.version for v in listed]:
            return again
        listed = again


def crash_trials(url: str, key: str | None, trials: int, base: int, seed: int) -> dict[str, Any]:
    name = "crash"
    create_index(url, key, name, base)
    rng = random.Random(seed)
    command = [sys.executable, SCRIPT, "worker-crash", url, key or "", name]
    mid_push = mid_compaction = opens_ok = mismatches = 0
    landed_in_flight = 0
    failures: list[str] = []
    kinds: dict[str, int] = {}  # kinds of the versions kept after each trial
    for trial in range(trials):
        lines = _run_until_killed(command, rng)
        ready_count = int(next(line for line in lines if line.startswith("ready")).split()[2])
        done = [line.split() for line in lines if line.startswith("done ")]
        begun = [line.split() for line in lines if line.startswith("begin ")]
        # versions completed -> documents "k-*" the writer had pushed by then
        completed = {int(v): int(n) for _, v, n in done}
        last_n = int(done[-1][2]) if done else ready_count
        in_flight = bool(begun) and int(begun[-1][2]) > last_n
        mid_push += in_flight
        mid_compaction += in_flight and begun[-1][1] == "full"
        with client(url, key) as reader:
            try:
                listed = settled_versions(reader, name)
                opened = reader.sync.session(name)
            except Exception as exc:
                failures.append(f"trial {trial}: open failed: {type(exc).__name__}: {exc}")
                continue
            k_ids = sorted(int(d.id[2:]) for d in opened.get_docs() if d.id.startswith("k-"))
        opens_ok += 1
        newest = max(v.version for v in listed)
        for info in listed:
            kinds[info.kind] = kinds.get(info.kind, 0) + 1
        if opened.version in completed:
            expected = completed[opened.version]
        elif in_flight:
            expected = last_n + 1  # the push in flight landed before the kill
            landed_in_flight += 1
        else:
            expected = last_n  # e.g. the compaction after the last reported push
        problems = []
        if opened.version != newest:
            problems.append(f"opened version {opened.version} != newest listed {newest}")
        if k_ids != list(range(expected)):
            problems.append(f"{len(k_ids)} writer docs, expected ids 0..{expected - 1}")
        if opened.doc_count != base + expected:
            problems.append(f"doc_count {opened.doc_count} != {base + expected}")
        for info in listed:
            with client(url, key) as old:
                try:
                    old.sync.session(name, version=info.version)
                except Exception as exc:
                    problems.append(f"listed version {info.version} does not open: {exc}")
        if problems:
            mismatches += 1
            failures.append(f"trial {trial}: " + "; ".join(problems))
        print(
            f"  trial {trial + 1}: version {opened.version}, {len(k_ids)} pushed docs, "
            f"{'in flight ' + begun[-1][1] if in_flight else 'between pushes'}"
            + (f" MISMATCH {problems}" if problems else ""),
            flush=True,
        )
    return {
        "trials": trials,
        "kills_mid_push": mid_push,
        "kills_mid_compaction": mid_compaction,
        "in_flight_push_landed": landed_in_flight,
        "opens_ok": opens_ok,
        "mismatches": mismatches,
        "kept_version_kinds": kinds,
        "failures": failures[:20],
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "worker-merge":
        url, key, name, tag, seconds, start = sys.argv[2:8]
        worker_merge(url, key, name, tag, float(seconds), start)
        return
    if len(sys.argv) > 1 and sys.argv[1] == "worker-crash":
        worker_crash(*sys.argv[2:5])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--base", type=int, default=20_000)
    parser.add_argument("--targets", default="file,serve,postgres")
    parser.add_argument("--experiments", default="merge,crash")
    parser.add_argument("--seed", type=int, default=18)
    default_out = Path(__file__).parent / "results" / "sync_stress.json"
    parser.add_argument("--out", type=Path, default=default_out)
    args = parser.parse_args()
    wanted = args.targets.split(",")
    temp = Path(tempfile.mkdtemp(prefix="moss-bench-stress-"))
    merge: dict[str, Any] = {}
    crash: dict[str, Any] = {}
    started = time.monotonic()
    with Stores(wanted, temp) as stores:
        for label in wanted:
            if "merge" in args.experiments:
                print(f"merge stress on {label} ...", flush=True)
                target = stores.url(label)
                merge[label] = merge_stress(*target, args.writers, args.seconds, args.base)
            if "crash" in args.experiments:
                print(f"crash trials on {label} ...", flush=True)
                target = stores.url(label)
                crash[label] = crash_trials(*target, args.trials, args.base, args.seed)
    report = {
        "benchmark": "bench_sync_stress.py",
        "command": " ".join(["benchmarks/bench_sync_stress.py", *sys.argv[1:]]),
        "base_docs": args.base,
        "dim": DIM,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "total_s": round(time.monotonic() - started, 1),
        "merge": merge,
        "crash": crash,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print_tables(report)


def print_tables(report: dict[str, Any]) -> None:
    if report["merge"]:
        first = next(iter(report["merge"].values()))
        print(f"\nmerge stress: {first['writers']} writer processes, {first['seconds']:.0f} s")
        print(f"  {'store':9} {'pushes':>7} {'lost':>5} {'give-ups':>9} {'pushes/s':>9}")
        for label, r in report["merge"].items():
            print(
                f"  {label:9} {r['pushes']:>7} {r['lost']:>5} {r['give_ups']:>9} "
                f"{r['pushes_per_s']:>9.1f}"
            )
    if report["crash"]:
        print("\nSIGKILL trials (compaction every 3 deltas)")
        print(
            f"  {'store':9} {'trials':>6} {'mid-push':>8} {'mid-compact':>11} "
            f"{'opens ok':>8} {'mismatches':>10}"
        )
        for label, r in report["crash"].items():
            print(
                f"  {label:9} {r['trials']:>6} {r['kills_mid_push']:>8} "
                f"{r['kills_mid_compaction']:>11} {r['opens_ok']:>8} {r['mismatches']:>10}"
            )
    print(f"\ntotal {report['total_s']} s")


if __name__ == "__main__":
    main()
