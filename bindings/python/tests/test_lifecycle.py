"""Connection life cycles: up, down, reconnect, exit (sync and asyncio)."""

from __future__ import annotations

import os
import socket
import tempfile
import time
from typing import List

import pytest

import gunmetal
import gunmetal.aio
from gunmetal import EventKind
from conftest import Server, start_server


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


def drain(q: gunmetal.Queue, until: EventKind, timeout: float = 5) -> List[gunmetal.Event]:
    evs: List[gunmetal.Event] = []
    deadline = time.monotonic() + timeout
    while not any(e.kind == until for e in evs):
        left = deadline - time.monotonic()
        assert left > 0, f"no {until.name} in {evs}"
        evs += q.poll(256, left)
    return evs


def test_refused_retry_0_exits_econnrefused() -> None:
    port = free_port()
    with gunmetal.open("127.0.0.1", port, retry=0) as c:
        with pytest.raises(gunmetal.ConnectionRefused) as ei:
            c.await_up(5)
        assert ei.value.code == gunmetal._ffi.GM_ECLOSED and ei.value.reason == "econnrefused"
        (ev,) = c.queue.poll(10, 5)  # the EXIT stayed queued for the owner
        assert ev.kind == EventKind.EXIT and ev.reason == "econnrefused" and ev.conn is c
        with pytest.raises(gunmetal.Closed) as ei:
            c.get("/")
        assert str(ei.value) == f"127.0.0.1:{port}: the connection exited: econnrefused"
        # gm_info after the EXIT: state closed and the EXIT's reason.
        info = c.info()
        assert info["state"] == "closed" and info["reason"] == "econnrefused"


def test_retries_then_exit() -> None:
    port = free_port()
    t = time.monotonic()
    with gunmetal.open("127.0.0.1", port, retry=2, retry_timeout=50) as c:
        evs = drain(c.queue, EventKind.EXIT)
        assert [e.kind for e in evs] == [EventKind.EXIT]
        assert evs[0].reason == "econnrefused"
    assert time.monotonic() - t >= 0.05  # it did wait between retries


def test_request_before_up_waits_for_it(server: Server) -> None:
    with gunmetal.open(server.host, server.http) as c:
        ref = c.get("/bytes/7")  # not up yet: queued, sent on UP
        assert c.await_body(ref, 5).body == b"abcdefg"
        assert c.await_up(5) == "http"  # the UP is still there for await_up


def test_drop_down_killed_and_reconnect(server: Server) -> None:
    with gunmetal.open(server.host, server.http, retry=1) as c:
        assert c.await_up(5) == "http"
        ref = c.get("/drop?after=100")
        evs = drain(c.queue, EventKind.UP)
        kinds = [e.kind for e in evs]
        assert kinds[0] == EventKind.RESPONSE and kinds[-2:] == [EventKind.DOWN, EventKind.UP]
        err = [e for e in evs if e.kind == EventKind.ERROR]
        assert len(err) == 1 and err[0].ref == ref and err[0].reason and err[0].reason.startswith("closed")
        assert kinds.index(EventKind.ERROR) < kinds.index(EventKind.DOWN)
        down = evs[-2]
        assert down.killed == [ref] and down.protocol == "http" and down.reason
        assert sum(len(e.data) for e in evs if e.kind == EventKind.DATA) == 100
        assert evs[-1].protocol == "http"
        # up again: the connection works
        assert c.await_body(c.get("/bytes/2"), 5).body == b"ab"


def test_drop_await_body_raises_stream_closed(server: Server) -> None:
    with gunmetal.open(server.host, server.http, retry=1) as c:
        c.await_up(5)
        with pytest.raises(gunmetal.StreamClosed) as ei:
            c.await_body(c.get("/drop?after=10"), 5)
        assert isinstance(ei.value, gunmetal.Closed) and isinstance(ei.value, gunmetal.StreamError)
        assert ei.value.reason.startswith("closed")


