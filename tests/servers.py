"""Real servers for the tests: private PostgreSQL clusters, a streaming replica, PgBouncer.

Started by the test set-up itself (session fixtures in tests/conftest.py, or
``python -m tests.servers`` for a check by hand):

- :func:`start_cluster`: a PostgreSQL server of the test's own (``initdb`` into a
  temporary data directory, started with ``pg_ctl`` on a free port, as the
  ``postgres`` OS user), for tests that stop or restart a server: the shared
  primary at 127.0.0.1:5432 is never stopped, restarted or reconfigured.
- :func:`start_replica`: ``pg_basebackup -R`` from the primary at
  127.0.0.1:5432 into a temporary data directory, started with ``pg_ctl`` on a
  free port, as the ``postgres`` OS user. The primary must accept replication
  connections from 127.0.0.1: :func:`allow_replication` adds the one
  ``pg_hba.conf`` line that needs, once (under a lock, idempotent), and reloads
  the configuration, which changes nothing for the connections other tests hold.
  No replication slot is made: a leaked slot would keep WAL on the shared primary.
- :func:`start_pgbouncer`: Debian's ``pgbouncer`` (installed with apt-get where
  missing, when allowed) in transaction-pooling mode on a free port, in front of
  the primary (and of a replica, under the database name ``<name>_replica``).

Every server gets its own temporary directory and free port, so that several
test runs on one machine never share one. :class:`Unavailable` says why a
server could not start; the fixtures skip with it, or fail under ``CI=true``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

PRIMARY_HOST = "127.0.0.1"
PRIMARY_PORT = 5432
SUPERUSER = "postgres"
_HBA_LINE = "host replication all 127.0.0.1/32 trust  # flash_db tests: pg_basebackup"


class Unavailable(RuntimeError):
    """A server the tests need could not be started (the message says why)."""


def free_port() -> int:
    """Return a TCP port nobody listens on now (bound to port 0, then released)."""
    with socket.socket() as sock:
        sock.bind((PRIMARY_HOST, 0))
        return int(sock.getsockname()[1])


def _run(*args: str, timeout: float = 120, check: bool = True) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise Unavailable(f"{' '.join(args)}: {error}") from error
    if check and done.returncode != 0:
        raise Unavailable(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def _as_postgres(*args: str, timeout: float = 120) -> str:
    """Run a command as the ``postgres`` OS user (servers refuse to run as root)."""
    if os.geteuid() == 0:
        return _run("runuser", "-u", SUPERUSER, "--", *args, timeout=timeout)
    return _run(*args, timeout=timeout)


def _psql(sql: str, port: int = PRIMARY_PORT, database: str = "postgres") -> str:
    return _run(
        "psql", "-h", PRIMARY_HOST, "-p", str(port), "-U", SUPERUSER, "-d", database,
        "-XAtqc", sql, timeout=30,
    ).strip()  # fmt: skip


def _bindir() -> Path:
    """Return the directory of the server's binaries (``pg_ctl`` is not on Debian's PATH)."""
    found = shutil.which("pg_config")
    if found:
        path = Path(_run(found, "--bindir").strip())
        if (path / "pg_ctl").exists():
            return path
    version = _psql("SHOW server_version_num")[:-4]
    path = Path(f"/usr/lib/postgresql/{version}/bin")
    if not (path / "pg_ctl").exists():
        raise Unavailable(f"pg_ctl not found (looked in {path})")
    return path


def _private_dir(prefix: str) -> Path:
    """Return a new temporary directory owned by the ``postgres`` user (mode 0700)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        shutil.chown(path, SUPERUSER, SUPERUSER)
    return path


def allow_replication() -> None:
    """Let replication connections from 127.0.0.1 in (trust), once; check the WAL settings."""
    if _psql("SHOW wal_level") not in ("replica", "logical"):
        raise Unavailable("the primary runs with wal_level=minimal: it cannot feed a replica")
    senders = int(_psql("SHOW max_wal_senders"))
    used = int(_psql("SELECT count(*) FROM pg_stat_replication"))
    if senders - used < 3:  # pg_basebackup -X stream takes two, the replica one
        raise Unavailable(f"the primary's max_wal_senders ({senders}) are all in use ({used})")
    hba = Path(_psql("SHOW hba_file"))
    lock = Path(tempfile.gettempdir()) / "flash_db_pg_hba.lock"
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        text = hba.read_text()
        if _HBA_LINE not in text:
            # Before the other lines: pg_hba.conf is read top down, first match wins.
            hba.write_text(f"{_HBA_LINE}\n{text}")
            _psql("SELECT pg_reload_conf()")
            time.sleep(0.5)  # the postmaster reloads asynchronously


