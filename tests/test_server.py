"""The HTTP API of `moss serve`, spoken raw (httpx), against a real server process."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from service import Server
from snapshots import snapshot_bytes

KEY = "server-test-key-0123456789abcdef"
LIMIT = 1 << 20  # this server's upload limit: 1 MiB
_names = itertools.count()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with Server(tmp_path_factory.mktemp("srv"), keys={"p": KEY}, max_upload_bytes=LIMIT) as srv:
        yield srv


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, auth=("p", KEY), timeout=30) as client:
        yield client


@pytest.fixture
def name() -> str:
    return f"idx-{next(_names)}"


def put(http: httpx.Client, name: str, blob: bytes, **headers: str) -> httpx.Response:
    return http.put(f"/v1/indexes/{name}", content=blob, headers=headers)


def test_health_and_openapi(http: httpx.Client, server: Server) -> None:
    assert httpx.get(f"{server.url}/healthz").json()["status"] == "ok"  # no key needed
    spec = http.get("/openapi.json").json()
    paths = spec["paths"]
    assert {"put", "get", "head", "delete"} <= set(paths["/v1/indexes/{name}"])
    assert "/v1/indexes/{name}/watch" in paths and "/v1/indexes/{name}/versions" in paths
    assert "HTTPBasic" in spec["components"]["securitySchemes"]


def test_put_answers_the_version_and_etags_drive_caching(http: httpx.Client, name: str) -> None:
    blob = snapshot_bytes(name, count=4)
    created = put(http, name, blob, **{"If-None-Match": "*"})
    assert created.status_code == 201
    body = created.json()
    assert (body["name"], body["version"], body["doc_count"], body["dimension"]) == (name, 1, 4, 8)
    assert created.headers["etag"] == '"1"'

    got = http.get(f"/v1/indexes/{name}")
    assert (got.status_code, got.content) == (200, blob)
    assert (got.headers["etag"], got.headers["x-moss-version"]) == ('"1"', "1")

    cached = http.get(f"/v1/indexes/{name}", headers={"If-None-Match": '"1"'})
    assert (cached.status_code, cached.content, cached.headers["etag"]) == (304, b"", '"1"')
    assert http.get(f"/v1/indexes/{name}", headers={"If-None-Match": "*"}).status_code == 304
    stale = http.get(f"/v1/indexes/{name}", headers={"If-None-Match": '"0"'})
    assert (stale.status_code, stale.content) == (200, blob)


def test_if_match_is_compare_and_swap(http: httpx.Client, name: str) -> None:
    blob = snapshot_bytes(name)
    assert put(http, name, blob).status_code == 201
    again = put(http, name, blob, **{"If-None-Match": "*"})
    assert again.status_code == 412
    assert again.json() == {
        "error": "conflict",
        "message": again.json()["message"],
        "expected": 0,
        "actual": 1,
    }
    assert put(http, name, blob, **{"If-Match": '"1"'}).json()["version"] == 2
    lost = put(http, name, blob, **{"If-Match": '"1"'})
    assert (lost.status_code, lost.json()["actual"]) == (412, 2)
    both = put(http, name, blob, **{"If-Match": '"2"', "If-None-Match": "*"})
    assert (both.status_code, both.json()["error"]) == (400, "invalid_argument")


def test_older_versions_head_list_versions_and_delete(http: httpx.Client, name: str) -> None:
    blobs = [snapshot_bytes(name, count=2 + seed, seed=seed) for seed in range(3)]
    for blob in blobs:
        put(http, name, blob)
    assert http.get(f"/v1/indexes/{name}", params={"version": 2}).content == blobs[1]
    assert http.get(f"/v1/indexes/{name}", params={"version": 9}).status_code == 404
    assert http.get(f"/v1/indexes/{name}", params={"version": 0}).status_code == 400

    head = http.head(f"/v1/indexes/{name}")
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["x-moss-doc-count"] == "4"
    assert head.headers["content-length"] == str(len(blobs[2]))

    listed = {item["name"]: item for item in http.get("/v1/indexes").json()["indexes"]}
    assert listed[name]["version"] == 3 and listed[name]["model_id"] == "custom"
    assert listed[name]["doc_count"] == 4 and listed[name]["created_at"] > 0
    versions = http.get(f"/v1/indexes/{name}/versions").json()["versions"]
    assert [v["version"] for v in versions] == [1, 2, 3]

    assert http.delete(f"/v1/indexes/{name}").status_code == 204
    gone = http.delete(f"/v1/indexes/{name}")
    assert (gone.status_code, gone.json()["error"]) == (404, "index_not_found")
    assert http.head(f"/v1/indexes/{name}").status_code == 404
    assert http.get(f"/v1/indexes/{name}").json()["error"] == "index_not_found"
    assert put(http, name, blobs[0]).json()["version"] == 4  # never reused


def test_watch_long_polls(http: httpx.Client, name: str) -> None:
    put(http, name, snapshot_bytes(name))
    ready = http.get(f"/v1/indexes/{name}/watch", params={"after": 0, "timeout": 5})
    assert (ready.status_code, ready.json()) == (200, {"version": 1})
    idle = http.get(f"/v1/indexes/{name}/watch", params={"after": 1, "timeout": 0.2})
    assert (idle.status_code, idle.content) == (204, b"")
    bad = http.get(f"/v1/indexes/{name}/watch", params={"after": -1})
    assert (bad.status_code, bad.json()["error"]) == (400, "invalid_argument")


@pytest.mark.parametrize(
    ("make", "kind", "says"),
    [
        (lambda name: b"not a snapshot at all", "snapshot_invalid", "snapshot"),
        (lambda name: snapshot_bytes("someone-else"), "snapshot_invalid", "someone-else"),
        (lambda name: snapshot_bytes(name)[:-40], "snapshot_invalid", "truncated"),
        (lambda name: snapshot_bytes(name) + b"extra", "snapshot_invalid", "after its end"),
        (lambda name: snapshot_bytes(name, count=40_000), "snapshot_too_large", "limit"),
    ],
    ids=["garbage", "wrong-name", "truncated", "trailing-bytes", "oversized"],
)
def test_bad_uploads_are_refused_with_a_message(
    http: httpx.Client,
    name: str,
    make: Callable[[str], bytes],
    kind: str,
    says: str,
) -> None:
    good = snapshot_bytes(name)
    put(http, name, good)
    refused = put(http, name, make(name))
    assert 400 <= refused.status_code < 500
    assert refused.json()["error"] == kind
    assert says in refused.json()["message"]
    assert http.get(f"/v1/indexes/{name}").content == good  # nothing stored, nothing damaged
    assert [v["version"] for v in http.get(f"/v1/indexes/{name}/versions").json()["versions"]] == [
        1
    ]


def test_oversized_uploads_are_refused_whatever_their_framing(
    http: httpx.Client, name: str
) -> None:
    big = snapshot_bytes(name, count=40_000)  # 1.2 MiB of vectors: over the 1 MiB limit
    declared = put(http, name, big)  # Content-Length: refused before reading the body
    assert (declared.status_code, declared.json()["error"]) == (413, "snapshot_too_large")
    streamed = http.put(  # chunked, in small pieces: refused from the header's declared size
        f"/v1/indexes/{name}", content=iter([big[i : i + 4096] for i in range(0, len(big), 4096)])
    )
    assert (streamed.status_code, streamed.json()["error"]) == (413, "snapshot_too_large")
    assert http.head(f"/v1/indexes/{name}").status_code == 404


def _raw(http: httpx.Client, method: str, target: str, content: bytes = b"") -> httpx.Response:
    """Send ``target`` byte for byte: no normalisation of dot segments or escapes."""
    request = http.build_request(
        method, "/v1/indexes/placeholder", content=content, extensions={"target": target.encode()}
    )
    return http.send(request)


@pytest.mark.parametrize(
    "target",
    [
        "/v1/indexes/..",
        "/v1/indexes/%2e%2e",
        "/v1/indexes/%2E%2E",
        "/v1/indexes/../x",
        "/v1/indexes/..%2fx",
        "/v1/indexes/%2e%2e%2f%2e%2e%2fescaped",
        "/v1/indexes/%2e%2e/watch",
        "/v1/indexes/a%00b",
        "/v1/indexes/.",
    ],
)
def test_path_like_names_never_touch_files_outside_the_store(
    http: httpx.Client, server: Server, target: str
) -> None:
    store = server.root / "store"

    def outside_the_store() -> set[Path]:
        return {p for p in server.root.parent.rglob("*") if store not in p.parents and p != store}

    before = outside_the_store()
    blob = snapshot_bytes("x")
    for method in ("PUT", "GET", "HEAD", "DELETE"):
        response = _raw(http, method, target, blob if method == "PUT" else b"")
        assert response.status_code in (400, 404, 405), (method, target, response.status_code)
        if method != "HEAD":
            assert response.json()["error"] in (
                "invalid_argument",
                "not_found",
                "method_not_allowed",
            )
    assert outside_the_store() == before


def test_errors_of_the_framework_are_json_too(http: httpx.Client) -> None:
    missing = http.get("/v1/nothing-here")
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    wrong_method = http.post("/v1/indexes/x")
    assert (wrong_method.status_code, wrong_method.json()["error"]) == (405, "method_not_allowed")


def test_access_log_never_shows_keys(http: httpx.Client, server: Server, name: str) -> None:
    put(http, name, snapshot_bytes(name))
    http.get(f"/v1/indexes/{name}")
    httpx.get(f"{server.url}/v1/indexes", auth=("p", "wrong-key-but-secret-looking"))
    log = server.log.read_text()
    assert f"/v1/indexes/{name}" in log  # the access log is on
    assert KEY not in log and "wrong-key-but-secret-looking" not in log
    assert "Authorization" not in log and "authorization" not in log
