"""Python conventions where they differ from Gun's without reason (issue
15): awaitable request methods in asyncio, timeouts in seconds, a response
object, WebSocket messages and ConnectionClosed, ResourceWarning on an
unclosed connection, waiting for a stream slot."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import http.server
import inspect
import os
import shutil
import socket
import subprocess
import tempfile
import time
import threading
import warnings
from typing import Any, Dict, Iterator, Optional, Tuple

import pytest

import gunmetal
import gunmetal.aio
from conftest import Server


# ---------------------------------------------------------------- asyncio request methods

AIO_REQUEST_METHODS = ["request", "fetch", "get", "head", "options", "delete", "post", "put", "patch",
                       "start_request", "headers", "response", "data", "sse", "ws_upgrade", "websocket",
                       "ws_send", "ping", "await_", "await_body"]


def test_aio_request_methods_are_all_coroutines() -> None:
    for name in AIO_REQUEST_METHODS:
        assert inspect.iscoroutinefunction(getattr(gunmetal.aio.Connection, name)), name


async def test_aio_headers_and_get_both_awaited(server: Server) -> None:
    async with gunmetal.aio.open(server.host, server.http, retry=0) as c:
        await c.up(5)
        ref = await c.headers("POST", "/echo", [("content-type", "text/plain")])
        await c.data(ref, b"hi", fin=True)
        resp = await c.response(ref)
        assert resp.status == 200 and await resp.read() == b"hi"
        ref = await c.start_request("GET", "/bytes/3")
        assert (await c.await_body(ref, 5)).body == b"abc"
        resp = await c.get("/bytes/2")
        assert await resp.read() == b"ab"


# ---------------------------------------------------------------- the response object


class _Latin1(http.server.BaseHTTPRequestHandler):
    """A latin-1 body with its charset, and a header given twice."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = "café ½".encode("latin-1")
        self.send_response(200)
        self.send_header("Content-Type", 'text/plain; charset="ISO-8859-1"')
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Set-Cookie", "a=1")
        self.send_header("Set-Cookie", "b=2")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def latin1_server() -> Iterator[int]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Latin1)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(5)


def check_headers(h: gunmetal.Headers) -> None:
    assert isinstance(h, list) and all(isinstance(p, tuple) and len(p) == 2 for p in h)  # pairs, in order
    assert h["Content-Type"] == h["content-type"] == 'text/plain; charset="ISO-8859-1"'
    assert "SET-COOKIE" in h and ("set-cookie", "b=2") in h and "x-nope" not in h
    assert h.get_all("Set-Cookie") == ["a=1", "b=2"] and h["set-cookie"] == "a=1"
    assert h.get("X-Nope") is None and h.get("x-nope", "d") == "d"
    with pytest.raises(KeyError):
        h["x-nope"]
    assert [k for k, _ in h].count("set-cookie") == 2 and h.keys().count("set-cookie") == 1


def test_sync_fetch_response(server: Server) -> None:
    with gunmetal.open(server.host, server.http, retry=0) as c:
        resp = c.fetch("GET", "/headers", [("x-a", "1")], timeout=5)
        assert isinstance(resp, gunmetal.Response)
        assert resp.status == 200 and resp.headers["Content-Type"] == "application/json"
        j = resp.json()
        assert j["method"] == "GET" and j["headers"]["x-a"] == ["1"]
        assert resp.read() == resp.text().encode()  # kept: read again
        resp = c.fetch("POST", "/echo", [("content-type", "text/plain")], "héllo", timeout=5)
        assert resp.text() == "héllo" and resp.done
        # trailers, streamed chunks
        resp = c.fetch("GET", "/trailers", [("te", "trailers")], timeout=5)
        assert b"".join(resp) == b"hello trailers"
        assert resp.trailers["X-Checksum"] == "abc123" and isinstance(resp.trailers, gunmetal.Headers)
        # the Gun-style ref path reaches the same object
        ref = c.get("/bytes/5")
        resp = c.response(ref, 5)
        assert resp.ref == ref and resp.status == 200 and resp.read() == b"abcde"
        # an ERROR ends it with the StreamError
        with pytest.raises(gunmetal.StreamTimeout):
            c.fetch("GET", "/delay/5000", timeout=0.2).read()
        # a response dropped unread is cancelled and leaves nothing queued
        c.fetch("GET", "/bytes/100000", timeout=5)
        assert c.fetch("GET", "/bytes/3", timeout=5).read() == b"abc"
        assert [ev.kind for ev in c.queue.poll(256, 0.1)] == [gunmetal.EventKind.UP]  # never awaited