@dataclass
class Cluster:
    """A PostgreSQL server of the tests' own: a temporary data directory, a free port."""

    port: int
    directory: Path
    bindir: Path
    running: bool = True

    @property
    def data(self) -> Path:
        """The data directory."""
        return self.directory / "data"

    def url(self, database: str) -> str:
        """Return the SQLAlchemy URL of ``database`` on this server."""
        return f"postgresql+asyncpg://{SUPERUSER}@{PRIMARY_HOST}:{self.port}/{database}"

    def dsn(self, database: str) -> str:
        """Return the libpq/asyncpg DSN of ``database`` on this server."""
        return f"postgresql://{SUPERUSER}@{PRIMARY_HOST}:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run one SQL command on this server with ``psql``; return its output."""
        return _psql(sql, port=self.port, database=database)

    def stop(self) -> None:
        """Stop the server at once (its clients' connections are terminated)."""
        if self.running:
            self.running = False
            _as_postgres(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w",
                         "stop")  # fmt: skip

    def start(self) -> None:
        """Start the server (again) and wait until it accepts connections."""
        _as_postgres(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.directory / "log"),
            "-w", "-t", "60", "start",
        )  # fmt: skip
        self.running = True

    def restart(self) -> None:
        """Stop the server at once and start it again (as ``pg_ctl restart -m fast``)."""
        self.stop()
        self.start()

    def remove(self) -> None:
        """Stop the server and delete its data directory."""
        with contextlib.suppress(Unavailable):
            if self.running:
                _as_postgres(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m",
                             "immediate", "-w", "stop")  # fmt: skip
        self.running = False
        shutil.rmtree(self.directory, ignore_errors=True)


