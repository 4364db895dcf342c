#!/usr/bin/env python3
"""W1 from Python: one HTTP/2 connection, 100 concurrent streams, GETs of a
100-byte body — gunmetal sync (events polled in batches of up to 256, a new
request for each stream that finished), gunmetal.aio (100 tasks), and httpx
(http2=True, 100 tasks) against the same server in one run. Prints requests/s and the ratios to httpx.

    python3 bench_w1.py [--server auto|nghttpd|testserver] [--tls] [--seconds 3]

Servers: nghttpd (Debian's nghttp2-server) serving a 100-byte file when it is
installed, else the project's test server (/bytes/100). Cleartext HTTP/2 is
prior knowledge (h2c); --tls uses TLS with ALPN h2. Run from the repo root or
anywhere: GUNMETAL_BUILD_DIR (default: ./build) is where the test server and,
unless gunmetal is installed, libgunmetal.so are. This is a benchmark, not a
test: it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
BUILD = os.path.abspath(os.environ.get("GUNMETAL_BUILD_DIR", os.path.join(REPO, "build")))

try:
    import gunmetal  # installed
except ImportError:
    sys.path.insert(0, os.path.join(HERE, "src"))
    if not os.environ.get("GUNMETAL_LIBRARY") and os.path.exists(os.path.join(BUILD, "libgunmetal.so")):
        os.environ["GUNMETAL_LIBRARY"] = os.path.join(BUILD, "libgunmetal.so")
    import gunmetal
import gunmetal.aio
from gunmetal import EventKind

CONCURRENCY = 100
BODY = 100


# ------------------------------------------------------------------ servers


class Target:
    def __init__(self, name: str, host: str, port: int, path: str, tls: bool, ca: Optional[str],
                 stop: Callable[[], None]) -> None:
        self.name, self.host, self.port, self.path = name, host, port, path
        self.tls, self.ca, self.stop = tls, ca, stop

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}{self.path}"


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


def start_nghttpd(tls: bool) -> Optional[Target]:
    exe = shutil.which("nghttpd") or ("/usr/sbin/nghttpd" if os.path.exists("/usr/sbin/nghttpd") else None)
    if exe is None:
        return None
    d = tempfile.mkdtemp(prefix="gm-w1-")
    with open(os.path.join(d, "b100"), "wb") as f:
        f.write(b"x" * BODY)
    port = _free_port()
    argv = [exe, "-d", d, "-n", "1"]
    ca = None
    if tls:
        key, cert = os.path.join(d, "key.pem"), os.path.join(d, "cert.pem")
        r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                            "-keyout", key, "-out", cert], capture_output=True)
        if r.returncode != 0:
            return None
        argv += [str(port), key, cert]
        ca = cert
    else:
        argv += ["--no-tls", str(port)]
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            break
        except OSError:
            time.sleep(0.05)

    def stop() -> None:
        p.terminate()
        p.wait(5)
        shutil.rmtree(d, ignore_errors=True)

    return Target("nghttpd", "localhost" if tls else "127.0.0.1", port, "/b100", tls, ca, stop)


def start_testserver(tls: bool) -> Target:
    exe = os.path.join(BUILD, "testserver")
    if not os.path.exists(exe):
        exe = os.path.join(tempfile.mkdtemp(prefix="gm-w1-"), "testserver")
        subprocess.run(["go", "build", "-o", exe, "./tests/server"], cwd=REPO, check=True)
    p = subprocess.Popen([exe], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert p.stdout is not None and p.stdin is not None
    info = json.loads(p.stdout.readline())

    def stop() -> None:
        assert p.stdin is not None and p.stdout is not None
        p.stdin.close()
        p.wait(5)
        p.stdout.close()

    port = info["https"] if tls else info["http"]
    return Target("testserver", "localhost" if tls else "127.0.0.1", port, f"/bytes/{BODY}", tls,
                  info["ca"] if tls else None, stop)


def gm_opts(t: Target) -> Dict[str, Any]:
    o: Dict[str, Any] = {"protocols": ["http2"]}
    if t.tls:
        o["transport"] = "tls"
        o["tls_opts"] = {"cacertfile": t.ca}
    return o


# ------------------------------------------------------------------ runners


def run_sync(t: Target, seconds: float) -> Tuple[int, float]:
    """100 streams in flight: each batch of events (up to 256 per poll) is
    answered with as many new requests as streams finished in it."""
    with gunmetal.open(t.host, t.port, **gm_opts(t)) as c:
        assert c.await_up(5) == "http2", "the server did not speak HTTP/2"
        get, poll = c.get, c.queue.poll
        path = t.path
        DATA, ERROR = EventKind.DATA, EventKind.ERROR
        done = 0
        start = time.perf_counter()
        deadline = start + seconds
        for _ in range(CONCURRENCY):
            get(path)
        inflight = CONCURRENCY
        while inflight:
            finished = 0
            for ev in poll(256, 5):
                k = ev.kind
                if k == DATA:
                    if ev.fin:
                        finished += 1
                elif k == ERROR:
                    raise RuntimeError(ev.reason)
            done += finished
            inflight -= finished
            if time.perf_counter() < deadline:
                for _ in range(finished):
                    get(path)
                inflight += finished
        return done, time.perf_counter() - start


async def _aio(t: Target, seconds: float) -> Tuple[int, float]:
    async with gunmetal.aio.open(t.host, t.port, **gm_opts(t)) as c:
        assert await c.up(5) == "http2"
        done = 0
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                resp = await c.get(t.path)
                body = await resp.read()
                assert len(body) == BODY
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return done, time.perf_counter() - start


def run_aio(t: Target, seconds: float) -> Tuple[int, float]:
    return asyncio.run(_aio(t, seconds))


async def _httpx(t: Target, seconds: float) -> Tuple[int, float]:
    import httpx

    verify: Any = t.ca if t.tls else False
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(http2=True, http1=t.tls, verify=verify, limits=limits) as cl:
        r = await cl.get(t.url)
        assert r.http_version == "HTTP/2", r.http_version
        done = 0
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                r = await cl.get(t.url)
                assert len(r.content) == BODY
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return done, time.perf_counter() - start


def run_httpx(t: Target, seconds: float) -> Tuple[int, float]:
    # Cleartext: http1=False makes httpx speak HTTP/2 with prior knowledge.
    return asyncio.run(_httpx(t, seconds))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", choices=["auto", "nghttpd", "testserver"], default="auto")
    ap.add_argument("--tls", action="store_true", help="TLS + ALPN h2 instead of h2c")
    ap.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    ap.add_argument("--json", action="store_true", help="one JSON line instead of the table")
    a = ap.parse_args()

    t: Optional[Target] = None
    if a.server in ("auto", "nghttpd"):
        t = start_nghttpd(a.tls)
        if t is None and a.server == "nghttpd":
            print("nghttpd is not installed (Debian: nghttp2-server)", file=sys.stderr)
            return 1
    if t is None:
        t = start_testserver(a.tls)
    try:
        try:
            with gunmetal.open(t.host, t.port, retry=0, **gm_opts(t)) as c:
                proto = c.await_up(5)
        except gunmetal.Error as e:
            print(f"W1 needs HTTP/2 in libgunmetal: {e}", file=sys.stderr)
            return 2
        results: Dict[str, float] = {}
        for name, fn in (("gunmetal sync batch", run_sync), ("gunmetal asyncio", run_aio),
                         ("httpx http2", run_httpx)):
            try:
                fn(t, min(0.3, a.seconds))  # warm-up
                n, dt = fn(t, a.seconds)
                results[name] = n / dt
            except Exception as e:  # a peer that fails is reported, not fatal
                print(f"{name}: failed: {e!r}", file=sys.stderr)
        base = results.get("httpx http2")
        if a.json:
            print(json.dumps({"workload": "W1", "server": t.name, "tls": t.tls, "protocol": proto,
                              "req_per_s": results,
                              "ratio_to_httpx": {k: v / base for k, v in results.items()} if base else None}))
        else:
            print(f"W1: 1 connection ({proto}{' over TLS' if t.tls else ', h2c'}), {CONCURRENCY} concurrent "
                  f"streams, GET of {BODY} bytes, server {t.name}, {a.seconds:g} s each")
            print(f"{'client':<22}{'requests/s':>14}{'vs httpx':>12}")
            for k, v in results.items():
                ratio = f"{v / base:.1f}x" if base else "-"
                print(f"{k:<22}{v:>14,.0f}{ratio:>12}")
        return 0
    finally:
        t.stop()


if __name__ == "__main__":
    sys.exit(main())
