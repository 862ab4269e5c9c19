"""Retrieval quality on SciFact: nDCG@10 of vector, keyword and blended moss queries.

Run: .venv/bin/python benchmarks/bench_quality.py [--data ../shared/data/scifact]
         [--alphas 1,0,0.2,0.3,0.4,0.5,0.6,0.7,0.8] [--out benchmarks/results/quality.json]
         [--arithmetic auto|float|int8|compare]

SciFact (BEIR layout): 5,183 abstracts, 809 train and 300 test claims. A document's text is
title + " " + text, as MTEB does. Every figure goes through moss's public query path: one
``moss-minilm`` session holds the corpus (embeddings brought in ``DocumentInfo.embedding``),
each claim is a ``session.sync.query(claim, QueryOptions(top_k=10, alpha=a, embedding=v))``.

``--arithmetic`` picks the graph that embeds (moss.embeddings.arithmetic; default ``auto``: the
one the model picks on this machine). ``compare`` embeds with both the float32 and the int8
graph and writes, beside the alpha table, their per-vector cosine (min, mean) and the vector-only
nDCG@10 of the four pairings: float docs + float queries, int8 + int8, and the two mixed ones
(a session embedded on one machine and queried from another).

Embedding the corpus takes minutes on a small machine, so the corpus and query vectors are
cached in ``benchmarks/.cache/`` (keyed by the texts, the model artifact and the arithmetic;
gitignored).
nDCG@10 uses graded gains ``2**rel - 1`` and log2 discounts, the pytrec_eval / BEIR definition;
queries without relevant documents in a split are not in that split.

The default alpha is the best on the *train* split; the test split is reported for comparison
with the published numbers (all-MiniLM-L6-v2 0.645, MTEB; BM25 0.665, BEIR).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import hashlib
import json
import math
import platform
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from moss import DocumentInfo, MossClient, QueryOptions
from moss.embeddings import MiniLMModel
from moss.embeddings.int8_graph import REWRITE_VERSION
from moss.embeddings.minilm import load_runtime

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"
CACHE = Path(__file__).parent / ".cache"
DEFAULT_OUT = Path(__file__).parent / "results" / "quality.json"
DEFAULT_ALPHAS = "1,0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9"
TOP_K = 10
PUBLISHED = {"vector": 0.645, "keyword": 0.665}
Matrix = npt.NDArray[np.float32]
Qrels = dict[str, dict[str, int]]


def load_corpus(data: Path) -> tuple[list[str], list[str]]:
    """Document ids and texts (title + " " + text)."""
    ids, texts = [], []
    with (data / "corpus.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            doc = json.loads(line)
            ids.append(doc["_id"])
            texts.append(f"{doc['title']} {doc['text']}")
    return ids, texts


def load_queries(data: Path) -> dict[str, str]:
    with (data / "queries.jsonl").open(encoding="utf-8") as lines:
        return {q["_id"]: q["text"] for q in map(json.loads, lines)}


def load_qrels(data: Path, split: str) -> Qrels:
    qrels: Qrels = defaultdict(dict)
    with (data / "qrels" / f"{split}.tsv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            qrels[row["query-id"]][row["corpus-id"]] = int(row["score"])
    return dict(qrels)


def cached_embeddings(texts: list[str], arithmetic: str, label: str) -> Matrix:
    """The model's vectors of ``texts`` with ``arithmetic`` ("auto": the model's own choice),
    computed once and kept in ``benchmarks/.cache``."""
    runtime = load_runtime(None if arithmetic == "auto" else arithmetic)
    key = "\n".join(texts) + MiniLMModel.artifact_id + runtime.arithmetic
    if runtime.arithmetic == "int8":  # a changed rewrite makes other int8 vectors
        key += f"r{REWRITE_VERSION}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    path = CACHE / f"scifact-{label}-{runtime.arithmetic}-{digest}.npy"
    if path.exists():
        vectors: Matrix = np.load(path, allow_pickle=False)
        return vectors
    CACHE.mkdir(exist_ok=True)
    started = time.perf_counter()
    parts = []
    for start in range(0, len(texts), 256):
        parts.append(runtime.embed(texts[start : start + 256]))
        done = start + len(parts[-1])
        rate = done / (time.perf_counter() - started)
        print(
            f"  embedded {done}/{len(texts)} {label} texts, {runtime.arithmetic} ({rate:.1f}/s)",
            file=sys.stderr,
        )
    vectors = np.concatenate(parts)
    np.save(path, vectors, allow_pickle=False)
    return vectors


def ndcg_at_k(ranked: list[str], relevant: dict[str, int], k: int = TOP_K) -> float:
    """nDCG@k with gains 2**rel - 1 (BEIR / pytrec_eval)."""
    dcg = sum(
        (2 ** relevant.get(doc_id, 0) - 1) / math.log2(i + 2) for i, doc_id in enumerate(ranked[:k])
    )
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum((2**rel - 1) / math.log2(i + 2) for i, rel in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def evaluate(args: argparse.Namespace) -> dict[str, object]:
    doc_ids, texts = load_corpus(args.data)
    queries = load_queries(args.data)
    splits = {split: load_qrels(args.data, split) for split in ("train", "test")}
    query_ids = sorted({qid for qrels in splits.values() for qid in qrels})
    query_texts = [queries[q] for q in query_ids]
    if args.arithmetic == "compare":
        return compare_arithmetic(doc_ids, texts, queries, query_ids, splits)
    doc_vectors = cached_embeddings(texts, args.arithmetic, "corpus")
    query_vectors = dict(
        zip(query_ids, cached_embeddings(query_texts, args.arithmetic, "query"), strict=True)
    )
    alphas = [float(a) for a in args.alphas.split(",")]
    with tempfile.TemporaryDirectory() as home, MossClient(store=f"file://{home}") as client:
        session = scifact_session(client, "scifact", doc_ids, texts, doc_vectors)
        rows = []
        for alpha in alphas:
            row: dict[str, object] = {"alpha": alpha}
            for split, qrels in splits.items():
                row[split] = split_ndcg(session, qrels, queries, query_vectors, alpha)
            rows.append(row)
            print(f"  alpha={alpha:<4} train={row['train']:.4f} test={row['test']:.4f}")
    best = max(rows, key=lambda r: (r["train"], r["alpha"]))
    return {"rows": rows, "best_train_alpha": best["alpha"]}


def scifact_session(
    client: MossClient, name: str, doc_ids: list[str], texts: list[str], vectors: Matrix
) -> Any:
    """A ``moss-minilm`` session holding the corpus with the given vectors."""
    session = client.sync.session(name, model_id="moss-minilm")
    started = time.perf_counter()
    session.sync.add_docs(
        DocumentInfo(id=i, text=t, embedding=v)
        for i, t, v in zip(doc_ids, texts, vectors, strict=True)
    )
    print(f"  indexed {len(doc_ids)} documents in {time.perf_counter() - started:.1f} s")
    return session


def split_ndcg(
    session: Any, qrels: Qrels, queries: dict[str, str], vectors: dict[str, Any], alpha: float
) -> float:
    """Mean nDCG@10 of the claims of one split, each a ``session.sync.query``."""
    scores = []
    for qid, relevant in qrels.items():
        options = QueryOptions(top_k=TOP_K, alpha=alpha, embedding=vectors[qid])
        found = session.sync.query(queries[qid], options)
        scores.append(ndcg_at_k([d.id for d in found.docs], relevant))
    return round(float(np.mean(scores)), 4)


def compare_arithmetic(
    doc_ids: list[str],
    texts: list[str],
    queries: dict[str, str],
    query_ids: list[str],
    splits: dict[str, Qrels],
) -> dict[str, object]:
    """Cosine of int8 vs float32 vectors, and vector-only nDCG@10 of the four pairings."""
    docs = {a: cached_embeddings(texts, a, "corpus") for a in ("float", "int8")}
    query_texts = [queries[q] for q in query_ids]
    vectors = {a: cached_embeddings(query_texts, a, "query") for a in ("float", "int8")}
    cosine: dict[str, dict[str, float]] = {}
    for label, pair in (("documents", docs), ("queries", vectors)):
        cos = np.sum(pair["float"] * pair["int8"], axis=1)
        cosine[label] = {"min": round(float(cos.min()), 4), "mean": round(float(cos.mean()), 4)}
        print(f"  cosine int8 vs float, {label}: min {cos.min():.4f} mean {cos.mean():.4f}")
    pairings = []
    with tempfile.TemporaryDirectory() as home, MossClient(store=f"file://{home}") as client:
        for doc_arithmetic in ("float", "int8"):
            session = scifact_session(
                client, f"scifact-{doc_arithmetic}", doc_ids, texts, docs[doc_arithmetic]
            )
            for query_arithmetic in ("float", "int8"):
                by_id = dict(zip(query_ids, vectors[query_arithmetic], strict=True))
                row: dict[str, object] = {"docs": doc_arithmetic, "queries": query_arithmetic}
                for split, qrels in splits.items():
                    row[split] = split_ndcg(session, qrels, queries, by_id, 1.0)
                pairings.append(row)
                print(
                    f"  docs {doc_arithmetic:5s} queries {query_arithmetic:5s} "
                    f"train={row['train']:.4f} test={row['test']:.4f}"
                )
    return {"arithmetic": {"cosine": cosine, "vector_ndcg10": pairings}}


def print_table(result: dict[str, object]) -> None:
    rows = result["rows"]
    assert isinstance(rows, list)
    print("\n| ranking | alpha | nDCG@10 train | nDCG@10 test | published (test) |")
    print("|---|---|---|---|---|")
    for row in sorted(rows, key=lambda r: (r["alpha"] not in (1.0, 0.0), -r["alpha"])):
        alpha = row["alpha"]
        name = {1.0: "vector only", 0.0: "keyword only (BM25)"}.get(alpha, "blend (RRF)")
        published = {1.0: PUBLISHED["vector"], 0.0: PUBLISHED["keyword"]}.get(alpha)
        mark = " (best on train)" if alpha == result["best_train_alpha"] else ""
        cited = f"{published:.3f}" if published else ""
        print(f"| {name}{mark} | {alpha} | {row['train']:.3f} | {row['test']:.3f} | {cited} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--alphas", default=DEFAULT_ALPHAS)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--arithmetic", choices=["auto", "float", "int8", "compare"], default="auto"
    )
    args = parser.parse_args()
    result = evaluate(args)
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    command = "benchmarks/bench_quality.py " + " ".join(sys.argv[1:])
    if args.arithmetic == "compare":  # added to the alpha table already there, which it keeps
        kept = json.loads(args.out.read_text()) if args.out.exists() else {}
        found = result["arithmetic"]
        assert isinstance(found, dict)
        kept["arithmetic"] = {"created_at": stamp, "command": command, **found}
        args.out.write_text(json.dumps(kept, indent=2) + "\n", encoding="utf-8")
        return
    print_table(result)
    result = {
        "schema": 1,
        "benchmark": "quality",
        "created_at": stamp,
        "command": command,
        **result,
    }
    result["meta"] = {
        "dataset": "scifact",
        "model": "moss-minilm",
        "top_k": TOP_K,
        "published": PUBLISHED,
        "python": platform.python_version(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
