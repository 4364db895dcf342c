#!/usr/bin/env python3
"""W4 peer: aiohttp's WebSocket client, one connection, --inflight binary
messages of --size bytes in flight (each echo answered by a new send), for
--seconds after --warmup seconds. Prints "RESULT n=N s=T cpu=C" (C: user +
sys seconds of the process over the measured part). Not a test: a figure.

    aiohttp_ws.py --url ws://127.0.0.1:PORT/ws [--seconds 3] [--warmup 1]
                  [--inflight 100] [--size 100]
"""

import argparse
import asyncio
import resource
import sys
import time


def cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def run(a: argparse.Namespace) -> int:
    import aiohttp  # pip install aiohttp

    payload = bytes((97 + i % 26) for i in range(a.size))
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(a.url, max_msg_size=0, autoping=True) as ws:
            for _ in range(a.inflight):
                await ws.send_bytes(payload)
            got = 0
            start = time.perf_counter()
            t0 = c0 = 0.0
            base = 0
            measuring = False
            while True:
                msg = await ws.receive()
                if msg.type != aiohttp.WSMsgType.BINARY or len(msg.data) != a.size:
                    print(f"aiohttp_ws: unexpected message {msg.type} {msg.data!r:.60}", file=sys.stderr)
                    return 1
                got += 1
                now = time.perf_counter()
                if not measuring and now - start >= a.warmup:
                    measuring, t0, c0, base = True, now, cpu(), got
                if measuring and now - t0 >= a.seconds:
                    print(f"RESULT n={got - base} s={now - t0:.6f} cpu={cpu() - c0:.6f}")
                    return 0
                await ws.send_bytes(payload)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--warmup", type=float, default=1)
    ap.add_argument("--inflight", type=int, default=100)
    ap.add_argument("--size", type=int, default=100)
    return asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
