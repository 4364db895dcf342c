#!/usr/bin/env python3
"""W1 from Python against a running HTTP/2 server (bench/harness's nghttpd):
one HTTP/2 connection (prior knowledge), --streams GETs in flight, for
--seconds after --warmup seconds on the same connection. One client per run:

    sync     gunmetal's sync API: conn.get() for each stream, the connection's
             queue polled in batches of up to 256 events, one new get() per
             stream that finished (Gun's message loop, as a user writes it)
    asyncio  gunmetal.aio: --streams tasks, each `await conn.get(path)` then
             `await resp.read()` in a loop
    httpx    httpx.AsyncClient(http2=True, http1=False) (h2c prior knowledge),
             one connection, --streams tasks, each `await client.get(url)`

Only the package's public API is used (no protocol logic here). The package
is this checkout's, imported from bindings/python/src (ahead of any installed
copy), on GUNMETAL_LIBRARY (default: GUNMETAL_BUILD_DIR/libgunmetal.so,
GUNMETAL_BUILD_DIR defaulting to <repo>/build).

Prints one line, "N requests in T s: R requests/s"; on any failure (a status
other than 200, a short body, a stream or connection error, not HTTP/2) it
prints why on stderr and exits 1. Not a test: a figure.

    py_client.py --client sync|asyncio|httpx --port P [--host 127.0.0.1]
                 [--path /bytes/100] [--streams 100] [--seconds 2] [--warmup 0.5]
                 [--body 100] [--tls]

It also prints "RESULT n=N s=T cpu=C" for bench/harness (C: user + sys
seconds of the process over the measured loop).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any, Callable, Dict, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))


def import_gunmetal() -> Any:
    # This checkout's package and library, even if another is installed.
    sys.path.insert(0, os.path.join(REPO, "bindings", "python", "src"))
    if not os.environ.get("GUNMETAL_LIBRARY"):
        build = os.environ.get("GUNMETAL_BUILD_DIR", os.path.join(REPO, "build"))
        os.environ["GUNMETAL_LIBRARY"] = os.path.join(os.path.abspath(build), "libgunmetal.so")
    import gunmetal
    import gunmetal.aio  # noqa: F401

    return gunmetal


class Failed(Exception):
    pass


CPU = [0.0]  # user + sys seconds of the process over the measured loop


def cpu() -> float:
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def conn_opts(a: argparse.Namespace) -> Dict[str, Any]:
    # --tls: ALPN h2 without verification (the benchmark's self-signed server).
    o: Dict[str, Any] = {"protocols": ["http2"], "retry": 0}
    if a.tls:
        o.update(transport="tls", tls_opts={"verify": "verify_none"})
    return o


# ------------------------------------------------------------------ gunmetal sync


def run_sync(a: argparse.Namespace) -> Tuple[int, float]:
    gunmetal = import_gunmetal()
    from gunmetal import EventKind

    RESPONSE, DATA, TRAILERS = EventKind.RESPONSE, EventKind.DATA, EventKind.TRAILERS
    with gunmetal.open(a.host, a.port, **conn_opts(a)) as c:
        proto = c.await_up(10)
        if proto != "http2":
            raise Failed(f"the connection is up as {proto}, not http2")
        get, poll, path = c.get, c.queue.poll, a.path

        def loop(seconds: float) -> Tuple[int, float]:
            done = 0
            start = time.perf_counter()
            deadline = start + seconds
            for _ in range(a.streams):
                get(path)
            inflight = a.streams
            while inflight:
                evs = poll(256, 10)
                if not evs:
                    raise Failed(f"no event for 10 s with {inflight} streams in flight")
                finished = 0
                for ev in evs:
                    k = ev.kind
                    if k == DATA:
                        if ev.fin:
                            finished += 1
                    elif k == RESPONSE:
                        if ev.status != 200:
                            raise Failed(f"status {ev.status}")
                        if ev.fin:
                            raise Failed("a response without a body")
                    elif k == TRAILERS:
                        finished += 1
                    else:  # ERROR, DOWN, EXIT, anything unexpected
                        raise Failed(f"{getattr(k, 'name', k)} event: {ev.reason}")
                done += finished
                inflight -= finished
                if finished and time.perf_counter() < deadline:
                    for _ in range(finished):
                        get(path)
                    inflight += finished
            return done, time.perf_counter() - start

        loop(a.warmup)
        c0 = cpu()
        r = loop(a.seconds)
        CPU[0] = cpu() - c0
        return r


# ------------------------------------------------------------------ gunmetal asyncio


async def _aio(a: argparse.Namespace) -> Tuple[int, float]:
    gunmetal = import_gunmetal()
    async with gunmetal.aio.open(a.host, a.port, **conn_opts(a)) as c:
        proto = await c.up(10)
        if proto != "http2":
            raise Failed(f"the connection is up as {proto}, not http2")

        async def loop(seconds: float) -> Tuple[int, float]:
            done = 0
            start = time.perf_counter()
            deadline = start + seconds

            async def worker() -> None:
                nonlocal done
                while time.perf_counter() < deadline:
                    resp = await c.get(a.path)
                    body = await resp.read()
                    if resp.status != 200 or len(body) != a.body:
                        raise Failed(f"status {resp.status}, {len(body)} bytes")
                    done += 1

            await asyncio.gather(*(worker() for _ in range(a.streams)))
            return done, time.perf_counter() - start

        await loop(a.warmup)
        c0 = cpu()
        r = await loop(a.seconds)
        CPU[0] = cpu() - c0
        return r


def run_aio(a: argparse.Namespace) -> Tuple[int, float]:
    return asyncio.run(_aio(a))


# ------------------------------------------------------------------ httpx


async def _httpx(a: argparse.Namespace) -> Tuple[int, float]:
    import httpx  # pip install 'httpx[http2]'

    url = f"{'https' if a.tls else 'http'}://{a.host}:{a.port}{a.path}"
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    # Cleartext with http1=False: HTTP/2 with prior knowledge.
    async with httpx.AsyncClient(http2=True, http1=False, limits=limits, verify=not a.tls) as cl:
        r = await cl.get(url)
        if r.http_version != "HTTP/2":
            raise Failed(f"httpx spoke {r.http_version}, not HTTP/2")

        async def loop(seconds: float) -> Tuple[int, float]:
            done = 0
            start = time.perf_counter()
            deadline = start + seconds

            async def worker() -> None:
                nonlocal done
                while time.perf_counter() < deadline:
                    r = await cl.get(url)
                    if r.status_code != 200 or len(r.content) != a.body:
                        raise Failed(f"status {r.status_code}, {len(r.content)} bytes")
                    done += 1

            await asyncio.gather(*(worker() for _ in range(a.streams)))
            return done, time.perf_counter() - start

        await loop(a.warmup)
        c0 = cpu()
        r = await loop(a.seconds)
        CPU[0] = cpu() - c0
        return r


def run_httpx(a: argparse.Namespace) -> Tuple[int, float]:
    return asyncio.run(_httpx(a))


CLIENTS: Dict[str, Callable[[argparse.Namespace], Tuple[int, float]]] = {
    "sync": run_sync,
    "asyncio": run_aio,
    "httpx": run_httpx,
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--client", choices=sorted(CLIENTS), required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", default="/bytes/100")
    ap.add_argument("--body", type=int, default=100, help="expected body size (asyncio, httpx)")
    ap.add_argument("--streams", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--warmup", type=float, default=0.5)
    ap.add_argument("--tls", action="store_true", help="TLS (ALPN h2), certificate not verified")
    a = ap.parse_args()
    try:
        n, dt = CLIENTS[a.client](a)
    except Exception as e:  # the driver prints this as "client X failed: ..."
        print(f"{a.client}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    if n == 0 or dt <= 0:
        print(f"{a.client}: no request finished", file=sys.stderr)
        return 1
    print(f"{n} requests in {dt:.3f} s: {n / dt:.0f} requests/s")
    print(f"RESULT n={n} s={dt:.6f} cpu={CPU[0]:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
