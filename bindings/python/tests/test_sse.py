"""Server-sent events (content_handlers gun_sse_h): Connection.sse and
gunmetal.aio's, EventKind.SSE events with content_handlers per connection
and per request, against the test server's /sse (HTTP/1.1 and h2c)."""

from __future__ import annotations

import socket
import threading
from typing import Iterator, List, Optional

import pytest

import gunmetal
import gunmetal.aio
from gunmetal import EventKind, SSEEvent
from conftest import Server

# What /sse sends (tests/testserver SSEStream), as SSEEvents.
WANT = [
    SSEEvent(None, None, None, 1500),
    SSEEvent("message", "first\nsecond", ""),
    SSEEvent("tick", "x", "7"),
    SSEEvent(None, None, "8"),
    SSEEvent("message", "after", "8"),
]

PROTOS = [("http", {}), ("http2", {"protocols": ["http2"]})]


@pytest.mark.parametrize("proto,opts", PROTOS, ids=[p for p, _ in PROTOS])
def test_sse_iterator(server: Server, proto: str, opts: dict) -> None:
    with gunmetal.open(server.host, server.http, retry=0, **opts) as c:
        assert c.await_up(5) == proto
        with c.sse("/sse", timeout=5) as s:
            got = list(s)
            assert s.status == 200 and ("content-type", "text/event-stream") in s.headers
        assert got == WANT
        # The connection goes on; its own default is gun_data_h.
        assert c.await_body(c.get("/sse"), 5).body.startswith(b"\xef\xbb\xbf: hello")


def test_sse_not_event_stream(server: Server) -> None:
    with gunmetal.open(server.host, server.http, retry=0) as c:
        c.await_up(5)
        s = c.sse("/sse?ct=text/plain", timeout=5)
        with pytest.raises(gunmetal.StreamError, match="not_event_stream: .*'text/plain'"):
            next(s)
        assert c.await_body(c.get("/bytes/3"), 5).body == b"abc"


def test_sse_events_per_connection(server: Server) -> None:
    # Gun's http_opts content_handlers: the events themselves.
    with gunmetal.open(server.host, server.http, retry=0,
                       http_opts={"content_handlers": ["gun_sse_h", "gun_data_h"]}) as c:
        c.await_up(5)
        ref = c.get("/sse")
        assert c.await_(ref, 5).kind == EventKind.RESPONSE
        evs = []
        while True:
            ev = c.await_(ref, 5)
            assert ev.kind == EventKind.SSE
            evs.append(ev)
            if ev.fin:
                break
        assert [SSEEvent.from_event(e) for e in evs] == WANT + [None]
        assert evs[1].headers == [("last_event_id", ""), ("event_type", "message")]
        assert evs[1].data == b"first\nsecond"
        assert evs[-1].headers == [] and evs[-1].data == b""
        # Another body stays DATA; await_body refuses an event stream.
        assert c.await_body(c.get("/sse?ct=text/plain"), 5).body.startswith(b"\xef\xbb\xbf")
        with pytest.raises(gunmetal.StreamError, match="SSE events"):
            c.await_body(c.get("/sse"), 5)


def test_sse_request_option(server: Server) -> None:
    with gunmetal.open(server.host, server.http, retry=0) as c:
        c.await_up(5)
        ref = c.request("GET", "/sse", content_handlers=["gun_sse_h", "gun_data_h"])
        kinds = []
        while not kinds or not (kinds[-1] == EventKind.SSE and ev.fin):
            ev = c.await_(ref, 5)
            kinds.append(ev.kind)
        assert kinds == [EventKind.RESPONSE] + [EventKind.SSE] * 6
        for bad, frag in [([], "req_opts.content_handlers"), (["mine_h"], "mine_h"),
                          ([["gun_sse_h", {"max_event_size": "infinity"}]], "max_event_size")]:
            with pytest.raises(gunmetal.OptionError, match=frag):
                c.request("GET", "/sse", content_handlers=bad)
        with pytest.raises(TypeError):
            c.request("GET", "/sse", content_handlers="gun_sse_h")  # type: ignore[arg-type]
        with pytest.raises(gunmetal.OptionError, match="max_event_size"):
            c.sse("/sse", max_event_size=0)


@pytest.fixture
def big_event_server() -> Iterator[int]:
    """One event of 200 bytes after a small one, on a raw socket."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(4)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                s, _ = ls.accept()
            except OSError:
                return
            with s:
                s.recv(65536)
                body = b"data: ok\n\ndata: " + b"z" * 200 + b"\n\n"
                s.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: %d\r\n\r\n%s"
                          % (len(body), body))
                s.recv(65536)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield ls.getsockname()[1]
    stop.set()
    ls.close()
    t.join(5)


def test_sse_max_event_size(big_event_server: int) -> None:
    with gunmetal.open("127.0.0.1", big_event_server, retry=0) as c:
        c.await_up(5)
        s = c.sse("/", timeout=5, max_event_size=100)
        assert next(s) == SSEEvent("message", "ok", "")
        with pytest.raises(gunmetal.StreamError, match=r"limit_reached: .*max_event_size \(100 bytes"):
            next(s)


@pytest.mark.parametrize("proto,opts", PROTOS, ids=[p for p, _ in PROTOS])
async def test_sse_aio(server: Server, proto: str, opts: dict) -> None:
    async with gunmetal.aio.open(server.host, server.http, retry=0, window=2, **opts) as c:
        assert await c.up(5) == proto
        got: List[Optional[SSEEvent]] = []
        async with await c.sse("/sse", timeout=5) as s:
            assert s.status == 200
            async for ev in s:
                got.append(ev)
        assert got == WANT
        with pytest.raises(gunmetal.StreamError, match="not_event_stream"):
            await c.sse("/sse?ct=text/plain", timeout=5)
        resp = await c.get("/bytes/3")
        assert await resp.read() == b"abc"