def test_sync_response_charset_and_multi_headers() -> None:
    with latin1_server() as port, gunmetal.open("127.0.0.1", port, retry=0) as c:
        resp = c.fetch("GET", "/", timeout=5)
        check_headers(resp.headers)
        assert resp.charset == "iso8859-1" and resp.text() == "café ½"
        assert resp.read() == "café ½".encode("latin-1")


async def test_aio_response_same_class() -> None:
    with latin1_server() as port:
        async with gunmetal.aio.open("127.0.0.1", port, retry=0) as c:
            resp = await c.get("/")
            assert type(resp) is gunmetal.Response and gunmetal.aio.Response is gunmetal.Response
            check_headers(resp.headers)
            assert await resp.text() == "café ½" and await resp.read() == "café ½".encode("latin-1")


async def test_aio_response_json_trailers(server: Server) -> None:
    async with gunmetal.aio.open(server.host, server.http, retry=0) as c:
        resp = await c.fetch("GET", "/headers", {"x-b": "2"})
        assert resp.headers["CONTENT-TYPE"] == "application/json"
        assert (await resp.json())["headers"]["x-b"] == ["2"]
        resp = await c.get("/trailers", [("te", "trailers")])
        assert [b async for b in resp] == [b"hello trailers"]
        assert resp.trailers.get("x-trailer-two") == "2"
        with pytest.raises(TypeError):
            iter(resp).__next__()  # type: ignore[misc]


# ---------------------------------------------------------------- WebSocket


def test_sync_websocket_messages_and_connection_closed(server: Server) -> None:
    with gunmetal.open(server.host, server.http, retry=0) as c:
        with c.websocket("/ws", protocols=["echo"], timeout=5) as ws:
            assert isinstance(ws, gunmetal.WebSocket) and ws.protocol == "echo"
            ws.send(["héllo", b"\x00\x01", gunmetal.WSFrame.text("t")])
            assert [ws.recv(), ws.recv(), ws.recv()] == ["héllo", b"\x00\x01", "t"]
            ws.close(1000, "bye")
            close = ws.recv()
            assert isinstance(close, gunmetal.WSFrame) and close.opcode is gunmetal.WSOpcode.CLOSE
            assert close.code == 1000 and close.reason == "bye"
            for _ in range(2):  # delivered once; then every recv() raises
                with pytest.raises(gunmetal.ConnectionClosed) as ei:
                    ws.recv()
                e = ei.value
                assert isinstance(e, gunmetal.Error) and isinstance(e, gunmetal.Closed)
                assert (e.close_code, e.close_reason, e.reason) == (1000, "bye", "bye")
                assert e.code == gunmetal._ffi.GM_ECLOSED and "1000 bye" in str(e)
            assert list(ws) == []


def test_sync_websocket_server_close_ends_iteration(server: Server) -> None:
    with gunmetal.open(server.host, server.http, retry=0) as c:
        ws = c.websocket("/ws?close=4001", timeout=5)
        msgs = list(ws)
        assert len(msgs) == 1 and isinstance(msgs[0], gunmetal.WSFrame) and msgs[0].code == 4001
        with pytest.raises(gunmetal.ConnectionClosed) as ei:
            ws.recv()
        assert ei.value.close_code == 4001 and ei.value.close_reason == "bye"
    with gunmetal.open(server.host, server.http, retry=0) as c, pytest.raises(gunmetal.UpgradeRejected) as ej:
        c.websocket("/ws-reject", timeout=5)
    assert ej.value.status == 403 and ej.value.body == b"no\n"


def test_one_opcode_type_in_events_and_frames(server: Server) -> None:
    with gunmetal.open(server.host, server.http, retry=0) as c:
        ref = c.ws_upgrade("/ws")
        assert c.await_(ref, 5).kind == gunmetal.EventKind.UPGRADE
        c.ws_send(ref, b"x")
        ev = c.await_(ref, 5)
        assert type(ev.ws_opcode) is gunmetal.WSOpcode and ev.ws_opcode is gunmetal.WSOpcode.BINARY
        assert gunmetal.aio.WSOpcode is gunmetal.WSOpcode


async def test_aio_websocket_connection_closed(server: Server) -> None:
    async with gunmetal.aio.open(server.host, server.http, retry=0) as c:
        ws = await c.websocket("/ws")
        await ws.send(["t", b"b"])
        assert [await ws.recv(5), await ws.recv(5)] == ["t", b"b"]
        await ws.close(4000, "done")
        close = await ws.recv(5)
        assert isinstance(close, gunmetal.WSFrame) and (close.code, close.reason) == (4000, "done")
        with pytest.raises(gunmetal.ConnectionClosed) as ei:
            await ws.recv(5)
        assert (ei.value.close_code, ei.value.close_reason) == (4000, "done")
        assert [m async for m in ws] == []


