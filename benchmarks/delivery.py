"""Web Push delivery end to end: Clarion against pywebpush and a bare HTTP loop, one sink.

    python -m benchmarks.delivery --json                 # 100,000 subscribers, 3 repetitions
    python -m benchmarks.delivery --subscribers 20000    # the same, smaller, as a table
    python -m benchmarks.delivery --quick --json         # 2000 subscribers, once: a smoke run
    python -m benchmarks.delivery --only pywebpush,bare_http --subscribers 20000
    python -m benchmarks.delivery --rss-1m --json        # + delivery's peak RSS at 1,000,000

Every sender pushes N messages (real RFC 8291 bodies for real P-256 subscriptions,
a 239-byte JSON notification) to the same sink: an nginx started by this benchmark
on a loopback port that answers `201 Created` to every POST. How each figure is taken:

- pywebpush_msgs_per_s: pywebpush's async API as a careful user writes it: one
  aiohttp session, 100 requests in flight, `WebPusher(sub, aiohttp_session=...)
  .send_async(payload, headers=vapid_headers, ttl=...)` with the VAPID headers
  signed once per push service (as Clarion caches them) with a real P-256 key.
- bare_http_msgs_per_s: the HTTP ceiling of this machine for this client library:
  the same session and concurrency POSTing bodies encrypted beforehand.
- clarion_msgs_per_s (per database): the embedded stack (clarion.embedded), N
  subscribers registered through segment's BatchRegisterSubscribers, one campaign;
  the clock runs from SendCampaignNow until GetRun shows the run DONE with every
  recipient terminal. send_call_seconds is how long SendCampaignNow itself took.
  `sqlite` is the embedded default (SQLite files in a temp dir); `postgres` uses
  CLARION_BENCH_POSTGRES_URL or a throwaway cluster (fsync=off), one fresh database
  per repetition.
- ratio_vs_pywebpush = clarion / pywebpush and ratio_of_http_ceiling = clarion /
  bare, each from the two runs of the same repetition.
- cpu_ms_per_msg: CPU time (user + system) spent by the benchmark process
  (getrusage RUSAGE_SELF + RUSAGE_CHILDREN) and, for the throwaway PostgreSQL
  cluster, by the database server (from /proc), over the timed window, per message.
  The sink is not in it: nginx is still running, so it is in neither RUSAGE figure;
  its own CPU (from /proc/<pid>/stat) is reported apart as sink_cpu_ms_per_msg.
- clarion_2proc_msgs_per_s: as clarion_msgs_per_s on PostgreSQL, with a second delivery
  process (ServiceProcess, as `clarion serve delivery` runs it) on the same database.
- apns_msgs_per_s: the embedded default sending to --apns N legacy Safari devices (APNs
  device tokens) through the APNs simulator, which runs in a process of its own.
- bare_native_msgs_per_s: the native send loop with no state around it: bodies encrypted
  in the window (encrypt_batch, 1000 at a time, overlapping the posting) and posted by
  encrypt_rs.PushClient (as delivery posts), 512 in flight; bare_native_vs_pywebpush is
  its rate over pywebpush's in the same repetition: the most any delivery built on the
  native client could reach on this machine.
- encrypt_batch_msgs_per_s: the native crypto alone (encrypt_rs.encrypt_batch, both
  cores, 1000 recipients per call, 3 s per repetition); ratio_of_crypto_ceiling =
  clarion / encrypt_batch, per database, from the same repetition.
- delivery_peak_rss_mb: the VmHWM of the delivery process alone over a Clarion run;
  delivery_rss_mb_at_1m (--rss-1m): the same for one run of 1,000,000 subscribers.
- peak_rss_mb: the VmHWM over the timed window of the process and its Python children
  (for Clarion, the delivery process too) (reset through
  /proc/self/clear_refs before each run), which includes the N subscriptions the
  benchmark itself holds; rss_at_start_mb is the RSS when the window opened.

Repetitions are interleaved (every mode in MODES' order, then again) so that a
neighbour's burst of work lands on every sender alike; each figure is reported as the
median, min and max over the repetitions, with every run listed.
A part that fails (e.g. a Clarion service not there yet) is reported in the JSON
("clarion_error") and the other figures still print.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import importlib.metadata
import json
import os
import platform
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

DEFAULT_SUBSCRIBERS = 100_000
QUICK_SUBSCRIBERS = 2000
DEFAULT_REPEAT = 3
IN_FLIGHT = 100
# bare_native: requests in flight, as many as a delivery process keeps by default.
NATIVE_IN_FLIGHT = 512
PAYLOAD_BYTES = 239
TTL_SECONDS = 3600
REGISTER_BATCH = 1000  # BatchRegisterSubscribers takes at most 1000
REGISTER_IN_FLIGHT = 2
POLL_SECONDS = 0.05
MIB = 1024 * 1024
VAPID_SUBJECT = "mailto:bench@clarion.invalid"

MODES = (
    "clarion_sqlite",
    "clarion_postgres",
    "clarion_postgres_2proc",
    "clarion_apns",
    "pywebpush",
    "bare_http",
    "bare_native",
    "encrypt_batch",
)
# The modes that run Clarion end to end (the embedded stack).
CLARION_MODES = ("clarion_sqlite", "clarion_postgres", "clarion_postgres_2proc", "clarion_apns")
DATABASES = ("sqlite", "postgres")
TARGETS = {"ratio_vs_pywebpush": 2.0}  # on both databases
# Clarion's rate over a baseline's, both from the same repetition.
RATIOS = {
    "ratio_vs_pywebpush": "pywebpush",
    "ratio_of_http_ceiling": "bare_http",
    "ratio_of_crypto_ceiling": "encrypt_batch",
}
# Legacy Safari recipients of the APNs run (the simulator, in a process of its own,
# accepts about 1,100 msg/s on one core), and of a --quick run.
APNS_RECIPIENTS = 10_000
QUICK_APNS_RECIPIENTS = 300
# --rss-1m: subscribers of the run whose delivery process's peak RSS is measured.
RSS_SUBSCRIBERS = 1_000_000
RSS_TARGET_MB = 256
# encrypt_batch: recipients per call, and how long the calls run per repetition.
ENCRYPT_BATCH = 1000
ENCRYPT_SECONDS = 3.0

POSTGRES_URL_ENV = "CLARION_BENCH_POSTGRES_URL"
# Set (to anything): the throwaway cluster loads pg_stat_statements and the JSON gets
# each PostgreSQL run's costliest statements ("postgres_statements"), for profiling.
PG_STATEMENTS_ENV = "CLARION_BENCH_PG_STATEMENTS"
# The Settings field that lets Clarion push to http:// endpoints on loopback (the
# simulator's and this sink's; CLARION_PUSH_TEST_ENDPOINTS): the first name that exists.
TEST_ENDPOINT_FLAGS = ("push_test_endpoints", "allow_insecure_endpoints")

EXIT_NO_SINK = 3  # the smoke test skips on this exit status


class SinkUnavailable(RuntimeError):
    """nginx is not installed and cannot be installed on this machine."""


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} is not listening on 127.0.0.1:{port}") from None
            time.sleep(0.05)


# --- Packages -------------------------------------------------------------------------


def apt_install(*packages: str) -> None:
    """`apt-get install` (then `apt-get update` and again, if the first attempt fails)."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise RuntimeError(f"cannot install {' or '.join(packages)}: needs root and apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}

    def install(package: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["apt-get", "install", "-y", "-q", package],
            env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip

    errors = []
    for refreshed in (False, True):
        if refreshed:
            progress("apt-get update")
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)
        for package in packages:
            progress(f"apt-get install -y {package}")
            done = install(package)
            if done.returncode == 0:
                return
            errors.append(f"{package}: {done.stderr.strip().splitlines()[-1:]}")
    raise RuntimeError(f"apt-get could not install {' or '.join(packages)}: {errors}")


