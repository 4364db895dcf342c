"""Interop with a server nobody here wrote: Debian's nginx (tests/nginx/nginx.sh)."""

from __future__ import annotations

from typing import Any, Dict

import gunmetal
import gunmetal.aio
from gunmetal import EventKind


def pattern(n: int) -> bytes:
    return bytes(97 + i % 26 for i in range(n))


def test_nginx_sync_http(nginx: Dict[str, Any]) -> None:
    with gunmetal.open("127.0.0.1", nginx["http"]) as c:
        assert c.await_up(5) == "http"
        b = c.await_body(c.get("/bytes/100"), 5)
        assert b.status == 200 and b.body == pattern(100)
        assert dict(b.headers)["server"].startswith("nginx")
        assert c.await_body(c.get("/bytes/0"), 5).body == b""
        ev = c.await_(c.get("/status204"), 5)
        assert ev.kind == EventKind.RESPONSE and ev.status == 204 and ev.fin
        b = c.await_body(c.get("/chunked.shtml"), 5)
        assert b.body == b"chunked ok\n"
        assert ("transfer-encoding", "chunked") in b.headers
        assert c.await_body(c.get("/redirect"), 5).status == 301
        assert c.await_body(c.get("/nope"), 5).status == 404
        ev = c.await_(c.head("/bytes/100000"), 5)
        assert ev.fin and ("content-length", "100000") in ev.headers
        # keep-alive and pipelining: 200 requests on the one connection
        refs = [c.get("/bytes/100") for _ in range(200)]
        for r in refs:
            assert c.await_body(r, 5).body == pattern(100)
        assert c.info()["state"] == "connected"


def test_nginx_sync_tls_10mib(nginx: Dict[str, Any]) -> None:
    with gunmetal.open("localhost", nginx["https"], transport="tls", protocols=["http"],
                       tls_opts={"cacertfile": nginx["ca"]}) as c:
        assert c.await_up(5) == "http"
        assert c.info()["transport"] == "tls"
        b = c.await_body(c.get("/bytes/10485760"), 10)
        assert len(b.body) == 10485760 and b.body[:52] == pattern(52)


async def test_nginx_aio(nginx: Dict[str, Any]) -> None:
    async with gunmetal.aio.open("127.0.0.1", nginx["http"]) as c:
        await c.up(5)
        n = 0
        async for chunk in await c.get("/bytes/10485760"):
            n += len(chunk)
        assert n == 10485760
        import asyncio

        resps = await asyncio.gather(*(c.get("/bytes/100") for _ in range(50)))
        assert all([await r.read() == pattern(100) for r in resps])
