"""Ad-hoc: MossVectorStore vs SimpleVectorStore on 10k random 384-d nodes (2 cores)."""

import tempfile
import time

import numpy as np
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores import SimpleVectorStore
from llama_index.core.vector_stores.types import (
    FilterOperator as O,
)
from llama_index.core.vector_stores.types import (
    MetadataFilter as F,
)
from llama_index.core.vector_stores.types import (
    MetadataFilters as FS,
)
from llama_index.core.vector_stores.types import (
    VectorStoreQuery as Q,
)
from llama_index.core.vector_stores.types import (
    VectorStoreQueryMode as M,
)
from llama_index.vector_stores.moss import MossVectorStore

from moss import MossClient

N, D = 10_000, 384
rng = np.random.default_rng(0)
vecs = rng.normal(size=(N, D)).astype(np.float32)
nodes = [
    TextNode(
        id_=f"n{i}",
        text=f"text {i}",
        metadata={
            "team": "abcd"[i % 4],
            "i": i,
            "title": f"Doc {i} about {'refunds' if i % 10 == 0 else 'shipping'}",
        },
        embedding=vecs[i].tolist(),
    )
    for i in range(N)
]
client = MossClient(store=tempfile.mkdtemp())
t = time.perf_counter()
moss = MossVectorStore("bench", client=client, model_id="custom")
moss.add(nodes)
t_add_m = time.perf_counter() - t
t = time.perf_counter()
simple = SimpleVectorStore()
simple.add(nodes)
t_add_s = time.perf_counter() - t
print(f"add {N}: moss {t_add_m:.2f}s  simple {t_add_s:.2f}s")
q = rng.normal(size=D).tolist()
cases = {
    "no filter": dict(),
    "team==a AND i<5000 (engine)": dict(
        filters=FS(filters=[F(key="team", value="a"), F(key="i", value=5000, operator=O.LT)])
    ),
    "text_match (local)": dict(
        filters=FS(filters=[F(key="title", value="refunds", operator=O.TEXT_MATCH)])
    ),
    "nested OR/NOT (engine)": dict(
        filters=FS(
            filters=[
                FS(filters=[F(key="team", value="a"), F(key="team", value="b")], condition="or"),
                FS(filters=[F(key="i", value=100, operator=O.LT)], condition="not"),
            ]
        )
    ),
    "MMR k=10": dict(mode=M.MMR),
}
for name, kw in cases.items():
    query = Q(query_embedding=q, similarity_top_k=10, **kw)

    def run(store, query=query, reps=5):
        store.query(query)
        t = time.perf_counter()
        for _ in range(reps):
            r = store.query(query)
        return (time.perf_counter() - t) / reps * 1000, r

    tm, rm = run(moss)
    try:
        ts, rs = run(simple)
        same = rm.ids == rs.ids
        print(
            f"{name:32s} moss {tm:7.1f} ms  simple {ts:7.1f} ms  x{ts / tm:5.1f}  same ids: {same}"
        )
    except ValueError as e:
        print(f"{name:32s} moss {tm:7.1f} ms  simple: {e}")
