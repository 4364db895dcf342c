"""Bad input raises the right exception, with the library's sentence."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import pytest

import gunmetal
import gunmetal.aio
from gunmetal import _ffi
from conftest import SRC, Server


def test_error_attributes() -> None:
    with pytest.raises(gunmetal.OptionError) as ei:
        gunmetal.open("127.0.0.1", 80, foo=1)
    e = ei.value
    assert e.code == _ffi.GM_EOPTION == -5
    assert e.name == "invalid option"
    assert e.key == "foo"
    assert str(e) == e.message == "option foo = 1: unknown option"
    assert isinstance(e, gunmetal.Error) and isinstance(e, ValueError)
    assert repr(e) == "OptionError(-5, 'option foo = 1: unknown option')"
    e2 = pickle.loads(pickle.dumps(e))
    assert type(e2) is gunmetal.OptionError and e2.key == "foo" and e2.code == -5


def test_unknown_option_names_the_key() -> None:
    with pytest.raises(gunmetal.OptionError, match="unknown option") as ei:
        gunmetal.open("127.0.0.1", 80, retyr=3)
    assert ei.value.key == "retyr"


def test_wrong_option_type_names_the_key() -> None:
    with pytest.raises(gunmetal.OptionError) as ei:
        gunmetal.open("127.0.0.1", 80, retry="x")
    assert ei.value.key == "retry" and 'option retry = "x"' in str(ei.value)
    with pytest.raises(gunmetal.OptionError) as ei:
        gunmetal.open("127.0.0.1", 80, http_opts={"flow": "x"})
    assert ei.value.key == "http_opts.flow"
    with pytest.raises(gunmetal.OptionError) as ei:
        gunmetal.open("127.0.0.1", 80, http_opts={"content_handlers": []})
    assert ei.value.key == "http_opts.content_handlers" and "must be a non-empty list" in str(ei.value)


def test_option_value_that_is_not_json() -> None:
    with pytest.raises(gunmetal.OptionError) as ei:
        gunmetal.open("127.0.0.1", 80, tcp_opts={1, 2})
    assert ei.value.key == "tcp_opts" and "not JSON serializable" in str(ei.value)
    with pytest.raises(gunmetal.OptionError) as ei:
        gunmetal.open("127.0.0.1", 80, retry_timeout=float("nan"))
    assert ei.value.key == "retry_timeout"


def test_bad_arguments_from_the_library() -> None:
    with pytest.raises(gunmetal.InvalidArgument, match=r"port 0 out of range 1\.\.65535"):
        gunmetal.open("127.0.0.1", 0)
    with pytest.raises(gunmetal.InvalidArgument, match="port 70000 out of range"):
        gunmetal.open("127.0.0.1", 70000)
    with pytest.raises(gunmetal.InvalidArgument, match="invalid host"):
        gunmetal.open("bad host", 80)
    with pytest.raises(gunmetal.InvalidArgument, match="not valid UTF-8"):
        gunmetal.open(b"\xff\xfe", 80)
    with pytest.raises(gunmetal.InvalidArgument, match="invalid unix socket path"):
        gunmetal.open_unix("")


def test_bad_request_input(conn: gunmetal.Connection) -> None:
    cases = [
        (lambda: conn.get("/", [("x-a", "b\r\nx-evil: 1")]), "header"),
        (lambda: conn.get("/", [("bad name", "v")]), "header"),
        (lambda: conn.request("GE T", "/"), "method"),
        (lambda: conn.get("/a b"), "path"),
        (lambda: conn.get("/a\x00b"), "NUL"),
        (lambda: conn.request("GET\x00", "/"), "NUL"),
    ]
    for call, word in cases:
        with pytest.raises(gunmetal.InvalidArgument) as ei:
            call()
        assert word in str(ei.value), str(ei.value)
        assert ei.value.code == -1
    # Nothing went on the wire: the connection is fine and in step.
    assert conn.await_body(conn.get("/bytes/2"), 5).body == b"ab"


def test_wrong_python_types(conn: gunmetal.Connection) -> None:
    cases = [
        (lambda: gunmetal.open(5, 80), "host must be str or bytes, not int"),
        (lambda: gunmetal.open("127.0.0.1", "80"), "port must be an int, not str"),
        (lambda: gunmetal.open("127.0.0.1", True), "port must be an int, not bool"),
        (lambda: gunmetal.open("127.0.0.1", 80, owner="q"), "owner must be a gunmetal.Queue"),
        (lambda: gunmetal.open_unix(None), "path must be str or bytes, not NoneType"),
        (lambda: conn.get(5), "path must be str or bytes, not int"),
        (lambda: conn.request(None, "/"), "method must be str or bytes"),
        (lambda: conn.get("/", "x-a: b"), "headers must be a list of (name, value) pairs"),
        (lambda: conn.get("/", 5), "headers must be a list of (name, value) pairs or a mapping, not int"),
        (lambda: conn.get("/", [("x-a",)]), "header 0 must be a (name, value) pair"),
        (lambda: conn.get("/", [("x-a", 5)]), "header 0 value must be str or bytes, not int"),
        (lambda: conn.post("/", [], 5), "body must be bytes, str or a buffer, not int"),
        (lambda: conn.post("/", [], {"a": 1}), "body must be bytes, str or a buffer, not dict"),
        (lambda: conn.data("1", b""), "ref must be an int, not str"),
        (lambda: conn.cancel(1.5), "ref must be an int, not float"),
        (lambda: conn.update_flow(1, "2"), "n must be an int"),
        (lambda: conn.await_(1, "1"), "timeout must be a number of seconds or None, not str"),
        (lambda: conn.get("/", flow="1"), "flow must be an int"),
        (lambda: conn.get("/", reply_to=5), "reply_to must be a gunmetal.Queue"),
        (lambda: conn.set_owner(None), "queue must be a gunmetal.Queue"),
        (lambda: conn.queue.poll("1"), "max must be an int"),
    ]
    for call, msg in cases:
        with pytest.raises(TypeError) as ei:
            call()
        assert msg in str(ei.value)


def test_bad_values(conn: gunmetal.Connection) -> None:
    with pytest.raises(gunmetal.InvalidArgument, match="flow increment must be a positive int"):
        conn.update_flow(1, 0)
    with pytest.raises(gunmetal.InvalidArgument, match="max must be > 0"):
        conn.queue.poll(0)
    with pytest.raises(gunmetal.InvalidArgument, match="flow must be a positive int"):
        conn.get("/", flow=0)
    with pytest.raises(gunmetal.InvalidArgument, match="takes no body"):
        conn.request("POST", "/", body=b"x", stream=True)
    with pytest.raises(gunmetal.InvalidArgument, match="ref -1 out of range"):
        conn.cancel(-1)


def test_data_on_a_stream_that_sends_no_body(conn: gunmetal.Connection) -> None:
    ref = conn.get("/delay/50")
    with pytest.raises(gunmetal.NoStream) as ei:
        conn.data(ref, b"x", fin=True)
    assert ei.value.code == _ffi.GM_ENOSTREAM and str(ei.value)
    with pytest.raises(gunmetal.NoStream):
        conn.data(987654321, b"x")
    conn.await_body(ref, 5)


def test_stream_info_unknown_is_none(conn: gunmetal.Connection) -> None:
    assert conn.stream_info(424242) is None


def test_closed_connection_raises_closed(server: Server) -> None:
    c = gunmetal.open(server.host, server.http)
    c.close()
    with pytest.raises(gunmetal.Closed, match="close\\(\\) was called"):
        c.get("/")


def test_closed_queue(server: Server) -> None:
    q = gunmetal.Queue()
    q.close()
    with pytest.raises(gunmetal.Closed):
        gunmetal.open(server.host, server.http, owner=q)
    with pytest.raises(gunmetal.Closed):
        len(q)
    with pytest.raises(gunmetal.Closed):
        q.wake()


def test_strerror_and_codes() -> None:
    assert gunmetal.strerror(-1) == "invalid argument"
    assert gunmetal.strerror(-3) == "connection closed"
    assert gunmetal.strerror(-999) == "unknown error"
    from gunmetal._errors import from_code

    for code, cls in [(-1, gunmetal.InvalidArgument), (-2, gunmetal.NoMemory), (-3, gunmetal.Closed),
                      (-4, gunmetal.Timeout), (-5, gunmetal.OptionError), (-6, gunmetal.NoStream),
                      (-7, gunmetal.NotUp), (-8, gunmetal.BadState), (-9, gunmetal.Unsupported),
                      (-10, gunmetal.StreamError), (-11, gunmetal.InternalError),
                      (-12, gunmetal.QueueClosed)]:
        e = from_code(code, "sentence")
        assert type(e) is cls and e.code == code and str(e) == "sentence"
    assert isinstance(from_code(-12, ""), gunmetal.Closed)
    assert str(from_code(-4, "")) == "timed out"  # no sentence: the code's name
    assert type(from_code(-10, "protocol_error: bad frame")) is gunmetal.ProtocolError
    assert type(from_code(-10, "timeout")) is gunmetal.StreamTimeout
    assert type(from_code(-10, "closed: econnreset")) is gunmetal.StreamClosed


def test_missing_function_raises_unsupported_not_crash() -> None:
    stub = _ffi._missing_stub("gm_imaginary")
    with pytest.raises(gunmetal.Unsupported, match="gm_imaginary is not exported"):
        stub()


def test_missing_library_is_a_clear_import_error(tmp_path: "os.PathLike[str]") -> None:
    env = dict(os.environ, GUNMETAL_LIBRARY=os.path.join(str(tmp_path), "nope.so"), PYTHONPATH=SRC)
    r = subprocess.run([sys.executable, "-c", "import gunmetal"], env=env, capture_output=True, text=True)
    assert r.returncode != 0
    assert "ImportError: gunmetal: the shared library is missing" in r.stderr
    assert "nope.so does not exist" in r.stderr


def test_aio_open_needs_a_running_loop() -> None:
    with pytest.raises(RuntimeError, match="running asyncio loop"):
        gunmetal.aio.open("127.0.0.1", 80)


async def test_aio_bad_input(server: Server) -> None:
    with pytest.raises(gunmetal.OptionError) as ei:
        gunmetal.aio.open(server.host, server.http, nope=True)
    assert ei.value.key == "nope"
    with pytest.raises(TypeError, match="window must be an int"):
        gunmetal.aio.open(server.host, server.http, window="1")
    async with gunmetal.aio.open(server.host, server.http) as c:
        with pytest.raises(gunmetal.InvalidArgument, match="header"):
            await c.get("/", [("x", "a\nb")])
        with pytest.raises(TypeError):
            await c.get(5)  # type: ignore[arg-type]
        with pytest.raises(gunmetal.NoStream):
            await c.await_(12345)
    with pytest.raises(gunmetal.Closed):
        await c.get("/")
