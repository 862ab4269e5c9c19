"""The real-text corpus: WordNet glosses, ingested and queried as text with the built-in model.

The glosses come from Debian's ``wordnet-base`` package: its installed files when present, else
the package fetched with ``apt-get download`` and unpacked with ``dpkg-deb`` into a cache
folder. Every peer embeds with the same model (moss-minilm, through the LangChain adapter or a
Chroma embedding function), so the figures compare the stores, not the models.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from adapters import INDEX_NAME, TOP_K

WORDNET_DIRS = (Path("/usr/share/wordnet"),)
CACHE = Path.home() / ".cache" / "moss-bench" / "wordnet"
PARTS = ("noun", "verb", "adj", "adv")
TEXT_PEERS = ("moss", "langchain-faiss", "chroma")


def wordnet_dir() -> Path | None:
    """A folder holding WordNet's ``data.*`` files, fetching the Debian package if needed."""
    for folder in (*WORDNET_DIRS, CACHE / "usr" / "share" / "wordnet"):
        if (folder / "data.noun").is_file():
            return folder
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        return None
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            ["apt-get", "download", "wordnet-base"], cwd=tmp, capture_output=True, text=True
        )
        debs = list(Path(tmp).glob("wordnet-base_*.deb"))
        if done.returncode != 0 or not debs:
            print(f"apt-get download wordnet-base failed: {done.stderr.strip()[:300]}")
            return None
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(CACHE)], check=True)
    folder = CACHE / "usr" / "share" / "wordnet"
    return folder if (folder / "data.noun").is_file() else None


def glosses(folder: Path) -> list[tuple[str, str]]:
    """(id, gloss) for every synset, in file order."""
    out = []
    for part in PARTS:
        for line in (
            (folder / f"data.{part}").read_text(encoding="utf-8", errors="replace").splitlines()
        ):
            if line.startswith("  ") or " | " not in line:
                continue  # the licence header
            offset = line.split(" ", 1)[0]
            out.append((f"{part}-{offset}", line.split(" | ", 1)[1].strip()))
    return out


def corpus(size: int, queries: int) -> tuple[list[tuple[str, str]], list[str]] | None:
    """``size`` glosses (a seeded sample) and ``queries`` query texts from other glosses."""
    folder = wordnet_dir()
    if folder is None:
        return None
    everything = glosses(folder)
    random.Random(9).shuffle(everything)
    docs = everything[:size]
    # A query is the start of a held-out gloss: short, like a user's question.
    held_out = everything[size : size + queries]
    return docs, [" ".join(gloss.split()[:6]) for _, gloss in held_out]


# -- the children ----------------------------------------------------------------------------


def _minilm_langchain() -> Any:
    from langchain_moss import MossEmbeddings

    return MossEmbeddings()


class _ChromaMiniLM:
    """A Chroma embedding function running moss-minilm."""

    def __init__(self) -> None:
        from moss.embeddings import resolve_model

        self._model = resolve_model("moss-minilm")

    def __call__(self, input: list[str]) -> list[Any]:
        return list(self._model.embed_documents(list(input)))

    def embed_query(self, input: list[str]) -> list[Any]:
        return self(input)

    @staticmethod
    def name() -> str:
        return "moss-minilm"

    def is_legacy(self) -> bool:
        return False

    def get_config(self) -> dict[str, Any]:
        return {}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> _ChromaMiniLM:
        return _ChromaMiniLM()


def _chroma(folder: Path) -> Any:
    import chromadb
    from chromadb.config import Settings

    return chromadb.PersistentClient(
        path=str(folder), settings=Settings(anonymized_telemetry=False)
    )


def _import_text_peer(peer: str) -> None:
    from moss.embeddings import resolve_model

    resolve_model("moss-minilm").embed_query("warm up")
    if peer == "langchain-faiss":
        import langchain_community.vectorstores  # noqa: F401
    elif peer == "chroma":
        import chromadb  # noqa: F401


def text_build(peer: str, folder: Path, docs: list[tuple[str, str]]) -> dict[str, float]:
    """Embed and add the glosses, then persist; the model is loaded before timing."""
    ids = [doc_id for doc_id, _ in docs]
    texts = [text for _, text in docs]
    started = time.perf_counter()
    if peer == "moss":
        from moss import DocumentInfo, MossClient
        from moss.embeddings import resolve_model

        resolve_model("moss-minilm").embed_query("warm up")
        session = MossClient(store=folder.as_uri()).sync.session(INDEX_NAME)
        started = time.perf_counter()
        session.sync.add_docs([DocumentInfo(id=i, text=t) for i, t in docs])
        added = time.perf_counter()
        session.sync.push_index()
    elif peer == "langchain-faiss":
        from langchain_community.vectorstores import FAISS

        embeddings = _minilm_langchain()
        embeddings.embed_query("warm up")
        started = time.perf_counter()
        store = FAISS.from_texts(texts, embeddings, ids=ids)
        added = time.perf_counter()
        store.save_local(str(folder))
    else:
        function = _ChromaMiniLM()
        function(["warm up"])
        started = time.perf_counter()
        collection = _chroma(folder).create_collection(INDEX_NAME, embedding_function=function)
        step = 5000
        for start in range(0, len(ids), step):
            collection.add(ids=ids[start : start + step], documents=texts[start : start + step])
        added = time.perf_counter()
    done = time.perf_counter()
    return {
        "ingest_s": added - started,
        "persist_s": done - added,
        "docs_per_s": len(docs) / (added - started),
    }


def text_query(peer: str, folder: Path, queries: list[str]) -> dict[str, Any]:
    """Open in this fresh process (imports and model load excluded), then time text queries
    (embedding included)."""
    _import_text_peer(peer)
    started = time.perf_counter()
    if peer == "moss":
        from moss import MossClient, QueryOptions

        session = MossClient(store=folder.as_uri()).sync.session(INDEX_NAME)

        def search(text: str) -> list[str]:
            # alpha=1.0: vector ranking, as the peers do (moss may default to hybrid ranking).
            options = QueryOptions(top_k=TOP_K, alpha=1.0)
            return [d.id for d in session.sync.query(text, options).docs]

    elif peer == "langchain-faiss":
        from langchain_community.vectorstores import FAISS

        store = FAISS.load_local(
            str(folder), _minilm_langchain(), allow_dangerous_deserialization=True
        )

        def search(text: str) -> list[str]:
            return [str(d.id) for d in store.similarity_search(text, k=TOP_K)]

    else:
        collection = _chroma(folder).get_collection(INDEX_NAME, embedding_function=_ChromaMiniLM())

        def search(text: str) -> list[str]:
            return list(collection.query(query_texts=[text], n_results=TOP_K)["ids"][0])

    opened = time.perf_counter()
    found = [search(text) for text in queries[:1]]
    first_ms = (time.perf_counter() - opened) * 1000
    times = []
    for text in queries[1:]:
        t0 = time.perf_counter()
        found.append(search(text))
        times.append(time.perf_counter() - t0)
    times.sort()
    return {
        "open_s": opened - started,
        "first_query_ms": first_ms,
        "text_query_p50_ms": times[len(times) // 2] * 1000,
        "found": found,
    }
