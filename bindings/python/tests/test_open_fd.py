"""gunmetal.open_fd (gm_open_fd): adopting a socket the test connected."""
from __future__ import annotations

import os
import socket

import pytest

import gunmetal
from gunmetal import EventKind
from conftest import Server


def test_open_fd_tcp_get(server: Server) -> None:
    s = socket.create_connection((server.host, server.http))
    fd = s.detach()
    with gunmetal.open_fd(fd, protocols=["http"]) as c:
        with pytest.raises(OSError):
            os.fstat(fd)  # gunmetal's now: the caller's number is closed
        assert c.await_up(5) == "http"
        ref = c.get("/bytes/10")
        ev = c.await_(ref, 5)
        assert ev.kind == EventKind.RESPONSE and ev.status == 200


def test_open_fd_refused_fd_stays_open(server: Server) -> None:
    with open(os.devnull, "rb") as f:
        with pytest.raises(gunmetal.InvalidArgument):
            gunmetal.open_fd(f.fileno())
        os.fstat(f.fileno())
    s = socket.create_connection((server.host, server.http))
    try:
        with pytest.raises(gunmetal.OptionError, match="retry"):
            gunmetal.open_fd(s.fileno(), retry=3)
        os.fstat(s.fileno())
    finally:
        s.close()
