"""Hybrid search speed: blended vs vector-only queries, keeping the keyword index current, opening.

Run: .venv/bin/python benchmarks/bench_hybrid.py [--size 100000] [--queries 200]
         [--out benchmarks/results/hybrid.json]

The documents are short agent-memory texts (8-20 words drawn from a Zipf-distributed
vocabulary of 20,000 words, so postings lengths look like real text, plus an order code
``ORD-000123``) with small metadata, and random unit vectors of 384 dimensions in a
``moss-minilm`` session (document vectors brought in ``DocumentInfo.embedding``, so building
100,000 documents takes seconds, not hours). All times are medians; ratios are what the goals
of issue 6 name:

- ``query``: a blended query (alpha 0.5) / a vector-only one (alpha 1.0), over ``--size``
  documents, top 10; once with the query vector given (search work only) and once with the
  query text embedded by moss-minilm (what an agent pays end to end). Keyword-only too.
- ``add``: adding a batch to a session that keeps a keyword index / to one that does not; once
  with the vectors given (engine work only) and once with moss-minilm embedding the batch
  (the real "vector add" of a batch of texts).
- ``open``: opening the pushed index with keyword search ready / without: rebuilt after open
  (what moss does lazily, at the first keyword query) or carried by the snapshot's keyword
  section (what moss does when the pushing session had built it); and open plus the first
  blended query.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from moss import DocumentInfo, MossClient, QueryOptions

DEFAULT_OUT = Path(__file__).parent / "results" / "hybrid.json"
DIMENSION = 384
VOCABULARY = 20_000
TOP_K = 10
Matrix = npt.NDArray[np.float32]


def words(rng: np.random.Generator, count: int) -> list[str]:
    """``count`` pseudo-words drawn from a Zipf law over the vocabulary."""
    ranks = np.minimum(rng.zipf(1.1, count), VOCABULARY) - 1
    return [f"w{r}x" for r in ranks.tolist()]


def make_docs(n: int, seed: int, start: int = 0) -> Iterator[tuple[str, str, dict[str, Any]]]:
    rng = np.random.default_rng(seed)
    for i in range(start, start + n):
        text = " ".join(words(rng, int(rng.integers(8, 21))))
        yield f"doc-{i}", f"{text} order ORD-{i:06d}", {"topic": i % 97}


def make_vectors(n: int, seed: int) -> Matrix:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, DIMENSION)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def documents(n: int, seed: int, start: int = 0) -> list[DocumentInfo]:
    vectors = make_vectors(n, seed)
    return [
        DocumentInfo(id=i, text=t, metadata=m, embedding=v)
        for (i, t, m), v in zip(make_docs(n, seed, start), vectors, strict=True)
    ]


def median_time(action: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bench_queries(session: Any, args: argparse.Namespace) -> dict[str, float]:
    rng = np.random.default_rng(99)
    texts = [
        " ".join(words(rng, int(rng.integers(2, 6))))
        + (f" ORD-{int(rng.integers(args.size)):06d}" if i % 4 == 0 else "")
        for i in range(args.queries + 5)
    ]
    vectors = make_vectors(args.queries + 5, 98)
    session.sync.query(texts[0], QueryOptions(alpha=0.5))  # builds the keyword index

    modes = [
        (f"{'vector_given' if given else 'text_embedded'}_{name}_ms", alpha, given)
        for given in (True, False)
        for name, alpha in (("vector", 1.0), ("blend", 0.5), ("keyword", 0.0))
    ]
    times: dict[str, list[float]] = {label: [] for label, _, _ in modes}
    # Each query runs in every mode back to back (in a rotating order), so load from other
    # processes on a shared machine falls on all modes alike.
    for i in range(args.queries + 5):
        for shift in range(len(modes)):
            label, alpha, given = modes[(i + shift) % len(modes)]
            options = QueryOptions(
                top_k=TOP_K, alpha=alpha, embedding=vectors[i] if given else None
            )
            started = time.perf_counter()
            session.sync.query(texts[i], options)
            if i >= 5:  # the first five warm up
                times[label].append(time.perf_counter() - started)
    return {label: statistics.median(values) * 1000 for label, values in times.items()}


def bench_adds(
    client: MossClient, base: list[DocumentInfo], args: argparse.Namespace
) -> dict[str, float]:
    out: dict[str, float] = {}
    for batch_size in (10, 1000):
        batches = [
            documents(batch_size, 1000 + k, start=10_000_000 + k * batch_size) for k in range(5)
        ]
        for keywords in (False, True):
            session = client.sync.session(f"add-{batch_size}-{keywords}", model_id="moss-minilm")
            session.sync.add_docs(base)
            if keywords:
                session.sync.query("warm", QueryOptions(alpha=0.5))
            times = []
            for batch in batches:
                started = time.perf_counter()
                session.sync.add_docs(batch)
                times.append(time.perf_counter() - started)
            out[f"add{batch_size}_{'keyword' if keywords else 'vector'}_ms"] = (
                statistics.median(times) * 1000
            )
            session.sync.close()
        model, texts = session.model, [doc.text for doc in batches[0]]
        embed = median_time(
            lambda: model.embed_documents(texts),  # noqa: B023 - called at once, in this iteration
            1 if batch_size > 100 else 3,
        )
        out[f"add{batch_size}_embed_ms"] = embed * 1000
    return out


def bench_open(folder: str, args: argparse.Namespace) -> dict[str, float]:
    def open_named(name: str) -> Any:
        with MossClient(store=folder) as client:
            return client.sync.session(name)

    def open_rebuild() -> None:
        open_named("bench")._core.index.build_keywords()

    def first_blend() -> None:
        session = open_named("bench")
        session.sync.query("w1x w2x", QueryOptions(alpha=0.5, embedding=make_vectors(1, 5)[0]))

    # "bench" was pushed before any keyword query: no keyword section. Push a copy whose
    # keyword index is built, so its snapshot carries the section.
    with MossClient(store=folder) as client:
        carrier = client.sync.session("bench")
        carrier._core.name = "bench-carried"
        carrier._core.version = 0
        carrier._core.index.build_keywords()
        carrier.sync.push_index()
    carried = open_named("bench-carried")
    assert carried._keywords is not None
    repeats = args.repeats
    return {
        "open_s": median_time(lambda: open_named("bench"), repeats),
        "open_rebuild_s": median_time(open_rebuild, repeats),
        "open_carried_s": median_time(lambda: open_named("bench-carried"), repeats),
        "open_first_blend_query_s": median_time(first_blend, repeats),
    }


def print_ratios(result: dict[str, float]) -> None:
    r = result
    rows = [
        ("blended / vector query, vector given", r["vector_given_blend_ms"] / r["vector_given_vector_ms"], 2.0),
        ("blended / vector query, text embedded", r["text_embedded_blend_ms"] / r["text_embedded_vector_ms"], 2.0),
        ("keyword-only / vector query, text embedded", r["text_embedded_keyword_ms"] / r["text_embedded_vector_ms"], None),
        ("add 10 with / without keywords, text embedded", (r["add10_keyword_ms"] + r["add10_embed_ms"]) / (r["add10_vector_ms"] + r["add10_embed_ms"]), 1.5),
        ("add 1000 with / without keywords, text embedded", (r["add1000_keyword_ms"] + r["add1000_embed_ms"]) / (r["add1000_vector_ms"] + r["add1000_embed_ms"]), 1.5),
        ("add 10 with / without keywords, vectors given", r["add10_keyword_ms"] / r["add10_vector_ms"], None),
        ("add 1000 with / without keywords, vectors given", r["add1000_keyword_ms"] / r["add1000_vector_ms"], None),
        ("open + rebuild keywords / open", r["open_rebuild_s"] / r["open_s"], 1.5),
        ("open with the carried keyword section / open", r["open_carried_s"] / r["open_s"], 1.5),
        ("open + first blended query / open", r["open_first_blend_query_s"] / r["open_s"], None),
    ]  # fmt: skip
    print(f"\n{'ratio':<52} {'value':>7}  goal")
    for name, value, goal in rows:
        verdict = "" if goal is None else f"<= {goal}  {'ok' if value <= goal else 'MISSED'}"
        print(f"{name:<52} {value:7.2f}  {verdict}")
    print("\nmedians:", json.dumps({k: round(v, 4) for k, v in result.items()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    base = documents(args.size, seed=1)
    result: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as home:
        folder = Path(home).as_uri()
        with MossClient(store=folder) as client:
            session = client.sync.session("bench", model_id="moss-minilm")
            session.sync.add_docs(base)
            session.sync.push_index()
            result.update(bench_queries(session, args))
            session.sync.close()
            result.update(bench_adds(client, base, args))
        result.update(bench_open(folder, args))
    print_ratios(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    saved = {
        "schema": 1,
        "benchmark": "hybrid",
        "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "benchmarks/bench_hybrid.py " + " ".join(sys.argv[1:]),
        "meta": {"size": args.size, "python": platform.python_version()},
        "medians": result,
    }
    args.out.write_text(json.dumps(saved, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
