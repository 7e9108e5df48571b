"""The data path's keep-alive HTTP/1.1 client against small real servers on loopback."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from faillite.client.http1 import ConnectionPool
from faillite.client.oip import OipConnectionError, OipTimeout

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


class Server:
    """Counts connections; ``handler(reader, writer, connection_number)`` serves each."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self.url = ""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer, self.connections)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        request = head + (await reader.readexactly(length) if length else b"")
        self.requests.append(request)
        return request


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[Server]]]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> Server:
        server = Server(handler)
        listener = await asyncio.start_server(server._serve, "127.0.0.1", 0)
        servers.append(listener)
        server.url = f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
        return server

    yield start
    for listener in servers:
        listener.close()


def _answer(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Test: yes\r\n%s\r\n%s" % (len(body), extra, body)


async def test_keeps_the_connection_and_sends_headers_and_body(serve) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        while True:
            request = await server.read_request(reader)
            writer.write(_answer(request.rsplit(b"\r\n\r\n", 1)[1]))

    server = await serve(echo)
    pool = ConnectionPool()
    try:
        for body in (b"one", b"two"):
            status, headers, answer = await pool.request(
                "POST", f"{server.url}/v2/x", body=body, headers={"A-Header": "v"}, timeout=5
            )
            assert (status, answer, headers["x-test"]) == (200, body, "yes")
        assert server.connections == 1
        assert server.requests[0].startswith(b"POST /v2/x HTTP/1.1\r\nHost: 127.0.0.1:")
        assert b"\r\nA-Header: v\r\nContent-Length: 3\r\n\r\none" in server.requests[0]
        with pytest.raises(ValueError, match="line break"):
            await pool.request("GET", server.url, headers={"X": "a\r\nB: c"}, timeout=5)
    finally:
        await pool.close()


async def test_chunked_answers_and_connection_close(serve) -> None:
    async def chunked_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await server.read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n"
        )
        await server.read_request(reader)
        writer.write(_answer(b"last", b"Connection: close\r\n"))
        await reader.read()

    server = await serve(chunked_then_close)
    pool = ConnectionPool()
    try:
        assert (await pool.request("GET", server.url, timeout=5))[2] == b"abcde"
        assert (await pool.request("GET", server.url, timeout=5))[2] == b"last"
        assert (await pool.request("GET", server.url, timeout=5))[2] == b"abcde"  # a new connection
        assert server.connections == 2
    finally:
        await pool.close()


async def test_an_idle_connection_the_server_closed_is_replaced(serve) -> None:
    async def once_per_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        writer.write(_answer(b"ok"))  # no Connection: close, but the server closes anyway
        await writer.drain()

    server = await serve(once_per_connection)
    pool = ConnectionPool()
    try:
        for _ in range(3):
            assert (await pool.request("GET", server.url, timeout=5))[2] == b"ok"
        assert server.connections == 3
    finally:
        await pool.close()


async def test_an_answer_cut_short_is_a_connection_error(serve) -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await writer.drain()

    server = await serve(cut)
    pool = ConnectionPool()
    try:
        with pytest.raises(OipConnectionError, match=r"^POST http://127\.0\.0\.1:\d+/p: "):
            await pool.request("POST", f"{server.url}/p", body=b"x", timeout=5)
    finally:
        await pool.close()


async def test_no_answer_is_a_timeout_and_the_connection_is_not_reused(serve) -> None:
    async def silent_first(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await server.read_request(reader)
        if n == 1:
            await reader.read()  # never answers the first connection
            return
        writer.write(_answer(b"late"))
        await reader.read()

    server = await serve(silent_first)
    pool = ConnectionPool()
    try:
        with pytest.raises(OipTimeout, match=r"GET http://127\.0\.0\.1:\d+: no answer within 0\.2 s"):
            await pool.request("GET", server.url, timeout=0.2)
        assert (await pool.request("GET", server.url, timeout=5))[2] == b"late"
        assert server.connections == 2
    finally:
        await pool.close()


async def test_nobody_listening_is_a_connection_error() -> None:
    listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    listener.close()
    await listener.wait_closed()
    pool = ConnectionPool()
    try:
        with pytest.raises(OipConnectionError):
            await pool.request("GET", f"http://127.0.0.1:{port}/v2/health/live", timeout=5)
        assert not pool.supports("https://example.invalid/") and pool.supports(f"http://127.0.0.1:{port}")
    finally:
        await pool.close()


async def test_garbage_is_a_connection_error_and_a_close_delimited_body_is_read(serve) -> None:
    async def odd(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await server.read_request(reader)
        if n == 1:
            writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")  # not HTTP at all
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nX-Test: yes\r\n\r\nuntil the close")
        await writer.drain()

    server = await serve(odd)
    pool = ConnectionPool()
    try:
        with pytest.raises(OipConnectionError, match="malformed answer"):
            await pool.request("GET", server.url, timeout=5)
        assert (await pool.request("GET", server.url, timeout=5))[2] == b"until the close"
    finally:
        await pool.close()


async def test_bytes_after_the_answer_make_the_connection_unreusable(serve) -> None:
    async def doubled(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        while True:
            await server.read_request(reader)
            writer.write(_answer(b"one") + _answer(b"two"))  # an answer nobody asked for

    server = await serve(doubled)
    pool = ConnectionPool()
    try:
        status, headers, body = await pool.request("GET", server.url, timeout=5)
        assert (status, body, headers["x-test"]) == (200, b"one", "yes")
        assert (await pool.request("GET", server.url, timeout=5))[2] == b"one"
        assert server.connections == 2  # the first connection was not reused
    finally:
        await pool.close()


async def _until(condition: Callable[[], object], what: str, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.001)


async def test_an_idle_connection_that_got_unasked_for_bytes_is_not_reused(serve) -> None:
    answered = asyncio.Event()

    async def chatty(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        while True:
            await server.read_request(reader)
            writer.write(_answer(b"%d" % n))
            if n == 1:
                await answered.wait()
                writer.write(b"HTTP/1.1 200 OK\r\n")  # later, while the connection is idle

    server = await serve(chatty)
    pool = ConnectionPool()
    try:
        assert (await pool.request("GET", server.url, timeout=5))[2] == b"1"
        answered.set()
        (idle,) = [c for connections in pool._idle.values() for c in connections]
        await _until(lambda: not idle.keep_alive, "the unasked-for bytes to reach the idle connection")
        assert not idle.closed  # still open: only keep_alive says it must not be reused
        assert (await pool.request("GET", server.url, timeout=5))[2] == b"2"
        assert server.connections == 2 and idle.closed
    finally:
        await pool.close()


async def test_a_close_delimited_body_cut_by_a_reset_is_a_connection_error(serve) -> None:
    reset = asyncio.Event()

    async def reset_midway(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nX-Test: yes\r\n\r\npart of the bo")  # delimited by the close
        await writer.drain()
        await reset.wait()
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # linger 0: a reset, not a clean close

    server = await serve(reset_midway)
    pool = ConnectionPool()
    try:
        pending = asyncio.create_task(pool.request("GET", server.url, timeout=5))
        await _until(lambda: any(c.received_any for c in pool._busy), "the partial answer to arrive")
        reset.set()
        with pytest.raises(OipConnectionError, match=r"^GET http://127\.0\.0\.1:\d+: "):
            await pending
    finally:
        await pool.close()
