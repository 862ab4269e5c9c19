"""`moss serve` under abuse: uploads no client could open, slow and stalled clients, absurd
parameters, ids HTTP Basic cannot carry. Real server processes, real sockets; the slow clients
are raw sockets that stop mid-request."""

from __future__ import annotations

import base64
import json
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest
import xxhash

from moss.errors import InvalidArgumentError
from moss.stores.auth import AuthTable, parse_env_keys
from moss.validation import validate_name
from service import Server
from snapshots import snapshot_bytes

KEY = "abuse-test-key-0123456789abcdef"
OTHER_KEY = "abuse-other-key-0123456789abcdef"


def _craft(name: str, vectors: np.ndarray, documents: bytes) -> bytes:
    """A format-1 snapshot with valid layout and checksums around whatever sections we give
    (built by hand from docs/snapshot-format.md, so it can hold what the encoder refuses)."""
    count, dimension = vectors.shape
    sections = {"vectors": vectors.astype("<f4").tobytes(), "documents": documents}

    def header_bytes(first_offset: int) -> bytes:
        offset, infos = first_offset, {}
        for key, data in sections.items():
            infos[key] = {
                "offset": offset,
                "length": len(data),
                "checksum": xxhash.xxh3_64_hexdigest(data),
            }
            offset = -(-(offset + len(data)) // 64) * 64
        header = {
            "index_name": name,
            "model_id": "custom",
            "model_artifact": "",
            "dimension": dimension,
            "count": count,
            "created_at": time.time(),
            "checksum_algorithm": "xxh3_64",
            "sections": infos,
        }
        return json.dumps(header).encode()

    first = 0
    while True:  # the header's length decides where the first section starts
        raw = header_bytes(first)
        start = -(-(24 + len(raw)) // 64) * 64
        if start == first:
            break
        first = start
    out = bytearray(b"MOSSSNAP" + struct.pack("<IIQ", 1, len(raw), xxhash.xxh3_64_intdigest(raw)))
    out += raw
    for data in sections.values():
        out += bytes(-len(out) % 64) + data
    return bytes(out)


def _documents(ids: list[object], count: int) -> bytes:
    texts = [f"text {i}" for i in range(count)]
    return json.dumps({"ids": ids, "texts": texts, "metadata": [None] * count}).encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {
        "MOSS_SERVE_UPLOAD_IDLE_SECONDS": "1",
        "MOSS_SERVE_DOWNLOAD_STALL_SECONDS": "2",
        "MOSS_SERVE_MAX_UPLOADS_PER_PROJECT": "2",
        "MOSS_SERVE_MAX_UPLOADS": "3",
    }
    keys = {"p": KEY, "q": OTHER_KEY}
    with Server(tmp_path_factory.mktemp("abuse"), keys=keys, env=env) as srv:
        yield srv


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, auth=("p", KEY), timeout=30) as client:
        yield client


def _raw_request(server: Server, head: str, body: bytes = b"", project: str = "p") -> socket.socket:
    """Send a request head (and the start of a body) on a raw socket; leave it open."""
    key = KEY if project == "p" else OTHER_KEY
    auth = base64.b64encode(f"{project}:{key}".encode()).decode()
    conn = socket.create_connection(("127.0.0.1", server.port))
    conn.sendall(f"{head}\r\nHost: x\r\nAuthorization: Basic {auth}\r\n\r\n".encode() + body)
    return conn


def _answer(conn: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything the server sends until it closes the connection (or ``timeout`` passes);
    then close our end."""
    conn.settimeout(timeout)
    data = b""
    with conn:
        try:
            while part := conn.recv(65536):
                data += part
        except TimeoutError:
            pass
    return data


def _temp_files(server: Server) -> list[Path]:
    return [p for p in (server.root / "store").rglob(".tmp-*") if p.is_file()]


def test_uploads_no_client_could_open_are_refused_and_the_last_good_version_stays(
    http: httpx.Client,
) -> None:
    name = "opened-by-clients"
    good = snapshot_bytes(name, count=3)
    assert http.put(f"/v1/indexes/{name}", content=good).status_code == 201
    vectors = np.eye(3, 8, dtype=np.float32)
    nan_vectors = vectors.copy()
    nan_vectors[1, 2] = np.nan
    bad = {
        "2 ids for 3 documents": _craft(name, vectors, _documents(["a", "b"], 3)),
        "documents not JSON": _craft(name, vectors, b'{"ids": ["a", "b", "c"'),
        "duplicate ids": _craft(name, vectors, _documents(["a", "b", "a"], 3)),
        "a NaN vector": _craft(name, nan_vectors, _documents(["a", "b", "c"], 3)),
    }
    for what, blob in bad.items():
        answer = http.put(f"/v1/indexes/{name}", content=blob)
        assert answer.status_code == 400, (what, answer.text)
        assert answer.json()["error"] == "snapshot_invalid", what
    latest = http.get(f"/v1/indexes/{name}")
    assert (latest.headers["x-moss-version"], latest.content) == ("1", good)
    ok = _craft(name, vectors, _documents(["a", "b", "c"], 3))  # the crafting itself is sound
    assert http.put(f"/v1/indexes/{name}", content=ok).json()["version"] == 2


def test_a_stalled_upload_is_dropped_and_its_temp_file_removed(server: Server) -> None:
    blob = snapshot_bytes("stalled", count=2000, dimension=64)
    conn = _raw_request(
        server, f"PUT /v1/indexes/stalled HTTP/1.1\r\nContent-Length: {len(blob)}", blob[:70_000]
    )
    time.sleep(0.5)
    assert _temp_files(server), "the upload should be under way"
    answer = _answer(conn)  # the idle timeout is 1 s
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"nothing was stored" in answer
    assert not _temp_files(server)


def test_concurrent_uploads_are_capped_per_project_and_in_total(server: Server) -> None:
    blob = snapshot_bytes("capped", count=500, dimension=64)
    head = f"PUT /v1/indexes/capped HTTP/1.1\r\nContent-Length: {len(blob)}"
    stalled = [_raw_request(server, head, blob[:1000]) for _ in range(2)]
    time.sleep(0.3)
    third = _answer(_raw_request(server, head, blob[:1000]), timeout=5)
    assert third.startswith(b"HTTP/1.1 429"), third[:200]
    assert b"retry-after: 5" in third.lower()
    stalled.append(_raw_request(server, head, blob[:1000], project="q"))
    time.sleep(0.3)
    busy = _answer(_raw_request(server, head, blob[:1000], project="q"), timeout=5)
    assert busy.startswith(b"HTTP/1.1 503"), busy[:200]
    assert b"retry-after: 5" in busy.lower()
    for conn in stalled:
        conn.close()
    time.sleep(1.5)  # the slots free as the stalled uploads end
    with httpx.Client(base_url=server.url, auth=("q", OTHER_KEY)) as client:
        assert client.put("/v1/indexes/capped", content=blob).status_code == 201


def _open_files(pid: int) -> int:
    return len(psutil.Process(pid).open_files())


def test_stalled_downloads_are_dropped_and_release_memory_and_files(server: Server) -> None:
    assert server.process is not None
    pid = server.process.pid
    blob = snapshot_bytes("large", count=40_000, dimension=384)  # ~62 MB
    with httpx.Client(base_url=server.url, auth=("p", KEY), timeout=60) as client:
        assert client.put("/v1/indexes/large", content=blob).status_code == 201
    idle = psutil.Process(pid).memory_info().rss
    files = _open_files(pid)
    readers = []
    for _ in range(20):
        conn = _raw_request(server, "GET /v1/indexes/large HTTP/1.1")
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        readers.append(conn)  # never read: the server's writes stall
    time.sleep(1.0)
    stalled = psutil.Process(pid).memory_info().rss - idle
    assert stalled < 200 << 20, f"20 stalled downloads took {stalled >> 20} MiB"
    time.sleep(4.0)  # past the 2 s stall timeout
    assert _open_files(pid) <= files, "stalled downloads still hold their snapshot files"
    after = psutil.Process(pid).memory_info().rss - idle
    assert after < 40 << 20, f"memory stayed {after >> 20} MiB above idle"
    for conn in readers:
        conn.close()
    log = server.log.read_text()
    assert "Traceback" not in log and "without completing" not in log


def test_out_of_range_parameters_are_400_without_tracebacks_or_paths(
    server: Server, http: httpx.Client
) -> None:
    assert http.put("/v1/indexes/ranged", content=snapshot_bytes("ranged")).status_code == 201
    start = len(server.log.read_text())
    huge = "9" * 300
    for url in (
        f"/v1/indexes/ranged?version={huge}",
        f"/v1/indexes/ranged/watch?after={huge}",
        "/v1/indexes/ranged/watch?timeout=nan",
    ):
        answer = http.get(url)
        assert answer.status_code == 400, (url, answer.text)
        assert str(server.root) not in answer.text
    log = server.log.read_text()[start:]
    assert "Traceback" not in log and str(server.root / "store") not in log


def test_project_ids_with_a_colon_are_refused_everywhere(server: Server) -> None:
    from click.testing import CliRunner

    from moss.cli import main

    result = CliRunner().invoke(
        main, ["projects", "create", "team:alpha", "--store", server.store_url]
    )
    assert result.exit_code != 0
    assert "cannot contain ':'" in str(result.exception) + result.output
    with pytest.raises(InvalidArgumentError, match="cannot contain ':'"):
        parse_env_keys(f"team:alpha:{KEY}")
    assert parse_env_keys(f"team-alpha:{KEY}") == {"team-alpha": [KEY]}


def test_both_transfer_encoding_and_content_length_is_refused(server: Server) -> None:
    conn = _raw_request(
        server,
        "PUT /v1/indexes/smuggled HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked",
        b"0\r\n\r\n",
    )
    assert _answer(conn, timeout=5).startswith(b"HTTP/1.1 400")


def test_invalid_names_are_echoed_truncated(http: httpx.Client) -> None:
    answer = http.get(f"/v1/indexes/{'a' * 5000}!")
    assert answer.status_code == 400
    assert len(answer.json()["message"]) < 400
    with pytest.raises(InvalidArgumentError) as info:
        validate_name("x" * 5000)
    assert len(str(info.value)) < 400


def test_an_unknown_project_costs_a_key_hash_too(monkeypatch: pytest.MonkeyPatch) -> None:
    from moss.stores import auth

    hashed: list[str] = []
    real = auth.hash_key

    def counting(key: str) -> str:
        hashed.append(key)
        return real(key)

    monkeypatch.setattr(auth, "hash_key", counting)
    assert not AuthTable().verify("nobody", KEY)
    assert hashed == [KEY]


def test_openapi_describes_names_and_every_answer_and_405_says_allow(
    http: httpx.Client,
) -> None:
    spec = http.get("/openapi.json").json()
    put = spec["paths"]["/v1/indexes/{name}"]["put"]
    name = next(p for p in put["parameters"] if p["name"] == "name")
    assert name["schema"]["pattern"].startswith("^[A-Za-z0-9]")
    assert {"400", "401", "408", "412", "413", "429", "503"} <= set(put["responses"])
    for path, methods in spec["paths"].items():
        if path.startswith("/v1/"):
            for method, operation in methods.items():
                assert {"400", "401"} <= set(operation["responses"]), (path, method)
    answer = http.post("/v1/indexes/x")
    assert answer.status_code == 405
    assert set(answer.headers["allow"].replace(" ", "").split(",")) >= {"GET", "PUT", "DELETE"}


def test_deltas_are_checked_appended_and_served_as_a_chain(http: httpx.Client) -> None:
    from moss.snapshot import encode_delta

    name = "chained"
    assert http.put(f"/v1/indexes/{name}", content=snapshot_bytes(name, count=3)).is_success
    vector = np.ones((1, 8), dtype=np.float32)
    _, chunks = encode_delta(
        index_name=name,
        model_id="custom",
        model_artifact="",
        dimension=8,
        ids=["new"],
        texts=["added"],
        metadata=[None],
        vectors=vector,
        deleted=["doc-0"],
    )
    delta = b"".join(bytes(chunk) for chunk in chunks)
    as_full = http.put(f"/v1/indexes/{name}", content=delta)  # a delta needs X-Moss-Append
    assert as_full.status_code == 400, as_full.text
    appended = http.put(f"/v1/indexes/{name}", content=delta, headers={"X-Moss-Append": "1"})
    assert (appended.status_code, appended.json()["version"]) == (201, 2), appended.text
    chain = http.get(f"/v1/indexes/{name}/chain", params={"after": 1})
    assert chain.status_code == 200 and chain.headers["x-moss-version"] == "2"
    assert chain.headers["content-type"] == "application/vnd.moss.chain"
    assert http.get(f"/v1/indexes/{name}/chain", params={"after": 2}).status_code == 304


def test_limits_are_moss_serve_flags(tmp_path: Path) -> None:
    flags = ["--max-uploads-per-project", "1", "--upload-idle-seconds", "1.5"]
    with Server(tmp_path / "flags", keys={"p": KEY}, flags=flags) as limited:
        blob = snapshot_bytes("flagged", count=500, dimension=64)
        head = f"PUT /v1/indexes/flagged HTTP/1.1\r\nContent-Length: {len(blob)}"
        first = _raw_request(limited, head, blob[:1000])
        time.sleep(0.3)
        second = _answer(_raw_request(limited, head, blob[:1000]), timeout=5)
        assert second.startswith(b"HTTP/1.1 429"), second[:200]
        assert _answer(first, timeout=10).startswith(b"HTTP/1.1 408")  # idle 1.5 s, not 30
