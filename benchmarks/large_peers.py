"""Peers and corpora for bench_large.py: Chroma's HNSW built over the same vectors (at its
defaults and with moss's parameters), and real MiniLM embeddings of WordNet glosses.

Both are slow to make on 2 shared cores (Chroma adds ~20k vectors a minute, moss-minilm embeds
~7k glosses a minute), so both are cached under the benchmark's cache folder (never in the
repository) and reused by the next run.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]

#: Chroma configurations compared: its defaults (L2 space, M 16, efConstruction 100,
#: efSearch 100) and moss's hnsw defaults (inner product, M 32, efConstruction 80, efSearch 64).
CHROMA_CONFIGS: dict[str, dict[str, Any] | None] = {
    "chroma_defaults": None,
    "chroma_matched": {
        "hnsw": {"space": "ip", "max_neighbors": 32, "ef_construction": 80, "ef_search": 64}
    },
}


def chroma_search(
    x: Matrix, cache: Path, name: str, config: dict[str, Any] | None
) -> tuple[Callable[[Matrix], set[int]], float]:
    """A search of a persisted Chroma collection holding ``x`` (row i as id ``str(i)``) and the
    seconds its build took (built once per cache folder)."""
    import chromadb
    from chromadb.config import Settings

    folder = cache / name
    meta = folder / "moss-bench.json"
    built = json.loads(meta.read_text()) if meta.exists() else {}
    if built.get("count") != len(x):
        shutil.rmtree(folder, ignore_errors=True)  # absent, stale or half built
    client = chromadb.PersistentClient(
        path=str(folder), settings=Settings(anonymized_telemetry=False)
    )
    if built.get("count") == len(x):
        collection = client.get_collection("large", embedding_function=None)
        build = float(built["build_s"])
    else:
        collection = client.create_collection(
            "large",
            configuration=config,  # type: ignore[arg-type]  # a plain dict of its TypedDict
            embedding_function=None,
        )
        batch = client.get_max_batch_size()
        start = time.perf_counter()
        for first in range(0, len(x), batch):
            rows = x[first : first + batch]
            collection.add(ids=[str(first + i) for i in range(len(rows))], embeddings=rows)
        build = time.perf_counter() - start
        meta.write_text(json.dumps({"count": len(x), "build_s": build}))

    def search(query: Matrix) -> set[int]:
        found = collection.query(query_embeddings=query[None, :], n_results=10, include=[])
        return {int(i) for i in found["ids"][0]}

    return search, build


def minilm_corpus(
    count: int, queries: int, cache: Path, budget_s: float
) -> tuple[Matrix, Matrix] | None:
    """Real embeddings: ``count`` WordNet glosses (benchmarks/peers' seeded sample) and
    ``queries`` held-out gloss starts, embedded once with moss-minilm and cached as .npy in
    ``cache`` (never in the repository). Embedding stops after ``budget_s`` seconds of this
    call and resumes in the next run: the rows embedded so far are returned (None: none yet)."""
    sys.path.insert(0, str(Path(__file__).parent / "peers"))
    from text import corpus as gloss_corpus

    from moss.embeddings import resolve_model

    picked = gloss_corpus(count, queries)
    if picked is None:
        print("no WordNet glosses (apt-get download wordnet-base failed): skipping MiniLM")
        return None
    docs, texts = picked
    folder = cache / f"minilm-wordnet-{count}"
    folder.mkdir(parents=True, exist_ok=True)
    model = resolve_model("moss-minilm")
    query_file = folder / f"queries-{queries}.npy"
    if not query_file.exists():
        np.save(query_file, model.embed_documents(texts).astype(np.float32))
    started, parts = time.perf_counter(), []
    for start in range(0, len(docs), _EMBED_CHUNK):
        part = folder / f"docs-{start:07d}.npy"
        if not part.exists():
            if time.perf_counter() - started > budget_s:
                break
            chunk = [text for _, text in docs[start : start + _EMBED_CHUNK]]
            np.save(part.with_suffix(".tmp.npy"), model.embed_documents(chunk).astype(np.float32))
            part.with_suffix(".tmp.npy").rename(part)
            print(f"embedded {start + len(chunk):,} of {len(docs):,} glosses", flush=True)
        parts.append(np.load(part))
    if not parts:
        return None
    return np.concatenate(parts), np.load(query_file)


_EMBED_CHUNK = 5_000
