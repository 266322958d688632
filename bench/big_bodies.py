"""What each ASGI server does with oversized request bodies, measured (issue #13, part 2).

    .venv/bin/python -m bench.big_bodies [--clients 20] [--mb 200] [--servers daphne,uvicorn,granian]

For each server (tests/support/processes.server_argv: daphne runs the whole product, uvicorn and
granian the API plane on its own) on a temporary SQLite world, with MAX_REQUEST_BYTES at its
default (8 MiB): `--clients` clients at once each POST `--mb` MB to /v1/chat/completions with a
valid key, once declaring the size (Content-Length) and once chunked. A client sends in 1 MB
blocks until the whole body is sent or the server answers or closes the connection.

Meanwhile the resident memory (RSS) of the server's whole process tree is sampled every 50 ms,
and so is the size of the temporary files it holds open (Twisted spools request bodies to an
unlinked temporary file). Printed per server and mode: baseline and peak RSS, peak minus baseline,
the RSS a second after the last answer, peak spooled bytes, how many clients got 413, how long the answer took, and how much each
client had sent by the time it came (what the server made it send).

Docs: docs/request-size.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.process_tree import descendants
from tests.support.stack import Stack, sqlite_database_url
from tests.support.world import MAIN_PROJECT, standard_world

MB = 1024 * 1024
DEFAULT_LIMIT = 8 * MB  # settings.MAX_REQUEST_BYTES's default
BLOCK = b"x" * MB
PATH = "/v1/chat/completions"
SAMPLE_EVERY = 0.05
CLIENT_TIMEOUT = 120.0


# --- sampling the server's memory ---------------------------------------------------------
def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def _spooled_bytes(pid: int) -> int:
    """Bytes in deleted (temporary) regular files the process holds open."""
    total = 0
    fd_dir = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return 0
    for fd in fds:
        path = f"{fd_dir}/{fd}"
        try:
            if not os.readlink(path).endswith("(deleted)"):
                continue
            total += os.stat(path).st_size
        except OSError:
            continue
    return total


class Sampler(threading.Thread):
    """RSS of `root` and its descendants (re-listed every second), every 50 ms."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.pids = [root, *descendants(root)]
        self.listed_at = time.monotonic()
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.peak_rss = 0
        self.peak_spooled = 0
        self.samples = 0

    def sample(self) -> tuple[int, int]:
        if time.monotonic() - self.listed_at > 1.0:
            self.pids = [self.root, *descendants(self.root)]
            self.listed_at = time.monotonic()
        rss = sum(_rss_bytes(pid) for pid in self.pids)
        spooled = sum(_spooled_bytes(pid) for pid in self.pids)
        return rss, spooled

    def reset(self) -> None:
        with self.lock:
            self.peak_rss = self.peak_spooled = self.samples = 0

    def run(self) -> None:
        while not self.stop_event.is_set():
            rss, spooled = self.sample()
            with self.lock:
                self.peak_rss = max(self.peak_rss, rss)
                self.peak_spooled = max(self.peak_spooled, spooled)
                self.samples += 1
            self.stop_event.wait(SAMPLE_EVERY)

    def baseline(self, seconds: float = 1.0) -> int:
        """Median RSS over `seconds` of quiet."""
        values = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            values.append(self.sample()[0])
            time.sleep(SAMPLE_EVERY)
        return int(statistics.median(values))


# --- one client -------------------------------------------------------------------------
@dataclass
class Outcome:
    status: int | None = None  # None: no answer (connection closed or reset without one)
    seconds: float = 0.0  # from connect to the answer's status line (or the end)
    sent: int = 0  # body bytes the client had sent when it stopped
    error: str = ""


async def one_client(host: str, port: int, key: str, size: int, chunked: bool) -> Outcome:
    """One upload on a raw socket: sending and reading are independent, so a 413 sent while
    the client is still sending is read even when the server then closes (or resets) the
    connection under the client's next write."""
    loop = asyncio.get_running_loop()
    outcome = Outcome()
    started = time.monotonic()
    sock = socket.socket()
    sock.setblocking(False)
    await loop.sock_connect(sock, (host, port))
    head = [
        f"POST {PATH} HTTP/1.1",
        f"Host: {host}:{port}",
        f"Authorization: Bearer {key}",
        f"OpenAI-Project: {MAIN_PROJECT}",
        "Content-Type: application/json",
        "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}",
    ]
    answered = asyncio.Event()

    async def read_answer() -> None:
        data = b""
        try:
            while b"\r\n" not in data:
                got = await loop.sock_recv(sock, 65536)
                if not got:
                    outcome.error = "closed without an answer"
                    return
                data += got
            outcome.status = int(data.split(b"\r\n")[0].split()[1])
            outcome.seconds = time.monotonic() - started
        except OSError as exc:
            outcome.error = f"{type(exc).__name__} before an answer"
        finally:
            answered.set()

    async def send_body() -> None:
        left = size
        try:
            await loop.sock_sendall(sock, ("\r\n".join(head) + "\r\n\r\n").encode())
            while left > 0 and not answered.is_set():
                block = BLOCK if left >= MB else BLOCK[:left]
                if chunked:
                    await loop.sock_sendall(sock, f"{len(block):x}\r\n".encode())
                await loop.sock_sendall(sock, block)
                if chunked:
                    await loop.sock_sendall(sock, b"\r\n")
                left -= len(block)
                outcome.sent += len(block)
            if chunked and left == 0 and not answered.is_set():
                await loop.sock_sendall(sock, b"0\r\n\r\n")
        except OSError:
            pass  # the server stopped reading and closed: it cut the body off

    reading = asyncio.ensure_future(read_answer())
    try:
        await asyncio.wait_for(asyncio.gather(send_body(), reading), CLIENT_TIMEOUT)
    except TimeoutError:
        outcome.error = "timeout"
        reading.cancel()
    finally:
        sock.close()
    if not outcome.seconds:
        outcome.seconds = time.monotonic() - started
    return outcome


