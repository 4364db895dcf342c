"""WebSocket (sync and asyncio) against the test server's /ws echo, and
HTTP/2's ping."""

from __future__ import annotations

import asyncio
from typing import List

import pytest

import gunmetal
import gunmetal.aio
from gunmetal import EventKind, WSFrame, WSOpcode
from conftest import Server


def ws_events(c: gunmetal.Connection, ref: int, n: int) -> List[gunmetal.Event]:
    return [c.await_(ref, 5) for _ in range(n)]


def test_sync_ws_upgrade_send_recv_close(server: Server) -> None:
    with gunmetal.open(server.host, server.http, retry=0) as c:
        c.await_up(5)
        ref = c.ws_upgrade("/ws", [("x-test", "1")], protocols=["echo"])
        up = c.await_(ref, 5)
        assert up.kind == EventKind.UPGRADE and up.protocol == "websocket"
        assert ("sec-websocket-protocol", "echo") in up.headers
        c.ws_send(ref, "héllo")
        c.ws_send(ref, [b"\x00\x01", WSFrame.binary(b"two"), WSFrame.text("three")])
        evs = ws_events(c, ref, 4)
        assert [(e.ws_opcode, e.data) for e in evs] == [
            (WSOpcode.TEXT, "héllo".encode()), (WSOpcode.BINARY, b"\x00\x01"),
            (WSOpcode.BINARY, b"two"), (WSOpcode.TEXT, b"three")]
        assert all(e.kind == EventKind.WS and e.conn is c for e in evs)
        assert c.info()["protocol"] == "ws"
        c.ws_send(ref, WSFrame.close(1000, "bye"))
        close = c.await_(ref, 5)
        assert close.kind == EventKind.WS and close.ws_opcode == WSOpcode.CLOSE and close.status == 1000
        # HTTP/1.1: the close ends the connection (DOWN, protocol ws, reason
        # normal after a close handshake, the stream killed)
        down = next_down(c)
        assert down.protocol == "ws" and down.reason == "normal" and down.killed == [ref]


def next_down(c: gunmetal.Connection) -> gunmetal.Event:
    for _ in range(20):
        for ev in c.queue.poll(10, 5):
            if ev.kind == EventKind.DOWN:
                return ev
    raise AssertionError("no DOWN")


def test_sync_ws_server_close_code(server: Server) -> None:
    with gunmetal.open(server.host, server.http, retry=0) as c:
        ref = c.ws_upgrade("/ws?close=4001")
        assert c.await_(ref, 5).kind == EventKind.UPGRADE
        ev = c.await_(ref, 5)
        assert ev.ws_opcode == WSOpcode.CLOSE and ev.status == 4001 and ev.data == b"bye"


def test_sync_ws_rejected_is_a_response(server: Server) -> None:
    with gunmetal.open(server.host, server.http, retry=0) as c:
        ref = c.ws_upgrade("/ws-reject")
        b = c.await_body(ref, 5)
        assert b.status == 403
        assert c.info()["protocol"] == "http"


def test_sync_ws_bad_input(server: Server) -> None:
    with gunmetal.open(server.host, server.http, retry=0) as c:
        c.await_up(5)
        with pytest.raises(gunmetal.OptionError) as ei:
            c.ws_upgrade("/ws", compress="yes")
        assert ei.value.key and "compress" in ei.value.key
        with pytest.raises(gunmetal.OptionError) as ei:
            c.ws_upgrade("/ws", protocols={"echo"})
        assert ei.value.key == "ws_opts.protocols"
        with pytest.raises(gunmetal.InvalidArgument):
            c.ws_upgrade("/w s")
        ref = c.ws_upgrade("/ws")
        assert c.await_(ref, 5).kind == EventKind.UPGRADE
        # a control frame carries at most 125 bytes (RFC 6455 5.5)
        with pytest.raises(gunmetal.InvalidArgument):
            c.ws_send(ref, WSFrame.ping(b"x" * 126))
        with pytest.raises(gunmetal.InvalidArgument):
            c.ws_send(ref, WSFrame.pong(b"x" * 126))
        with pytest.raises(gunmetal.InvalidArgument):
            c.ws_send(ref, WSFrame.close(1000, "x" * 200))  # reason > 123 bytes
        with pytest.raises(gunmetal.InvalidArgument):
            c.ws_send(ref, [WSFrame.close(), "after close"])
        with pytest.raises(TypeError, match="a WebSocket frame must be"):
            c.ws_send(ref, [5])  # type: ignore[list-item]
        with pytest.raises(gunmetal.NoStream):
            c.ws_send(ref + 1000, "x")
        c.ws_send(ref, [])  # nothing to send
        c.ws_send(ref, WSFrame.ping())
        c.ws_send(ref, WSFrame.pong(b"unsolicited"))  # allowed (RFC 6455 5.5.3)
        c.ws_send(ref, "still fine")
        while True:
            ev = c.await_(ref, 5)
            if ev.ws_opcode == WSOpcode.TEXT:
                assert ev.data == b"still fine"
                break


