"""Fixtures: the library, the project's test server, nginx, leak baselines.

Environment:
  GUNMETAL_BUILD_DIR   where libgunmetal.so and testserver are (run_tests.sh sets it)
  GUNMETAL_LIBRARY     the library to load (default: $GUNMETAL_BUILD_DIR/libgunmetal.so,
                       else the one inside the package)
  GUNMETAL_TESTSERVER  the test server binary (default: $GUNMETAL_BUILD_DIR/testserver,
                       else built with `go build` into a temp dir)
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Any, Dict, Iterator

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PKG_ROOT = os.path.dirname(HERE)  # bindings/python
REPO = os.path.abspath(os.path.join(PKG_ROOT, "..", ".."))
SRC = os.path.join(PKG_ROOT, "src")
BUILD_DIR = os.environ.get("GUNMETAL_BUILD_DIR", "")

if not os.environ.get("GUNMETAL_LIBRARY") and BUILD_DIR:
    cand = os.path.join(BUILD_DIR, "libgunmetal.so")
    if os.path.exists(cand):
        os.environ["GUNMETAL_LIBRARY"] = os.path.abspath(cand)

# Test the source tree, not an installed copy.
if SRC not in sys.path:
    sys.path.insert(0, SRC)

import gunmetal  # noqa: E402


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def _start_json_server(argv: list, **kw: Any) -> "tuple[subprocess.Popen[bytes], Dict[str, Any]]":
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, **kw)
    assert p.stdout is not None
    line = p.stdout.readline()
    if not line:
        p.kill()
        p.wait()
        raise RuntimeError(f"{argv[0]} printed nothing")
    return p, json.loads(line)


def _stop(p: "subprocess.Popen[bytes]") -> None:
    if p.stdin is not None:
        p.stdin.close()
    try:
        p.wait(5)
    except subprocess.TimeoutExpired:
        p.terminate()
        p.wait(5)
    if p.stdout is not None:
        p.stdout.close()


@pytest.fixture(scope="session")
def testserver_bin(tmp_path_factory: pytest.TempPathFactory) -> str:
    env = os.environ.get("GUNMETAL_TESTSERVER")
    if env:
        return env
    if BUILD_DIR and os.path.exists(os.path.join(BUILD_DIR, "testserver")):
        return os.path.join(BUILD_DIR, "testserver")
    out = str(tmp_path_factory.mktemp("bin") / "testserver")
    subprocess.run(["go", "build", "-o", out, "./tests/server"], cwd=REPO, check=True)
    return out


class Server:
    """A running test server: .http, .https, .unix, .ca, .host."""

    def __init__(self, proc: "subprocess.Popen[bytes]", info: Dict[str, Any]) -> None:
        self.proc = proc
        self.http: int = info["http"]
        self.https: int = info["https"]
        self.unix: str = info["unix"]
        self.ca: str = info["ca"]
        self.host = "127.0.0.1"

    def stop(self) -> None:
        _stop(self.proc)


def start_server(binary: str, workdir: str) -> Server:
    sock = os.path.join(workdir, "ts.sock")
    certs = os.path.join(workdir, "certs")
    os.makedirs(certs, exist_ok=True)
    p, info = _start_json_server([binary, "-unix", sock, "-cert-dir", certs])
    return Server(p, info)


@pytest.fixture(scope="session")
def server(testserver_bin: str) -> Iterator[Server]:
    d = tempfile.mkdtemp(prefix="gm-py-")
    s = start_server(testserver_bin, d)
    yield s
    s.stop()
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def nginx() -> Iterator[Dict[str, Any]]:
    script = os.path.join(REPO, "tests", "nginx", "nginx.sh")
    if not os.path.exists(script):
        pytest.fail("tests/nginx/nginx.sh is missing")
    if not (shutil.which("nginx") or os.path.exists("/usr/sbin/nginx")):
        pytest.fail("nginx is not installed (make deps installs it)")
    d = tempfile.mkdtemp(prefix="gm-py-nginx-")
    r = subprocess.run(["bash", script, "start", d], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"nginx.sh start failed: {r.stderr}")
    info = json.loads(r.stdout.strip().splitlines()[-1])
    yield info
    subprocess.run(["bash", script, "stop", d], capture_output=True)
    shutil.rmtree(d, ignore_errors=True)


class Proxy:
    """A proxy process on 127.0.0.1 (tinyproxy, microsocks): .port."""

    def __init__(self, argv: list, port: int, workdir: str) -> None:
        self.port = port
        self.workdir = workdir
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        import socket
        import time
        end = time.monotonic() + 10
        while True:  # ready when it accepts
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > end:
                    self.stop()
                    raise RuntimeError(f"{argv[0]} did not listen on {port}")
                time.sleep(0.02)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(5)
        shutil.rmtree(self.workdir, ignore_errors=True)


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_tinyproxy(user: str = "", password: str = "") -> Proxy:
    """tinyproxy -d -c conf (as tests/proxies/proxies.go); with user, Basic
    proxy-authorization is required."""
    if not shutil.which("tinyproxy"):
        pytest.fail("tinyproxy is not installed (make deps installs it)")
    d = tempfile.mkdtemp(prefix="gm-py-tinyproxy-")
    port = free_port()
    conf = os.path.join(d, "tinyproxy.conf")
    with open(conf, "w") as f:
        f.write(f"Port {port}\nListen 127.0.0.1\nTimeout 60\nMaxClients 100\nAllow 127.0.0.1\nLogLevel Info\n")
        if user:
            f.write(f"BasicAuth {user} {password}\n")
    return Proxy(["tinyproxy", "-d", "-c", conf], port, d)


def start_microsocks(user: str = "", password: str = "") -> Proxy:
    """microsocks on 127.0.0.1; with user, username/password (RFC 1929)."""
    if not shutil.which("microsocks"):
        pytest.fail("microsocks is not installed (make deps installs it)")
    port = free_port()
    argv = ["microsocks", "-i", "127.0.0.1", "-p", str(port)]
    if user:
        argv += ["-u", user, "-P", password]
    return Proxy(argv, port, tempfile.mkdtemp(prefix="gm-py-microsocks-"))


def start_nghttpx(backend: int) -> Proxy:
    """nghttpx as an HTTP/2 forward proxy (--http2-proxy, h2c: prior
    knowledge), as tests/proxies/proxies.go: each CONNECT is one stream of
    the HTTP/2 connection, handed to the HTTP/1.1 proxy on port `backend`
    (a tinyproxy) behind it, as in nghttpx's documented setup."""
    if not (shutil.which("nghttpx") or os.path.exists("/usr/sbin/nghttpx")):
        pytest.fail("nghttpx is not installed (nghttp2-proxy; make deps installs it)")
    d = tempfile.mkdtemp(prefix="gm-py-nghttpx-")
    port = free_port()
    argv = [shutil.which("nghttpx") or "/usr/sbin/nghttpx", "--http2-proxy", "--workers=1", "--conf=/dev/null",
            f"--pid-file={os.path.join(d, 'pid')}", f"--errorlog-file={os.path.join(d, 'error.log')}",
            "--accesslog-file=/dev/null", "-b", f"127.0.0.1,{backend}", "-f", f"127.0.0.1,{port};no-tls"]
    return Proxy(argv, port, d)


