"""HTTP for the benchmark: servers in subprocesses on loopback, and a small asyncio client.

The client speaks just enough HTTP/1.1 (keep-alive, Content-Length or chunked bodies) to
drive a server with N concurrent connections for a bounded time while costing as little
CPU as possible: on a 2-core machine the client shares the cores with the server, and a
heavier client (httpx) would measure itself. Both sides of every comparison use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paywarden.bench.model import Outcome, Run, check

__all__ = ["Client", "Exhausted", "Load", "drive", "echo_limit", "server"]

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
HOST = "127.0.0.1"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT_S)


async def _ready(port: int, path: str) -> bool:
    try:
        client = await Client.open(port)
    except OSError:
        return False
    try:
        status, _body = await client.request("GET", path)
    except (OSError, asyncio.IncompleteReadError, ValueError):
        return False
    finally:
        await client.close()
    return status == 200


@contextmanager
def server(
    command: Sequence[str],
    *,
    ready_path: str,
    log_path: Path,
    cwd: Path,
    env: Mapping[str, str] | None = None,
) -> Iterator[int]:
    """Run ``command`` plus ``--host``/``--port`` until the block ends; yields the port."""
    port = _free_port()
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("PAYWARDEN_")}
    child_env.update(env or {})
    with log_path.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 -- our own interpreter and arguments
            [*command, "--host", HOST, "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=child_env,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not asyncio.run(_ready(port, ready_path)):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the server did not start: {' '.join(command)}\n{tail}")
            time.sleep(0.1)
        yield port
    finally:
        _stop(process)


def uvicorn_command(app: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--log-level",
        "warning",
        "--no-access-log",
    ]


class Client:
    """One keep-alive HTTP/1.1 connection to the loopback server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int):
        self._reader = reader
        self._writer = writer
        self._host = f"{HOST}:{port}".encode()

    @classmethod
    async def open(cls, port: int) -> Client:
        reader, writer = await asyncio.open_connection(HOST, port)
        return cls(reader, writer, port)

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: Sequence[tuple[str, str]] = (),
    ) -> tuple[int, bytes]:
        lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: " + self._host]
        if body or method == "POST":
            lines.append(b"Content-Type: application/json")
            lines.append(b"Content-Length: " + str(len(body)).encode())
        lines.extend(f"{name}: {value}".encode() for name, value in headers)
        self._writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        await self._writer.drain()
        status_line = await self._reader.readline()
        parts = status_line.split()
        if len(parts) < 2:
            raise ValueError(f"no HTTP status line: {status_line!r}")
        status = int(parts[1])
        length: int | None = None
        chunked = False
        while True:
            line = await self._reader.readline()
            if line in {b"\r\n", b"\n", b""}:
                break
            name, _, value = line.decode("latin-1").partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value.strip())
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
        if chunked:
            return status, await self._chunked()
        return status, await self._reader.readexactly(length or 0)

    async def _chunked(self) -> bytes:
        body = b""
        while True:
            size = int((await self._reader.readline()).split(b";")[0].strip(), 16)
            if size == 0:
                await self._reader.readline()
                return body
            body += await self._reader.readexactly(size)
            await self._reader.readline()


class Exhausted(Exception):
    """Raised by a step whose worker has nothing left to send: that worker stops."""


Step = Callable[[Client, int, int], Awaitable[str | None]]
CONNECT_GAP_S = 0.005  # (client, worker, seq) -> error


@dataclass
class Load:
    """What :func:`drive` saw: operations completed, errors, the time taken, latencies."""

    count: int = 0
    errors: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list)
    warm_count: int = 0  # operations completed while warming up (done, but not measured)


async def _drive(
    port: int, concurrency: int, duration_s: float, step: Step, warm_s: float = 0.0
) -> Load:
    clients = []
    for _ in range(concurrency):  # one after another, as clients arrive: with several server
        clients.append(await Client.open(port))  # processes, each is taken by one of them,
        await asyncio.sleep(CONNECT_GAP_S)  # not a burst by whichever process woke first
    seqs = [0] * concurrency
    try:
        warm = await _phase(clients, seqs, warm_s, step) if warm_s > 0 else Load()
        if warm.errors:
            return warm
        load = await _phase(clients, seqs, duration_s, step)
        load.warm_count = warm.count
        return load
    finally:
        for client in clients:
            await client.close()


async def _phase(clients: list[Client], seqs: list[int], duration_s: float, step: Step) -> Load:
    load = Load()
    started = time.perf_counter()
    deadline = started + duration_s

    async def worker(index: int) -> None:
        seq = seqs[index]
        client = clients[index]
        while time.perf_counter() < deadline and len(load.errors) < 10:
            t0 = time.perf_counter()
            try:
                error = await step(client, index, seq)
            except Exhausted:
                return
            except (OSError, ValueError, KeyError, asyncio.IncompleteReadError) as failure:
                error = f"{type(failure).__name__}: {failure}"
            load.latencies_s.append(time.perf_counter() - t0)
            seq += 1
            seqs[index] = seq
            if error is None:
                load.count += 1
            else:
                load.errors.append(error)
                return

    await asyncio.gather(*(worker(i) for i in range(len(clients))))
    load.elapsed_s = time.perf_counter() - started
    return load


def drive(
    port: int, concurrency: int, duration_s: float, step: Step, *, warm_s: float = 0.0
) -> Load:
    """Run ``step`` on ``concurrency`` connections until ``duration_s`` has passed, after
    ``warm_s`` seconds of the same on the same connections, not measured (every server
    process and connection warm: what is measured is the steady state)."""
    return asyncio.run(_drive(port, concurrency, duration_s, step, warm_s))


def echo_limit(
    app: str, *, concurrency: int, duration_s: float, scratch: Path, log_path: Path
) -> Outcome:
    """POST a small JSON body to ``app`` (``bare_app`` or ``fastapi_app``) and verify."""
    path = "/v1/echo"

    async def step(client: Client, worker: int, seq: int) -> str | None:
        amount = worker * 1_000_000 + seq
        status, body = await client.request("POST", path, json.dumps({"amount": amount}).encode())
        if status != 200:
            return f"status {status}: {body[:200]!r}"
        answer: Any = json.loads(body)
        if answer != {"ok": True, "amount": amount}:
            return f"unexpected answer {answer!r}"
        return None

    command = uvicorn_command(f"paywarden.bench.apps:{app}")
    ready = "/readyz" if app == "fastapi_app" else "/"
    with server(command, ready_path=ready, log_path=log_path, cwd=scratch) as port:
        load = drive(port, concurrency, duration_s, step)
    check(not load.errors, f"{len(load.errors)} requests failed, first: {load.errors[:1]}")
    check(load.count > 0, "no request completed")
    return Outcome(
        Run(
            load.count,
            load.elapsed_s,
            load.latencies_s,
            [f"{load.count} requests answered 200 with their own amount echoed"],
        )
    )