def test_websocket_ended_without_close_frame(server: Server) -> None:
    c = gunmetal.open(server.host, server.http, retry=0)
    ws = c.websocket("/ws", timeout=5)
    c.close()
    for _ in range(2):
        with pytest.raises(gunmetal.ConnectionClosed) as ei:
            ws.recv()
        assert ei.value.close_code == 1006 and ws.close_frame is None


async def test_aio_websocket_ended_without_close_frame(server: Server) -> None:
    c = gunmetal.aio.open(server.host, server.http, retry=0)
    ws = await c.websocket("/ws", timeout=5)
    c.close()
    for _ in range(2):
        with pytest.raises(gunmetal.ConnectionClosed) as ei:
            await ws.recv(5)
        assert ei.value.close_code == 1006 and "close() was called" in ei.value.close_reason


# ---------------------------------------------------------------- ResourceWarning


def test_unclosed_connection_warns_and_is_closed(server: Server) -> None:
    gc.collect()
    base = gunmetal.live_handles()
    c = gunmetal.open(server.host, server.http, retry=0)
    c.await_up(5)
    where = repr(c)
    with pytest.warns(ResourceWarning) as rec:
        del c
        gc.collect()
    msgs = [str(w.message) for w in rec if issubclass(w.category, ResourceWarning)]
    assert msgs == [f"unclosed {where}: close() it, or use it in a with block"]  # not its own queue too
    assert gunmetal.live_handles() == base  # the backstop still closed it (and its queue)


def test_unclosed_queue_warns() -> None:
    q = gunmetal.Queue()
    with pytest.warns(ResourceWarning, match="unclosed <gunmetal.Queue"):
        del q
        gc.collect()


async def test_unclosed_aio_connection_warns(server: Server) -> None:
    c = gunmetal.aio.open(server.host, server.http, retry=0)
    await c.up(5)
    with pytest.warns(ResourceWarning, match="unclosed <gunmetal.aio.Connection"):
        del c
        gc.collect()


def test_closed_objects_do_not_warn(server: Server) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        with gunmetal.open(server.host, server.http, retry=0) as c:
            c.await_up(5)
        q = gunmetal.Queue()
        c = gunmetal.open(server.host, server.http, retry=0, owner=q)
        c.close()
        q.close()
        del c, q
        gc.collect()


# ---------------------------------------------------------------- max_concurrent_streams