@pytest.fixture(scope="module")
def tinyproxy() -> Iterator[Proxy]:
    p = start_tinyproxy()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def tinyproxy_auth() -> Iterator[Proxy]:
    p = start_tinyproxy("alice", "s3cret")
    yield p
    p.stop()


@pytest.fixture(scope="module")
def microsocks() -> Iterator[Proxy]:
    p = start_microsocks()
    yield p
    p.stop()


@pytest.fixture(scope="module")
def microsocks_auth() -> Iterator[Proxy]:
    p = start_microsocks("bob", "hunter22")
    yield p
    p.stop()


@pytest.fixture
def conn(server: Server) -> Iterator[gunmetal.Connection]:
    with gunmetal.open(server.host, server.http, retry=0) as c:
        c.await_up(5)
        yield c


_HTTP2: Dict[str, bool] = {}


def http2_available(server: Server) -> bool:
    """Whether the loaded library speaks HTTP/2 (h2c prior knowledge)."""
    if "ok" not in _HTTP2:
        with gunmetal.open(server.host, server.http, protocols=["http2"], retry=0) as c:
            try:
                _HTTP2["ok"] = c.await_up(5) == "http2"
            except gunmetal.Error:
                _HTTP2["ok"] = False
    return _HTTP2["ok"]


# ---------------------------------------------------------------- leak baseline

BASELINE: Dict[str, int] = {}


@pytest.fixture(scope="session", autouse=True)
def leak_baseline(server: Server) -> Iterator[None]:
    """Handles and fds once the library, the Go runtime and the test server
    are warm; tests/test_zz_leaks.py compares with it at the end."""
    with gunmetal.open(server.host, server.http, retry=0) as c:
        c.await_up(5)
        c.await_body(c.get("/bytes/1"), 5)
    gc.collect()
    BASELINE["handles"] = gunmetal.live_handles()
    BASELINE["fds"] = fd_count()
    yield
