#!/usr/bin/env python3
"""W1 from Python: one HTTP/2 connection, 100 concurrent streams, GETs of a
100-byte body, against the same server in one run:

  gunmetal sync batch  the sync API as Gun's message loop: the connection's
                       queue polled in batches (up to 256 events a poll), one
                       new conn.get() for each stream that finished
  gunmetal asyncio     gunmetal.aio: 100 tasks, each `resp = await
                       conn.get(path)` then `await resp.read()` in a loop
  httpx http2          httpx.AsyncClient(http2=True), one connection, 100
                       tasks, each `await client.get(url)` in a loop

The clients take turns: each round runs every client once for --seconds (in
a rotating order, so that a slow moment of the machine does not always fall
on the same one), after one warm-up each. The table gives each client's
median and best requests/s over the rounds and the ratio of its median to
httpx's median. Every response is checked (status 200, 100-byte body).

    python3 bench_w1.py [--server auto|nghttpd|testserver] [--tls]
                        [--seconds 1.5] [--rounds 7] [--json] [-v]

--json prints one JSON object instead of the table (see `result` in main()).
Servers: nghttpd (Debian's nghttp2-server) serving a 100-byte file when it is
installed, else the project's test server (/bytes/100). Cleartext HTTP/2 is
prior knowledge (h2c); --tls uses TLS with ALPN h2. The gunmetal measured is
this checkout's (src/ next to this file), on GUNMETAL_LIBRARY, by default
GUNMETAL_BUILD_DIR/libgunmetal.so (GUNMETAL_BUILD_DIR: <repo>/build) when it
exists; without either, an installed gunmetal. This is a benchmark, not a
test: it asserts nothing about speed (the exit status is 0 unless a client
failed).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
BUILD = os.path.abspath(os.environ.get("GUNMETAL_BUILD_DIR", os.path.join(REPO, "build")))

# This checkout's package (and build), ahead of an installed copy.
if not os.environ.get("GUNMETAL_LIBRARY") and os.path.exists(os.path.join(BUILD, "libgunmetal.so")):
    os.environ["GUNMETAL_LIBRARY"] = os.path.join(BUILD, "libgunmetal.so")
sys.path.insert(0, os.path.join(HERE, "src"))
try:
    import gunmetal
except ImportError:  # no library for the checkout: an installed gunmetal, if any
    sys.path.pop(0)
    for m in [m for m in sys.modules if m == "gunmetal" or m.startswith("gunmetal.")]:
        del sys.modules[m]
    import gunmetal
import gunmetal.aio
from gunmetal import EventKind

CONCURRENCY = 100
BODY = 100
TARGET = 40.0  # issue 5: gunmetal from Python >= 40x httpx (HTTP/2)

SYNC = "gunmetal sync batch"
AIO = "gunmetal asyncio"
HTTPX = "httpx http2"


class Failed(Exception):
    pass


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
            shutil.rmtree(d, ignore_errors=True)
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
    o: Dict[str, Any] = {"protocols": ["http2"], "retry": 0}
    if t.tls:
        o["transport"] = "tls"
        o["tls_opts"] = {"cacertfile": t.ca}
    return o


# ------------------------------------------------------------------ clients
# Each runs CONCURRENCY streams for `seconds` and returns (requests, elapsed).


def run_sync(t: Target, seconds: float) -> Tuple[int, float]:
    """Gun's message loop: 100 streams in flight; each batch of events (up
    to 256 per poll) is answered with as many new requests as streams
    finished in it."""
    with gunmetal.open(t.host, t.port, **gm_opts(t)) as c:
        if c.await_up(5) != "http2":
            raise Failed("the server did not speak HTTP/2")
        get, poll = c.get, c.queue.poll
        path = t.path.encode()
        RESPONSE, DATA, ERROR = EventKind.RESPONSE, EventKind.DATA, EventKind.ERROR
        done = 0
        nbytes = 0
        start = time.perf_counter()
        deadline = start + seconds
        for _ in range(CONCURRENCY):
            get(path)
        inflight = CONCURRENCY
        while inflight:
            finished = 0
            evs = poll(256, 5)
            if not evs:
                raise Failed("no event for 5 s")
            for ev in evs:
                k = ev.kind
                if k == DATA:
                    nbytes += len(ev.data)
                    if ev.fin:
                        finished += 1
                elif k == RESPONSE:
                    if ev.status != 200:
                        raise Failed(f"status {ev.status}")
                elif k == ERROR:
                    raise Failed(f"stream error: {ev.reason}")
            done += finished
            inflight -= finished
            if time.perf_counter() < deadline:
                for _ in range(finished):
                    get(path)
                inflight += finished
        elapsed = time.perf_counter() - start
        if nbytes != done * BODY:
            raise Failed(f"{nbytes} body bytes for {done} responses of {BODY}")
        return done, elapsed


async def _aio(t: Target, seconds: float) -> Tuple[int, float]:
    async with gunmetal.aio.open(t.host, t.port, **gm_opts(t)) as c:
        if await c.up(5) != "http2":
            raise Failed("the server did not speak HTTP/2")
        path = t.path
        done = 0
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                resp = await c.get(path)
                body = await resp.read()
                if resp.status != 200 or len(body) != BODY:
                    raise Failed(f"status {resp.status}, {len(body)} body bytes")
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return done, time.perf_counter() - start


def run_aio(t: Target, seconds: float) -> Tuple[int, float]:
    return asyncio.run(_aio(t, seconds))


async def _httpx(t: Target, seconds: float) -> Tuple[int, float]:
    import httpx  # pip install 'httpx[http2]'

    verify: Any = t.ca if t.tls else False
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    # Cleartext: http1=False makes httpx speak HTTP/2 with prior knowledge.
    async with httpx.AsyncClient(http2=True, http1=t.tls, verify=verify, limits=limits) as cl:
        r = await cl.get(t.url)
        if r.http_version != "HTTP/2":
            raise Failed(f"httpx spoke {r.http_version}")
        url = t.url
        done = 0
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                r = await cl.get(url)
                if r.status_code != 200 or len(r.content) != BODY:
                    raise Failed(f"status {r.status_code}, {len(r.content)} body bytes")
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return done, time.perf_counter() - start


def run_httpx(t: Target, seconds: float) -> Tuple[int, float]:
    return asyncio.run(_httpx(t, seconds))


CLIENTS: List[Tuple[str, Callable[[Target, float], Tuple[int, float]]]] = [
    (SYNC, run_sync),
    (AIO, run_aio),
    (HTTPX, run_httpx),
]


# ------------------------------------------------------------------ main


def measure(t: Target, seconds: float, rounds: int, progress: bool) -> Tuple[Dict[str, List[float]], Dict[str, str]]:
    """Requests/s of each client, one figure per round, rounds interleaved."""
    rates: Dict[str, List[float]] = {name: [] for name, _ in CLIENTS}
    failed: Dict[str, str] = {}
    for name, fn in CLIENTS:  # warm-up (imports, the server's caches, ...)
        try:
            fn(t, min(0.3, seconds))
        except Exception as e:  # a peer that fails is reported, not fatal
            failed[name] = repr(e)
    for r in range(rounds):
        k = r % len(CLIENTS)
        for name, fn in CLIENTS[k:] + CLIENTS[:k]:
            if name in failed:
                continue
            gc.collect()
            try:
                n, dt = fn(t, seconds)
            except Exception as e:
                failed[name] = repr(e)
                continue
            rates[name].append(n / dt)
            if progress:
                print(f"  round {r + 1}/{rounds}: {name:<20} {n / dt:>10,.0f} requests/s", file=sys.stderr)
    return rates, failed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", choices=["auto", "nghttpd", "testserver"], default="auto")
    ap.add_argument("--tls", action="store_true", help="TLS + ALPN h2 instead of h2c")
    ap.add_argument("--seconds", type=float, default=1.5, help="per client and round (default 1.5)")
    ap.add_argument("--rounds", type=int, default=7, help="rounds of every client (default 7)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    ap.add_argument("--verbose", "-v", action="store_true", help="each round's figures on stderr")
    a = ap.parse_args()
    if a.rounds < 1 or a.seconds <= 0:
        ap.error("--rounds must be >= 1 and --seconds > 0")

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
            with gunmetal.open(t.host, t.port, **gm_opts(t)) as c:
                proto = c.await_up(5)
        except gunmetal.Error as e:
            print(f"W1 needs HTTP/2 in libgunmetal: {e}", file=sys.stderr)
            return 2
        rates, failed = measure(t, a.seconds, a.rounds, a.verbose)
    finally:
        t.stop()

    med = {k: statistics.median(v) for k, v in rates.items() if v}
    best = {k: max(v) for k, v in rates.items() if v}
    base = med.get(HTTPX)
    ratio = {k: v / base for k, v in med.items()} if base else None
    for name, why in failed.items():
        print(f"{name}: failed: {why}", file=sys.stderr)
    if a.json:
        result = {
            "workload": "W1",
            "description": f"1 HTTP/2 connection, {CONCURRENCY} concurrent streams, GET of {BODY} bytes",
            "server": t.name,
            "tls": t.tls,
            "protocol": proto,
            "gunmetal_version": gunmetal.version(),
            "python": "%d.%d.%d" % sys.version_info[:3],
            "seconds": a.seconds,
            "rounds": a.rounds,
            # each client's median over the rounds, and its ratio to httpx's
            "req_per_s": med,
            "ratio_to_httpx": ratio,
            "req_per_s_best": best,
            "req_per_s_rounds": rates,
            "target_ratio": TARGET,
            "meets_target": {k: ratio[k] >= TARGET for k in (SYNC, AIO) if k in ratio} if ratio else None,
            "failed": failed,
        }
        print(json.dumps(result))
    else:
        print(f"W1: 1 connection ({proto}{' over TLS' if t.tls else ', h2c'}), {CONCURRENCY} concurrent "
              f"streams, GET of {BODY} bytes, server {t.name}")
        print(f"{a.rounds} interleaved rounds of {a.seconds:g} s per client; ratio = median / httpx median "
              f"(target >= {TARGET:g}x)")
        print(f"{'client':<22}{'median req/s':>14}{'best req/s':>14}{'vs httpx':>11}")
        for name, _ in CLIENTS:
            if name not in med:
                print(f"{name:<22}{'failed':>14}")
                continue
            r = f"{ratio[name]:.1f}x" if ratio else "-"
            print(f"{name:<22}{med[name]:>14,.0f}{best[name]:>14,.0f}{r:>11}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
