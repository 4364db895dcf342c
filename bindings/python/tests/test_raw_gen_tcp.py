"""Issue 11 from Python, gen_tcp's client behaviour on raw streams: packet
framing that holds when the server writes byte by byte, tcp_opts as the
peer sees them, adopted sockets (socketpair, Unix, TCP), and send timeouts
(gunmetal.raw.SendTimeout, sync and asyncio). Every server is started here
on 127.0.0.1 or a socketpair."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import tempfile
import threading
import time
from typing import Callable, List, Optional

import pytest

import gunmetal
import gunmetal.aio
from gunmetal import EventKind
from gunmetal.raw import SendTimeout


class Server:
    """One connection at a time on 127.0.0.1, `handler` run on each in a
    thread; what the handler returns is kept in `results`."""

    def __init__(self, handler: Callable[[socket.socket], object]) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port: int = self.sock.getsockname()[1]
        self.handler = handler
        self.results: List[object] = []
        self.peers: List[str] = []  # the address each connection came from
        self.errors: List[BaseException] = []
        self.done = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                s, addr = self.sock.accept()
            except OSError:
                return
            self.peers.append(addr[0])
            threading.Thread(target=self._run, args=(s,), daemon=True).start()

    def _run(self, s: socket.socket) -> None:
        try:
            s.settimeout(30)
            self.results.append(self.handler(s))
        except BaseException as e:
            self.errors.append(e)
        finally:
            s.close()
            self.done.set()

    def close(self) -> None:
        self.sock.close()


def read_n(s: socket.socket, n: int) -> bytes:
    b = b""
    while len(b) < n:
        d = s.recv(n - len(b))
        if not d:
            break
        b += d
    return b


def read_all(s: socket.socket) -> bytes:
    out = []
    while True:
        d = s.recv(1 << 16)
        if not d:
            return b"".join(out)
        out.append(d)


def frame(p: object, m: bytes) -> bytes:
    if p == "line":
        return m
    return struct.pack(">Q", len(m))[8 - int(p):] + m  # type: ignore[call-overload]


# ------------------------------------------------------------ packet framing


@pytest.mark.parametrize("packet", [1, 2, 4, "line"])
def test_packet_framing_byte_by_byte(packet: object) -> None:
    """raw_opts packet (gen_tcp's {packet, P}): data() sends one message with
    its prefix; messages the server writes one byte per send, then all in
    one send, each come as one DATA event (ref 0)."""
    if packet == "line":
        msgs = [b"hello\n", b"bytes \x00\x01\xff\n", b"\n"]
    else:
        msgs = [b"hello", b"", b"xyz" * 80]
    got_ping: List[bytes] = []

    def handler(s: socket.socket) -> None:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        want = frame(packet, b"ping\n" if packet == "line" else b"ping\x00")
        got_ping.append(read_n(s, len(want)))
        for m in msgs:
            for i in range(len(frame(packet, m))):
                s.sendall(frame(packet, m)[i:i + 1])
        s.sendall(b"".join(frame(packet, m) for m in msgs))
        s.recv(1)  # until the client closes

    srv = Server(handler)
    try:
        with gunmetal.open("127.0.0.1", srv.port, protocols=["raw"], retry=0,
                           raw_opts={"packet": packet}) as c:
            assert c.await_up(5) == "raw"
            ping = b"ping\n" if packet == "line" else b"ping\x00"
            c.data(0, ping)
            got = []
            for _ in range(2 * len(msgs)):
                ev = c.await_(0, 10)
                assert ev.kind == EventKind.DATA and ev.ref == 0, ev
                got.append(ev.data)
            assert got == msgs + msgs
        srv.done.wait(10)
        assert got_ping == [frame(packet, ping)]
        assert not srv.errors
    finally:
        srv.close()


# ------------------------------------------------------------ socket options


def test_tcp_opts_seen_by_the_peer() -> None:
    """tcp_opts as gen_tcp's, checked where the binding can see them, on the
    peer: ip binds the local address (the server sees 127.0.0.2); linger 0
    turns close into an RST; without it the close is a FIN; inet6 to an
    IPv4 address cannot connect."""
    def handler(s: socket.socket) -> object:
        try:
            return s.recv(10)
        except ConnectionResetError:
            return "reset"

    srv = Server(handler)
    try:
        st = gunmetal.open_raw("127.0.0.1", srv.port, timeout=5, tcp_opts={"ip": "127.0.0.2", "linger": 0})
        st.close()
        assert srv.done.wait(10)
        assert srv.peers == ["127.0.0.2"] and srv.results == ["reset"]
        srv.done.clear()
        st = gunmetal.open_raw("127.0.0.1", srv.port, timeout=5, tcp_opts={"linger": False})
        st.close()
        assert srv.done.wait(10)
        assert srv.peers[1] == "127.0.0.1" and srv.results[1] == b""
        with pytest.raises(gunmetal.Closed):
            gunmetal.open_raw("127.0.0.1", srv.port, timeout=5, tcp_opts={"inet6": True})
        with pytest.raises(gunmetal.OptionError, match="tcp_opts.buffer"):
            gunmetal.open_raw("127.0.0.1", srv.port, timeout=5, tcp_opts={"buffer": 1000})
    finally:
        srv.close()


# ------------------------------------------------------------ adopted sockets


def test_open_fd_socketpair_raw() -> None:
    """gm_open_fd on one end of a socketpair: bytes both ways, the fd is
    gunmetal's, the peer's close ends in DOWN then EXIT (no reconnect)."""
    a, b = socket.socketpair()
    fd = a.detach()
    try:
        with gunmetal.open_fd(fd, protocols=["raw"]) as c:
            assert c.await_up(5) == "raw"
            c.data(0, b"to the peer")
            b.settimeout(10)
            assert read_n(b, 11) == b"to the peer"
            b.sendall(b"back")
            ev = c.await_(0, 10)
            assert ev.kind == EventKind.DATA and ev.data == b"back"
            b.close()
            ev = c.await_(0, 10)
            assert ev.kind == EventKind.DOWN and ev.reason == "closed", ev
            evs = c.queue.poll(1, 10)
            assert [e.kind for e in evs] == [EventKind.EXIT], evs
    finally:
        b.close()


def test_open_fd_unix_and_tls_off() -> None:
    """A Unix stream socket the test connected itself, as an adopted raw
    stream: half-close (fin) reaches the peer as EOF, reading goes on."""
    d = tempfile.mkdtemp()
    path = os.path.join(d, "s")
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(path)
    ls.listen(1)
    cs = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    cs.connect(path)
    peer, _ = ls.accept()
    peer.settimeout(10)
    try:
        with gunmetal.open_fd(cs.detach(), protocols=["raw"]) as c:
            assert c.await_up(5) == "raw"
            c.data(0, b"abc", fin=True)
            assert read_all(peer) == b"abc"  # then EOF: the fin
            peer.sendall(b"after your eof")
            ev = c.await_(0, 10)
            assert ev.kind == EventKind.DATA and ev.data == b"after your eof"
    finally:
        peer.close()
        ls.close()
        os.unlink(path)
        os.rmdir(d)


# ------------------------------------------------------------ send timeouts

BIG = bytes(i * 31 % 251 for i in range(1 << 16)) * 256  # 16 MiB: more than a non-reading peer buffers


def stalled_server() -> "tuple[Server, threading.Event]":
    """A server that reads nothing until `go` is set, then everything up to
    the client's FIN (the bytes are the handler's result)."""
    go = threading.Event()

    def handler(s: socket.socket) -> bytes:
        go.wait(60)
        return read_all(s)

    return Server(handler), go


# tcp_opts send_timeout is 1 in these tests: the peer never reads, so any
# bound is reached, and a send that must complete (the tail) is repeated
# with its rest until it does, as gen_tcp's documentation suggests.
def send_rest(st: gunmetal.RawStream, data: bytes) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            st.sendall(data)
            return
        except SendTimeout as e:
            assert not e.closed and time.monotonic() < deadline
            data = e.rest


@pytest.mark.parametrize("close", [True, False])
def test_send_timeout_sync(close: bool) -> None:
    """sendall to a peer that does not read raises SendTimeout: sent + rest
    is the data; with send_timeout_close (default) the stream ends, with
    False the peer gets exactly the sent bytes, then what follows."""
    srv, go = stalled_server()
    try:
        tcp = {"send_timeout": 1, "sndbuf": 4096}
        if not close:
            tcp["send_timeout_close"] = False
        st = gunmetal.open_raw("127.0.0.1", srv.port, timeout=10, tcp_opts=tcp)
        with pytest.raises(SendTimeout) as ei:
            st.sendall(BIG)
        e = ei.value
        assert isinstance(e, gunmetal.Timeout) and e.closed is close
        assert 0 <= e.sent < len(BIG) and BIG[e.sent:] == e.rest
        assert "bytes went out within tcp_opts.send_timeout" in str(e)
        go.set()
        if close:
            # The stream ended with the timeout (not a peer close).
            with pytest.raises(gunmetal.Error, match="tcp_opts.send_timeout"):
                st.recv_until_eof()
            st.close()
            assert srv.done.wait(30)
        else:
            send_rest(st, b"tail")
            st.shutdown_write()
            assert srv.done.wait(30)
            assert srv.results == [BIG[:e.sent] + b"tail"]
            st.close()
        assert not srv.errors
    finally:
        go.set()
        srv.close()


def test_send_timeout_asyncio() -> None:
    """The asyncio writer: drain raises SendTimeout (rest: what was written
    and did not go out); with send_timeout_close False the stream stays up:
    the server, reading again, echoes exactly the sent bytes."""
    go = threading.Event()

    def handler(s: socket.socket) -> None:
        go.wait(60)
        while True:
            d = s.recv(1 << 16)
            if not d:
                return
            s.sendall(d)

    async def main() -> None:
        srv = Server(handler)
        try:
            r, w = await gunmetal.aio.open_raw("127.0.0.1", srv.port, timeout=10,
                                               tcp_opts={"send_timeout": 1, "send_timeout_close": False,
                                                         "sndbuf": 4096})
            w.write(BIG)
            with pytest.raises(SendTimeout) as ei:
                await w.drain()
            e = ei.value
            sent = len(BIG) - len(e.rest)
            assert not e.closed and 0 <= sent < len(BIG) and BIG[sent:] == e.rest
            go.set()
            assert await r.readexactly(sent) == BIG[:sent]
            w.write_eof()
            assert await r.read() == b""  # the server's close after our FIN: nothing more
            w.close()
            await w.wait_closed()
            assert srv.done.wait(30) and not srv.errors
        finally:
            go.set()
            srv.close()

    asyncio.run(main())


# ------------------------------------------------------------ HTTP/1.1 Upgrade to raw


def test_http11_upgrade_to_raw() -> None:
    """Gun 2's HTTP/1.1 Upgrade to raw (raw_SUITE http11_upgrade_raw_tcp):
    a GET asking to upgrade, answered by 101, gives UPGRADE (protocol the
    101's upgrade token) and the connection carries one byte stream, ref 0."""

    def handler(s: socket.socket) -> None:
        req = b""
        while b"\r\n\r\n" not in req:
            d = s.recv(4096)
            if not d:
                return
            req += d
        assert b"upgrade: custom/1.0" in req.lower()
        s.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: custom/1.0\r\n\r\n")
        while True:
            d = s.recv(4096)
            if not d:
                return
            s.sendall(d)

    srv = Server(handler)
    try:
        with gunmetal.open("127.0.0.1", srv.port, retry=0) as c:
            assert c.await_up(5) == "http"
            ref = c.get("/", {"connection": "upgrade", "upgrade": "custom/1.0"})
            ev = c.await_(ref, 10)
            assert ev.kind == EventKind.UPGRADE and ev.protocol == "custom/1.0", ev
            c.data(0, b"Hello world!")
            ev = c.await_(0, 10)
            assert ev.kind == EventKind.DATA and ev.data == b"Hello world!", ev
            assert c.info()["protocol"] == "raw"
        assert not srv.errors
    finally:
        srv.close()