def _configure(cluster: Cluster, settings: str) -> None:
    """Give a data directory its own postgresql.conf and pg_hba.conf (trust on 127.0.0.1).

    Debian keeps both outside the data directory, so a copy made with
    ``pg_basebackup`` has neither; a new ``initdb`` directory gets ours instead
    of its defaults.
    """
    data = cluster.data
    conf = data / "postgresql.conf"
    conf.write_text(
        f"port = {cluster.port}\n"
        f"listen_addresses = '{PRIMARY_HOST}'\n"
        f"unix_socket_directories = '{cluster.directory}'\n"
        "shared_buffers = 32MB\n"
        "fsync = off\n"
        "log_min_messages = warning\n" + settings
    )
    (data / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")
    if os.geteuid() == 0:
        for path in (conf, data / "pg_hba.conf"):
            shutil.chown(path, SUPERUSER, SUPERUSER)


def start_cluster(max_connections: int = 40) -> Cluster:
    """Create a new PostgreSQL cluster with ``initdb`` and start it on a free port.

    Its superuser is ``postgres`` (trust on 127.0.0.1); :meth:`Cluster.remove`
    stops it and deletes it.
    """
    bindir = _bindir()
    if not (bindir / "initdb").exists():
        raise Unavailable(f"initdb not found in {bindir}")
    directory = _private_dir("flash_cluster_")
    cluster = Cluster(port=free_port(), directory=directory, bindir=bindir, running=False)
    try:
        _as_postgres(
            str(bindir / "initdb"), "-D", str(cluster.data), "-U", SUPERUSER, "-A", "trust",
            "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        _configure(cluster, f"max_connections = {max_connections}\n")
        cluster.start()
    except BaseException:
        cluster.remove()
        raise
    return cluster


@dataclass
class Replica(Cluster):
    """A hot standby streaming from the primary, in a temporary data directory."""

    def wait_for(self, lsn: str, timeout: float = 30) -> None:
        """Wait until the replica has replayed the primary's WAL up to ``lsn``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            behind = self.psql(f"SELECT pg_last_wal_replay_lsn() < '{lsn}'::pg_lsn")
            if behind == "f":
                return
            time.sleep(0.02)
        raise TimeoutError(f"the replica did not replay the primary's WAL up to {lsn}")

    def catch_up(self, timeout: float = 30) -> None:
        """Wait until the replica has replayed everything the primary has written so far."""
        self.wait_for(_psql("SELECT pg_current_wal_lsn()"), timeout)


def start_replica() -> Replica:
    """Make a streaming replica of the primary with ``pg_basebackup -R`` and start it."""
    if shutil.which("pg_basebackup") is None:
        raise Unavailable("pg_basebackup is not installed (Debian: postgresql-client)")
    bindir = _bindir()
    allow_replication()
    directory = _private_dir("flash_replica_")
    port = free_port()
    replica = Replica(port=port, directory=directory, bindir=bindir, running=False)
    try:
        data = replica.data
        _as_postgres(
            "pg_basebackup", "-h", PRIMARY_HOST, "-p", str(PRIMARY_PORT), "-U", SUPERUSER,
            "-D", str(data), "-R", "-X", "stream", "-c", "fast", "--no-sync",
        )  # fmt: skip
        max_connections = _psql("SHOW max_connections")
        # A standby needs at least the primary's max_connections.
        _configure(replica, f"max_connections = {max_connections}\nhot_standby = on\n")
        replica.start()
        if _psql("SELECT pg_is_in_recovery()", port=port) != "t":
            raise Unavailable("the copy started, but not as a standby")
    except BaseException:
        replica.remove()
        raise
    return replica


@dataclass
class PgBouncer:
    """PgBouncer in transaction-pooling mode in front of the primary (and a replica)."""

    port: int
    directory: Path
    process: subprocess.Popen[bytes]
    databases: dict[str, str] = field(default_factory=dict)

    def url(self, database: str) -> str:
        """Return the SQLAlchemy URL of ``database`` through PgBouncer."""
        return f"postgresql+asyncpg://{SUPERUSER}@{PRIMARY_HOST}:{self.port}/{database}"

    def admin(self, command: str) -> list[list[str]]:
        """Run a command on PgBouncer's admin console (``SHOW POOLS``...); return its rows."""
        out = _run(
            "psql", "-h", PRIMARY_HOST, "-p", str(self.port), "-U", SUPERUSER, "-d",
            "pgbouncer", "-XAtF", "\t", "-c", command, timeout=30,
        )  # fmt: skip
        return [line.split("\t") for line in out.splitlines() if line]

    def reset(self, database: str) -> None:
        """Close every client and server connection of ``database`` (fresh server connections next).

        PgBouncer's ``KILL`` (then ``RESUME``, which lets new clients in again).
        """
        self.admin(f"KILL {database}")
        self.admin(f"RESUME {database}")

    def stop(self) -> None:
        """Stop PgBouncer and delete its directory."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


def ensure_pgbouncer(install: bool) -> str:
    """Return the path of the ``pgbouncer`` binary; install Debian's package if allowed."""
    found = shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
    )
    if found:
        return found
    if not install or os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise Unavailable("pgbouncer is not installed (Debian: apt-get install -y pgbouncer)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in (["apt-get", "install", "-y", "pgbouncer"],):
        done = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            subprocess.run(["apt-get", "update"], capture_output=True, env=env, check=False)
            done = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise Unavailable(f"apt-get install pgbouncer failed: {done.stderr.strip()[-500:]}")
    return ensure_pgbouncer(install=False)


def start_pgbouncer(
    databases: dict[str, str] | None = None, *, pool_size: int = 4, install: bool = False
) -> PgBouncer:
    """Start PgBouncer (transaction pooling, ``pool_size`` server connections per database).

    ``databases`` maps extra database names to PgBouncer connection strings
    (``host=... port=... dbname=...``); every other name goes to the primary.
    """
    binary = ensure_pgbouncer(install)
    directory = _private_dir("flash_pgbouncer_")
    port = free_port()
    lines = [f"{name} = {target}" for name, target in (databases or {}).items()]
    lines.append(f"* = host={PRIMARY_HOST} port={PRIMARY_PORT}")
    (directory / "userlist.txt").write_text(f'"{SUPERUSER}" ""\n')
    config = directory / "pgbouncer.ini"
    config.write_text(
        "[databases]\n" + "\n".join(lines) + "\n\n[pgbouncer]\n"
        f"listen_addr = {PRIMARY_HOST}\n"
        f"listen_port = {port}\n"
        f"unix_socket_dir = {directory}\n"
        "auth_type = trust\n"
        f"auth_file = {directory / 'userlist.txt'}\n"
        f"admin_users = {SUPERUSER}\n"
        "pool_mode = transaction\n"
        f"default_pool_size = {pool_size}\n"
        "min_pool_size = 0\n"
        "reserve_pool_size = 0\n"
        "max_client_conn = 500\n"
        # Idle server connections close soon: the primary's max_connections is shared.
        "server_idle_timeout = 5\n"
        "server_reset_query = DISCARD ALL\n"
        "ignore_startup_parameters = extra_float_digits,options\n"
        f"logfile = {directory / 'pgbouncer.log'}\n"
        "log_connections = 0\n"
        "log_disconnections = 0\n"
    )
    if os.geteuid() == 0:
        for path in directory.iterdir():
            shutil.chown(path, SUPERUSER, SUPERUSER)
    command = [binary, str(config)]
    if os.geteuid() == 0:
        command = ["runuser", "-u", SUPERUSER, "--", *command]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    bouncer = PgBouncer(port=port, directory=directory, process=process, databases=databases or {})
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = (directory / "pgbouncer.log").read_text() if directory.exists() else ""
            bouncer.stop()
            raise Unavailable(f"pgbouncer exited ({process.returncode}): {log[-500:]}")
        with contextlib.suppress(OSError), socket.create_connection((PRIMARY_HOST, port), 0.2):
            return bouncer
        time.sleep(0.05)
    bouncer.stop()
    raise Unavailable("pgbouncer did not listen within 15 s")


def main() -> None:  # pragma: no cover - a check by hand: python -m tests.servers
    """Start a private cluster, a replica and PgBouncer, print what answers, stop them."""
    cluster = start_cluster()
    try:
        cluster.restart()
        print("cluster:", cluster.port, cluster.psql("SELECT version()"))
    finally:
        cluster.remove()
    replica = start_replica()
    try:
        bouncer = start_pgbouncer(install=True)
        try:
            print("replica:", replica.port, _psql("SELECT pg_is_in_recovery()", port=replica.port))
            print("pgbouncer:", bouncer.port, bouncer.admin("SHOW VERSION"))
        finally:
            bouncer.stop()
    finally:
        replica.remove()


if __name__ == "__main__":  # pragma: no cover
    main()
