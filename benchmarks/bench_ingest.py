"""Ingest and batch-query throughput of a session against hand-written floors (issue 17).

Ratios from one run (on shared cores compare ratios, not absolute numbers):

- Embedding with the default model (``moss-minilm``) on SciFact abstracts (title + text) and
  on 230-character texts, docs/s: the floor (the same model file run by ``tokenizers`` +
  ``onnxruntime``, all cores, length-sorted batches of 32, mean pooling), moss's float32 graph
  (the shipped file, as moss ran it before issue 17) and moss's int8 graph
  (moss.embeddings.int8_graph), timed in alternating rounds (best of ``--rounds``); then
  ``add_docs`` with the graph moss picks on this machine.
- Model load time in fresh processes: the first load on a machine (derives and caches the int8
  graph, then measures which graph is faster), a cached load, and a forced float / int8 load.
- The machine's matrix rate beside moss: onnxruntime (all cores) multiplying
  (32 x mean tokens) x 384 by 384 x 1536, as ``MatMulInteger`` (uint8 x int8, the int8 GEMM
  rate) and as float32 ``MatMul``. Moss's share: its docs/s x the model's GEMM operations per
  document (6 layers x (4 x 384^2 + 2 x 384 x 1536) multiply-adds x 2 per token; the
  attention products, <5% at these lengths, are left out) over each rate.
- Re-adding the 230-character texts with new metadata only: embedding calls (a counting
  wrapper of the model) and time against the first add's.
- 32 queries at 100k x 384 through ``session.query_many`` (vectors given), against the numpy
  floor: one ``queries @ matrix.T`` product; one-by-one ``session.query`` beside it.
- ``session.add_arrays`` of 1M x 384 in one call, docs/s and peak RSS in a fresh process,
  against the floor (a copy of the matrix, an id -> row dict and the two lists).

Run: ``.venv/bin/python benchmarks/bench_ingest.py [--abstracts 150] [--short 2000]
[--rounds 2] [--only embed|gemm|load|...] [--json benchmarks/results/ingest.json]``; ``--json`` updates the parts
run in an existing file and keeps the others. SciFact is read from ``--corpus`` (default
``../shared/data/scifact/corpus.jsonl`` next to the checkout); the data is never copied here.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from child_runs import compare_adds
from gemm_rate import gemm_gops

from moss import DocumentInfo, EmbedderModel, FileStore, MossClient, QueryOptions
from moss.embeddings import MiniLMModel
from moss.embeddings.arithmetic import ARITHMETIC_ENV
from moss.embeddings.minilm import MAX_TOKENS, MODEL_PACKAGE, load_runtime

DIM = 384
TOP_K = 10
DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared/data/scifact/corpus.jsonl"

Matrix = npt.NDArray[np.float32]


def p50(fn: Callable[[], Any], repeat: int) -> float:
    """Median milliseconds of ``repeat`` runs after one warm-up."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def interleaved(
    floor: Callable[[], Any], measured: Callable[[], Any], rounds: int
) -> tuple[float, float]:
    """Median milliseconds of each, timed in alternating rounds after one warm-up each."""
    floor(), measured()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(rounds):
        for fn, out in zip((floor, measured), times, strict=True):
            start = time.perf_counter()
            fn()
            out.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times[0]), statistics.median(times[1])