@contextlib.contextmanager
def nghttpd_max2() -> Iterator[int]:
    """nghttpd (h2c) with max_concurrent_streams 2, echoing uploads, serving /f."""
    exe = shutil.which("nghttpd") or "/usr/sbin/nghttpd"
    if not os.path.exists(exe):
        pytest.fail("nghttpd is not installed (make deps installs nghttp2-server)")
    d = tempfile.mkdtemp(prefix="gm-py-nghttpd-")
    with open(os.path.join(d, "f"), "wb") as f:
        f.write(b"file")
    p: "Optional[subprocess.Popen[bytes]]" = None
    for _ in range(5):  # a port picked free may be taken before nghttpd binds it: pick again
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        p = subprocess.Popen([exe, "--no-tls", "-m", "2", "--echo-upload", "-a", "127.0.0.1", "-d", d, str(port)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):  # until it listens (a bound on the wait, not a timing assert)
            if p.poll() is not None:
                break
            try:
                socket.create_connection(("127.0.0.1", port), 0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        if p.poll() is None:
            break
    assert p is not None and p.poll() is None, "nghttpd did not start"
    try:
        yield port
    finally:
        p.terminate()
        p.wait(5)
        shutil.rmtree(d, ignore_errors=True)


def hold_two_slots(c: gunmetal.Connection) -> Tuple[int, int]:
    """Two streamed POSTs whose bodies have not ended: both of nghttpd's slots."""
    ack = c.ping()  # nghttpd's SETTINGS (max_concurrent_streams 2) came before its PING ack
    assert c.await_(ack, 5).reason == "ping_ack"
    return c.headers("POST", "/f"), c.headers("POST", "/f")


@pytest.mark.parametrize("opts", [
    {"protocols": ["http2"]},
    # a protocol's own options replace http2_opts (as in Gun): the default holds there too
    {"protocols": [["http2", {"initial_stream_window_size": 65535}]], "http2_opts": {"keepalive": 60000}},
])
def test_sync_request_waits_for_a_stream_slot(opts: Dict[str, Any]) -> None:
    with nghttpd_max2() as port, gunmetal.open("127.0.0.1", port, retry=0, **opts) as c:
        assert c.await_up(5) == "http2"
        a, b = hold_two_slots(c)
        g = c.get("/f")  # a third stream: waits for a slot (the same ref, no error)
        si = c.stream_info(g)
        assert si is not None and si["state"] == "queued"
        c.data(a, b"one", fin=True)  # a ends: its slot goes to g
        assert c.response(a, 5).read() == b"one"
        resp = c.response(g, 5)
        assert resp.status == 200 and resp.read() == b"file"
        c.data(b, b"two", fin=True)
        assert c.response(b, 5).read() == b"two"


def test_gun_too_many_streams_is_one_option_away() -> None:
    with nghttpd_max2() as port, gunmetal.open("127.0.0.1", port, protocols=["http2"], retry=0,
                                                http2_opts={"wait_for_stream_slot": False}) as c:
        assert c.await_up(5) == "http2"
        a, b = hold_two_slots(c)
        with pytest.raises(gunmetal.StreamError, match="^too_many_streams"):
            c.fetch("GET", "/f", timeout=5)
        for r in (a, b):
            c.data(r, b"", fin=True)
            assert c.response(r, 5).status == 200


async def test_aio_requests_wait_for_a_stream_slot() -> None:
    with nghttpd_max2() as port:
        async with gunmetal.aio.open("127.0.0.1", port, protocols=["http2"], retry=0) as c:
            assert await c.up(5) == "http2"
            await c.ping(5)
            a = await c.headers("POST", "/f")
            b = await c.headers("POST", "/f")
            gets = [asyncio.ensure_future(c.get("/f")) for _ in range(5)]
            for _ in range(3):  # the tasks run, then the burst of their requests is sent
                await asyncio.sleep(0)
            assert not c._pending
            refs = c._streams.keys() - {a, b}
            assert len(refs) == 5
            assert all((c.stream_info(r) or {}).get("state") == "queued" for r in refs)
            await c.data(a, b"x", fin=True)
            resps = await asyncio.gather(*gets)
            assert [(r.status, await r.read()) for r in resps] == [(200, b"file")] * 5
            await c.data(b, b"y", fin=True)
            assert await (await c.response(b)).read() == b"y"


# ---------------------------------------------------------------- timeouts in seconds


def _public_callables() -> Iterator[Tuple[str, Any]]:
    for mod in (gunmetal, gunmetal.aio):
        for name in getattr(mod, "__all__", dir(mod)):
            obj = getattr(mod, name)
            if inspect.isclass(obj):
                for mname, m in inspect.getmembers(obj, callable):
                    if not mname.startswith("_"):
                        yield f"{mod.__name__}.{name}.{mname}", m
            elif callable(obj):
                yield f"{mod.__name__}.{name}", obj


def test_every_timeout_parameter_is_seconds() -> None:
    seen = 0
    for qual, fn in _public_callables():
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            continue
        for pname, param in sig.parameters.items():
            assert not pname.endswith("_ms") and pname != "ms", f"{qual}({pname}): milliseconds in the Python API"
            if "timeout" in pname or pname == "lifetime":
                seen += 1
                assert "float" in str(param.annotation), f"{qual}({pname}: {param.annotation}) is not seconds"
    assert seen > 30  # the waits of both APIs were looked at


def test_sync_waits_take_seconds(server: Server) -> None:
    # A 2 (seconds) bound on a 200 ms answer: read as milliseconds it would time out.
    with gunmetal.open(server.host, server.http, retry=0) as c:
        assert c.await_up(2) == "http"
        ref = c.get("/delay/200")
        evs = c.queue.poll(1, 2)
        assert evs and evs[0].ref == ref
        c.await_body(ref, 2)
        assert c.await_(c.get("/delay/200"), 2).status == 200
        c.flush()
        assert c.await_body(c.get("/delay/200"), 2).status == 200
        assert c.response(c.get("/delay/200"), 2).status == 200
        assert c.fetch("GET", "/delay/200", timeout=2).status == 200


async def test_aio_waits_take_seconds(server: Server) -> None:
    async with gunmetal.aio.open(server.host, server.http, retry=0) as c:
        assert await c.up(2) == "http"
        assert (await c.await_(await c.start_request("GET", "/delay/200"), 2)).status == 200
        assert (await c.get("/delay/200", timeout=2)).status == 200
        assert (await c.fetch("GET", "/delay/200", timeout=2)).status == 200
