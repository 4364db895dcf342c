"""100 MiB bodies streamed with flat memory, both ways, sync and asyncio;
a consumer that stops reading slows the server instead of growing memory."""

from __future__ import annotations

import gc
import json
import time
import tracemalloc
from typing import Iterator

import pytest

import gunmetal
import gunmetal.aio
from gunmetal import EventKind
from conftest import Server

MiB = 1 << 20
N = 100 * MiB
# Go's runtime, its read buffers and the library's 16 MiB read budget: well
# under the body's size, which is what "flat" means here.
RSS_GROWTH_MAX = 64 * MiB


def rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture
def traced() -> Iterator[None]:
    gc.collect()
    tracemalloc.start()
    try:
        yield
    finally:
        tracemalloc.stop()


def peak() -> int:
    return tracemalloc.get_traced_memory()[1]


def test_download_100mib_sync(server: Server, traced: None) -> None:
    with gunmetal.open(server.host, server.http) as c:
        c.await_up(5)
        c.await_body(c.get("/bytes/1000000"), 5)  # warm the buffers
        base = rss()
        tracemalloc.reset_peak()
        ref = c.get(f"/bytes/{N}")
        n = 0
        ok = True
        while True:
            ev = c.await_(ref, 10)
            if ev.kind == EventKind.DATA:
                # spot-check the pattern (byte i is 'a' + i % 26)
                if ev.data and ev.data[0] != 97 + n % 26:
                    ok = False
                n += len(ev.data)
                if ev.fin:
                    break
        assert n == N and ok
        assert peak() < 2 * MiB, peak()
        assert rss() - base < RSS_GROWTH_MAX, (rss() - base) >> 20


def test_upload_100mib_sync(server: Server, traced: None) -> None:
    with gunmetal.open(server.host, server.http) as c:
        c.await_up(5)
        base = rss()
        tracemalloc.reset_peak()
        ref = c.post("/headers", [("content-length", str(N))])
        chunk = memoryview(bytearray(b"z" * MiB))
        for _ in range(100):
            c.data(ref, chunk)
        c.data(ref, b"", fin=True)
        r = json.loads(c.await_body(ref, 10).body)
        assert r["body_len"] == N
        assert peak() < 4 * MiB, peak()
        assert rss() - base < RSS_GROWTH_MAX, (rss() - base) >> 20


def test_slow_consumer_bounds_the_queue(server: Server) -> None:
    with gunmetal.open(server.host, server.http) as c:
        c.await_up(5)
        base = rss()
        ref = c.get(f"/bytes/{N}")
        time.sleep(1.0)  # read nothing: the library stops reading the socket
        queued = len(c.queue)
        assert 0 < queued < 600, queued  # ≈ the 16 MiB read budget in 64 KiB events, not 100 MiB
        assert rss() - base < RSS_GROWTH_MAX
        n = 0
        while True:
            evs = c.queue.poll(256, 10)
            for ev in evs:
                assert ev.ref == ref
                n += len(ev.data)
            if evs and evs[-1].fin:
                break
        assert n == N


async def test_download_100mib_aio(server: Server, traced: None) -> None:
    async with gunmetal.aio.open(server.host, server.http) as c:
        await c.up(5)
        await (await c.get("/bytes/1000000")).read()
        base = rss()
        tracemalloc.reset_peak()
        n = 0
        async for chunk in await c.get(f"/bytes/{N}"):
            n += len(chunk)
        assert n == N
        assert peak() < 4 * MiB, peak()
        assert rss() - base < RSS_GROWTH_MAX, (rss() - base) >> 20


async def test_upload_100mib_aio(server: Server, traced: None) -> None:
    async with gunmetal.aio.open(server.host, server.http) as c:
        await c.up(5)
        base = rss()
        tracemalloc.reset_peak()
        ref = await c.headers("PUT", "/headers", [("content-length", str(N))])
        chunk = bytes(MiB)
        for _ in range(100):
            await c.data(ref, chunk)
        await c.data(ref, b"", fin=True)
        r = json.loads(await (await c.response(ref)).read())
        assert r["body_len"] == N
        assert peak() < 4 * MiB, peak()
        assert rss() - base < RSS_GROWTH_MAX, (rss() - base) >> 20


async def test_aio_slow_consumer_window(server: Server) -> None:
    import asyncio

    async with gunmetal.aio.open(server.host, server.http, window=8) as c:
        await c.up(5)
        resp = await c.get(f"/bytes/{N}")
        await asyncio.sleep(0.5)
        st = c._streams[resp.ref]
        assert len(st.events) <= 8  # the window, not the body
        n = 0
        async for chunk in resp:
            n += len(chunk)
        assert n == N