def test_server_gone_down_then_exit(testserver_bin: str) -> None:
    d = tempfile.mkdtemp(prefix="gm-py-")
    s = start_server(testserver_bin, d)
    try:
        c = gunmetal.open(s.host, s.http, retry=1, retry_timeout=50)
        assert c.await_up(5) == "http"
    finally:
        s.stop()
    with c:
        evs = drain(c.queue, EventKind.EXIT)
        assert [e.kind for e in evs] == [EventKind.DOWN, EventKind.EXIT]
        assert evs[0].killed == []
        assert evs[1].reason == "econnrefused"
        with pytest.raises(gunmetal.Closed):
            c.await_up(1)


def test_server_restart_reconnects(testserver_bin: str) -> None:
    d = tempfile.mkdtemp(prefix="gm-py-")
    s = start_server(testserver_bin, d)
    port = s.http
    with gunmetal.open(s.host, port, retry=50, retry_timeout=50) as c:
        assert c.await_up(5) == "http"
        s.stop()
        evs = drain(c.queue, EventKind.DOWN)
        assert evs[-1].kind == EventKind.DOWN
        import subprocess
        import json

        p = subprocess.Popen([testserver_bin, "-port", str(port), "-cert-dir", os.path.join(d, "c2")],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            assert p.stdout is not None
            assert json.loads(p.stdout.readline())["http"] == port
            assert c.await_up(5) == "http"
            assert c.await_body(c.get("/bytes/1"), 5).body == b"a"
        finally:
            assert p.stdin is not None and p.stdout is not None
            p.stdin.close()
            p.wait(5)
            p.stdout.close()


def test_close_while_retrying() -> None:
    c = gunmetal.open("127.0.0.1", free_port(), retry=100, retry_timeout=1000)
    time.sleep(0.05)
    t = time.monotonic()
    c.close()
    assert time.monotonic() - t < 1
    with pytest.raises(gunmetal.Closed):
        c.await_up(0)


def test_exit_on_shared_queue_names_the_connection() -> None:
    with gunmetal.Queue() as q:
        a = gunmetal.open("127.0.0.1", free_port(), owner=q, retry=0)
        b = gunmetal.open("127.0.0.1", free_port(), owner=q, retry=0)
        exits = {}
        while len(exits) < 2:
            for e in q.poll(256, 5):
                assert e.kind == EventKind.EXIT
                exits[e.conn] = e.reason
        assert exits == {a: "econnrefused", b: "econnrefused"}
        a.close()
        b.close()


# ---------------------------------------------------------------- asyncio


async def test_aio_refused_up_raises_closed() -> None:
    async with gunmetal.aio.open("127.0.0.1", free_port(), retry=0) as c:
        with pytest.raises(gunmetal.Closed) as ei:
            await c.up(5)
        assert "econnrefused" in str(ei.value)
        assert await c.wait_closed() == "econnrefused"
        assert c.state == "exited" and c.exit_reason == "econnrefused"
        ev = await c.next_event(1)
        assert ev.kind == EventKind.EXIT and ev.reason == "econnrefused"
        with pytest.raises(gunmetal.Closed):
            await c.next_event(1)
        with pytest.raises(gunmetal.Closed):
            await c.get("/")


async def test_aio_drop_down_reconnect(server: Server) -> None:
    async with gunmetal.aio.open(server.host, server.http, retry=1) as c:
        assert await c.up(5) == "http"
        assert (await c.next_event(5)).kind == EventKind.UP
        resp = await c.get("/drop?after=100")
        assert resp.status == 200
        with pytest.raises(gunmetal.StreamClosed):
            await resp.read()
        down = await c.next_event(5)
        assert down.kind == EventKind.DOWN and down.killed == [resp.ref]
        up = await c.next_event(5)
        assert up.kind == EventKind.UP and c.state == "up"
        assert await (await c.get("/bytes/3")).read() == b"abc"


async def test_aio_server_gone_exit(testserver_bin: str) -> None:
    d = tempfile.mkdtemp(prefix="gm-py-")
    s = start_server(testserver_bin, d)
    try:
        c = gunmetal.aio.open(s.host, s.http, retry=1, retry_timeout=50)
        await c.up(5)
    finally:
        s.stop()
    async with c:
        assert await c.wait_closed() == "econnrefused"
        kinds = [(await c.next_event(1)).kind for _ in range(3)]
        assert kinds == [EventKind.UP, EventKind.DOWN, EventKind.EXIT]
