"""Proxies and tunnels (issue 12): conn.connect() (Gun's gun:connect) through
tinyproxy to the test server over http and https, Basic proxy-authorization
(407 without it: TunnelRefused), nested proxies, SOCKS5 through microsocks
(protocols=["socks"], socks_opts; with and without username/password), the
intermediaries in info(), refusals; sync and asyncio. The proxies are
started by the fixtures (conftest) on 127.0.0.1."""

from __future__ import annotations

from typing import Any, Dict

import pytest

import gunmetal
import gunmetal.aio
from conftest import Proxy, Server, start_tinyproxy


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
