"""flush (Gun's flush/1): Queue.flush(conn or ref), Connection.flush(), and
gunmetal.aio's Connection.flush(ref=None); what is dropped is released, so
the connection reads on."""

from __future__ import annotations

import time

import pytest

import gunmetal
import gunmetal.aio
from gunmetal import EventKind
from conftest import Server


def _wait_stream_end(c: gunmetal.Connection, ref: int) -> None:
    end = time.monotonic() + 10
    while c.stream_info(ref) is not None:
        assert time.monotonic() < end, f"stream {ref} did not end"
        time.sleep(0.005)


def test_flush_ref_releases_read_budget(conn: gunmetal.Connection) -> None:
    # 32 MiB, twice the read budget: without the release the pipelined
    # request behind it would never be answered.
    a = conn.get("/bytes/33554432")
    b = conn.get("/bytes/10")
    dropped = 0
    end = time.monotonic() + 40
    while True:
        dropped += conn.queue.flush(a)
        try:
            ev = conn.await_(b, 0.02)
            break
        except gunmetal.Timeout:
            assert time.monotonic() < end, f"stream b never came ({dropped} events of a dropped)"
    assert ev.kind == EventKind.RESPONSE and ev.status == 200
    assert dropped >= 2
    conn.queue.flush(a)  # the rest of a, queued ahead of b's response
    assert conn.await_body(b, 5).body == b"abcdefghij"
    assert len(conn.queue) == 0


def test_flush_conn_keeps_exit_and_other_conns(server: Server) -> None:
    with gunmetal.Queue() as q:
        c1 = gunmetal.open(server.host, server.http, owner=q, retry=0)
        r1 = c1.get("/bytes/100")
        c2 = gunmetal.open(server.host, server.http, owner=q, retry=0)
        assert c2.await_up(5) == "http"
        _wait_stream_end(c1, r1)  # c1's UP, RESPONSE and DATA are queued
        assert c1.flush() >= 3
        assert len(q) == 0
        assert c2.await_body(c2.get("/bytes/3"), 5).body == b"abc"
        c1.shutdown()
        evs = []
        end = time.monotonic() + 10
        while not any(e.kind == EventKind.EXIT for e in evs):
            assert time.monotonic() < end
            q.flush(c1)  # never the EXIT
            evs += q.poll(16, 0.05)
        assert [e.kind for e in evs if e.conn is c1] == [EventKind.EXIT]
        with pytest.raises(TypeError):
            q.flush("x")  # neither a connection nor a ref
        c1.close()
        c2.close()


async def test_aio_flush(server: Server) -> None:
    async with gunmetal.aio.open(server.host, server.http, retry=0) as c:
        await c.up(5)
        ref = await c.start_request("GET", "/bytes/1000")
        b = await c.get("/bytes/3")  # answered after ref's response: ref's events are in
        assert await b.read() == b"abc"
        assert c.flush(ref) >= 2  # RESPONSE and DATA
        with pytest.raises(gunmetal.NoStream):
            await c.await_(ref, 1)
        # A flushed connection: its UP is gone from next_event.
        assert c.flush() >= 1
        resp = await c.get("/bytes/2")
        assert await resp.read() == b"ab"