# --- CPU and memory -------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Python children that are not Clarion (the APNs simulator's process): left out of
# Clarion's CPU and memory.
NOT_CLARION: set[int] = set()


def own_cpu_seconds() -> float:
    """User + system CPU of this process, its reaped children, and its live Python
    children (the embedded stack's delivery process); the sink and the database are
    measured apart."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = _stat_fields(int(entry))
            with open(f"/proc/{entry}/comm", encoding="ascii", errors="replace") as comm:
                name = comm.read().strip()
            if int(fields[1]) == me and name.startswith("python") and int(entry) not in NOT_CLARION:
                total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
        text = stat.read()
    # The command name (field 2) may hold spaces and parentheses: split after its ")".
    return text[text.rindex(")") + 2 :].split()


def process_tree_cpu_seconds(root: int) -> float:
    """User + system CPU of `root`, its live descendants, and its reaped children.

    Fields (man 5 proc, counted from 1): 4 ppid, 14 utime, 15 stime, 16 cutime,
    17 cstime; after the command name, field k is at index k - 3.
    """
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                parents[int(entry)] = int(_stat_fields(int(entry))[1])
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier += children
    ticks = 0
    for pid in tree:
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = _stat_fields(pid)
            ticks += int(fields[11]) + int(fields[12])
            if pid == root:
                ticks += int(fields[13]) + int(fields[14])
    return ticks / CLOCK_TICKS


def python_children() -> list[int]:
    """This process's live Python children (the embedded stack's delivery process)."""
    me, found = os.getpid(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            with open(f"/proc/{entry}/comm", encoding="ascii", errors="replace") as comm:
                name = comm.read().strip()
            if int(_stat_fields(int(entry))[1]) == me and name.startswith("python"):
                if int(entry) not in NOT_CLARION:
                    found.append(int(entry))
    return found


def reset_peak_rss() -> bool:
    """Resets VmHWM to the current RSS (Linux >= 4.0), of this process and its Python
    children; False where that is not allowed."""
    try:
        for pid in ["self", *python_children()]:
            with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as clear:
                clear.write("5")
        return True
    except OSError:
        return False


def status_mb(field: str) -> float:
    """A memory figure (VmRSS, VmHWM) in MiB: this process's plus its Python children's
    (the sum of peaks bounds the peak of the sum)."""
    total = 0.0
    for pid in ["self", *python_children()]:
        with contextlib.suppress(OSError):
            with open(f"/proc/{pid}/status", encoding="ascii") as status:
                for line in status:
                    if line.startswith(f"{field}:"):
                        total += int(line.split()[1]) * 1024 / MIB
    if not total:
        raise RuntimeError(f"no {field} in /proc/self/status")
    return total


def children_mb(field: str) -> list[float]:
    """A memory figure (VmRSS, VmHWM) in MiB of each live Python child (the embedded
    stack's delivery processes), apart."""
    found = []
    for pid in python_children():
        with contextlib.suppress(OSError):
            with open(f"/proc/{pid}/status", encoding="ascii") as status:
                for line in status:
                    if line.startswith(f"{field}:"):
                        found.append(int(line.split()[1]) * 1024 / MIB)
    return found


def loadavg() -> list[float]:
    with open("/proc/loadavg", encoding="ascii") as load:
        return [float(x) for x in load.read().split()[:3]]


@dataclass
class Window:
    """What one timed run cost: wall seconds, CPU, sink CPU, database CPU, peak RSS."""

    sink: NginxSink
    database: Postgres | None = None
    wall: float = 0.0
    cpu: float = 0.0
    sink_cpu: float = 0.0
    database_cpu: float = 0.0
    peak_rss_mb: float = 0.0
    rss_at_start_mb: float = 0.0
    # The largest VmHWM of one Python child (a delivery process); 0 without one.
    delivery_peak_rss_mb: float = 0.0
    _start: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    def start(self) -> None:
        reset_peak_rss()
        self.rss_at_start_mb = status_mb("VmRSS")
        database = self.database.cpu_seconds() if self.database else 0.0
        self._start = (time.perf_counter(), own_cpu_seconds(), self.sink.cpu_seconds(), database)

    def elapsed(self) -> float:
        """Wall seconds since start()."""
        return time.perf_counter() - self._start[0]

    def stop(self) -> None:
        wall, cpu, sink, database = self._start
        self.wall = time.perf_counter() - wall
        self.cpu = own_cpu_seconds() - cpu
        self.sink_cpu = self.sink.cpu_seconds() - sink
        if self.database:
            self.database_cpu = self.database.cpu_seconds() - database
        self.peak_rss_mb = status_mb("VmHWM")
        self.delivery_peak_rss_mb = max(children_mb("VmHWM"), default=0.0)


# --- The sink -------------------------------------------------------------------------

NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    {access_log}
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    # A push message is at most 4096 bytes: the body is read into one buffer
    # (anything larger is refused with 413, which would show as a failure).
    client_body_buffer_size 8k;
    client_max_body_size 8k;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = /nginx-status {{ stub_status; }}
        location / {{ return 201; }}
    }}
}}
"""


def nginx_executable() -> str | None:
    for candidate in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@dataclass
class NginxSink:
    """Our own nginx (one worker) answering 201 to every POST on a loopback port."""

    root: Path
    port: int
    process: subprocess.Popen[bytes]
    version: str

    @classmethod
    def start(cls, root: Path, *, access_log: bool = False) -> NginxSink:
        """With `access_log`, every request is logged to root/access.log as "<unix time
        with ms> <path>", for the time each push arrived (see access_times)."""
        exe = nginx_executable()
        if exe is None:
            try:
                apt_install("nginx-light", "nginx")
            except RuntimeError as error:
                raise SinkUnavailable(str(error)) from None
            exe = nginx_executable()
            if exe is None:
                raise SinkUnavailable("nginx was installed but no nginx executable is on PATH")
        version = subprocess.run(
            [exe, "-v"], capture_output=True, text=True, check=False
        ).stderr.strip()
        root.mkdir(parents=True)
        port = free_port()
        conf = root / "nginx.conf"
        logging = (
            "log_format arrival '$msec $uri'; "
            f"access_log {root}/access.log arrival buffer=64k flush=100ms;"
            if access_log
            else "access_log off;"
        )
        conf.write_text(
            NGINX_CONF.format(root=root, port=port, access_log=logging), encoding="utf-8"
        )
        # -e: the error log before the config is read (else /var/log/nginx/error.log).
        process = subprocess.Popen(
            [exe, "-p", str(root), "-c", str(conf), "-e", str(root / "error.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        sink = cls(root, port, process, version)
        try:
            wait_for_port(port, 10, "nginx")
        except RuntimeError:
            sink.stop()
            raise SinkUnavailable(f"nginx did not start: {sink.log_tail()}") from None
        return sink

    def endpoint(self, index: int) -> str:
        return f"http://127.0.0.1:{self.port}/push/{index}"

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        return process_tree_cpu_seconds(self.process.pid)

    def requests(self) -> int:
        """nginx's count of requests so far (stub_status), this one included."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as conn:
            conn.sendall(b"GET /nginx-status HTTP/1.0\r\nHost: sink\r\n\r\n")
            answer = b""
            while chunk := conn.recv(4096):
                answer += chunk
        # "... server accepts handled requests\n 1 1 1 \n..."
        lines = answer.decode("ascii", "replace").split("\r\n\r\n", 1)[1].splitlines()
        return int(lines[2].split()[2])

    def access_times(self) -> list[tuple[float, str]]:
        """(arrival time, path) of every request logged so far (start with access_log)."""
        arrivals = []
        with contextlib.suppress(FileNotFoundError):
            for line in (self.root / "access.log").read_text().splitlines():
                stamp, _, path = line.partition(" ")
                arrivals.append((float(stamp), path))
        return arrivals

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return " | ".join((self.root / "error.log").read_text().strip().splitlines()[-3:])
        return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # nginx: fast shutdown
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()


# --- PostgreSQL -----------------------------------------------------------------------


def postgres_bin() -> Path | None:
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: [int(x) for x in p.parts[-3].split(".") if x.isdigit()],
    )
    if found:
        return found[-1].parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        bindir = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        ).stdout
        if (Path(bindir.strip()) / "postgres").exists():
            return Path(bindir.strip())
    return None


@dataclass
class Postgres:
    """Where the PostgreSQL runs go: an existing server, or a throwaway cluster of ours."""

    base_url: str  # sqlalchemy URL; the database name is replaced per repetition
    description: str
    root: Path | None = None
    bindir: Path | None = None
    postmaster_pid: int | None = None
    created: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, root: Path) -> Postgres:
        from sqlalchemy.engine import make_url

        given = os.environ.get(POSTGRES_URL_ENV)
        if given:
            url = make_url(given).set(drivername="postgresql+psycopg")
            return cls(url.render_as_string(hide_password=False), POSTGRES_URL_ENV)
        bindir = postgres_bin()
        if bindir is None:
            apt_install("postgresql")
            bindir = postgres_bin()
            if bindir is None:
                raise RuntimeError("postgresql was installed but no postgres binary was found")
        root.mkdir(parents=True)
        port = free_port()
        user = "postgres"
        if os.geteuid() == 0:  # initdb refuses root: the cluster belongs to postgres
            shutil.chown(root, user)
        cluster = cls(
            f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres",
            f"throwaway cluster ({bindir.parent.name}, fsync=off)",
            root=root,
            bindir=bindir,
        )
        cluster._run("initdb", "-D", str(root / "data"), "-U", "postgres", "-A", "trust")
        # shared_buffers as a deployment would size it (a quarter of memory, at most 4 GB):
        # the default 128 MB makes a million-row table a disk read on every scan.
        memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // MIB
        buffers_mb = max(128, min(4096, memory_mb // 4))
        options = (
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300"
            f" -c shared_buffers={buffers_mb}MB"
        )
        if os.environ.get(PG_STATEMENTS_ENV):
            options += " -c shared_preload_libraries=pg_stat_statements"
        cluster._run(
            "pg_ctl", "-D", str(root / "data"), "-l", str(root / "log"), "-w", "-o", options,
            "start",
        )  # fmt: skip
        pid_line = (root / "data" / "postmaster.pid").read_text().splitlines()[0]
        cluster.postmaster_pid = int(pid_line)
        return cluster

    def _run(self, tool: str, *args: str) -> None:
        assert self.bindir is not None
        command = [str(self.bindir / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed: {done.stderr.strip()[-500:]}")

    def _admin(self) -> Any:
        import psycopg
        from sqlalchemy.engine import make_url

        url = make_url(self.base_url)
        return psycopg.connect(
            host=url.host, port=url.port or 5432, user=url.username, password=url.password,
            dbname=url.database or "postgres", autocommit=True,
        )  # fmt: skip

    def new_database(self) -> str:
        from sqlalchemy.engine import make_url

        name = f"clarion_bench_{secrets.token_hex(4)}"
        with self._admin() as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
            if self.root is not None and os.environ.get(PG_STATEMENTS_ENV):
                connection.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                connection.execute("SELECT pg_stat_statements_reset()")
        self.created.append(name)
        return make_url(self.base_url).set(database=name).render_as_string(hide_password=False)

    def top_statements(self, limit: int = 12) -> list[dict[str, Any]] | None:
        """With PG_STATEMENTS_ENV, the statements that took the server longest since the
        last new_database() (execution ms, calls, rows, the text's start); else None."""
        if self.root is None or not os.environ.get(PG_STATEMENTS_ENV):
            return None
        with self._admin() as connection:
            rows = connection.execute(
                "SELECT round(total_exec_time::numeric, 1), calls, rows, left(query, 160) "
                "FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT %s",
                (limit,),
            ).fetchall()
        return [
            {"exec_ms": float(ms), "calls": calls, "rows": count, "query": text}
            for ms, calls, count, text in rows
        ]

    def cpu_seconds(self) -> float:
        """The server's CPU (postmaster, backends, reaped backends); 0 for a server not ours."""
        if self.postmaster_pid is None:
            return 0.0
        return process_tree_cpu_seconds(self.postmaster_pid)

    @property
    def version(self) -> str:
        with self._admin() as connection:
            row = connection.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "?"

    def stop(self) -> None:
        if self.root is None:  # a server not ours: drop what we created
            with contextlib.suppress(Exception), self._admin() as connection:
                for name in self.created:
                    connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        with contextlib.suppress(RuntimeError):
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "stop")


# --- The audience and the message -----------------------------------------------------


@dataclass(frozen=True)
class Subscriber:
    endpoint: str
    p256dh: bytes
    auth: bytes

    def info(self) -> dict[str, Any]:
        """PushSubscription.toJSON(), as a site stores it and pywebpush takes it."""
        return {
            "endpoint": self.endpoint,
            "keys": {"p256dh": b64url(self.p256dh), "auth": b64url(self.auth)},
        }


def make_audience(count: int, sink: NginxSink) -> list[Subscriber]:
    audience = []
    for index in range(count):
        key = ec.generate_private_key(ec.SECP256R1())
        point = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        audience.append(Subscriber(sink.endpoint(index), point, os.urandom(16)))
    return audience


@dataclass(frozen=True)
class Message:
    title: str
    body: str
    target_url: str
    payload: bytes  # what pywebpush and the bare loop send to everyone


def make_message() -> Message:
    """A notification whose JSON, as a Clarion service worker receives it (PushPayload:
    title, body, url, campaign and run ids), is 239 bytes. Clarion adds two fields per
    recipient (subscriber_id, engagement_token), so its bodies are larger than this."""

    def new_id(prefix: str) -> str:  # as services.kit.ids: prefix, 12 + 20 hex digits
        return f"{prefix}_{int(time.time() * 1000):012x}{secrets.token_hex(10)}"

    title, url = "Spring sale: 30% off", "https://shop.example/sale?utm_source=clarion"
    ids = {"campaign_id": new_id("cmp"), "run_id": new_id("run")}

    def render(body: str) -> bytes:
        fields = {"title": title, "body": body, "url": url, **ids}
        return json.dumps(fields, separators=(",", ":")).encode()

    filler = "Everything in the spring collection, today and tomorrow only. " * 4
    body = filler[: PAYLOAD_BYTES - len(render(""))].rstrip()
    body = filler[: len(body) + PAYLOAD_BYTES - len(render(body))]
    payload = render(body)
    if len(payload) != PAYLOAD_BYTES:
        raise RuntimeError(f"the sample notification is {len(payload)} bytes, not {PAYLOAD_BYTES}")
    return Message(title, body, url, payload)


def vapid_headers(origin: str) -> dict[str, str]:
    """VAPID (RFC 8292) headers for one push service, signed once with a fresh P-256 key."""
    from py_vapid import Vapid02

    vapid = Vapid02()
    vapid.generate_keys()
    claims = {"sub": VAPID_SUBJECT, "aud": origin, "exp": int(time.time()) + 12 * 3600}
    return dict(vapid.sign(claims))


async def in_flight(
    items: Iterable[Any], send: Callable[[Any], Awaitable[None]], width: int
) -> None:
    """Runs `send` over `items` with `width` calls in flight (a fixed pool of workers:
    the same bound as a semaphore, without a task per item)."""
    shared: Iterator[Any] = iter(items)

    async def worker() -> None:
        for item in shared:
            await send(item)

    await asyncio.gather(*(worker() for _ in range(width)))


def client_session(width: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=width))


# --- The runs -------------------------------------------------------------------------


@dataclass
class Run:
    mode: str
    messages: int
    window: Window
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.messages / self.window.wall


class PartFailed(RuntimeError):
    """One sender could not be measured; the message says why."""


async def run_pywebpush(audience: list[Subscriber], message: Message, sink: NginxSink) -> Run:
    from pywebpush import WebPusher

    headers = vapid_headers(sink.origin)
    infos = [subscriber.info() for subscriber in audience]
    refused: list[int] = []

    async with client_session(IN_FLIGHT) as session:

        async def send(info: dict[str, Any]) -> None:
            response = await WebPusher(info, aiohttp_session=session).send_async(
                message.payload, headers=headers, ttl=TTL_SECONDS, content_encoding="aes128gcm"
            )
            if response.status != 201:
                refused.append(response.status)

        window = Window(sink)
        window.start()
        await in_flight(infos, send, IN_FLIGHT)
        window.stop()
    if refused:
        raise PartFailed(f"pywebpush: the sink answered {refused[0]} to {len(refused)} messages")
    return Run("pywebpush", len(audience), window)


async def run_bare(audience: list[Subscriber], message: Message, sink: NginxSink) -> Run:
    import encrypt_rs

    headers = {
        **vapid_headers(sink.origin),
        "Content-Encoding": "aes128gcm",
        "Content-Type": "application/octet-stream",
        "TTL": str(TTL_SECONDS),
        "Urgency": "normal",
    }
    bodies: list[bytes] = []
    for start in range(0, len(audience), 1000):
        chunk = audience[start : start + 1000]
        for body in encrypt_rs.encrypt_batch(message.payload, [(s.p256dh, s.auth) for s in chunk]):
            if isinstance(body, Exception):
                raise PartFailed(f"bare_http: cannot encrypt a body: {body}")
            bodies.append(body)
    refused: list[int] = []

    async with client_session(IN_FLIGHT) as session:

        async def send(index: int) -> None:
            async with session.post(
                audience[index].endpoint, data=bodies[index], headers=headers
            ) as response:
                await response.read()
                if response.status != 201:
                    refused.append(response.status)

        window = Window(sink)
        window.start()
        await in_flight(range(len(audience)), send, IN_FLIGHT)
        window.stop()
    if refused:
        raise PartFailed(f"bare_http: the sink answered {refused[0]} to {len(refused)} messages")
    return Run("bare_http", len(audience), window)


async def run_bare_native(audience: list[Subscriber], message: Message, sink: NginxSink) -> Run:
    """The native send loop with nothing around it: what delivery's own loop would do if it
    kept no state at all. Bodies are encrypted inside the window (`encrypt_batch`, 1000 at
    a time, on a thread so the next batch overlaps the posting) and posted by the native
    client (`encrypt_rs.PushClient`, as delivery posts), NATIVE_IN_FLIGHT at a time, each
    answer drained when the client's descriptor is readable. No database, no protobuf,
    no per-message Python beyond handing bodies over: the ceiling of a sender whose loop
    leaves Python's HTTP client."""
    import encrypt_rs

    vapid = vapid_headers(sink.origin)
    authorization = vapid.pop("Authorization")
    headers = [
        *vapid.items(),
        ("Content-Encoding", "aes128gcm"),
        ("Content-Type", "application/octet-stream"),
        ("TTL", str(TTL_SECONDS)),
        ("Urgency", "normal"),
    ]
    loop = asyncio.get_running_loop()
    client = encrypt_rs.PushClient(30.0)
    readable = asyncio.Event()
    loop.add_reader(client.fileno(), readable.set)

    def encrypt(start: int) -> list[tuple[int, str, bytes, str]]:
        chunk = audience[start : start + 1000]
        bodies = encrypt_rs.encrypt_batch(message.payload, [(s.p256dh, s.auth) for s in chunk])
        requests = []
        for offset, body in enumerate(bodies):
            if isinstance(body, Exception):
                raise PartFailed(f"bare_native: cannot encrypt a body: {body}")
            requests.append((start + offset, chunk[offset].endpoint, body, authorization))
        return requests

    refused: list[int] = []
    answered = 0
    window = Window(sink)
    window.start()
    try:
        starts = iter(range(0, len(audience), 1000))
        upcoming = asyncio.ensure_future(asyncio.to_thread(encrypt, next(starts)))
        ready: list[tuple[int, str, bytes, str]] = []
        while answered < len(audience):
            if not ready and upcoming is not None:
                ready = await upcoming
                following = next(starts, None)
                upcoming = (
                    None
                    if following is None
                    else asyncio.ensure_future(asyncio.to_thread(encrypt, following))
                )
            room = NATIVE_IN_FLIGHT - client.in_flight
            if ready and room > 0:
                client.submit(ready[:room], headers)
                del ready[:room]
                continue
            await readable.wait()
            readable.clear()
            for _tag, status, _retry, _body, failure, _detail in client.drain():
                answered += 1
                if failure or status != 201:
                    refused.append(status)
        window.stop()
    finally:
        loop.remove_reader(client.fileno())
        await asyncio.to_thread(client.close)
    if refused:
        raise PartFailed(f"bare_native: the sink answered {refused[0]} to {len(refused)} messages")
    return Run("bare_native", len(audience), window)


def run_encrypt_batch(audience: list[Subscriber], message: Message, sink: NginxSink) -> Run:
    """The native crypto alone: `encrypt_rs.encrypt_batch` (both cores, GIL released) of
    the benchmark's payload for ENCRYPT_BATCH recipients per call, for ENCRYPT_SECONDS;
    the ceiling a sender that does nothing but encrypt would reach."""
    import encrypt_rs

    keys = [(s.p256dh, s.auth) for s in audience[:ENCRYPT_BATCH]]
    keys = (keys * (ENCRYPT_BATCH // len(keys) + 1))[:ENCRYPT_BATCH]
    encrypt_rs.encrypt_batch(message.payload, keys)  # warm-up
    window = Window(sink)
    window.start()
    messages = 0
    while messages == 0 or window.elapsed() < ENCRYPT_SECONDS:
        bodies = encrypt_rs.encrypt_batch(message.payload, keys)
        messages += len(bodies)
    window.stop()
    if any(isinstance(body, Exception) for body in bodies):
        raise PartFailed("encrypt_batch: a body could not be encrypted")
    return Run("encrypt_batch", messages, window)


def _apns_simulator_main(connection: Any, team_id: str, key_id: str, public_pem: str) -> None:
    """The APNs simulator's process: trusts the site's key, mints device tokens and
    counts what it accepted, on request over `connection`, until told to stop."""
    from clarion.simulator.apns import ApnsSimulator

    with contextlib.suppress(Exception):
        from services.kit.logging import configure_logging

        configure_logging("console", "WARNING")

    async def serve() -> None:
        simulator = ApnsSimulator()
        await simulator.start()
        simulator.register_key(team_id, key_id, public_pem)
        connection.send({"url": simulator.base_url, "ca_pem": simulator.ca_pem})
        loop = asyncio.get_running_loop()
        try:
            while True:
                if not await loop.run_in_executor(None, connection.poll, 0.5):
                    continue
                command, argument = connection.recv()
                if command == "mint":
                    count, topic = argument
                    tokens = [simulator.mint_device(topic) for _ in range(count)]
                    connection.send(tokens)
                elif command == "stats":
                    connection.send(
                        {
                            "accepted": len(simulator.notifications()),
                            "duplicates": len(simulator.stats.duplicates),
                        }
                    )
                else:
                    break
        finally:
            await simulator.stop()

    asyncio.run(serve())


class ApnsProcess:
    """The APNs simulator in a process of its own (on a shared event loop it would be
    the bottleneck and take the delivery process's core), with one site key."""

    def __init__(self, workdir: Path) -> None:
        import multiprocessing

        from clarion.simulator.apns.credentials import ProviderKey

        self.key = ProviderKey.generate()
        context = multiprocessing.get_context("spawn")
        self._connection, child = context.Pipe()
        # By its module's name, so that `python -m benchmarks.delivery` spawns it too.
        target = importlib.import_module("benchmarks.delivery")._apns_simulator_main
        self.process = context.Process(
            target=target,
            args=(child, self.key.team_id, self.key.key_id, self.key.public_pem),
            name="apns-simulator",
            daemon=True,
        )
        self.process.start()
        NOT_CLARION.add(self.process.pid or 0)
        child.close()
        if not self._connection.poll(60):
            self.stop()
            raise RuntimeError("the APNs simulator did not start within 60 s")
        started = self._connection.recv()
        self.url: str = started["url"]
        self.ca_file = workdir / "apns-simulator-ca.pem"
        self.ca_file.write_text(started["ca_pem"], encoding="ascii")
        self.tokens: list[str] = []

    def _ask(self, command: str, argument: Any = None) -> Any:
        self._connection.send((command, argument))
        if not self._connection.poll(120):
            raise RuntimeError(f"the APNs simulator did not answer {command!r}")
        return self._connection.recv()

    def devices(self, count: int) -> list[str]:
        """`count` device tokens registered for the benchmark's Website Push ID (the
        same ones every repetition: each has a database of its own)."""
        from clarion.demo_browsers import WEBSITE_PUSH_ID

        if len(self.tokens) < count:
            self.tokens += self._ask("mint", (count - len(self.tokens), WEBSITE_PUSH_ID))
        return self.tokens[:count]

    def stats(self) -> dict[str, int]:
        return dict(self._ask("stats"))

    def cpu_seconds(self) -> float:
        return process_tree_cpu_seconds(self.process.pid or 0)

    def stop(self) -> None:
        with contextlib.suppress(OSError, BrokenPipeError):
            self._connection.send(("stop", None))
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)


def allow_test_endpoints(settings: Any) -> str:
    """Sets the Settings field that allows http:// endpoints on loopback; returns its name."""
    fields = type(settings).model_fields
    for name in TEST_ENDPOINT_FLAGS:
        if name in fields:
            setattr(settings, name, True)
            return name
    raise PartFailed(
        f"Settings has none of the fields {', '.join(TEST_ENDPOINT_FLAGS)} that allow "
        "http:// test endpoints: benchmarks/delivery.py needs the new name"
    )


async def rpc(step: str, call: Awaitable[Any]) -> Any:
    """Awaits one gRPC call; a gRPC error becomes PartFailed naming the step."""
    import grpc

    try:
        return await call
    except grpc.aio.AioRpcError as error:
        raise PartFailed(f"{step}: {error.code().name}: {error.details()}") from None


async def run_clarion(
    database: str,
    audience: list[Subscriber],
    message: Message,
    sink: NginxSink,
    data_dir: Path,
    postgres: Postgres | None,
    timeout: float,
    steps: list[str],
    *,
    delivery_processes: int = 1,
    apns: ApnsProcess | None = None,
) -> Run:
    """One Clarion run; appends to `steps` what it is doing, for the error report.

    `delivery_processes`: delivery processes sharing the database (more than one takes
    PostgreSQL). With `apns`, the audience is as many legacy Safari devices (APNs
    device tokens of that simulator) instead of Web Push subscriptions."""
    steps.append("import")
    from clarion.campaign.v1 import campaign_pb2, campaign_service_pb2, campaign_service_pb2_grpc
    from clarion.common.v1 import common_pb2
    from clarion.embedded import EmbeddedStack, ServiceProcess
    from clarion.segment.v1 import segment_service_pb2, segment_service_pb2_grpc
    from services.campaign.admin import create_site
    from services.delivery.settings import DeliverySettings
    from services.kit.grpcserver import client_channel

    steps.append("settings")
    url = postgres.new_database() if postgres is not None else ""
    settings = DeliverySettings(data_dir=data_dir, database_url=url)
    flag = allow_test_endpoints(settings)
    devices: list[str] = []
    if apns is not None:
        settings.apns_url, settings.apns_ca_file = apns.url, str(apns.ca_file)
        devices = apns.devices(len(audience))
    steps.append("starting the embedded stack")
    stack = await EmbeddedStack.start(settings, ephemeral_ports=True, with_gateway=False)
    channels = []
    extra: list[Any] = []
    try:
        for _ in range(delivery_processes - 1):
            steps.append("starting another delivery process")
            extra.append(await ServiceProcess.start(stack.settings, "127.0.0.1:0"))
        steps.append("create_site")
        site = await create_site(settings, "Delivery benchmark", VAPID_SUBJECT)
        metadata = (("authorization", f"Bearer {site.api_key}"),)
        segment_channel = client_channel(stack.address("segment"))
        campaign_channel = client_channel(stack.address("campaign"))
        channels += [segment_channel, campaign_channel]
        segments = segment_service_pb2_grpc.SegmentServiceStub(segment_channel)
        campaigns = campaign_service_pb2_grpc.CampaignServiceStub(campaign_channel)
        if apns is not None:
            from clarion.campaign.v1 import site_service_pb2_grpc
            from clarion.demo_browsers import legacy_safari_request

            steps.append("SetLegacySafari")
            await rpc(
                "SetLegacySafari",
                site_service_pb2_grpc.SiteServiceStub(campaign_channel).SetLegacySafari(
                    legacy_safari_request(apns.key.p8, apns.key.key_id, apns.key.team_id),
                    metadata=metadata,
                    timeout=60,
                ),
            )
            apns_before = apns.stats()

        steps.append("BatchRegisterSubscribers")
        started = time.perf_counter()
        indexes = list(range(len(audience)))
        batches = [
            indexes[i : i + REGISTER_BATCH] for i in range(0, len(audience), REGISTER_BATCH)
        ]

        def subscription(index: int) -> Any:
            if apns is not None:
                from clarion.demo_browsers import WEBSITE_PUSH_ID

                return segment_service_pb2.RegisterSubscriberRequest(
                    apns_device=common_pb2.ApnsDevice(
                        device_token=devices[index], topic=WEBSITE_PUSH_ID
                    ),
                    browser=common_pb2.BROWSER_SAFARI_LEGACY,
                    timezone="UTC",
                )
            s = audience[index]
            return segment_service_pb2.RegisterSubscriberRequest(
                push_subscription=common_pb2.PushSubscription(
                    endpoint=s.endpoint, p256dh=s.p256dh, auth=s.auth
                ),
                browser=common_pb2.BROWSER_CHROME,
                timezone="UTC",
            )

        async def register(batch: list[int]) -> None:
            request = segment_service_pb2.BatchRegisterSubscribersRequest(
                requests=[subscription(index) for index in batch]
            )
            response = await rpc(
                "BatchRegisterSubscribers",
                segments.BatchRegisterSubscribers(request, metadata=metadata, timeout=120),
            )
            if len(response.responses) != len(batch):
                raise PartFailed(
                    f"BatchRegisterSubscribers answered {len(response.responses)} of {len(batch)}"
                )

        await in_flight(batches, register, REGISTER_IN_FLIGHT)
        register_seconds = time.perf_counter() - started
        progress(f"  registered {len(audience):,} in {register_seconds:.1f} s; sending")

        steps.append("CreateCampaign")
        request = campaign_service_pb2.CreateCampaignRequest(
            name="Delivery benchmark",
            notification=common_pb2.Notification(
                title=message.title, body=message.body, target_url=message.target_url
            ),
            ttl_seconds=TTL_SECONDS,
            urgency=common_pb2.URGENCY_NORMAL,
            request_id=secrets.token_hex(8),
        )
        created = await rpc(
            "CreateCampaign", campaigns.CreateCampaign(request, metadata=metadata, timeout=30)
        )

        steps.append("SendCampaignNow")
        posts_before = sink.requests()
        window = Window(sink, postgres)
        window.start()
        send = campaign_service_pb2.SendCampaignNowRequest(
            campaign_id=created.campaign.campaign_id, request_id=secrets.token_hex(8)
        )
        sent = await rpc(
            "SendCampaignNow", campaigns.SendCampaignNow(send, metadata=metadata, timeout=120)
        )
        send_call_seconds = window.elapsed()

        steps.append("waiting for the run (GetRun)")
        get_run = campaign_service_pb2.GetRunRequest(run_id=sent.run.run_id)
        deadline = time.monotonic() + timeout
        while True:
            answer = await rpc("GetRun", campaigns.GetRun(get_run, metadata=metadata, timeout=30))
            run, p = answer.run, answer.run.progress
            settled = p.sent + p.failed + p.suppressed + p.expired
            if run.state == campaign_pb2.RUN_STATE_DONE and settled >= run.audience:
                break
            if run.state == campaign_pb2.RUN_STATE_FAILED:
                raise PartFailed(f"the run failed: {run.failure_reason}")
            if time.monotonic() > deadline:
                raise PartFailed(
                    f"the run is not done after {timeout:.0f} s: state "
                    f"{campaign_pb2.RunState.Name(run.state)}, {settled} of {run.audience} settled"
                )
            await asyncio.sleep(POLL_SECONDS)
        window.stop()
        posts = sink.requests() - posts_before - 1  # the second status request counts itself
        if run.audience != len(audience) or p.sent != len(audience):
            raise PartFailed(
                f"audience {run.audience} of {len(audience)} subscribers; sent {p.sent}, "
                f"failed {p.failed}, suppressed {p.suppressed}, expired {p.expired}"
            )
        extras = {
            "postgres_statements": postgres.top_statements() if postgres is not None else None,
            "send_call_seconds": send_call_seconds,
            "register_seconds": register_seconds,
            "sink_requests": posts,
            "endpoint_flag": flag,
        }
        if apns is not None:
            after = apns.stats()
            accepted = after["accepted"] - apns_before["accepted"]
            extras["apns_duplicates"] = after["duplicates"] - apns_before["duplicates"]
            if accepted < p.sent:
                raise PartFailed(f"the run says {p.sent} sent but APNs accepted {accepted}")
        elif posts < p.sent:
            raise PartFailed(f"the run says {p.sent} sent but the sink saw {posts} requests")
        return Run(f"clarion_{database}", len(audience), window, extras)
    finally:
        for channel in channels:
            await channel.close()
        for process in extra:
            await process.stop()
        await stack.stop()


# --- The whole benchmark --------------------------------------------------------------


def spread(values: list[float], digits: int) -> dict[str, Any] | None:
    if not values:
        return None
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "runs": [round(v, digits) for v in values],
    }


@dataclass
class Plan:
    subscribers: int
    repeat: int
    modes: tuple[str, ...]
    quick: bool
    apns_recipients: int = APNS_RECIPIENTS
    # Subscribers of the --rss-1m run; 0: no such run.
    rss_subscribers: int = 0


def make_large_audience(count: int, sink: NginxSink, keys: list[Subscriber]) -> list[Subscriber]:
    """`count` subscriptions with their own endpoints sharing the keys of `keys` in turn
    (a million fresh P-256 keys would take the benchmark minutes to make; delivery's
    memory does not depend on them being distinct)."""
    shared = [(key.p256dh, key.auth) for key in keys]
    return [Subscriber(sink.endpoint(i), *shared[i % len(shared)]) for i in range(count)]


async def measure(plan: Plan, workdir: Path) -> dict[str, Any]:
    load_at_start = loadavg()
    sink = NginxSink.start(workdir / "nginx")
    postgres: Postgres | None = None
    errors: dict[str, str] = {}
    runs: dict[str, list[Run]] = {mode: [] for mode in MODES}
    ratio_runs: dict[str, dict[str, list[float]]] = {r: {d: [] for d in DATABASES} for r in RATIOS}
    two_process_ratios: list[float] = []
    native_ratios: list[float] = []
    apns: ApnsProcess | None = None
    rss_run: Run | None = None
    try:
        if "clarion_apns" in plan.modes:
            try:
                apns = ApnsProcess(workdir)
            except (RuntimeError, OSError, ImportError) as error:
                errors["apns"] = f"APNs simulator: {type(error).__name__}: {error}"
        if {"clarion_postgres", "clarion_postgres_2proc"} & set(plan.modes):
            try:
                postgres = Postgres.start(workdir / "postgres")
            except (RuntimeError, OSError, ImportError) as error:
                errors["postgres"] = f"PostgreSQL: {type(error).__name__}: {error}"
        progress(f"sink {sink.version} on {sink.origin}; {plan.subscribers} subscriptions")
        audience = make_audience(plan.subscribers, sink)
        message = make_message()
        # Generous: a run slower than 50 msg/s (or a registration slower than that) is
        # reported as a failure rather than waited for.
        clarion_timeout = max(120.0, plan.subscribers / 50)
        for rep in range(plan.repeat):
            rates: dict[str, float] = {}
            for mode in plan.modes:
                # Errors are kept per database for Clarion, per sender for the others.
                key = mode.removeprefix("clarion_")
                clarion = mode.startswith("clarion_")
                database = "postgres" if key.startswith("postgres") else "sqlite"
                if clarion and (key in errors or (database == "postgres" and "postgres" in errors)):
                    continue  # it failed before: it would again
                if mode == "clarion_apns" and "apns" in errors:
                    continue
                progress(f"repetition {rep + 1}/{plan.repeat}: {mode}")
                steps: list[str] = []
                failure = None
                try:
                    if mode == "pywebpush":
                        run = await run_pywebpush(audience, message, sink)
                    elif mode == "bare_http":
                        run = await run_bare(audience, message, sink)
                    elif mode == "bare_native":
                        run = await run_bare_native(audience, message, sink)
                    elif mode == "encrypt_batch":
                        run = run_encrypt_batch(audience, message, sink)
                    else:
                        recipients = audience
                        if mode == "clarion_apns":
                            # Only the count matters: the devices are the simulator's.
                            recipients = [audience[0]] * plan.apns_recipients
                        run = await asyncio.wait_for(
                            run_clarion(
                                database, recipients, message, sink,
                                workdir / f"{mode}-{rep}",
                                postgres if database == "postgres" else None,
                                clarion_timeout, steps,
                                delivery_processes=2 if mode == "clarion_postgres_2proc" else 1,
                                apns=apns if mode == "clarion_apns" else None,
                            ),
                            clarion_timeout * 2,
                        )  # fmt: skip
                        run.mode = mode
                except PartFailed as error:
                    failure = str(error)
                except TimeoutError:
                    failure = f"{steps[-1]}: not done after {clarion_timeout * 2:.0f} s"
                except Exception as error:
                    if not clarion:
                        raise
                    # A Clarion under construction may raise anything: report it, go on.
                    where = f"{steps[-1]}: " if steps else ""
                    failure = f"{where}{type(error).__name__}: {error}"
                if failure is not None:
                    errors[key] = failure
                    progress(f"  {mode} failed: {failure}")
                    continue
                runs[mode].append(run)
                rates[mode] = run.rate
                progress(f"  {run.rate:,.0f} msg/s in {run.window.wall:.2f} s")
            for database in DATABASES:
                rate = rates.get(f"clarion_{database}")
                for ratio, baseline in RATIOS.items():
                    if rate is not None and baseline in rates:
                        ratio_runs[ratio][database].append(rate / rates[baseline])
            rate = rates.get("clarion_postgres_2proc")
            if rate is not None and "pywebpush" in rates:
                two_process_ratios.append(rate / rates["pywebpush"])
            if "bare_native" in rates and "pywebpush" in rates:
                native_ratios.append(rates["bare_native"] / rates["pywebpush"])
        if plan.rss_subscribers:
            progress(f"delivery RSS: one Clarion run of {plan.rss_subscribers:,} on sqlite")
            large = make_large_audience(plan.rss_subscribers, sink, audience)
            steps = []
            try:
                rss_run = await run_clarion(
                    "sqlite", large, message, sink, workdir / "rss-run", None,
                    max(120.0, plan.rss_subscribers / 50), steps,
                )  # fmt: skip
                progress(
                    f"  {rss_run.rate:,.0f} msg/s; delivery peak RSS "
                    f"{rss_run.window.delivery_peak_rss_mb:.0f} MiB"
                )
            except Exception as error:
                where = f"{steps[-1]}: " if steps else ""
                errors["rss_1m"] = f"{where}{type(error).__name__}: {error}"
            del large
        postgres_version = None
        if postgres is not None:
            with contextlib.suppress(Exception):
                postgres_version = f"{postgres.version} ({postgres.description})"
    finally:
        sink.stop()
        if postgres is not None:
            postgres.stop()
        if apns is not None:
            apns.stop()

    def per_mode(
        figure: Callable[[Run], float], digits: int, modes: Iterable[str] = MODES
    ) -> dict[str, Any]:
        return {mode: spread([figure(r) for r in runs[mode]], digits) for mode in modes}

    def ratios(ratio: str) -> dict[str, Any]:
        return {d: spread(ratio_runs[ratio][d], 3) for d in DATABASES}

    clarion_modes = [f"clarion_{d}" for d in DATABASES]
    result: dict[str, Any] = {
        "pywebpush_msgs_per_s": spread([r.rate for r in runs["pywebpush"]], 1),
        "bare_http_msgs_per_s": spread([r.rate for r in runs["bare_http"]], 1),
        # The native send loop alone (encrypt + post, no state): the most any design of
        # delivery on the native client could reach here.
        "bare_native_msgs_per_s": spread([r.rate for r in runs["bare_native"]], 1),
        "bare_native_vs_pywebpush": spread(native_ratios, 3),
        "clarion_msgs_per_s": {
            d: spread([r.rate for r in runs[f"clarion_{d}"]], 1) for d in DATABASES
        },
        "send_call_seconds": {
            d: spread([r.extras["send_call_seconds"] for r in runs[f"clarion_{d}"]], 3)
            for d in DATABASES
        },
        "ratio_vs_pywebpush": ratios("ratio_vs_pywebpush"),
        "ratio_of_http_ceiling": ratios("ratio_of_http_ceiling"),
        # Two delivery processes on one PostgreSQL database.
        "clarion_2proc_msgs_per_s": spread([r.rate for r in runs["clarion_postgres_2proc"]], 1),
        "ratio_vs_pywebpush_2proc": spread(two_process_ratios, 3),
        # Legacy Safari: APNs device tokens through the APNs simulator (its own process),
        # on the embedded default.
        "apns_msgs_per_s": spread([r.rate for r in runs["clarion_apns"]], 1),
        "apns_recipients": plan.apns_recipients if "clarion_apns" in plan.modes else None,
        "encrypt_batch_msgs_per_s": spread([r.rate for r in runs["encrypt_batch"]], 1),
        "ratio_of_crypto_ceiling": ratios("ratio_of_crypto_ceiling"),
        # The delivery process's peak RSS per Clarion run (VmHWM of that process alone).
        "delivery_peak_rss_mb": per_mode(
            lambda r: r.window.delivery_peak_rss_mb, 1, CLARION_MODES
        ),
        "delivery_rss_mb_at_1m": (
            round(rss_run.window.delivery_peak_rss_mb, 1) if rss_run is not None else None
        ),
        "rss_run": (
            {
                "subscribers": rss_run.messages,
                "msgs_per_s": round(rss_run.rate, 1),
                "seconds": round(rss_run.window.wall, 1),
                "register_seconds": round(rss_run.extras["register_seconds"], 1),
                "target_mb": RSS_TARGET_MB,
            }
            if rss_run is not None
            else None
        ),
        "loadavg": loadavg(),
        "postgres_statements": next(
            (
                r.extras["postgres_statements"]
                for r in runs["clarion_postgres"][::-1]
                if r.extras.get("postgres_statements")
            ),
            None,
        ),
        "cpu_ms_per_msg": per_mode(
            lambda r: (r.window.cpu + r.window.database_cpu) * 1e3 / r.messages, 4
        ),
        "peak_rss_mb": per_mode(lambda r: r.window.peak_rss_mb, 1),
        "loadavg_1m_at_start": load_at_start[0],
        "clarion_error": {
            k: errors[k] for k in (*DATABASES, "postgres_2proc", "apns", "rss_1m") if k in errors
        }
        or None,
        # Extras: context and breakdowns.
        "subscribers": plan.subscribers,
        "repeat": plan.repeat,
        "modes": list(plan.modes),
        "in_flight": IN_FLIGHT,
        "payload_bytes": PAYLOAD_BYTES,
        "seconds": per_mode(lambda r: r.window.wall, 3),
        "rss_at_start_mb": per_mode(lambda r: r.window.rss_at_start_mb, 1),
        "sink_cpu_ms_per_msg": per_mode(lambda r: r.window.sink_cpu * 1e3 / r.messages, 4),
        "database_cpu_ms_per_msg": per_mode(
            lambda r: r.window.database_cpu * 1e3 / r.messages, 4, ["clarion_postgres"]
        ),
        "register_seconds": per_mode(lambda r: r.extras["register_seconds"], 2, CLARION_MODES),
        "errors": {
            m: errors[m]
            for m in ("pywebpush", "bare_http", "bare_native", "encrypt_batch")
            if m in errors
        }
        or None,
        "loadavg_at_end": loadavg(),
        "cpu_count": len(os.sched_getaffinity(0)),
        "sink": f"{sink.version}, 1 worker, 201 to every POST on {sink.origin}/push/<i>",
        "postgres": postgres_version,
        "clarion_endpoint_flag": next(
            (r.extras["endpoint_flag"] for m in clarion_modes for r in runs[m]), None
        ),
        "pywebpush_api": "WebPusher(subscription, aiohttp_session).send_async, VAPID signed once",
        "python": platform.python_version(),
        "pywebpush": importlib.metadata.version("pywebpush"),
        "aiohttp": aiohttp.__version__,
        "quick": plan.quick,
    }
    result["targets_met"] = {
        f"ratio_vs_pywebpush_{d}": (
            None if result["ratio_vs_pywebpush"][d] is None
            else result["ratio_vs_pywebpush"][d]["median"] >= TARGETS["ratio_vs_pywebpush"]
        )
        for d in DATABASES
    }  # fmt: skip
    if rss_run is not None:
        result["targets_met"]["delivery_rss_mb_at_1m"] = (
            rss_run.window.delivery_peak_rss_mb < RSS_TARGET_MB
        )
    return result


def table(result: dict[str, Any]) -> str:
    def cell(stats: dict[str, Any] | None, fmt: str, unit: str) -> str:
        if stats is None:
            return "-"
        low, high = format(stats["min"], fmt), format(stats["max"], fmt)
        return f"{format(stats['median'], fmt)} {unit} [{low} .. {high}]"

    rows: list[tuple[str, str, str]] = [
        (
            "pywebpush",
            cell(result["pywebpush_msgs_per_s"], ",.0f", "msg/s"),
            "async, 100 in flight",
        ),
        (
            "bare aiohttp POST",
            cell(result["bare_http_msgs_per_s"], ",.0f", "msg/s"),
            "HTTP ceiling",
        ),
    ]
    for database in DATABASES:
        rows += [
            (
                f"clarion {database}",
                cell(result["clarion_msgs_per_s"][database], ",.0f", "msg/s"),
                "end to end",
            ),
            (
                "  vs pywebpush",
                cell(result["ratio_vs_pywebpush"][database], ".2f", "x"),
                "target >= 2",
            ),
            ("  of HTTP ceiling", cell(result["ratio_of_http_ceiling"][database], ".2f", ""), ""),
            (
                "  SendCampaignNow",
                cell(result["send_call_seconds"][database], ".3f", "s"),
                "the call itself",
            ),
        ]
    rows += [
        (
            "clarion postgres, 2 delivery procs",
            cell(result["clarion_2proc_msgs_per_s"], ",.0f", "msg/s"),
            f"vs pywebpush {cell(result['ratio_vs_pywebpush_2proc'], '.2f', 'x')}",
        ),
        (
            "clarion legacy Safari (APNs)",
            cell(result["apns_msgs_per_s"], ",.0f", "msg/s"),
            f"{result['apns_recipients'] or 0:,} devices, APNs simulator",
        ),
        (
            "encrypt_batch (native crypto)",
            cell(result["encrypt_batch_msgs_per_s"], ",.0f", "msg/s"),
            "both cores, the crypto ceiling",
        ),
    ]
    for database in DATABASES:
        rows.append(
            (f"  {database} of crypto ceiling",
             cell(result["ratio_of_crypto_ceiling"][database], ".2f", ""), "")
        )  # fmt: skip
    for mode in CLARION_MODES:
        rows.append(
            (f"delivery RSS {mode}", cell(result["delivery_peak_rss_mb"][mode], ".0f", "MiB"),
             "the delivery process alone")
        )  # fmt: skip
    if result["delivery_rss_mb_at_1m"] is not None:
        rows.append(
            ("delivery RSS at 1M", f"{result['delivery_rss_mb_at_1m']:.0f} MiB",
             f"target < {RSS_TARGET_MB}")
        )  # fmt: skip
    for mode in MODES:
        rows.append(
            (f"CPU {mode}", cell(result["cpu_ms_per_msg"][mode], ".3f", "ms/msg"),
             f"peak RSS {cell(result['peak_rss_mb'][mode], '.0f', 'MiB')}")
        )  # fmt: skip
    width = max(len(r[0]) for r in rows)
    lines = [f"{name:<{width}}  {value:<36}  {note}" for name, value, note in rows]
    lines.append(
        f"({result['subscribers']:,} subscribers, {result['repeat']} repetitions, median [min .. max]; "
        f"{result['sink']}; load {result['loadavg_1m_at_start']})"
    )
    for database, error in (result["clarion_error"] or {}).items():
        lines.append(f"clarion {database} not measured: {error}")
    for mode, error in (result["errors"] or {}).items():
        lines.append(f"{mode} not measured: {error}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.delivery", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--quick", action="store_true",
        help=f"a short smoke run ({QUICK_SUBSCRIBERS} subscribers, one repetition)",
    )  # fmt: skip
    parser.add_argument(
        "--subscribers", type=int, metavar="N", help=f"default {DEFAULT_SUBSCRIBERS}"
    )
    parser.add_argument("--repeat", type=int, metavar="R", help=f"default {DEFAULT_REPEAT}")
    parser.add_argument(
        "--only", metavar="MODES",
        help=f"a comma-separated subset of {','.join(MODES)} (default: all, in this order)",
    )  # fmt: skip
    parser.add_argument(
        "--apns", type=int, metavar="N",
        help=f"legacy Safari devices of the APNs run (default {APNS_RECIPIENTS}; "
        f"--quick: {QUICK_APNS_RECIPIENTS})",
    )  # fmt: skip
    parser.add_argument(
        "--rss-1m", action="store_true",
        help=f"also one run of {RSS_SUBSCRIBERS:,} subscribers on the embedded default, for "
        "the delivery process's peak RSS (delivery_rss_mb_at_1m; about 10 minutes)",
    )  # fmt: skip
    parser.add_argument(
        "--rss-subscribers", type=int, metavar="N", help=argparse.SUPPRESS
    )  # the --rss-1m run with another N (to try it out)
    args = parser.parse_args(argv)
    modes: tuple[str, ...] = MODES
    if args.only:
        modes = tuple(m for m in MODES if m in args.only.split(","))
        unknown = set(args.only.split(",")) - set(MODES)
        if unknown or not modes:
            parser.error(f"--only takes {', '.join(MODES)}; got {args.only}")
    subscribers = args.subscribers or (QUICK_SUBSCRIBERS if args.quick else DEFAULT_SUBSCRIBERS)
    repeat = args.repeat or (1 if args.quick else DEFAULT_REPEAT)
    if subscribers < 1 or repeat < 1:
        parser.error("--subscribers and --repeat must be positive")
    apns = args.apns or (QUICK_APNS_RECIPIENTS if args.quick else APNS_RECIPIENTS)
    rss = args.rss_subscribers or (RSS_SUBSCRIBERS if args.rss_1m else 0)
    if apns < 1 or rss < 0:
        parser.error("--apns and --rss-subscribers must be positive")
    plan = Plan(subscribers, repeat, modes, args.quick, apns, rss)

    # Clarion's logs go to stderr (stdout carries only the result), warnings and up.
    with contextlib.suppress(Exception):
        from services.kit.logging import configure_logging

        configure_logging("console", "WARNING")
    with tempfile.TemporaryDirectory(prefix="clarion-bench-delivery-") as tmp:
        os.chmod(tmp, 0o755)  # the postgres user must reach its cluster directory
        try:
            result = asyncio.run(measure(plan, Path(tmp)))
        except SinkUnavailable as error:
            print(f"benchmarks.delivery: no sink: {error}", file=sys.stderr)
            return EXIT_NO_SINK
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
