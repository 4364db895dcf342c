"""Why a connection failed (issue 10, item 6): await_up raises a Closed
(a ConnectionError) carrying Gun's reason, of a subclass naming the usual
failures, and the EXIT event stays queued for the owner."""

from __future__ import annotations

import pickle
import socket
from typing import Any, Iterator, List, Tuple, Type

import pytest

import gunmetal
from conftest import Server
from gunmetal import EventKind


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def blackhole() -> Iterator[int]:
    """A port whose listener's backlog is full: a connect gets no answer."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(0)
    port: int = lst.getsockname()[1]
    fill: List[socket.socket] = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fill.append(s)
    yield port
    for s in fill:
        s.close()
    lst.close()


def _fail_up(host: str, port: int, cls: Type[gunmetal.Closed], **opts: Any) -> Tuple[gunmetal.Closed, str]:
    with gunmetal.open(host, port, retry=0, **opts) as c:
        with pytest.raises(cls) as ei:
            c.await_up(10)
        e = ei.value
        (ev,) = c.queue.poll(10, 5)  # the EXIT stayed queued, with the same reason
        assert ev.kind == EventKind.EXIT and ev.reason == e.reason
        assert e.code == gunmetal._ffi.GM_ECLOSED
        assert isinstance(e, gunmetal.Closed) and isinstance(e, ConnectionError)
        assert str(e) == f"{host}:{port}: the connection exited: {e.reason}"
        # later calls say the same
        with pytest.raises(cls):
            c.get("/")
        return e, str(e)


def test_refused() -> None:
    e, _ = _fail_up("127.0.0.1", _free_port(), gunmetal.ConnectionRefused)
    assert e.reason == "econnrefused" and isinstance(e, ConnectionRefusedError)


def test_connect_timeout(blackhole: int) -> None:
    e, _ = _fail_up("127.0.0.1", blackhole, gunmetal.ConnectTimeout, connect_timeout=300)
    assert e.reason == "timeout" and isinstance(e, TimeoutError)
    assert not isinstance(e, gunmetal.Timeout)  # that one is a wait of yours running out


def test_bad_certificate(server: Server) -> None:
    # The test server's certificate is signed by its own CA, not a system root.
    e, _ = _fail_up(server.host, server.https, gunmetal.TLSError, transport="tls")
    assert e.reason is not None and "x509" in e.reason and "unknown authority" in e.reason


def test_tls_to_a_cleartext_port(server: Server) -> None:
    e, _ = _fail_up(server.host, server.http, gunmetal.TLSError, transport="tls",
                    tls_opts={"verify": "verify_none"})
    assert e.reason is not None and e.reason.startswith("tls")


def test_other_reasons_are_plain_closed_with_the_reason() -> None:
    with gunmetal.open("127.0.0.1", _free_port(), retry=0) as c:
        with pytest.raises(gunmetal.Closed):
            c.await_up(5)
        c.queue.poll(10, 1)
        c.close()
        with pytest.raises(gunmetal.Closed) as ei:
            c.get("/")  # closed by close(): no reason to give
        assert ei.value.reason is None and type(ei.value) is gunmetal.Closed


def test_errors_pickle_with_their_reason() -> None:
    e = gunmetal.ConnectionRefused(gunmetal._ffi.GM_ECLOSED, "x: the connection exited: econnrefused",
                                   "econnrefused")
    e2 = pickle.loads(pickle.dumps(e))
    assert type(e2) is gunmetal.ConnectionRefused and e2.reason == "econnrefused" and str(e2) == str(e)
    assert issubclass(gunmetal.QueueClosed, ConnectionError)


async def test_aio_up_raises_the_same_classes(blackhole: int) -> None:
    import gunmetal.aio

    async with gunmetal.aio.open("127.0.0.1", _free_port(), retry=0) as c:
        with pytest.raises(gunmetal.ConnectionRefused) as ei:
            await c.up(5)
        assert ei.value.reason == "econnrefused"
    async with gunmetal.aio.open("127.0.0.1", blackhole, retry=0, connect_timeout=300) as c:
        with pytest.raises(gunmetal.ConnectTimeout):
            await c.up(5)
