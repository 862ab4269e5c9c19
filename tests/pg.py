"""A throw-away PostgreSQL cluster for tests: found or installed, started, always stopped.

``shared_cluster(config)`` starts one cluster per test run (lazily, on first use) on a free port
in a temporary folder and registers its teardown with pytest; each test then takes a fresh
PostgreSQL schema of one database (``fresh_url``), which is much quicker than a database per test.

Nothing is done by hand: ``initdb`` and ``pg_ctl`` are looked for on PATH and where Debian puts
them (``/usr/lib/postgresql/<version>/bin``); when missing, the server is installed from the OS
packages (``apt-get install postgresql``). ``initdb`` refuses to run as root, and CI runs as
root: the cluster then runs as an unprivileged user (``postgres`` if it exists, else one made
with ``useradd``). A watchdog process stops the cluster if the test process dies without
cleaning up (SIGKILL, a crash), so no server outlives its run.

Run directly to get a cluster for manual work: ``python tests/pg.py`` (Ctrl-C stops it).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEBIAN_PG_ROOT = Path("/usr/lib/postgresql")
#: The unprivileged user made when running as root on a machine without a ``postgres`` user.
FALLBACK_USER = "moss-pg"
DATABASE = "moss"
SUPERUSER = "moss"

#: Settings of a throw-away cluster: durability is traded for speed (a crash loses the cluster,
#: which is thrown away anyway). Benchmarks pass ``durable=True`` to measure real commits.
FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
COMMON_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "max_connections": "200",
    "shared_buffers": "128MB",
    "max_wal_size": "4GB",
    "log_min_messages": "warning",
}


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.name)) or (0,)


def find_bin_dir() -> Path | None:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``, or None."""
    candidates: list[Path] = []
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        # /usr/local/bin/pg_ctl may be a symlink into /usr/lib/postgresql/<v>/bin: use the
        # real directory, where pg_ctl finds its own `postgres`.
        candidates.append(Path(on_path).resolve().parent)
    if DEBIAN_PG_ROOT.is_dir():
        versions = sorted(DEBIAN_PG_ROOT.iterdir(), key=_version_key, reverse=True)
        candidates.extend(version / "bin" for version in versions)
    for directory in candidates:
        if all((directory / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return directory
    return None


def install_server() -> None:
    """Install the PostgreSQL server from the OS packages (Debian/Ubuntu, as root)."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise RuntimeError(
            "PostgreSQL is not installed and cannot be installed automatically here (needs root "
            "and apt-get): install the `postgresql` package, or put initdb and pg_ctl on PATH"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "postgresql"],
        check=True,
        env=env,
    )


def server_bin_dir() -> Path:
    """Find the server's programs, installing them first if needed."""
    found = find_bin_dir()
    if found is None:
        install_server()
        found = find_bin_dir()
    if found is None:
        raise RuntimeError("installed PostgreSQL but found no initdb/pg_ctl/postgres")
    return found


def cluster_user() -> str | None:
    """The user to run the cluster as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", FALLBACK_USER):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", FALLBACK_USER],
        check=True,
    )
    return FALLBACK_USER


def _traversable_by_all(path: Path) -> bool:
    return all(os.stat(part).st_mode & 0o001 for part in [path, *path.parents])


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Cluster:
    """One PostgreSQL cluster in a temporary folder, reachable on 127.0.0.1:``port``."""

    durable: bool = False
    bin_dir: Path = field(default_factory=server_bin_dir)
    user: str | None = field(default_factory=cluster_user)
    port: int = field(default_factory=free_port)
    root: Path = Path()
    _watchdog: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        if self.root == Path():
            base = Path(tempfile.gettempdir())
            if self.user is not None and not _traversable_by_all(base):
                base = Path("/tmp")  # the cluster's user must reach its folder
            self.root = Path(tempfile.mkdtemp(prefix="moss-pg-", dir=base))

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str = DATABASE, **query: str) -> str:
        """A ``postgresql://`` URL for ``database``, with extra query parameters."""
        suffix = "&".join(f"{key}={value}" for key, value in query.items())
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}" + (
            f"?{suffix}" if suffix else ""
        )

    def _run(self, *args: str, **options: Any) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(self._as_user(list(args)), check=True, cwd=self.root, **options)

    def _as_user(self, command: list[str]) -> list[str]:
        """``command`` run as the cluster's user: runuser (util-linux), else su."""
        if self.user is None:
            return command
        if shutil.which("runuser"):
            return ["runuser", "-u", self.user, "--", *command]
        return ["su", "-s", "/bin/sh", self.user, "-c", shlex.join(command)]

    def start(self) -> Cluster:
        """initdb, start the server, create the test database, arm the watchdog."""
        try:
            self._start()
        except BaseException:
            self.stop()  # whatever got started is stopped, the folder removed
            raise
        return self

    def _start(self) -> None:
        if self.user is not None:
            # The folder must be the cluster user's; /tmp itself is world-traversable.
            shutil.chown(self.root, self.user, self.user)
            self.root.chmod(0o700)
        self._run(
            str(self.bin_dir / "initdb"),
            "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
            "--no-sync", "--no-instructions",
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        settings = {**COMMON_SETTINGS, **({} if self.durable else FAST_SETTINGS)}
        settings["port"] = str(self.port)
        settings["unix_socket_directories"] = str(self.root)
        options = " ".join(f"-c {key}={value}" for key, value in settings.items())
        self._arm_watchdog()
        try:
            self._run(
                str(self.bin_dir / "pg_ctl"),
                "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start",
                stdout=subprocess.DEVNULL,
            )  # fmt: skip
        except subprocess.CalledProcessError as exc:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise RuntimeError(f"PostgreSQL did not start:\n{log}") from exc
        self.create_database(DATABASE)

    def _stop_command(self) -> list[str]:
        command = [str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w"]
        command.append("stop")
        return self._as_user(command)

    def _arm_watchdog(self) -> None:
        # A separate process that outlives us if we are killed: it kills the processes we
        # adopted (replicas), stops the cluster and removes its folder once our pid is gone.
        # stop() ends it first in the normal case.
        (self.root / "children").touch()
        script = (
            "import os, shutil, subprocess, sys, time\n"
            "pid, root, command = int(sys.argv[1]), sys.argv[2], sys.argv[3:]\n"
            "while True:\n"
            "    try:\n"
            "        os.kill(pid, 0)\n"
            "    except ProcessLookupError:\n"
            "        break\n"
            "    time.sleep(1)\n"
            "for line in open(os.path.join(root, 'children')).read().split():\n"
            "    try:\n"
            "        os.kill(int(line), 9)\n"
            "    except OSError:\n"
            "        pass\n"
            "subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
            "shutil.rmtree(root, ignore_errors=True)\n"
        )
        self._watchdog = subprocess.Popen(
            [sys.executable, "-c", script, str(os.getpid()), str(self.root), *self._stop_command()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def adopt(self, pid: int) -> None:
        """Have the watchdog kill ``pid`` too if the test process dies without cleaning up."""
        with open(self.root / "children", "a") as children:
            children.write(f"{pid}\n")

    def stop(self) -> None:
        """Stop the server at once and remove its folder."""
        if self._watchdog is not None:
            self._watchdog.kill()
            self._watchdog.wait()
            self._watchdog = None
        if self.data.exists():
            subprocess.run(self._stop_command(), check=False, stdout=subprocess.DEVNULL)
        shutil.rmtree(self.root, ignore_errors=True)

    def sql(self, statement: str, database: str = DATABASE) -> None:
        """Run one statement in autocommit mode (CREATE DATABASE cannot run in a transaction)."""
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as conn:
            conn.execute(statement)

    def create_database(self, name: str) -> str:
        """Create a database; return its URL."""
        self.sql(f'CREATE DATABASE "{name}"', database="postgres")
        return self.url(name)

    def fresh_url(self, **query: str) -> str:
        """A URL of the test database with a schema nobody used before (the store creates it)."""
        return self.url(schema=f"t_{uuid.uuid4().hex[:16]}", **query)

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_shared: Cluster | None = None


def shared_cluster(config: Any) -> Cluster:
    """The test run's cluster: started on first use, stopped by pytest at the end of the run."""
    global _shared
    if _shared is None:
        cluster = Cluster().start()
        _shared = cluster

        def cleanup() -> None:
            global _shared
            cluster.stop()
            _shared = None

        config.add_cleanup(cleanup)
    return _shared


def replica(cluster: Cluster, database_url: str, root: Path, **options: Any) -> Any:
    """A `moss serve` process over ``database_url`` (not started): tests/service.py's Server,
    pointed at PostgreSQL instead of a file store. ``root`` holds its log; the cluster's
    watchdog kills the process if the test run dies without stopping it."""
    from service import Server

    @dataclass
    class Replica(Server):
        database_url: str = ""

        @property
        def store_url(self) -> str:
            return self.database_url

        def start(self, timeout: float = 30.0) -> Replica:
            super().start(timeout)
            assert self.process is not None
            cluster.adopt(self.process.pid)
            return self

    return Replica(root, database_url=database_url, **options)


def contract_postgres_store(config: Any) -> Any:
    """An empty PostgresStore for the contract suite: a fresh schema of the shared cluster."""
    from moss.stores.postgres import PostgresStore

    return PostgresStore(shared_cluster(config).fresh_url(), keep_versions=5)


if __name__ == "__main__":
    with Cluster() as manual:
        print(manual.url(), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