def test_sync_ws_ping_pong_payloads(server: Server) -> None:
    # Gun's {ping, Payload}: the payload goes out as given; the server's pong
    # carries it back (an event with silence_pings False). An unsolicited
    # pong gives no event: the text after it is the next one.
    with gunmetal.open(server.host, server.http, retry=0) as c:
        ref = c.ws_upgrade("/ws", silence_pings=False)
        assert c.await_(ref, 5).kind == EventKind.UPGRADE
        c.ws_send(ref, [WSFrame.pong(b"p"), WSFrame.ping(b"payload"), WSFrame.ping(b"y" * 125), "t"])
        evs = ws_events(c, ref, 3)
        assert [(e.ws_opcode, e.data) for e in evs] == [
            (WSOpcode.PONG, b"payload"), (WSOpcode.PONG, b"y" * 125), (WSOpcode.TEXT, b"t")]


def test_sync_ws_max_message_size(server: Server) -> None:
    # The echo of a message over max_message_size is refused at its frame
    # header: ERROR and DOWN say max_message_size, not normal.
    with gunmetal.open(server.host, server.http, retry=0) as c:
        ref = c.ws_upgrade("/ws", max_message_size=10)
        assert c.await_(ref, 5).kind == EventKind.UPGRADE
        c.ws_send(ref, "x" * 100)
        err = c.await_(ref, 5)
        assert err.kind == EventKind.ERROR and err.reason.startswith("max_message_size: ")
        down = next_down(c)
        assert down.protocol == "ws" and down.reason == err.reason and down.killed == [ref]


def test_sync_ws_protocols_handler_and_user_opts(server: Server) -> None:
    # Gun's protocols [(name, handler)]: the handler must be gun_ws_h (there
    # are no handler modules), as must default_protocol; user_opts, which
    # only a handler would read, is refused.
    with gunmetal.open(server.host, server.http, retry=0) as c:
        for bad, key in [({"protocols": [("echo", "my_ws_h")]}, "ws_opts.protocols"),
                         ({"default_protocol": "my_ws_h"}, "ws_opts.default_protocol"),
                         ({"user_opts": {"a": 1}}, "ws_opts.user_opts")]:
            with pytest.raises(gunmetal.OptionError) as ei:
                c.ws_upgrade("/ws", **bad)
            assert ei.value.key == key
        ref = c.ws_upgrade("/ws", protocols=[("echo", "gun_ws_h")], default_protocol="gun_ws_h")
        up = c.await_(ref, 5)
        assert up.kind == EventKind.UPGRADE and ("sec-websocket-protocol", "echo") in up.headers


def test_sync_ws_reply_to(server: Server) -> None:
    # Gun's ws_opts reply_to: the stream's events go to that queue; DOWN
    # stays on the connection's.
    with gunmetal.Queue() as q2, gunmetal.open(server.host, server.http, retry=0) as c:
        with pytest.raises(TypeError, match="reply_to must be a gunmetal.Queue"):
            c.ws_upgrade("/ws", reply_to=5)  # type: ignore[arg-type]
        ref = c.ws_upgrade("/ws", reply_to=q2)
        up = q2.poll(1, 5)
        assert [(e.kind, e.ref) for e in up] == [(EventKind.UPGRADE, ref)]
        c.ws_send(ref, ["one", WSFrame.close(1000)])
        evs = [e for _ in range(5) for e in q2.poll(10, 1)]
        assert [(e.kind, e.ws_opcode, e.data) for e in evs] == [
            (EventKind.WS, WSOpcode.TEXT, b"one"), (EventKind.WS, WSOpcode.CLOSE, b"")]
        down = next_down(c)  # on c's queue; nothing of the stream came there
        assert down.reason == "normal" and down.killed == [ref]
        assert not c._reply_to