async def burst(host: str, port: int, key: str, clients: int, size: int, chunked: bool):
    return await asyncio.gather(
        *(one_client(host, port, key, size, chunked) for _ in range(clients))
    )


# --- a server, two modes ------------------------------------------------------------------
@dataclass
class Row:
    server: str
    mode: str
    baseline: int
    peak: int
    spooled: int
    after: int  # RSS a second after the last answer: is the memory given back?
    outcomes: list[Outcome] = field(default_factory=list)
    wall: float = 0.0


def measure(server: str, world_dir: Path, key: str, args) -> list[Row]:
    stack = Stack(
        server=server,
        database_url=sqlite_database_url(world_dir),
        var_dir=world_dir,
        env={"MAX_REQUEST_BYTES": str(DEFAULT_LIMIT)},
    )
    rows = []
    try:
        stack.start_servers(1)
        process, port = stack.servers[0]
        # Warm up: the first API request loads the gateway (caches, db threads).
        import httpx

        httpx.get(
            f"{stack.url}/v1/models",
            headers={"Authorization": f"Bearer {key}", "OpenAI-Project": MAIN_PROJECT},
            timeout=30,
        )
        sampler = Sampler(process.pid)
        for mode, chunked in (("content-length", False), ("chunked", True)):
            time.sleep(0.5)
            baseline = sampler.baseline()
            sampler.reset()
            if not sampler.is_alive():
                sampler.start()
            started = time.monotonic()
            outcomes = asyncio.run(
                burst("127.0.0.1", port, key, args.clients, args.mb * MB, chunked)
            )
            wall = time.monotonic() - started
            time.sleep(1.0)  # let the sampler see what follows the answers
            after = sampler.sample()[0]
            with sampler.lock:
                peak, spooled = sampler.peak_rss, sampler.peak_spooled
            row = Row(
                server, mode, baseline, max(peak, baseline, after), spooled, after, outcomes, wall
            )
            rows.append(row)
            print(render_row(row), flush=True)
        sampler.stop_event.set()
    finally:
        stack.stop()
    return rows


# --- the table ----------------------------------------------------------------------------
HEADER = (
    "| server | mode | baseline RSS | peak RSS | peak − baseline | RSS 1 s later "
    "| peak spooled to disk | 413s | answer after (median / max) "
    "| client had sent (median / max) | run |\n"
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def _mb(value: float) -> str:
    return f"{value / MB:.0f} MB"


def render_row(row: Row) -> str:
    got = sum(1 for o in row.outcomes if o.status == 413)
    others = {}
    for o in row.outcomes:
        if o.status != 413:
            label = str(o.status) if o.status else (o.error or "no answer")
            others[label] = others.get(label, 0) + 1
    extra = "".join(f", {n}× {label}" for label, n in sorted(others.items()))
    seconds = [o.seconds for o in row.outcomes]
    sent = [o.sent for o in row.outcomes]
    return (
        f"| {row.server} | {row.mode} | {_mb(row.baseline)} | {_mb(row.peak)} "
        f"| {_mb(row.peak - row.baseline)} | {_mb(row.after)} | {_mb(row.spooled)} "
        f"| {got}/{len(row.outcomes)}{extra} "
        f"| {statistics.median(seconds):.2f} s / {max(seconds):.2f} s "
        f"| {_mb(statistics.median(sent))} / {_mb(max(sent))} | {row.wall:.1f} s |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--mb", type=int, default=200, help="body size per client, MB")
    parser.add_argument("--servers", default="daphne,uvicorn,granian")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="big-bodies-") as tmp:
        world_dir = Path(tmp)
        setup = Stack(database_url=sqlite_database_url(world_dir), var_dir=world_dir)
        setup.migrate()
        setup.seed(standard_world(fake_engine_url=None))
        key = setup.api_keys["alice"]
        print(
            f"{args.clients} clients × {args.mb} MB to POST {PATH}, MAX_REQUEST_BYTES = "
            f"{DEFAULT_LIMIT} (the default); RSS of the server's process tree every 50 ms\n",
            flush=True,
        )
        print(HEADER, flush=True)
        rows = []
        for server in args.servers.split(","):
            rows += measure(server, world_dir, key, args)
    print()
    print(HEADER)
    for row in rows:
        print(render_row(row))
    if args.json:
        args.json.write_text(
            json.dumps(
                [
                    {
                        "server": r.server,
                        "mode": r.mode,
                        "baseline_rss": r.baseline,
                        "peak_rss": r.peak,
                        "peak_spooled": r.spooled,
                        "rss_after": r.after,
                        "wall_s": r.wall,
                        "outcomes": [o.__dict__ for o in r.outcomes],
                    }
                    for r in rows
                ],
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
