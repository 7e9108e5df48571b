"""A lean HTTP/1.1 client for the data path: keep-alive connections to the serving agents.

The failover client and the gateway send every inference request to one of a few agents, the
same way each time. aiohttp's client spends most of a loopback round trip's CPU on generality
(request and response objects, cookie jar, tracing, a payload writer, auto headers,
decompression); this one writes the request line, the headers and the body in one
``transport.write`` and feeds the answer to httptools' response parser (llhttp, the parser
uvicorn uses: the HTTP grammar is a well-kept library's, not ours), which delimits the body by
``Content-Length``, chunked encoding or the connection's close. Idle connections are kept per
``(host, port)`` and reused.

Failures are those of ``faillite.client.oip.send`` (the callers classify them): ``OipTimeout``
when no full answer came within ``timeout`` (the connection is then closed: a late answer must
not be read as the next request's), ``OipConnectionError`` when the server could not be
reached, answered with something that is not HTTP/1.x, or closed the connection before the end
of its answer. A kept connection that turns out to be closed when reused, before any byte of the
answer, is replaced by a fresh one once. Usually the server closed it while idle and the request
never reached it; but a server killed while handling the request also resets before any byte,
so the request may have run once already: resending it is safe because inference is idempotent
(the same inputs give the same answer, and nothing else changes), and a dead server refuses the
fresh connection anyway. An idle connection that got unasked-for bytes or a close is dropped,
not reused. Only ``http://`` URLs: the caller uses aiohttp for anything else.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping
from typing import cast
from urllib.parse import urlsplit

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

from faillite.client.oip import OipConnectionError, OipTimeout

__all__ = ["ConnectionPool", "HttpProtocolError"]

_Answer = tuple[int, CIMultiDictProxy[str], bytes]
_MAX_IDLE = 32  # idle connections kept per host
_MAX_HEAD = 64 * 1024  # status line and headers


class HttpProtocolError(Exception):
    """The server's answer is not HTTP/1.x as this client reads it."""


