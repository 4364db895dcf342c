#!/usr/bin/env python3
"""A WebSocket server for gunmetal's interop tests, on the Python
`websockets` library (a server nobody in this project wrote).

    python3 ws_server.py PORT [PING_INTERVAL_SECONDS]

Listens on 127.0.0.1:PORT, prints "ready PORT" on stdout once listening,
and runs until stdin closes (so it dies with the test that started it).

Paths:
    /echo            echoes every message (text stays text, binary binary)
    /close?code=N    closes at once with code N and reason "bye"
Subprotocols: "chat" and "superchat" (the client's first one we know wins;
none offered or none known: no subprotocol).
permessage-deflate: offered by websockets' defaults (accepted when the
client offers it). With PING_INTERVAL the server pings that often.
"""
import asyncio
import sys
from urllib.parse import parse_qs, urlsplit

import websockets
from websockets.asyncio.server import serve


async def handler(ws):
    url = urlsplit(ws.request.path)
    if url.path == "/close":
        code = int(parse_qs(url.query).get("code", ["1000"])[0])
        await ws.close(code, "bye")
        return
    try:
        async for msg in ws:
            await ws.send(msg)
    except websockets.ConnectionClosed:
        pass


def select_subprotocol(connection, offered):
    for p in offered:
        if p in ("chat", "superchat"):
            return p
    return None


async def main():
    port = int(sys.argv[1])
    ping = float(sys.argv[2]) if len(sys.argv) > 2 else None
    async with serve(handler, "127.0.0.1", port, select_subprotocol=select_subprotocol,
                     ping_interval=ping, ping_timeout=None if ping is None else 10 * ping,
                     max_size=64 << 20):
        print("ready", port, flush=True)
        loop = asyncio.get_running_loop()
        # Until stdin closes: the test's end (or death) stops us.
        await loop.run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    asyncio.run(main())
