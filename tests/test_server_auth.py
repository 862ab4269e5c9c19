"""Projects and keys: made by `moss projects` / `moss keys`, kept in the store, checked by the server."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from moss.errors import AuthenticationError, IndexNotFoundError, InvalidArgumentError
from moss.stores import FileStore
from moss.stores.auth import AuthTable, ProjectKeys, hash_key, parse_env_keys
from moss.stores.file_auth import FileAuthRecords
from service import Server
from snapshots import snapshot_bytes

ENV_KEY = "container-key-from-the-environment"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with Server(tmp_path_factory.mktemp("auth"), keys={"envproj": ENV_KEY}) as srv:
        yield srv


@pytest.fixture(scope="module")
def keys(server: Server) -> dict[str, str]:
    """Two projects created with the CLI, one key each."""
    return {project: server.create_project(project) for project in ("alpha", "beta")}


def test_cli_creates_projects_and_keys_stored_only_as_hashes(
    server: Server, keys: dict[str, str]
) -> None:
    records = (server.root / "store" / "auth" / "records").read_text()
    for key in keys.values():
        assert key not in records and hash_key(key) in records
    listed = server.moss("keys", "list", "--project", "alpha")
    assert "key-" in listed and keys["alpha"] not in listed
    assert "alpha" in server.moss("projects", "list")


def test_a_project_sees_only_its_own_indexes(server: Server, keys: dict[str, str]) -> None:
    alpha, beta = server.store(keys["alpha"]), server.store(keys["beta"])
    blob = snapshot_bytes("secret", count=4)
    alpha.put("alpha", "secret", [blob])
    # beta, with its own valid key, finds nothing of alpha's: not found, never "forbidden".
    with pytest.raises(IndexNotFoundError):
        beta.get("beta", "secret")
    assert beta.head("beta", "secret") is None
    assert beta.versions("beta", "secret") == []
    assert "secret" not in [info.name for info in beta.list("beta")]
    assert beta.delete("beta", "secret") is False
    assert beta.watch("beta", "secret", after=0, timeout=0.3) is None
    # A write by beta under the same name makes beta's own index; alpha's stays as it was.
    assert beta.put("beta", "secret", [snapshot_bytes("secret", seed=5)]).version == 1
    download = alpha.get("alpha", "secret")
    assert (download.version, b"".join(download)) == (1, blob)
    # beta's key does not open alpha's project, whatever it asks.
    calls: list[Callable[[], object]] = [
        lambda: beta.get("alpha", "secret"),
        lambda: beta.list("alpha"),
        lambda: beta.put("alpha", "secret", [blob]),
        lambda: beta.watch("alpha", "secret", after=0, timeout=0.1),
        lambda: beta.delete("alpha", "secret"),
    ]
    for call in calls:
        with pytest.raises(AuthenticationError):
            call()
    still = alpha.head("alpha", "secret")
    assert still is not None and still.version == 1


def test_watch_of_another_project_never_sees_its_pushes(
    server: Server, keys: dict[str, str]
) -> None:
    alpha, beta = server.store(keys["alpha"]), server.store(keys["beta"])
    alpha.put("alpha", "watched", [snapshot_bytes("watched")])
    pusher = threading.Timer(
        0.2, lambda: alpha.put("alpha", "watched", [snapshot_bytes("watched")])
    )
    pusher.start()
    assert beta.watch("beta", "watched", after=0, timeout=0.6) is None
    pusher.join()
    assert alpha.watch("alpha", "watched", after=1, timeout=5) == 2


@pytest.mark.parametrize("key", [None, "", "wrong", "x" * 43])
def test_missing_or_wrong_keys_are_refused(
    server: Server, keys: dict[str, str], key: str | None
) -> None:
    with pytest.raises(AuthenticationError, match=server.url):
        server.store(key).list("alpha")
    raw = httpx.get(f"{server.url}/v1/indexes", auth=None if key is None else ("alpha", key))
    assert raw.status_code == 401
    assert raw.headers["www-authenticate"].startswith("Basic")
    assert raw.json()["error"] == "authentication"


def test_unknown_projects_and_malformed_credentials_are_401(
    server: Server, keys: dict[str, str]
) -> None:
    assert httpx.get(f"{server.url}/v1/indexes", auth=("nobody", keys["alpha"])).status_code == 401
    assert httpx.get(f"{server.url}/v1/indexes", auth=("../x", keys["alpha"])).status_code == 401
    garbled = httpx.get(f"{server.url}/v1/indexes", headers={"Authorization": "Basic !!!"})
    assert (garbled.status_code, garbled.json()["error"]) == (401, "authentication")


def test_revoked_keys_stop_working_at_once(server: Server, keys: dict[str, str]) -> None:
    out = server.moss("keys", "create", "--project", "alpha", "--label", "ci")
    key_id = next(line.split()[2] for line in out.splitlines() if line.startswith("key id:"))
    new_key = next(line.split()[1] for line in out.splitlines() if line.startswith("key:"))
    store = server.store(new_key)
    assert isinstance(store.list("alpha"), list)
    server.moss("keys", "revoke", key_id, "--project", "alpha")
    with pytest.raises(AuthenticationError):
        store.list("alpha")
    assert isinstance(server.store(keys["alpha"]).list("alpha"), list)  # the other key lives on
    assert "ci" in server.moss("keys", "list", "--project", "alpha")


def test_keys_from_the_environment(server: Server) -> None:
    store = server.store(ENV_KEY)
    assert store.put("envproj", "e", [snapshot_bytes("e")]).version == 1
    with pytest.raises(AuthenticationError):
        store.list("alpha")  # an env key opens only its own project


def test_concurrent_admins_lose_no_change(tmp_path: Path) -> None:
    keys = ProjectKeys(FileAuthRecords(tmp_path))
    keys.create_project("shared")
    made: list[str] = []

    def add() -> None:
        made.append(keys.create_key("shared")[1])

    threads = [threading.Thread(target=add) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    table = keys.table()
    assert len(table.projects["shared"].keys) == 9
    assert all(table.verify("shared", key) for key in made)


def test_project_admin_errors(tmp_path: Path) -> None:
    keys = ProjectKeys(FileAuthRecords(tmp_path))
    keys.create_project("p")
    with pytest.raises(InvalidArgumentError, match="already exists"):
        keys.create_project("p")
    with pytest.raises(InvalidArgumentError, match="does not exist"):
        keys.create_key("q")
    with pytest.raises(InvalidArgumentError, match="no key"):
        keys.revoke_key("p", "key-nope")
    with pytest.raises(InvalidArgumentError):
        keys.create_project("../p")
    assert AuthTable.from_bytes(None).verify("p", "anything") is False


def test_env_keys_are_parsed_and_checked() -> None:
    keys = parse_env_keys(" a:0123456789abcdef0, conv-7:fedcba9876543210 ,")
    assert keys == {"a": ["0123456789abcdef0"], "conv-7": ["fedcba9876543210"]}
    with pytest.raises(InvalidArgumentError, match="cannot contain ':'"):
        parse_env_keys("conv:7:fedcba9876543210")  # HTTP Basic could never send that id
    with pytest.raises(InvalidArgumentError, match="shorter"):
        parse_env_keys("a:short")
    with pytest.raises(InvalidArgumentError):
        parse_env_keys("no-separator")


def test_cli_refuses_to_manage_keys_through_a_server(server: Server) -> None:
    from click.testing import CliRunner

    from moss.cli import main

    result = CliRunner().invoke(main, ["projects", "create", "x", "--store", server.url])
    assert result.exit_code != 0 and "file://" in result.output


def test_serving_a_store_that_cannot_keep_keys_needs_env_keys(tmp_path: Path) -> None:
    from moss.server import create_app

    class Bare:  # a store type the auth record does not know
        location = "bare://"

    with pytest.raises(InvalidArgumentError, match="cannot keep projects"):
        create_app(Bare())  # type: ignore[arg-type]
    assert create_app(FileStore(tmp_path), env_keys={"p": ["0123456789abcdef"]}) is not None