class _Connection(asyncio.Protocol):
    """One TCP connection; one request at a time. The methods named ``on_*`` are httptools'
    parser callbacks."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.received_any = False
        self.keep_alive = True
        self._parser = httptools.HttpResponseParser(self)
        self._headers: CIMultiDict[str] = CIMultiDict()
        self._head_bytes = 0
        self._head_done = False
        self._body: list[bytes] = []
        self._waiter: asyncio.Future[_Answer] | None = None

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.transport is transport:
            return
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle wait on small writes

    def data_received(self, data: bytes) -> None:
        self.received_any = True
        waiter = self._waiter
        if waiter is None or waiter.done():
            self.keep_alive = False  # bytes nobody asked for: this connection is not reusable
            return
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, HttpProtocolError) as exc:
            self.keep_alive = False
            if not waiter.done():
                waiter.set_exception(HttpProtocolError(f"malformed answer: {exc}"))

    def eof_received(self) -> bool:
        self._closed(None)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed(exc)

    # -- httptools callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._waiter is None:  # a second answer to one request: not a connection to reuse
            self.keep_alive = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value)
        if self._head_bytes > _MAX_HEAD:
            raise HttpProtocolError("answer headers too long")
        self._headers.add(name.decode("latin-1"), value.decode("latin-1"))

    def on_headers_complete(self) -> None:
        self._head_done = True
        if not self._parser.should_keep_alive():
            self.keep_alive = False

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            status = self._parser.get_status_code()
            waiter.set_result((status, CIMultiDictProxy(self._headers), b"".join(self._body)))
        self._waiter = None  # anything after the answer is unasked for
        self._headers, self._body = CIMultiDict(), []

    # -- requests ----------------------------------------------------------------------------

    def send(self, data: bytes) -> asyncio.Future[_Answer]:
        assert self.transport is not None
        self._headers = CIMultiDict()
        self._head_bytes, self._head_done, self._body = 0, False, []
        self.received_any = False
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self._waiter

    def close(self) -> None:
        self.keep_alive = False
        if self.transport is not None and not self.closed:
            self.transport.close()

    def _closed(self, exc: Exception | None) -> None:
        self.closed = True
        self.keep_alive = False
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if exc is None and self._head_done and not self._delimited():
            # The body was delimited by a clean close (no Content-Length, not chunked); a reset
            # or an error may have cut it short, so that is a connection error.
            waiter.set_result(
                (self._parser.get_status_code(), CIMultiDictProxy(self._headers), b"".join(self._body))
            )
            return
        reason = f"{exc}" if exc else "the server closed the connection before answering in full"
        waiter.set_exception(ConnectionResetError(reason))

    def _delimited(self) -> bool:
        return (
            "Content-Length" in self._headers
            or "chunked" in self._headers.get("Transfer-Encoding", "").lower()
        )


def _expire(waiter: asyncio.Future[_Answer]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class _Target:
    __slots__ = ("host", "path", "port", "prefix")

    def __init__(self, host: str, port: int, path: str, host_header: str) -> None:
        self.host, self.port, self.path = host, port, path
        self.prefix = f" {path} HTTP/1.1\r\nHost: {host_header}\r\n"


class ConnectionPool:
    """Keep-alive connections per host for ``request``; ``close`` them all at the end."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        self._busy: set[_Connection] = set()
        self._targets: dict[str, _Target | None] = {}

    @property
    def in_flight(self) -> int:
        """Requests written and waiting for their answer now."""
        return len(self._busy)

    def supports(self, url: str) -> bool:
        return self._target(url) is not None

    def _target(self, url: str) -> _Target | None:
        try:
            return self._targets[url]
        except KeyError:
            pass
        target = None
        parts = urlsplit(url)
        if parts.scheme == "http" and parts.hostname and not parts.username and not parts.fragment:
            try:
                port = parts.port or 80
            except ValueError:
                port = None
            if port is not None:
                path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
                target = _Target(parts.hostname, port, path, parts.netloc)
        if len(self._targets) >= 1024:
            self._targets.clear()
        self._targets[url] = target
        return target

    async def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float,
    ) -> _Answer:
        """One exchange (``supports(url)`` must hold); any status is returned, not raised."""
        target = self._target(url)
        if target is None:
            raise ValueError(f"{url!r} is not a plain http:// URL")
        head = [method, target.prefix]
        if headers:
            for name, value in headers.items():
                if "\n" in value or "\r" in value or "\n" in name or "\r" in name:
                    raise ValueError(f"header {name!r} holds a line break")
                head.append(f"{name}: {value}\r\n")
        if body is not None:
            head.append(f"Content-Length: {len(body)}\r\n\r\n")
        else:
            head.append("\r\n")
        data = "".join(head).encode("latin-1")
        if body:
            data += body
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        try:
            return await self._exchange(loop, target, data, end)
        except TimeoutError as exc:
            raise OipTimeout(f"{method} {url}: no answer within {timeout} s") from exc
        except (OSError, HttpProtocolError) as exc:
            raise OipConnectionError(f"{method} {url}: {exc}") from exc

    async def _exchange(
        self, loop: asyncio.AbstractEventLoop, target: _Target, data: bytes, end: float
    ) -> _Answer:
        key = (target.host, target.port)
        idle = self._idle.get(key)
        while idle:
            connection = idle.pop()
            if connection.closed or not connection.keep_alive:
                connection.close()  # closed, or unasked-for bytes came while idle: not reusable
                continue
            try:
                return await self._send(loop, key, connection, data, end)
            except ConnectionResetError:
                if connection.received_any:
                    raise
                # closed while idle, before the request reached it: try a fresh connection
        async with asyncio.timeout_at(end):  # connecting: rare, asyncio's own timeout is fine
            transport, connection = await loop.create_connection(_Connection, target.host, target.port)
        if connection.transport is None:  # uvloop calls connection_made a loop turn later
            connection.connection_made(transport)
        return await self._send(loop, key, connection, data, end)

    async def _send(
        self,
        loop: asyncio.AbstractEventLoop,
        key: tuple[str, int],
        connection: _Connection,
        data: bytes,
        end: float,
    ) -> _Answer:
        self._busy.add(connection)
        done = False
        waiter = connection.send(data)
        # The deadline fails the answer's future itself: cheaper than asyncio.timeout's
        # cancellation of the task, and the connection is closed below either way.
        timer = loop.call_at(end, _expire, waiter)
        try:
            answer = await waiter
            done = True
            return answer
        finally:
            timer.cancel()
            self._busy.discard(connection)
            if done and connection.keep_alive and not connection.closed:
                idle = self._idle.setdefault(key, [])
                if len(idle) < _MAX_IDLE:
                    idle.append(connection)
                else:
                    connection.close()
            else:
                connection.close()  # cancelled, timed out or failed: a late answer must not be reused

    async def close(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
        for connection in list(self._busy):
            connection.close()
        self._busy.clear()
        await asyncio.sleep(0)  # let the transports run their close callbacks
