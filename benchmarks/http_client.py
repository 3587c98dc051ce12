"""A lean HTTP/1.1 load generator: keep-alive connections, one request in flight on each.

The HTTP benchmark needs a client that costs the machine much less than the
servers it loads. With httpx's async client at 64 connections the client set
the pace: 110-140 requests/s on every endpoint of every server, so every ratio
read about 1.0, where this client measured 400-1,600 (2026-12-05, PostgreSQL
and SQLite). It writes each request as bytes and reads back only the status
line, ``Content-Length`` and the body: about 0.1 ms of CPU per request, a
tenth of what a server spends on one. It speaks to uvicorn on 127.0.0.1 and
nothing else (no TLS, no chunked bodies, no redirects).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Request:
    """One request of a load: method, path, JSON body, and the status that counts as success."""

    method: str
    path: str
    body: bytes | None = None
    expect: int = 200

    def encode(self, host: str) -> bytes:
        """Return the request as sent on the wire."""
        head = f"{self.method} {self.path} HTTP/1.1\r\nHost: {host}\r\n"
        if self.body is None:
            return (head + "\r\n").encode()
        head += f"Content-Type: application/json\r\nContent-Length: {len(self.body)}\r\n\r\n"
        return head.encode() + self.body


class Connection:
    """One keep-alive connection; reopened when the server closes it."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        """Connect (again)."""
        await self.close()
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        """Close the socket if it is open."""
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None

    async def send(self, raw: bytes) -> tuple[int, bytes]:
        """Send one encoded request; return the response's status and body."""
        if self._writer is None:
            await self.open()
        assert self._reader is not None
        assert self._writer is not None
        self._writer.write(raw)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        close = False
        for line in head[:-4].split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection":
                close = value.strip().lower() == b"close"
            elif name == b"transfer-encoding":
                raise ConnectionError(f"Unsupported Transfer-Encoding {value.strip()!r}.")
        body = await self._reader.readexactly(length) if length else b""
        if close:
            await self.close()
        return status, body


@dataclass
class LoadResult:
    """What one load run measured."""

    seconds: float
    latencies: list[float] = field(default_factory=list)  # seconds, of every completed request
    succeeded: list[Request] = field(default_factory=list)  # answered with the expected status
    failed: int = 0  # another status, or a transport error
    errors: list[str] = field(default_factory=list)  # the first few failures, for the report
    exhausted: bool = False  # the requests ran out before the deadline

    @property
    def rps(self) -> float:
        """Return the completed requests per second."""
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    @property
    def p99_ms(self) -> float:
        """Return the 99th percentile latency in milliseconds."""
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[max(0, int(len(ordered) * 0.99) - 1)] * 1000


async def load(
    host: str, port: int, requests: Iterator[Request], duration: float, concurrency: int
) -> LoadResult:
    """Send ``requests`` from ``concurrency`` connections for ``duration`` seconds.

    The connections are opened before the clock starts. Each takes the next
    request from the shared iterator when its previous one is answered; the run
    ends at the deadline (requests in flight are awaited and counted) or when
    the iterator is exhausted.
    """
    connections = [Connection(host, port) for _ in range(concurrency)]
    await asyncio.gather(*(c.open() for c in connections))
    address = f"{host}:{port}"
    result = LoadResult(0.0)
    deadline = 0.0

    async def worker(connection: Connection) -> None:
        while time.perf_counter() < deadline:
            request = next(requests, None)
            if request is None:
                result.exhausted = True
                return
            raw = request.encode(address)
            start = time.perf_counter()
            try:
                status, body = await connection.send(raw)
            except (OSError, EOFError, asyncio.IncompleteReadError, ValueError) as error:
                result.failed += 1
                if len(result.errors) < 5:
                    result.errors.append(f"{request.method} {request.path}: {error!r}")
                await connection.close()
                continue
            result.latencies.append(time.perf_counter() - start)
            if status == request.expect:
                result.succeeded.append(request)
            else:
                result.failed += 1
                if len(result.errors) < 5:
                    result.errors.append(
                        f"{request.method} {request.path}: {status} {body[:200]!r}"
                    )

    try:
        started = time.perf_counter()
        deadline = started + duration
        await asyncio.gather(*(worker(c) for c in connections))
        result.seconds = time.perf_counter() - started
    finally:
        await asyncio.gather(*(c.close() for c in connections))
    return result