def unit_vectors(rng: np.random.Generator, count: int) -> Matrix:
    vectors = rng.standard_normal((count, DIM), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


# -- embedding ---------------------------------------------------------------------------------


class Floor:
    """The hand-written floor: tokenizers + onnxruntime (all cores), sorted batches of 32."""

    def __init__(self) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        model = importlib.resources.files(MODEL_PACKAGE).joinpath("model.onnx").read_bytes()
        tokenizer = importlib.resources.files("moss.embeddings").joinpath("data/tokenizer.json")
        self.tokenizer = Tokenizer.from_str(tokenizer.read_text())
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=MAX_TOKENS)
        options = ort.SessionOptions()
        options.intra_op_num_threads = os.cpu_count() or 1
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}

    def embed(self, texts: Sequence[str]) -> Matrix:
        ids = [e.ids for e in self.tokenizer.encode_batch(list(texts))]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = np.empty((len(ids), DIM), dtype=np.float32)
        for start in range(0, len(order), 32):
            rows = order[start : start + 32]
            width = max(len(ids[i]) for i in rows)
            input_ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros_like(input_ids)
            for j, i in enumerate(rows):
                input_ids[j, : len(ids[i])] = ids[i]
                mask[j, : len(ids[i])] = 1
            feed = {"input_ids": input_ids, "attention_mask": mask}
            if "token_type_ids" in self.inputs:
                feed["token_type_ids"] = np.zeros_like(input_ids)
            hidden = self.session.run(None, feed)[0]
            pooled = (hidden * mask[:, :, None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
            out[rows] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
        return out


class Counting:
    """The default model, counting the texts it embeds (wrapped as a LangChain-style embedder)."""

    def __init__(self) -> None:
        self.model = MiniLMModel()
        self.texts = 0

    def embed_documents(self, texts: list[str]) -> Matrix:
        self.texts += len(texts)
        return self.model.embed_documents(texts)

    def embed_query(self, text: str) -> Matrix:
        return self.model.embed_query(text)


# Per token: Q, K, V and output projections (384 x 384) and the two feed-forward products.
GEMM_OPS_PER_TOKEN = 2 * 6 * (4 * DIM * DIM + 2 * DIM * 1536)


def bench_gemm(texts: list[str], rates: dict[str, float]) -> dict[str, float]:
    """The machine's int8 and float32 GEMM rates, and the share of each that moss's
    ``rates`` (docs/s per graph, "float" and "int8") reach."""
    floor = Floor()
    tokens = statistics.mean(len(e.ids) for e in floor.tokenizer.encode_batch(texts))
    rows = 32 * round(tokens)
    int8, fp32 = gemm_gops("MatMulInteger", rows), gemm_gops("MatMul", rows)
    print(f"== the machine's matrix rate ({rows} x {DIM} @ {DIM} x 1536, onnxruntime, all cores)")
    print(f"  int8 MatMulInteger {int8:7.1f} GOPS   float32 MatMul {fp32:7.1f} GOPS")
    report: dict[str, float] = {
        "rows": rows,
        "mean_tokens": tokens,
        "gemm_ops_per_doc": GEMM_OPS_PER_TOKEN * tokens,
        "int8_gemm_gops": int8,
        "float32_gemm_gops": fp32,
    }
    for graph, rate in rates.items():
        gops = rate * tokens * GEMM_OPS_PER_TOKEN / 1e9
        print(
            f"  moss {graph:5s} graph on abstracts ({tokens:.0f} tokens): {gops:5.1f} GOPS,"
            f" {gops / int8:.1%} of the int8 GEMM rate, {gops / fp32:.1%} of float32's"
        )
        report[f"moss_{graph}_gops"] = gops
        report[f"moss_{graph}_int8_share"] = gops / int8
        report[f"moss_{graph}_float32_share"] = gops / fp32
    return report


def load_abstracts(corpus: Path, count: int) -> list[str]:
    texts = []
    with corpus.open() as lines:
        for line in lines:
            record = json.loads(line)
            texts.append(f"{record['title']} {record['text']}".strip())
            if len(texts) == count:
                break
    return texts


def short_texts(abstracts: list[str], count: int) -> list[str]:
    """230-character texts cut from the abstracts (distinct: each numbered)."""
    joined = " ".join(abstracts)
    step = max(1, (len(joined) - 230) // max(count, 1))
    return [f"{i} {joined[i * step : i * step + 225]}"[:230] for i in range(count)]


def bench_embedding(
    client: MossClient, name: str, texts: list[str], rounds: int
) -> dict[str, float | str]:
    """docs/s of the floor and of moss's two graphs (alternating rounds, best of each), then of
    ``add_docs`` with the graph moss picks here."""
    floor = Floor()
    graphs = {arithmetic: load_runtime(arithmetic) for arithmetic in ("float", "int8")}
    embedders: dict[str, Callable[[list[str]], Any]] = {
        "floor": floor.embed,
        "float": graphs["float"].embed,
        "int8": graphs["int8"].embed,
    }
    best = dict.fromkeys(embedders, 0.0)
    for embed in embedders.values():
        embed(texts[:32])  # warm-up
    for _ in range(rounds):
        for key, embed in embedders.items():  # alternating: a burst of load hits all alike
            start = time.perf_counter()
            embed(texts)
            best[key] = max(best[key], len(texts) / (time.perf_counter() - start))
    session = client.sync.session(f"embed-{name}")
    model = MiniLMModel()
    model.load()
    start = time.perf_counter()
    session.add_docs([DocumentInfo(id=f"d{i}", text=t) for i, t in enumerate(texts)])
    moss_rate = len(texts) / (time.perf_counter() - start)
    floor_rate = best["floor"]
    print(
        f"  {name:10s} {len(texts):5d} texts  floor {floor_rate:6.1f}  float graph "
        f"{best['float']:6.1f} ({best['float'] / floor_rate:4.2f}x)  int8 graph "
        f"{best['int8']:6.1f} ({best['int8'] / floor_rate:4.2f}x, {best['int8'] / best['float']:4.2f}x"
        f" float)  add_docs ({model.arithmetic}) {moss_rate:6.1f} docs/s"
    )
    return {
        "texts": len(texts),
        "floor_docs_per_s": floor_rate,
        "moss_float_docs_per_s": best["float"],
        "moss_int8_docs_per_s": best["int8"],
        "int8_over_float": best["int8"] / best["float"],
        "moss_docs_per_s": moss_rate,
        "moss_arithmetic": model.arithmetic,
    }


LOAD_CHILD = """
import time
from moss.embeddings.minilm import load_runtime
start = time.perf_counter()
runtime = load_runtime()
print(time.perf_counter() - start, runtime.arithmetic)
"""


def bench_load() -> dict[str, float | str]:
    """Seconds to load the model in a fresh process: first on a machine, cached, forced."""
    report: dict[str, float | str] = {}
    print("== model load in a fresh process (s)")
    with tempfile.TemporaryDirectory() as cache:
        runs = [("first", ""), ("cached", ""), ("forced_float", "float"), ("forced_int8", "int8")]
        for label, forced in runs:
            env = {**os.environ, "MOSS_CACHE_DIR": cache, ARITHMETIC_ENV: forced}
            out = subprocess.run(
                [sys.executable, "-c", LOAD_CHILD],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout.split()
            report[f"{label}_s"], report[f"{label}_arithmetic"] = float(out[0]), out[1]
            print(f"  {label:13s} {float(out[0]):5.2f}  ({out[1]})")
    return report


def bench_readd(client: MossClient, texts: list[str]) -> dict[str, float]:
    counting = Counting()
    session = client.sync.session("readd", model=EmbedderModel(counting, model_id="counting"))
    start = time.perf_counter()
    session.add_docs(
        [DocumentInfo(id=f"d{i}", text=t, metadata={"v": 1}) for i, t in enumerate(texts)]
    )
    first = time.perf_counter() - start
    embedded = counting.texts
    start = time.perf_counter()
    session.add_docs(
        [DocumentInfo(id=f"d{i}", text=t, metadata={"v": 2}) for i, t in enumerate(texts)]
    )
    again = time.perf_counter() - start
    calls = counting.texts - embedded
    print(
        f"== re-add {len(texts)} unchanged texts with new metadata: {calls} texts embedded, "
        f"{again * 1e3:.1f} ms vs {first * 1e3:.0f} ms first ({again / first:.2%})"
    )
    return {
        "texts": len(texts),
        "first_add_s": first,
        "readd_s": again,
        "readd_share": again / first,
        "readd_texts_embedded": calls,
    }


# -- batch queries -----------------------------------------------------------------------------


def bench_queries(client: MossClient, count: int) -> dict[str, float]:
    rng = np.random.default_rng(1)
    vectors = unit_vectors(rng, count)
    session = client.sync.session("queries", model_id="custom")
    session.add_arrays([f"d{i}" for i in range(count)], [""] * count, vectors)
    batch = unit_vectors(rng, 32)
    options = QueryOptions(top_k=TOP_K, alpha=1.0)
    # Interleaved rounds, so both sides see the same load on shared cores.
    floor_ms, many_ms = interleaved(
        lambda: batch @ vectors.T, lambda: session.query_many(None, options, embeddings=batch), 15
    )

    def one_by_one() -> None:
        for q in batch:
            session.query("", QueryOptions(top_k=TOP_K, alpha=1.0, embedding=q))

    single_ms = p50(one_by_one, 3)
    print(f"== 32 queries at {count:,} (p50 ms, x the floor: one batched numpy product)")
    print(f"  numpy batched product  {floor_ms:8.2f}")
    print(f"  session.query_many     {many_ms:8.2f}  {many_ms / floor_ms:5.2f}x")
    print(f"  32 x session.query     {single_ms:8.2f}  {single_ms / floor_ms:5.2f}x")
    return {
        "count": count,
        "floor_ms": floor_ms,
        "query_many_ms": many_ms,
        "one_by_one_ms": single_ms,
        "ratio": many_ms / floor_ms,
    }


# -- columnar adds -----------------------------------------------------------------------------


def add_child(kind: str, count: int) -> None:
    """In a fresh process: add ``count`` documents as ``kind`` says; print docs/s and peak MB."""
    rng = np.random.default_rng(1)
    vectors = np.empty((count, DIM), dtype=np.float32)
    for offset in range(0, count, 100_000):  # no matrix-sized temporaries before the baseline
        vectors[offset : offset + 100_000] = unit_vectors(
            rng, len(vectors[offset : offset + 100_000])
        )
    ids = [f"doc-{i}" for i in range(count)]
    texts = [f"text {i}" for i in range(count)]
    with tempfile.TemporaryDirectory() as home:
        session = MossClient("bench", store=FileStore(home)).sync.session("m", model_id="custom")
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        if kind == "floor":
            matrix = np.empty_like(vectors)
            matrix[:] = vectors
            kept: tuple[object, ...] = (
                matrix,
                dict(zip(ids, range(count), strict=True)),
                list(ids),
                list(texts),
            )
        else:
            session.add_arrays(ids, texts, vectors)
            kept = (session,)
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{count / seconds:.0f} {(peak - base) / 1024:.0f} {len(kept)}")


def bench_adds(count: int) -> dict[str, float]:
    print(f"== add_arrays of {count:,} x {DIM} in one call (fresh process each)")
    results = compare_adds(__file__, ("floor", "moss"), count)
    floor_rate, floor_mb = results["floor"]
    moss_rate, moss_mb = results["moss"]
    return {
        "count": count,
        "floor_docs_per_s": floor_rate,
        "moss_docs_per_s": moss_rate,
        "floor_peak_mb": floor_mb,
        "moss_peak_mb": moss_mb,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--abstracts", type=int, default=150)
    parser.add_argument("--short", type=int, default=2000)
    parser.add_argument("--queries-at", type=int, default=100_000)
    parser.add_argument("--adds", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", choices=["embed", "gemm", "load", "readd", "queries", "adds"])
    parser.add_argument("--child", choices=["floor", "moss"])
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    if args.child:
        add_child(args.child, args.adds)
        return
    report: dict[str, Any] = {
        "benchmark": "ingest",
        "command": " ".join(["benchmarks/bench_ingest.py", *sys.argv[1:]]),
        "cpus": os.cpu_count(),
    }
    with tempfile.TemporaryDirectory() as home:
        client = MossClient("bench", store=FileStore(home))
        abstracts = load_abstracts(args.corpus, max(args.abstracts, 200))
        short = short_texts(abstracts, args.short)
        if args.only in (None, "embed", "gemm"):  # the GEMM share needs moss's docs/s
            print(
                "== embedding with the default model: floor, moss's two graphs, add_docs (docs/s)"
            )
            report["embed"] = {
                "scifact_abstracts": bench_embedding(
                    client, "abstracts", abstracts[: args.abstracts], args.rounds
                ),
                "texts_230": bench_embedding(client, "230-char", short[:1000], args.rounds),
            }
        if args.only in (None, "gemm"):
            measured = report["embed"]["scifact_abstracts"]
            rates = {g: measured[f"moss_{g}_docs_per_s"] for g in ("float", "int8")}
            report["gemm"] = bench_gemm(abstracts[: args.abstracts], rates)
        if args.only in (None, "load"):
            report["load"] = bench_load()
        if args.only in (None, "readd"):
            report["readd"] = bench_readd(client, short)
        if args.only in (None, "queries"):
            report["query_many"] = bench_queries(client, args.queries_at)
    if args.only in (None, "adds"):
        report["add_arrays"] = bench_adds(args.adds)
    if args.json:
        path = Path(args.json)
        kept = json.loads(path.read_text()) if path.exists() and args.only else {}
        if kept:
            report["command"] += f"  (other parts: {kept.pop('command', '?')})"
        path.write_text(json.dumps(_rounded({**kept, **report}), indent=2) + "\n")


def _rounded(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    return round(value, 4) if isinstance(value, float) else value


if __name__ == "__main__":
    main()
