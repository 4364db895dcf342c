"""Proxies and tunnels (issue 12): conn.connect() (Gun's gun:connect) through
tinyproxy to the test server over http and https, Basic proxy-authorization
(407 without it: TunnelRefused), nested proxies, SOCKS5 through microsocks
(protocols=["socks"], socks_opts; with and without username/password), the
intermediaries in info(), refusals; through nghttpx as an HTTP/2 proxy
(each tunnel a stream, named with tunnel= on requests, ws_upgrade and
connect; raw bytes on the tunnel's ref); sync and asyncio. The proxies are
started by the fixtures (conftest) on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
from typing import Any, Dict, Iterator, List

import pytest

import gunmetal
import gunmetal.aio
from conftest import Proxy, Server, start_nghttpx, start_tinyproxy


def proxied(proxy: Proxy) -> gunmetal.Connection:
    c = gunmetal.open("127.0.0.1", proxy.port, retry=0)
    assert c.await_up(5) == "http"
    return c


def hop(kind: str, port: int, protocol: str) -> Dict[str, Any]:
    return {"type": kind, "host": "127.0.0.1", "port": port, "transport": "tcp", "protocol": protocol}


def test_connect_http_origin(server: Server, tinyproxy: Proxy) -> None:
    with proxied(tinyproxy) as c:
        assert c.info()["intermediaries"] == []
        ref = c.connect("127.0.0.1", server.http)
        assert c.await_tunnel(ref, 5) == "http"
        # no tunnel argument: on HTTP/1.1 the connection is the origin's now (Gun)
        h = c.fetch("GET", "/headers", timeout=5).json()
        assert h["host"] == f"127.0.0.1:{server.http}" and h["proto"] == "HTTP/1.1"
        info = c.info()
        assert info["intermediaries"] == [hop("connect", tinyproxy.port, "http")]
        assert (info["origin_scheme"], info["origin_host"], info["origin_port"]) == ("http", "127.0.0.1",
                                                                                   str(server.http))
        assert info["port"] == str(tinyproxy.port)  # host/port stay the proxy's, as Gun's


def test_connect_gun_events(server: Server, tinyproxy: Proxy) -> None:
    """Gun's messages as they come: RESPONSE 200 fin, then TUNNEL_UP on the
    CONNECT's ref with the origin's protocol."""
    with proxied(tinyproxy) as c:
        ref = c.connect("127.0.0.1", server.http, [("x-trace", "1")], timeout=5)
        ev = c.await_(ref, 5)
        assert (ev.kind, ev.status, ev.fin) == (gunmetal.EventKind.RESPONSE, 200, True)
        ev = c.await_(ref, 5)
        assert (ev.kind, ev.ref, ev.protocol) == (gunmetal.EventKind.TUNNEL_UP, ref, "http")


def test_connect_https_origin_h2(server: Server, tinyproxy: Proxy) -> None:
    with proxied(tinyproxy) as c:
        ref = c.connect("localhost", server.https, transport="tls", tls_opts={"cacertfile": server.ca})
        assert c.await_tunnel(ref, 5) == "http2"  # ALPN, the default protocols on tls
        h = c.fetch("GET", "/headers", timeout=5).json()
        assert h["proto"] == "HTTP/2.0" and h["host"] == f"localhost:{server.https}"
        info = c.info()
        assert info["origin_scheme"] == "https" and info["transport"] == "tls" and info["alpn"] == "h2"
        assert info["intermediaries"] == [hop("connect", tinyproxy.port, "http")]


def test_connect_https_origin_http1(server: Server, tinyproxy: Proxy) -> None:
    with proxied(tinyproxy) as c:
        ref = c.connect("localhost", server.https, transport="tls", protocols=["http"],
                        tls_opts={"cacertfile": server.ca}, tls_handshake_timeout=5.0)
        assert c.await_tunnel(ref, 5) == "http"
        assert c.fetch("GET", "/headers", timeout=5).json()["proto"] == "HTTP/1.1"


def test_connect_proxy_auth(server: Server, tinyproxy_auth: Proxy) -> None:
    with proxied(tinyproxy_auth) as c:
        ref = c.connect("127.0.0.1", server.http)
        with pytest.raises(gunmetal.TunnelRefused) as ei:
            c.await_tunnel(ref, 5)
        assert ei.value.status == 407 and isinstance(ei.value, gunmetal.StreamError)
        assert c.info()["intermediaries"] == []
    with proxied(tinyproxy_auth) as c:  # tinyproxy closes after its 407
        ref = c.connect("127.0.0.1", server.http, username="alice", password="s3cret")
        assert c.await_tunnel(ref, 5) == "http"
        h = c.fetch("GET", "/headers", timeout=5).json()
        assert "proxy-authorization" not in h["headers"]


def test_connect_nested(server: Server, tinyproxy: Proxy) -> None:
    p2 = start_tinyproxy()
    try:
        with proxied(tinyproxy) as c:
            assert c.await_tunnel(c.connect("127.0.0.1", p2.port), 5) == "http"
            ref = c.connect("localhost", server.https, transport="tls", protocols=["http"],
                            tls_opts={"cacertfile": server.ca})
            assert c.await_tunnel(ref, 5) == "http"
            assert c.fetch("GET", "/headers", timeout=5).json()["host"] == f"localhost:{server.https}"
            assert c.info()["intermediaries"] == [hop("connect", tinyproxy.port, "http"),
                                                  hop("connect", p2.port, "http")]
    finally:
        p2.stop()


def test_connect_refusals(server: Server, tinyproxy: Proxy) -> None:
    with proxied(tinyproxy) as c:
        with pytest.raises(TypeError):
            c.connect("127.0.0.1", "80")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            c.connect("127.0.0.1", 80, bogus=1)  # type: ignore[call-arg]
        with pytest.raises(gunmetal.OptionError) as eo:
            c.connect("127.0.0.1", 80, transport="quic")
        assert "transport" in str(eo.value)
        with pytest.raises(gunmetal.OptionError):
            c.connect("127.0.0.1", 80, username="u")  # password goes with it
        with pytest.raises(gunmetal.InvalidArgument) as ei:
            c.connect("127.0.0.1", 80, [("content-length", "0")])
        assert "content-length" in str(ei.value)
        # nothing was sent: the proxy still answers a CONNECT first
        assert c.await_tunnel(c.connect("127.0.0.1", server.http), 5) == "http"
    with gunmetal.open(server.host, server.http, protocols=["raw"], retry=0) as c2:
        c2.await_up(5)
        with pytest.raises(gunmetal.Unsupported) as eu:  # CONNECT needs HTTP/1.1 or HTTP/2
            c2.connect("127.0.0.1", server.http)
        assert "HTTP connection" in str(eu.value)


def test_socks(server: Server, microsocks: Proxy) -> None:
    with gunmetal.open("127.0.0.1", microsocks.port, retry=0, protocols=["socks"],
                       socks_opts={"host": "127.0.0.1", "port": server.http}) as c:
        assert c.await_up(5) == "socks"
        assert c.await_tunnel(None, 5) == "http"
        assert c.fetch("GET", "/headers", timeout=5).json()["host"] == f"127.0.0.1:{server.http}"
        info = c.info()
        assert info["intermediaries"] == [hop("socks5", microsocks.port, "socks")]
        assert info["origin_port"] == str(server.http)


def test_socks_auth_tls_origin(server: Server, microsocks_auth: Proxy) -> None:
    socks = {"host": "localhost", "port": server.https, "auth": [["username_password", "bob", "hunter22"]],
             "transport": "tls", "tls_opts": {"cacertfile": server.ca}}
    with gunmetal.open("127.0.0.1", microsocks_auth.port, retry=0, protocols=["socks"], socks_opts=socks) as c:
        assert c.await_tunnel(None, 5) == "http2"  # the UP "socks" before it is taken too
        assert c.fetch("GET", "/headers", timeout=5).json()["proto"] == "HTTP/2.0"
        assert c.info()["origin_scheme"] == "https"


def test_socks_auth_refused(server: Server, microsocks_auth: Proxy) -> None:
    socks = {"host": "127.0.0.1", "port": server.http, "auth": [["username_password", "bob", "wrong"]]}
    with gunmetal.open("127.0.0.1", microsocks_auth.port, retry=0, protocols=["socks"], socks_opts=socks) as c:
        with pytest.raises(gunmetal.Closed) as ei:
            c.await_tunnel(None, 5)
        assert ei.value.reason is not None and ei.value.reason.startswith("socks: ")


# ---------------------------------------------------------------- asyncio

async def test_aio_connect_https(server: Server, tinyproxy: Proxy) -> None:
    async with gunmetal.aio.open("127.0.0.1", tinyproxy.port, retry=0) as c:
        assert await c.up(5) == "http"
        ref = await c.connect("localhost", server.https, transport="tls", tls_opts={"cacertfile": server.ca})
        assert await c.await_tunnel(ref, 5) == "http2"
        resp = await c.get("/headers")
        assert (await resp.json())["proto"] == "HTTP/2.0"
        assert c.info()["intermediaries"] == [hop("connect", tinyproxy.port, "http")]


async def test_aio_connect_events(server: Server, tinyproxy: Proxy) -> None:
    async with gunmetal.aio.open("127.0.0.1", tinyproxy.port, retry=0) as c:
        await c.up(5)
        ref = await c.connect("127.0.0.1", server.http)
        ev = await c.await_(ref, 5)
        assert (ev.kind, ev.status, ev.fin) == (gunmetal.EventKind.RESPONSE, 200, True)
        ev = await c.await_(ref, 5)
        assert (ev.kind, ev.protocol) == (gunmetal.EventKind.TUNNEL_UP, "http")
        assert (await (await c.get("/bytes/3")).read()) == b"abc"


async def test_aio_connect_refused(server: Server, tinyproxy_auth: Proxy) -> None:
    async with gunmetal.aio.open("127.0.0.1", tinyproxy_auth.port, retry=0) as c:
        await c.up(5)
        ref = await c.connect("127.0.0.1", server.http)
        with pytest.raises(gunmetal.TunnelRefused) as ei:
            await c.await_tunnel(ref, 5)
        assert ei.value.status == 407


async def test_aio_socks(server: Server, microsocks_auth: Proxy) -> None:
    socks = {"host": "127.0.0.1", "port": server.http, "auth": [["username_password", "bob", "hunter22"]]}
    async with gunmetal.aio.open("127.0.0.1", microsocks_auth.port, retry=0, protocols=["socks"],
                                 socks_opts=socks) as c:
        assert await c.up(5) == "socks"
        assert await c.await_tunnel(None, 5) == "http"
        assert await c.await_tunnel() == "http"  # already up: at once
        assert (await (await c.get("/bytes/4")).read()) == b"abcd"
        assert c.info()["intermediaries"] == [hop("socks5", microsocks_auth.port, "socks")]


async def test_aio_socks_refused(server: Server, microsocks_auth: Proxy) -> None:
    socks = {"host": "127.0.0.1", "port": server.http, "auth": [["username_password", "bob", "wrong"]]}
    async with gunmetal.aio.open("127.0.0.1", microsocks_auth.port, retry=0, protocols=["socks"],
                                 socks_opts=socks) as c:
        with pytest.raises(gunmetal.Closed) as ei:
            await c.await_tunnel(None, 5)
        assert ei.value.reason is not None and ei.value.reason.startswith("socks: ")


# ---------------------------------------------------------------- HTTP/2 proxy: tunnel=

@pytest.fixture(scope="module")
def nghttpx(tinyproxy: Proxy) -> Iterator[Proxy]:
    p = start_nghttpx(tinyproxy.port)
    yield p
    p.stop()


class Echo:
    """A TCP echo on 127.0.0.1 (the raw origin)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.conns: List[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(s)
            threading.Thread(target=self._echo, args=(s,), daemon=True).start()

    @staticmethod
    def _echo(s: socket.socket) -> None:
        with s:
            while True:
                try:
                    b = s.recv(65536)
                except OSError:
                    return
                if not b:
                    return
                s.sendall(b)

    def stop(self) -> None:
        self.sock.close()
        for s in self.conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@pytest.fixture
def echo() -> Iterator[Echo]:
    e = Echo()
    yield e
    e.stop()


def h2proxied(proxy: Proxy) -> gunmetal.Connection:
    c = gunmetal.open("127.0.0.1", proxy.port, retry=0, protocols=["http2"])
    assert c.await_up(5) == "http2"
    return c


def tls_dest(server: Server, protocols: List[str]) -> Dict[str, Any]:
    return {"transport": "tls", "protocols": protocols, "tls_opts": {"cacertfile": server.ca}}


def from_proxy(status: int, headers: Any) -> bool:
    """A response nghttpx made or relayed (the proxy itself answering a
    request that named no tunnel), not the test server's."""
    hs = dict(headers)
    return 400 <= status < 500 and "nghttpx" in hs.get("server", "") + hs.get("via", "")


def test_h2_tunnel_get_http_origin(server: Server, nghttpx: Proxy) -> None:
    with h2proxied(nghttpx) as c:
        t = c.connect("127.0.0.1", server.http)
        assert c.await_tunnel(t, 5) == "http"
        b = c.await_body(c.get("/headers", [("x-in", "tunnel")], tunnel=t), 5)
        h = json.loads(b.body)
        assert (b.status, h["host"], h["proto"], h["headers"]["x-in"]) == (
            200, f"127.0.0.1:{server.http}", "HTTP/1.1", ["tunnel"])
        # no tunnel=: to the proxy itself (Gun 2.0), an ordinary response
        b = c.await_body(c.get("/headers"), 5)
        assert from_proxy(b.status, b.headers), (b.status, b.headers, b.body[:200])
        # the tunnel still works beside it, and the connection stays the proxy's
        body = c.await_body(c.request("GET", "/bytes/1000", tunnel=t), 5).body
        assert len(body) == 1000 and body.startswith(b"abc")
        info = c.info()
        assert (info["protocol"], info["intermediaries"]) == ("http2", [])


def test_h2_tunnel_https_origins(server: Server, nghttpx: Proxy) -> None:
    """TLS inside an HTTP/2 stream: h2 by ALPN, and HTTP/1.1; the response
    object (fetch: .status, .headers, .json(), .text(), .read())."""
    with h2proxied(nghttpx) as c:
        h2 = c.connect("localhost", server.https, **tls_dest(server, ["http2", "http"]))
        h1 = c.connect("localhost", server.https, **tls_dest(server, ["http"]))
        assert c.await_tunnel(h2, 5) == "http2"
        assert c.await_tunnel(h1, 5) == "http"
        r = c.fetch("GET", "/headers", timeout=5, tunnel=h2)
        assert r.status == 200 and r.headers["content-type"].startswith("application/json")
        assert (r.json()["proto"], r.json()["host"]) == ("HTTP/2.0", f"localhost:{server.https}")
        r = c.fetch("GET", "/headers", timeout=5, tunnel=h1)
        assert json.loads(r.text())["proto"] == "HTTP/1.1"
        r = c.fetch("PUT", "/echo", body=b"put through h2", timeout=5, tunnel=h2)
        assert (r.status, r.read()) == (200, b"put through h2")
        for ref, proto in ((h2, "http2"), (h1, "http")):
            si = c.stream_info(ref)
            assert si is not None
            assert {k: si[k] for k in si if k.startswith("tunnel_") or k == "method"} == {
                "method": "CONNECT", "tunnel_transport": "tls", "tunnel_protocol": proto,
                "tunnel_origin_scheme": "https", "tunnel_origin_host": "localhost",
                "tunnel_origin_port": str(server.https)}


def test_h2_tunnel_methods(server: Server, nghttpx: Proxy) -> None:
    """Every request method takes tunnel=; streamed bodies (post without a
    body, headers()) go on with data() on the request's own ref."""
    with h2proxied(nghttpx) as c:
        t = c.connect("127.0.0.1", server.http)
        assert c.await_tunnel(t, 5) == "http"

        def method_seen(ref: int) -> str:
            b = c.await_body(ref, 5)
            assert b.status == 200, (b.status, b.body[:200])
            return str(json.loads(b.body)["method"]) if b.body else ""

        assert method_seen(c.delete("/headers", tunnel=t)) == "DELETE"
        assert method_seen(c.options("/headers", tunnel=t)) == "OPTIONS"
        assert method_seen(c.head("/headers", tunnel=t)) == ""  # HEAD: no body
        assert method_seen(c.post("/headers", body=b"x", tunnel=t)) == "POST"
        assert method_seen(c.put("/headers", body=b"x", tunnel=t)) == "PUT"
        assert method_seen(c.patch("/headers", body=b"x", tunnel=t)) == "PATCH"
        ref = c.post("/echo", [("content-type", "text/plain")], tunnel=t)  # streamed
        c.data(ref, b"streamed ")
        c.data(ref, b"through the tunnel", fin=True)
        assert c.await_body(ref, 5).body == b"streamed through the tunnel"
        ref = c.headers("PUT", "/echo", tunnel=t)
        c.data(ref, b"x" * 100000, fin=True)
        assert c.response(ref, 5).read() == b"x" * 100000
        with c.sse("/sse", tunnel=t, timeout=5) as events:
            assert [e.data for e in events if e.data] == ["first\nsecond", "x", "after"]


def test_h2_tunnel_websocket(server: Server, nghttpx: Proxy) -> None:
    with h2proxied(nghttpx) as c:
        t = c.connect("127.0.0.1", server.http)
        assert c.await_tunnel(t, 5) == "http"
        with c.websocket("/ws", tunnel=t, timeout=5) as ws:
            ws.send("through h2")
            assert ws.recv() == "through h2"
            ws.send(b"\x00\x01")
            assert ws.recv() == b"\x00\x01"
        # Gun's way: ws_upgrade + events, to a TLS origin (HTTP/1.1) in a tunnel
        s = c.connect("localhost", server.https, **tls_dest(server, ["http"]))
        assert c.await_tunnel(s, 5) == "http"
        ref = c.ws_upgrade("/ws", tunnel=s)
        assert c.await_(ref, 5).kind == gunmetal.EventKind.UPGRADE
        c.ws_send(ref, "tls")
        ev = c.await_(ref, 5)
        assert (ev.kind, ev.data) == (gunmetal.EventKind.WS, b"tls")
        # no tunnel=: the upgrade goes to the proxy, which says no
        with pytest.raises(gunmetal.Error):
            c.websocket("/ws", timeout=5)


def test_h2_tunnel_raw(echo: Echo, nghttpx: Proxy) -> None:
    """A raw tunnel: its bytes go with data(ref) and come as DATA on ref."""
    with h2proxied(nghttpx) as c:
        t = c.connect("127.0.0.1", echo.port, protocols=["raw"])
        assert c.await_tunnel(t, 5) == "raw"
        got = b""
        for piece in (b"through ", b"an HTTP/2 stream"):
            c.data(t, piece)
            want = len(got) + len(piece)
            while len(got) < want:
                ev = c.await_(t, 5)
                assert ev.kind == gunmetal.EventKind.DATA
                got += ev.data
        assert got == b"through an HTTP/2 stream"


def test_h2_tunnel_nested(server: Server, nghttpx: Proxy) -> None:
    """connect(tunnel=): a CONNECT to a second proxy inside the HTTP/2
    tunnel; the tunnel's ref then reaches the origin behind both."""
    p2 = start_tinyproxy()
    try:
        with h2proxied(nghttpx) as c:
            a = c.connect("127.0.0.1", p2.port)
            assert c.await_tunnel(a, 5) == "http"
            inner = c.connect("localhost", server.https, tunnel=a, **tls_dest(server, ["http2"]))
            assert c.await_tunnel(inner, 5) == "http2"
            h = c.fetch("GET", "/headers", timeout=5, tunnel=a).json()
            assert (h["proto"], h["host"]) == ("HTTP/2.0", f"localhost:{server.https}")
    finally:
        p2.stop()


def test_h2_tunnel_stream_info_and_cancel(server: Server, nghttpx: Proxy) -> None:
    with h2proxied(nghttpx) as c:
        t = c.connect("127.0.0.1", server.http)
        assert c.await_tunnel(t, 5) == "http"
        slow = c.get("/delay/10000", tunnel=t)
        si = c.stream_info(slow)
        assert si is not None and si["path"] == "/delay/10000" and "tunnel_protocol" not in si
        c.cancel(t)  # the tunnel's streams end with it
        ev = c.await_(slow, 5)
        assert ev.kind == gunmetal.EventKind.ERROR and (ev.reason or "").startswith("closed")
        with pytest.raises(gunmetal.NoStream):
            c.get("/headers", tunnel=t)


REQUEST_METHODS = ["request", "fetch", "get", "head", "options", "delete", "post", "put", "patch", "headers",
                   "sse", "ws_upgrade", "websocket", "connect"]


@pytest.mark.parametrize("cls,extra", [(gunmetal.Connection, []), (gunmetal.aio.Connection, ["start_request"])],
                         ids=["sync", "aio"])
def test_tunnel_keyword_everywhere(cls: Any, extra: List[str]) -> None:
    """Every method that makes a request takes tunnel= (issue 12), keyword-only."""
    import inspect
    for name in REQUEST_METHODS + extra:
        p = inspect.signature(getattr(cls, name)).parameters.get("tunnel")
        assert p is not None and p.kind == p.KEYWORD_ONLY and p.default is None, name


BAD_TUNNELS = [("1", TypeError), (1.0, TypeError), (True, TypeError), ([1], TypeError),
               (0, ValueError), (-1, ValueError), (2**64, ValueError)]


def test_tunnel_refusals(server: Server, nghttpx: Proxy) -> None:
    """A tunnel= that is not an int ref is refused before anything goes on
    the wire; an int that is no tunnel of the connection is NoStream."""
    with h2proxied(nghttpx) as c:
        t = c.connect("127.0.0.1", server.http)
        assert c.await_tunnel(t, 5) == "http"
        calls = [
            lambda bad: c.get("/headers", tunnel=bad),
            lambda bad: c.request("GET", "/headers", tunnel=bad),
            lambda bad: c.fetch("GET", "/headers", tunnel=bad),
            lambda bad: c.post("/echo", body=b"x", tunnel=bad),
            lambda bad: c.headers("POST", "/echo", tunnel=bad),
            lambda bad: c.sse("/sse", tunnel=bad),
            lambda bad: c.ws_upgrade("/ws", tunnel=bad),
            lambda bad: c.websocket("/ws", tunnel=bad),
            lambda bad: c.connect("127.0.0.1", server.http, tunnel=bad),
        ]
        for call in calls:
            for bad, exc in BAD_TUNNELS:
                with pytest.raises(exc) as ei:
                    call(bad)
                assert "tunnel" in str(ei.value)
            with pytest.raises(gunmetal.NoStream) as en:
                call(t + 1000)
            assert "not a tunnel" in str(en.value)
        # nothing went out: the one request sent now is the only answer
        assert c.await_body(c.get("/bytes/3", tunnel=t), 5).body == b"abc"
        assert c.queue.poll(timeout=0.3) == []


def test_h1_proxy_tunnel_keyword(server: Server, tinyproxy: Proxy) -> None:
    """Through an HTTP/1.1 proxy the connection is the tunnel: tunnel= is not
    needed; the CONNECT's ref is accepted as meaning the connection (the
    engine's rule), another int is NoStream, a bad type TypeError."""
    with proxied(tinyproxy) as c:
        t = c.connect("127.0.0.1", server.http)
        assert c.await_tunnel(t, 5) == "http"
        assert c.fetch("GET", "/headers", timeout=5, tunnel=t).json()["host"] == f"127.0.0.1:{server.http}"
        assert c.fetch("GET", "/bytes/2", timeout=5).read() == b"ab"
        with c.websocket("/ws", tunnel=t, timeout=5) as ws:
            ws.send("h1")
            assert ws.recv() == "h1"
    with proxied(tinyproxy) as c:
        t = c.connect("127.0.0.1", server.http)
        assert c.await_tunnel(t, 5) == "http"
        with pytest.raises(gunmetal.NoStream):
            c.get("/headers", tunnel=t + 1000)
        with pytest.raises(TypeError):
            c.get("/headers", tunnel=str(t))  # type: ignore[arg-type]
        assert c.stream_info(t) is None  # the CONNECT's stream is over: no tunnel map


# ---------------------------------------------------------------- HTTP/2 proxy, asyncio

async def aio_h2proxied(proxy: Proxy) -> gunmetal.aio.Connection:
    c = gunmetal.aio.open("127.0.0.1", proxy.port, retry=0, protocols=["http2"])
    assert await c.up(5) == "http2"
    return c


async def test_aio_h2_tunnel_requests(server: Server, nghttpx: Proxy) -> None:
    async with await aio_h2proxied(nghttpx) as c:
        t = await c.connect("127.0.0.1", server.http)
        s = await c.connect("localhost", server.https, **tls_dest(server, ["http2", "http"]))
        assert await c.await_tunnel(t, 5) == "http"
        assert await c.await_tunnel(s, 5) == "http2"
        r = await c.get("/headers", tunnel=t)
        assert (r.status, (await r.json())["proto"]) == (200, "HTTP/1.1")
        r = await c.get("/headers", tunnel=s)
        assert (await r.json())["host"] == f"localhost:{server.https}"
        r = await c.post("/echo", body=b"aio body", tunnel=s)
        assert await r.read() == b"aio body"
        r = await c.request("PATCH", "/headers", body=b"x", tunnel=t)
        assert json.loads(await r.text())["method"] == "PATCH"
        ref = await c.headers("POST", "/echo", tunnel=s)
        await c.data(ref, b"streamed ")
        await c.data(ref, b"aio", fin=True)
        assert await (await c.response(ref)).read() == b"streamed aio"
        ref = await c.start_request("GET", "/bytes/5", tunnel=t)
        assert (await c.await_body(ref, 5)).body == b"abcde"
        r = await c.get("/headers")  # no tunnel=: the proxy itself
        assert from_proxy(r.status, r.headers), r.status
        await r.read()
        assert c.protocol == "http2" and c.info()["intermediaries"] == []
        for bad, exc in BAD_TUNNELS:
            with pytest.raises(exc):
                await c.get("/headers", tunnel=bad)
            with pytest.raises(exc):
                await c.websocket("/ws", tunnel=bad)
        with pytest.raises(gunmetal.NoStream):
            await c.fetch("GET", "/", tunnel=t + 1000)


async def test_aio_h2_tunnel_websocket(server: Server, nghttpx: Proxy) -> None:
    async with await aio_h2proxied(nghttpx) as c:
        t = await c.connect("127.0.0.1", server.http)
        assert await c.await_tunnel(t, 5) == "http"
        ws = await c.websocket("/ws", tunnel=t, timeout=5)
        await ws.send(["one", b"two"])
        assert [await ws.recv(), await ws.recv()] == ["one", b"two"]
        await ws.close()


async def test_aio_h2_tunnel_raw(echo: Echo, nghttpx: Proxy) -> None:
    """The tunnel's stream stays after TUNNEL_UP on HTTP/2: its DATA (a raw
    origin's bytes) and its end come on its ref."""
    async with await aio_h2proxied(nghttpx) as c:
        t = await c.connect("127.0.0.1", echo.port, protocols=["raw"])
        assert await c.await_tunnel(t, 5) == "raw"
        await c.data(t, b"raw in h2")
        got = b""
        while len(got) < 9:
            ev = await c.await_(t, 5)
            assert ev.kind == gunmetal.EventKind.DATA
            got += ev.data
        assert got == b"raw in h2"
        echo.stop()  # the origin goes: the tunnel ends with an ERROR on its ref
        while True:
            ev = await c.await_(t, 5)
            if ev.kind != gunmetal.EventKind.DATA:
                break
        assert ev.kind == gunmetal.EventKind.ERROR, ev
        assert c.protocol == "http2"


async def test_aio_h2_tunnel_nested(server: Server, nghttpx: Proxy) -> None:
    p2 = start_tinyproxy()
    try:
        async with await aio_h2proxied(nghttpx) as c:
            a = await c.connect("127.0.0.1", p2.port)
            assert await c.await_tunnel(a, 5) == "http"
            inner = await c.connect("127.0.0.1", server.http, tunnel=a)
            assert await c.await_tunnel(inner, 5) == "http"
            assert c.protocol == "http2"  # the connection still speaks to the HTTP/2 proxy
            r = await c.get("/headers", tunnel=a)
            assert (await r.json())["host"] == f"127.0.0.1:{server.http}"
    finally:
        p2.stop()


async def test_aio_h2_tunnel_large_body_flow(server: Server, nghttpx: Proxy) -> None:
    """3 MB through a tunnel with a small window (the asyncio flow per
    stream, and HTTP/2 windows of 64 KiB): the tunnel's own flow (given to
    connect) does not hold the streams inside it."""
    async with gunmetal.aio.open("127.0.0.1", nghttpx.port, retry=0, protocols=["http2"], window=4,
                                 http2_opts={"initial_stream_window_size": 65535,
                                             "initial_connection_window_size": 65535}) as c:
        assert await c.up(5) == "http2"
        t = await c.connect("127.0.0.1", server.http)
        assert await c.await_tunnel(t, 5) == "http"
        n = 0
        async with await c.get("/bytes/3000000", tunnel=t, timeout=30) as r:
            async for chunk in r:
                n += len(chunk)
        assert n == 3000000


def test_h2_tunnel_ping(server: Server, nghttpx: Proxy) -> None:
    """Gun's ping/2 with #{tunnel => Ref}: the h2c origin inside the tunnel
    acks with NOTIFY ping_ack; an HTTP/1.1 origin has no ping; bad values
    are refused before the call."""
    with h2proxied(nghttpx) as c:
        t2 = c.connect("127.0.0.1", server.http, protocols=["http2"])
        t1 = c.connect("127.0.0.1", server.http, protocols=["http"])
        assert c.await_tunnel(t2, 5) == "http2"
        assert c.await_tunnel(t1, 5) == "http"
        ref = c.ping(tunnel=t2)
        ev = c.await_(ref, 5)
        assert (ev.kind, ev.reason, ev.ref) == (gunmetal.EventKind.NOTIFY, "ping_ack", ref)
        with pytest.raises(gunmetal.Unsupported):
            c.ping(tunnel=t1)
        with pytest.raises(gunmetal.NoStream):
            c.ping(tunnel=t1 + t2 + 1000)
        with pytest.raises(TypeError):
            c.ping(tunnel="1")  # type: ignore[arg-type]


async def test_aio_h2_tunnel_ping(server: Server, nghttpx: Proxy) -> None:
    async with await aio_h2proxied(nghttpx) as c:
        t = await c.connect("127.0.0.1", server.http, protocols=["http2"])
        assert await c.await_tunnel(t, 5) == "http2"
        await c.ping(5, tunnel=t)
        await c.ping(5)  # the proxy's own connection
