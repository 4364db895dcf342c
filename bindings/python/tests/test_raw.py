"""Raw byte streams (Gun's raw protocol): gunmetal.open_raw (sync) and
gunmetal.aio.open_raw (asyncio streams), against real servers this file
starts on 127.0.0.1: a TCP echo, a TLS echo (the test server's certificate),
a server that answers only after the client's EOF, and one that closes or
sends a lot."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import threading
from typing import Callable, Iterator, List, Optional, Tuple

import pytest

import gunmetal
import gunmetal.aio
from conftest import Server

Handler = Callable[[socket.socket], None]


class TCPServer:
    """Accepts connections on 127.0.0.1 and runs `handler` on each in a
    thread (wrapped in TLS when a context is given)."""

    def __init__(self, handler: Handler, ctx: Optional[ssl.SSLContext] = None) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port: int = self.sock.getsockname()[1]
        self.handler = handler
        self.ctx = ctx
        self.errors: List[BaseException] = []
        self.threads: List[threading.Thread] = []
        self._t = threading.Thread(target=self._accept, daemon=True)
        self._t.start()

    def _accept(self) -> None:
        while True:
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            t = threading.Thread(target=self._run, args=(s,), daemon=True)
            self.threads.append(t)
            t.start()

    def _run(self, s: socket.socket) -> None:
        try:
            s.settimeout(20)
            if self.ctx is not None:
                s = self.ctx.wrap_socket(s, server_side=True)
            self.handler(s)
        except BaseException as e:  # reported by stop()
            self.errors.append(e)
        finally:
            s.close()

    def stop(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() (Linux)
        except OSError:
            pass
        self.sock.close()
        for t in self.threads:
            t.join(20)
        self._t.join(5)
        assert not self.errors, self.errors


def echo(s: socket.socket) -> None:
    while True:
        d = s.recv(65536)
        if not d:
            return
        s.sendall(d)


def answer_after_eof(s: socket.socket) -> None:
    """Reads to the client's EOF (its half-close), then answers with the
    byte count and closes: only a real half-close gets the answer."""
    got = bytearray()
    while True:
        d = s.recv(65536)
        if not d:
            break
        got += d
    s.sendall(b"got %d bytes\n" % len(got))


@pytest.fixture
def echo_server() -> Iterator[TCPServer]:
    srv = TCPServer(echo)
    yield srv
    srv.stop()


@pytest.fixture
def eof_server() -> Iterator[TCPServer]:
    srv = TCPServer(answer_after_eof)
    yield srv
    srv.stop()


@pytest.fixture
def tls_echo_server(server: Server) -> Iterator[TCPServer]:
    d = os.path.dirname(server.ca)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(d, "cert.pem"), os.path.join(d, "key.pem"))
    srv = TCPServer(echo, ctx)
    yield srv
    srv.stop()


# ---------------------------------------------------------------- sync


def test_sync_echo_tcp(echo_server: TCPServer) -> None:
    with gunmetal.open_raw("127.0.0.1", echo_server.port, timeout=10) as s:
        assert s.conn.info()["protocol"] == "raw"
        s.sendall(b"Hello world!")
        assert s.recv_exactly(12) == b"Hello world!"
        s.sendall(b"one\ntwo\nthree")
        assert s.readline() == b"one\n"
        assert s.readline() == b"two\n"
        assert s.recv_exactly(5) == b"three"
        s.shutdown_write()  # the echo closes at our EOF
        assert s.recv(10) == b""
        assert s.eof


def test_sync_echo_tls(tls_echo_server: TCPServer, server: Server) -> None:
    with gunmetal.open_raw("localhost", tls_echo_server.port, timeout=10, transport="tls",
                           tls_opts={"cacertfile": server.ca}) as s:
        info = s.conn.info()
        assert info["protocol"] == "raw" and info["transport"] == "tls"
        payload = os.urandom(300_000)
        s.sendall(payload)
        assert s.recv_exactly(len(payload)) == payload
        s.shutdown_write()  # close_notify: the echo sees EOF and closes
        assert s.recv_until_eof() == b""


def test_sync_half_close_answer_after_eof(eof_server: TCPServer) -> None:
    with gunmetal.open_raw("127.0.0.1", eof_server.port, timeout=10) as s:
        s.sendall(b"x" * 100_000)
        s.sendall(b"y" * 23)
        s.shutdown_write()
        assert s.readline() == b"got 100023 bytes\n"
        assert s.recv(1) == b""
        with pytest.raises(gunmetal.BadState):
            s.sendall(b"after fin")


def test_sync_recv_exactly_incomplete(eof_server: TCPServer) -> None:
    with gunmetal.open_raw("127.0.0.1", eof_server.port, timeout=10) as s:
        s.shutdown_write()
        with pytest.raises(asyncio.IncompleteReadError) as ei:
            s.recv_exactly(100)
        assert ei.value.partial == b"got 0 bytes\n"


def test_sync_peer_close_then_recv_is_eof() -> None:
    srv = TCPServer(lambda s: s.sendall(b"bye\n"))
    try:
        with gunmetal.open_raw("127.0.0.1", srv.port, timeout=10) as s:
            assert s.readline() == b"bye\n"
            assert s.readline() == b""
            assert s.recv(5) == b""
    finally:
        srv.stop()


def test_sync_flow_passive_resumes(echo_server: TCPServer) -> None:
    # raw_opts.flow 1 ({active, 1}): every read that needs bytes adds flow
    # again after the library's NOTIFY "passive"; nothing is lost.
    with gunmetal.open_raw("127.0.0.1", echo_server.port, timeout=10, raw_opts={"flow": 1}) as s:
        data = os.urandom(200_000)
        s.sendall(data)
        assert s.recv_exactly(len(data)) == data
        assert s.conn.stream_info(0) is not None


def test_sync_refused_names_reason() -> None:
    l = socket.socket()
    l.bind(("127.0.0.1", 0))
    port = l.getsockname()[1]
    l.close()
    with pytest.raises(gunmetal.ConnectionRefused) as ei:
        gunmetal.open_raw("127.0.0.1", port, timeout=10)
    assert ei.value.reason is not None and "econnrefused" in ei.value.reason


def test_sync_options_refused() -> None:
    with pytest.raises(gunmetal.OptionError, match="retry"):
        gunmetal.open_raw("127.0.0.1", 1, retry=3)
    with pytest.raises(gunmetal.OptionError, match="protocols"):
        gunmetal.open_raw("127.0.0.1", 1, protocols=["http"])


def test_sync_readline_limit(echo_server: TCPServer) -> None:
    with gunmetal.open_raw("127.0.0.1", echo_server.port, timeout=10, limit=16) as s:
        s.sendall(b"z" * 40 + b"\n")
        with pytest.raises(ValueError):
            s.readline()
        assert s.recv_exactly(41) == b"z" * 40 + b"\n"  # the bytes stay for recv


def test_sync_unix(tmp_path: "os.PathLike[str]") -> None:
    path = os.path.join(str(tmp_path), "raw.sock")
    ls = socket.socket(socket.AF_UNIX)
    ls.bind(path)
    ls.listen(1)

    def serve() -> None:
        c, _ = ls.accept()
        with c:
            echo(c)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        with gunmetal.open_raw_unix(path, timeout=10) as s:
            s.sendall(b"over unix\n")
            assert s.readline() == b"over unix\n"
            s.shutdown_write()
            assert s.recv(1) == b""
    finally:
        t.join(10)
        ls.close()


# ---------------------------------------------------------------- asyncio


def run(coro: "asyncio.Future[None] | object") -> None:
    asyncio.run(asyncio.wait_for(coro, 30))  # type: ignore[arg-type]


def test_aio_echo_readline_readexactly(echo_server: TCPServer) -> None:
    async def main() -> None:
        r, w = await gunmetal.aio.open_raw("127.0.0.1", echo_server.port)
        assert w.get_extra_info("protocol") == "raw"
        assert w.get_extra_info("sockname")[0] == "127.0.0.1"
        w.write(b"Hello world!")
        await w.drain()
        assert await r.readexactly(12) == b"Hello world!"
        w.writelines([b"a\n", b"bc\n", b"tail"])
        await w.drain()
        assert await r.readline() == b"a\n"
        assert [line async for line in _take(r, 1)] == [b"bc\n"]
        assert await r.readexactly(4) == b"tail"
        w.write_eof()
        assert await r.read() == b""
        assert r.at_eof()
        w.close()
        await w.wait_closed()

    run(main())


async def _take(r: gunmetal.aio.RawReader, n: int):  # type: ignore[no-untyped-def]
    async for line in r:
        yield line
        n -= 1
        if n == 0:
            return


def test_aio_tls_echo(tls_echo_server: TCPServer, server: Server) -> None:
    async def main() -> None:
        r, w = await gunmetal.aio.open_raw("localhost", tls_echo_server.port, transport="tls",
                                           tls_opts={"cacertfile": server.ca})
        payload = os.urandom(500_000)
        w.write(payload)
        await w.drain()
        assert await r.readexactly(len(payload)) == payload
        w.write_eof()
        assert await r.read() == b""
        w.close()
        await w.wait_closed()

    run(main())


def test_aio_half_close_answer_after_eof(eof_server: TCPServer) -> None:
    async def main() -> None:
        r, w = await gunmetal.aio.open_raw("127.0.0.1", eof_server.port)
        w.write(b"q" * 70_000)
        w.write_eof()
        await w.drain()
        assert await r.readline() == b"got 70000 bytes\n"
        assert await r.read(10) == b""
        with pytest.raises(gunmetal.BadState):
            w.write(b"late")
        with pytest.raises(asyncio.IncompleteReadError):
            await r.readexactly(1)
        w.close()
        await w.wait_closed()

    run(main())


def test_aio_flow_follows_reader() -> None:
    # The server sends 8 MB; the reader (limit 64 KiB, window 4) takes it
    # in small reads. Reading follows the consumer: the reader's buffer
    # never holds much more than limit + window reads, the library does go
    # passive (flow 0), and all the bytes arrive in order.
    total = 8 << 20
    blob = os.urandom(1 << 20)
    blob2 = blob + blob

    def blaster(s: socket.socket) -> None:
        for _ in range(total // len(blob)):
            s.sendall(blob)

    srv = TCPServer(blaster)

    async def main() -> None:
        r, w = await gunmetal.aio.open_raw("127.0.0.1", srv.port, window=4)
        c = w.conn
        got = 0
        peak = 0
        passive_seen = False
        while True:
            await asyncio.sleep(0)
            chunk = await r.read(4096)
            if not chunk:
                break
            off = got % len(blob)
            assert chunk == blob2[off:off + len(chunk)]
            got += len(chunk)
            peak = max(peak, len(c._buf))  # type: ignore[attr-defined]
            try:
                st = c.stream_info(0)
            except gunmetal.Closed:  # the server closed after its last byte
                st = None
            if st is not None and st.get("flow") == "0":
                passive_seen = True
        assert got == total
        # generous: limit + window reads of at most a few MB each
        # limit (64 KiB) + window (4) DATA events of at most one 64 KiB read
        # each is about 320 KiB; granting flow regardless of the buffer lets
        # it reach megabytes.
        assert peak <= 1 << 20, peak
        assert passive_seen  # the library did stop reading for the consumer
        w.close()
        await w.wait_closed()

    try:
        run(main())
    finally:
        srv.stop()


def test_aio_peer_close_and_refused() -> None:
    srv = TCPServer(lambda s: s.sendall(b"only line\n"))

    async def main() -> None:
        r, w = await gunmetal.aio.open_raw("127.0.0.1", srv.port)
        assert await r.readline() == b"only line\n"
        assert await r.readline() == b""
        assert r.at_eof()
        await w.wait_closed()
        l = socket.socket()
        l.bind(("127.0.0.1", 0))
        port = l.getsockname()[1]
        l.close()
        with pytest.raises(gunmetal.ConnectionRefused):
            await gunmetal.aio.open_raw("127.0.0.1", port)

    try:
        run(main())
    finally:
        srv.stop()


def test_aio_reset_raises_reason() -> None:
    import struct

    def rst(s: socket.socket) -> None:
        # Not before the client is up: a reset that arrives before the
        # connect completes fails the connect itself (econnreset, no UP).
        s.recv(2)
        s.sendall(b"partial")
        # SO_LINGER 0: close sends RST, not FIN
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    srv = TCPServer(rst)

    async def main() -> Tuple[bytes, BaseException]:
        r, w = await gunmetal.aio.open_raw("127.0.0.1", srv.port)
        w.write(b"go")
        await w.drain()
        got = await r.readexactly(7)
        try:
            await r.read(10)
        except gunmetal.Closed as e:
            w.abort()
            return got, e
        raise AssertionError("a reset must not read as a clean EOF")

    try:
        got, e = asyncio.run(asyncio.wait_for(main(), 30))
    finally:
        srv.stop()
    assert got == b"partial"
    assert isinstance(e, gunmetal.Closed) and e.reason and e.reason != "closed"
