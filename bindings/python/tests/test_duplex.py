"""Sync streamed uploads against a full-duplex server, and signals during
blocking calls (issue 10, item 4).

A server that answers as it reads (/echo) stops reading when its answer is
not read: the sync data() must take the stream's events while it waits, or
it waits for ever (HTTP/2 after about 8 MiB). And every blocking call of the
sync API must let a signal through: SIGINT while blocked raises
KeyboardInterrupt within a generous second.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any, Callable, Iterator, List

import pytest

import gunmetal
from conftest import Server, http2_available
from gunmetal import EventKind

CHUNK = b"0123456789abcdef" * 4096  # 64 KiB


def _open(server: Server, proto: str) -> gunmetal.Connection:
    if proto == "http2" and not http2_available(server):
        pytest.fail("the library does not speak HTTP/2 (h2c)")
    c = gunmetal.open(server.host, server.http, protocols=[proto], retry=0)
    assert c.await_up(5) == proto
    return c


def _watchdog(c: gunmetal.Connection, fn: Callable[[], Any], limit: float = 120) -> Any:
    """Runs fn in a thread; a deadlock fails the test (closing the
    connection releases a blocked call) instead of hanging it."""
    box: List[Any] = []

    def run() -> None:
        try:
            box.append(("ok", fn()))
        except BaseException as e:  # noqa: BLE001 - reported below
            box.append(("err", e))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(limit)
    if t.is_alive():
        c.close()
        t.join(10)
        pytest.fail(f"deadlock: still blocked after {limit} s")
    kind, v = box[0]
    if kind == "err":
        raise v
    return v


@pytest.mark.parametrize("proto", ["http2", "http"])
def test_streamed_upload_to_a_full_duplex_echo_completes(server: Server, proto: str) -> None:
    # 32 MiB: past the 8 MiB HTTP/2 window and the library's 16 MiB read
    # budget; before the fix data() blocked for ever after about 8 MiB on
    # HTTP/2 (and the HTTP/1.1 connection went down).
    total = 32 << 20
    with _open(server, proto) as c:
        ref = c.post("/echo")

        def upload() -> gunmetal.Body:
            for _ in range(total // len(CHUNK)):
                c.data(ref, CHUNK)
            c.data(ref, b"", fin=True)
            return c.await_body(ref, 30)

        b = _watchdog(c, upload)
        assert b.status == 200
        assert len(b.body) == total and b.body[: len(CHUNK)] == CHUNK and b.body[-16:] == CHUNK[-16:]
        assert len(c.queue) == 0 and c.queue.poll(256, 0) == []


def test_reading_as_it_uploads_keeps_the_held_events_small(server: Server) -> None:
    # The program that takes the response between pieces holds little: the
    # events data() took while it waited never grow past a few windows.
    total = 64 << 20
    with _open(server, "http2") as c:
        ref = c.post("/echo")
        got = 0
        most_held = 0

        def take() -> None:
            nonlocal got
            while True:
                try:
                    ev = c.await_(ref, 0)
                except gunmetal.Timeout:
                    return
                if ev.kind == EventKind.DATA:
                    got += len(ev.data)

        def upload() -> None:
            nonlocal most_held, got
            for _ in range(total // len(CHUNK)):
                c.data(ref, CHUNK)
                most_held = max(most_held, c.queue._held_bytes)
                take()
            c.data(ref, b"", fin=True)
            while got < total:
                ev = c.await_(ref, 30)
                if ev.kind == EventKind.DATA:
                    got += len(ev.data)

        _watchdog(c, upload)
        assert got == total
        assert most_held <= 24 << 20, f"{most_held} bytes held"


def test_held_events_are_bounded_by_max_held(server: Server) -> None:
    # A program that never reads while it uploads gets BadState at
    # max_held, not unbounded memory; taking the events lets it go on, and
    # the held events come out of poll() in order.
    with _open(server, "http2") as c:
        c.max_held = 1 << 20
        ref = c.post("/echo")

        def upload() -> int:
            sent = 0
            with pytest.raises(gunmetal.BadState, match="max_held"):
                for _ in range(1024):
                    c.data(ref, CHUNK)
                    sent += len(CHUNK)
            assert c.queue._held_bytes >= 1 << 20
            evs = c.queue.poll(100000, 0)
            assert evs[0].kind == EventKind.RESPONSE and all(e.ref == ref for e in evs)
            body = sum(len(e.data) for e in evs if e.kind == EventKind.DATA)
            c.max_held = 64 << 20
            c.data(ref, b"", fin=True)  # waits for the piece in flight first
            return body + len(c.await_body(ref, 30).body)

        got = _watchdog(c, upload)
        assert got > 1 << 20 and got % len(CHUNK) == 0


# ------------------------------------------------------------------ signals


@pytest.fixture
def sigint() -> Iterator[Callable[[float], List[float]]]:
    """sigint(after): SIGINT to the main thread `after` seconds from now;
    returns a list that gets the time it was sent."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    main = threading.main_thread().ident
    assert main is not None and threading.current_thread().ident == main
    timers: List[threading.Timer] = []

    def arm(after: float) -> List[float]:
        sent: List[float] = []

        def fire() -> None:
            sent.append(time.monotonic())
            signal.pthread_kill(main, signal.SIGINT)

        t = threading.Timer(after, fire)
        timers.append(t)
        t.start()
        return sent

    yield arm
    for t in timers:
        t.cancel()
        t.join()
    signal.signal(signal.SIGINT, old)


def _interrupted_within(sent: List[float], bound: float = 1.0) -> None:
    late = time.monotonic() - sent[0]
    assert late < bound, f"KeyboardInterrupt {late:.2f} s after SIGINT"


def test_sigint_interrupts_await_body(server: Server, sigint: Any) -> None:
    with gunmetal.open(server.host, server.http, retry=0) as c:
        c.await_up(5)
        ref = c.get("/delay/8000")
        sent = sigint(0.3)
        with pytest.raises(KeyboardInterrupt):
            c.await_body(ref, 6)
        _interrupted_within(sent)


def test_sigint_interrupts_await_up(sigint: Any) -> None:
    import socket

    # A listener whose backlog is full: the SYN goes unanswered.
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(0)
    port = lst.getsockname()[1]
    fill = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fill.append(s)
    try:
        with gunmetal.open("127.0.0.1", port, retry=0, connect_timeout=8000) as c:
            sent = sigint(0.3)
            with pytest.raises(KeyboardInterrupt):
                c.await_up(6)
            _interrupted_within(sent)
    finally:
        for s in fill:
            s.close()
        lst.close()


def test_sigint_interrupts_poll(server: Server, sigint: Any) -> None:
    with gunmetal.open(server.host, server.http, retry=0) as c:
        c.await_up(5)
        sent = sigint(0.3)
        with pytest.raises(KeyboardInterrupt):
            c.queue.poll(256, 6)
        _interrupted_within(sent)
        # and a wake still ends a poll with no events
        threading.Timer(0.2, c.queue.wake).start()
        assert c.queue.poll(256, None) == []


@pytest.mark.parametrize("proto", ["http2", "http"])
def test_sigint_interrupts_data(server: Server, proto: str, sigint: Any) -> None:
    # /delay does not read the body: the upload blocks on the server's
    # window (HTTP/2) or the socket (HTTP/1.1) until the delay is over.
    with _open(server, proto) as c:
        ref = c.post("/delay/8000")
        sent = sigint(1.0)
        with pytest.raises(KeyboardInterrupt):
            for _ in range(100000):
                c.data(ref, CHUNK)
        _interrupted_within(sent)
    # close() while the interrupted piece is still being sent returns
    assert c.closed
