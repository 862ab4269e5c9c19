"""Run `moss serve` as a real subprocess on 127.0.0.1 and a free port, for tests.

Also a small worker program for tests that need other client processes::

    python tests/service.py push STORE_URL PROJECT NAME      # push one snapshot when told
    python tests/service.py churn URL PROJECT NAME SECONDS   # open, check, push, repeat
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from moss.stores.http import HttpStore

TESTS = Path(__file__).parent
#: A key given to the contract suite's projects through MOSS_SERVER_KEYS.
CONTRACT_KEY = "contract-suite-key-0123456789"
CONTRACT_PROJECTS = ("proj", "other")


def free_port() -> int:
    """A port nothing listens on right now (the server binds it a moment later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def moss_command(*args: str) -> list[str]:
    """The `moss` command of this interpreter's environment."""
    return [sys.executable, "-c", "from moss.cli import run; run()", *args]


def worker_env(**extra: str) -> dict[str, str]:
    """The environment for worker processes: tests and their workers importable."""
    path = os.pathsep.join([str(TESTS), str(TESTS / "workers"), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, **extra}


@dataclass
class Server:
    """One `moss serve` process over a file store at ``root``."""

    root: Path
    keys: dict[str, str] = field(default_factory=dict)
    max_upload_bytes: int | None = None
    env: dict[str, str] = field(default_factory=dict)  # e.g. MOSS_SERVE_* limits
    flags: list[str] = field(default_factory=list)  # more `moss serve` options
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    clients: list[HttpStore] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def store_url(self) -> str:
        return (self.root / "store").as_uri()

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def start(self, timeout: float = 30.0) -> Server:
        """Start the server and wait until it answers /healthz."""
        args = ["serve", "--store", self.store_url, "--port", str(self.port)]
        if self.max_upload_bytes is not None:
            args += ["--max-upload-bytes", str(self.max_upload_bytes)]
        args += self.flags
        env = worker_env(
            MOSS_SERVER_KEYS=",".join(f"{p}:{k}" for p, k in self.keys.items()), **self.env
        )
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(moss_command(*args), stdout=log, stderr=log, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moss serve exited early:\n{self.log.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"moss serve did not answer within {timeout} s:\n{self.log.read_text()}")

    def stop(self) -> None:
        """Stop gracefully (SIGTERM), forcefully if it lingers; close the stores made by :meth:`store`."""
        for store in self.clients:
            store.close()
        self.clients.clear()
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.process = None

    def store(self, project_key: str | None = None, **options: Any) -> HttpStore:
        """An HttpStore talking to this server (closed when the server stops)."""
        store = HttpStore(self.url, project_key=project_key, **options)
        self.clients.append(store)
        return store

    def moss(self, *args: str) -> str:
        """Run a `moss` command on this server's store (in this process: it only touches the
        store, as it would from another machine); return what it printed."""
        from click.testing import CliRunner

        from moss.cli import main

        result = CliRunner().invoke(main, [*args, "--store", self.store_url])
        assert result.exit_code == 0, result.output
        return result.output

    def create_project(self, name: str) -> str:
        """Create a project with `moss projects create`; return its key."""
        out = self.moss("projects", "create", name)
        return next(line.split()[1] for line in out.splitlines() if line.startswith("key:"))

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- the contract suite's "http" store -----------------------------------------------------

_shared: Server | None = None


def contract_http_store(config: Any) -> HttpStore:
    """An HttpStore over an empty store, served by one server for the whole test session.

    The contract suite uses fixed project ids ("proj", "other") and expects version numbers to
    start at 1, so each test wipes the store's index data (the server opens files per call and
    keeps no per-index state across requests, so wiping under it is safe).
    """
    global _shared
    if _shared is None:
        root = Path(tempfile.mkdtemp(prefix="moss-contract-"))
        _shared = Server(root, keys=dict.fromkeys(CONTRACT_PROJECTS, CONTRACT_KEY)).start()

        def cleanup(server: Server = _shared) -> None:
            global _shared
            server.stop()
            shutil.rmtree(server.root, ignore_errors=True)
            _shared = None

        config.add_cleanup(cleanup)
    shutil.rmtree(_shared.root / "store" / "projects", ignore_errors=True)
    return _shared.store(CONTRACT_KEY)


# -- worker processes -----------------------------------------------------------------------


def _push(target: str, project: str, name: str) -> None:
    """Say "ready" once imported, push one snapshot when told (a line on stdin), say when."""
    from moss.stores import open_store
    from snapshots import snapshot_bytes

    store = open_store(target, project_key=os.environ.get("MOSS_PROJECT_KEY"))
    blob = snapshot_bytes(name, count=3, seed=int(time.time()))
    print("ready", flush=True)
    sys.stdin.readline()
    info = store.put(project, name, [blob])
    print(json.dumps({"version": info.version, "pushed_at": time.time()}), flush=True)
    store.close()


def _churn(url: str, project: str, name: str, seconds: float) -> None:
    """Open the index, check it is one complete version, replace its documents, push
    conditionally; repeat. Only ConflictError is expected; anything else fails the process."""
    import numpy as np
    from check_load import assert_complete
    from push_loop import version_docs

    from moss import ConflictError, MossClient

    rng = np.random.default_rng()
    counts = {"loads": 0, "wins": 0, "conflicts": 0}
    deadline = time.monotonic() + seconds
    with MossClient(project, store=url) as client:
        while time.monotonic() < deadline:
            session = client.sync.session(name, model_id="custom")
            if session.doc_count:
                assert_complete(session, 32)
                counts["loads"] += 1
            session.sync.delete_docs([doc.id for doc in session.sync.get_docs()])
            session.sync.add_docs(version_docs(200 + int(rng.integers(0, 300)), 32))
            try:
                session.sync.push_index(expected_version=session.version)
                counts["wins"] += 1
            except ConflictError:
                counts["conflicts"] += 1
    print(json.dumps(counts), flush=True)


if __name__ == "__main__":
    command, *rest = sys.argv[1:]
    if command == "push":
        _push(rest[0], rest[1], rest[2])
    elif command == "churn":
        _churn(rest[0], rest[1], rest[2], float(rest[3]))
    else:
        raise SystemExit(f"unknown worker command {command!r}")