async def test_aio_ws_reply_to(server: Server) -> None:
    with gunmetal.Queue() as q2:
        async with gunmetal.aio.open(server.host, server.http, retry=0) as c:
            ref = await c.ws_upgrade("/ws", reply_to=q2)
            assert isinstance(ref, int)
            loop = asyncio.get_running_loop()
            up = await loop.run_in_executor(None, q2.poll, 1, 5)
            assert [(e.kind, e.ref) for e in up] == [(EventKind.UPGRADE, ref)]
            await c.ws_send(ref, "two")
            ev = (await loop.run_in_executor(None, q2.poll, 1, 5))[0]
            assert (ev.kind, ev.ws_opcode, ev.data) == (EventKind.WS, WSOpcode.TEXT, b"two")
            await c.ws_send(ref, WSFrame.close(1000))
            ev = (await loop.run_in_executor(None, q2.poll, 1, 5))[0]
            assert (ev.ws_opcode, ev.status) == (WSOpcode.CLOSE, 1000)
            down = None
            while down is None:
                e = await c.next_event(5)
                if e.kind == EventKind.DOWN:
                    down = e
            assert down.reason == "normal" and down.killed == [ref]


async def test_aio_ws_echo(server: Server) -> None:
    async with gunmetal.aio.open(server.host, server.http, retry=0) as c:
        await c.up(5)
        ws = await c.ws_upgrade("/ws", protocols=["chat", "echo"])
        assert ws.protocol == "chat"
        await ws.send("hi")
        await ws.send([b"bin", WSFrame.text("t2")])
        msgs = [await ws.recv(5) for _ in range(3)]
        assert msgs == ["hi", b"bin", "t2"]  # text frames as str, binary as bytes
        big = bytes(range(256)) * 4096  # 1 MiB
        await ws.send(big)
        got = await ws.recv(5)
        assert got == big
        await ws.close(1000, "done")
        rest = [f async for f in ws]
        assert len(rest) == 1 and isinstance(rest[0], WSFrame)
        assert rest[0].opcode == WSOpcode.CLOSE and rest[0].code == 1000
        assert ws.closed and ws.close_frame is not None
        with pytest.raises(gunmetal.ConnectionClosed):
            await ws.recv()
        down = None
        while down is None:
            ev = await c.next_event(5)
            if ev.kind == EventKind.DOWN:
                down = ev
        assert down.protocol == "ws" and down.killed == [ws.ref]


async def test_aio_ws_many_messages_flow(server: Server) -> None:
    async with gunmetal.aio.open(server.host, server.http, retry=0, window=4) as c:
        ws = await c.ws_upgrade("/ws")
        await ws.send([f"m{i}" for i in range(200)])
        await asyncio.sleep(0.2)
        assert len(c._streams[ws.ref].events) <= 4  # the flow window holds the rest back
        got = [await ws.recv(5) for _ in range(200)]
        assert got == [f"m{i}" for i in range(200)]


async def test_aio_ws_server_closes(server: Server) -> None:
    async with gunmetal.aio.open(server.host, server.http, retry=0) as c:
        ws = await c.ws_upgrade("/ws?close=1001")
        frames = [f async for f in ws]
        assert [(f.opcode, f.code, f.data) for f in frames if isinstance(f, WSFrame)] == [(WSOpcode.CLOSE, 1001, b"bye")]
        assert len(frames) == 1


async def test_aio_ws_rejected(server: Server) -> None:
    async with gunmetal.aio.open(server.host, server.http, retry=0) as c:
        with pytest.raises(gunmetal.UpgradeRejected) as ei:
            await c.ws_upgrade("/ws-reject")
        assert ei.value.status == 403 and ei.value.body == b"no\n"
        assert isinstance(ei.value, gunmetal.StreamError)
        assert await (await c.get("/bytes/2")).read() == b"ab"  # still HTTP


def test_ping_http1_unsupported(conn: gunmetal.Connection) -> None:
    with pytest.raises(gunmetal.Unsupported):
        conn.ping()


def test_ping_http2(server: Server) -> None:
    with gunmetal.open(server.host, server.http, protocols=["http2"]) as c:
        c.await_up(5)
        ref = c.ping()
        ev = c.await_(ref, 5)
        assert ev.kind == EventKind.NOTIFY and ev.reason == "ping_ack"


async def test_aio_ping_http2(server: Server) -> None:
    async with gunmetal.aio.open(server.host, server.http, protocols=["http2"]) as c:
        await c.up(5)
        await c.ping(5)
        assert not c._streams
