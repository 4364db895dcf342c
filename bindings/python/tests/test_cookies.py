"""Cookie store export/seed (Connection.cookies / set_cookies) and the Gun
keys gm_info adds."""

from __future__ import annotations

import json

import pytest

import gunmetal
from conftest import Server


def test_cookies_export_and_seed(server: Server) -> None:
    with gunmetal.open(server.host, server.http, cookie_store=True) as c:
        c.await_up(5)
        c.await_body(c.get("/set-cookie?name=a&value=1&path=/"), 5)
        cks = c.cookies()
        assert [(k["name"], k["value"], k["domain"], k["path"], k["host_only"]) for k in cks] == \
            [("a", "1", "127.0.0.1", "/", True)]
        info = c.info()
        assert info["cookie_store"] == "true" and info["origin_scheme"] == "http"
        assert info["origin_host"] == "127.0.0.1" and info["origin_port"] == str(server.http)
    with gunmetal.open(server.host, server.http, cookie_store=True) as c2:
        c2.await_up(5)
        c2.set_cookies(cks)
        body = json.loads(c2.await_body(c2.get("/headers"), 5).body)
        assert body["headers"]["cookie"] == ["a=1"]
        with pytest.raises(gunmetal.InvalidArgument, match="domain"):
            c2.set_cookies('[{"name": "x", "value": "y"}]')
        assert [k["name"] for k in c2.cookies()] == ["a"]


def test_cookies_need_the_option(conn: gunmetal.Connection) -> None:
    with pytest.raises(gunmetal.BadState, match="cookie_store"):
        conn.cookies()
    with pytest.raises(gunmetal.BadState):
        conn.set_cookies([])
    assert conn.info()["cookie_store"] == "false"
