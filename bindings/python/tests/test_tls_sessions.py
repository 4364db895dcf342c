"""The process-wide TLS session cache: a second open to the same server
resumes (info()["tls_resumed"]); gunmetal.tls_session_cache bounds it."""

from __future__ import annotations

from typing import Iterator

import pytest

import gunmetal
from conftest import Server


def _resumed(server: Server, host: str, **tls: object) -> bool:
    with gunmetal.open(host, server.https, transport="tls", protocols=["http"], retry=0,
                       tls_opts={"cacertfile": server.ca, **tls}) as c:
        c.await_up(5)
        assert c.await_body(c.get("/bytes/3"), 5).body == b"abc"  # the TLS 1.3 ticket is in
        info = c.info()
        assert info["alpn"] == "http/1.1" and info["tls_version"].startswith("TLS 1.")
        return {"true": True, "false": False}[info["tls_resumed"]]


@pytest.fixture
def default_bounds() -> Iterator[None]:
    yield
    gunmetal.tls_session_cache(1000, 86400)


def test_second_open_resumes(server: Server) -> None:
    _resumed(server, "localhost")  # (an earlier test may have left a session)
    assert _resumed(server, "localhost")
    assert not _resumed(server, "localhost", session_cache_client_max=3)  # a cache of its own
    assert not _resumed(server, "localhost", reuse_sessions=False)


def test_session_cache_bound(server: Server, default_bounds: None) -> None:
    with pytest.raises(gunmetal.InvalidArgument):
        gunmetal.tls_session_cache(0, None)
    with pytest.raises(gunmetal.InvalidArgument):
        gunmetal.tls_session_cache(5, -1)
    gunmetal.tls_session_cache(1, None)
    _resumed(server, "localhost")
    _resumed(server, "127.0.0.1")  # evicts localhost's
    assert not _resumed(server, "localhost")
    assert _resumed(server, "localhost")
