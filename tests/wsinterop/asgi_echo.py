"""An ASGI app for gunmetal's interop tests, served by hypercorn (a server
nobody in this project wrote), which speaks WebSocket over HTTP/1.1 and
over HTTP/2 (RFC 8441 extended CONNECT).

    python3 -m hypercorn --bind 127.0.0.1:PORT asgi_echo:app

WebSocket paths: /echo echoes every message; /close closes at once with
code 4001 and reason "bye". Subprotocol: "chat" when the client offers it.
HTTP: any path answers 200 "ok <http version>".
"""


async def app(scope, receive, send):
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        sub = "chat" if "chat" in scope.get("subprotocols", []) else None
        await send({"type": "websocket.accept", "subprotocol": sub})
        if scope["path"] == "/close":
            await send({"type": "websocket.close", "code": 4001, "reason": "bye"})
            return
        while True:
            msg = await receive()
            if msg["type"] == "websocket.disconnect":
                return
            if msg.get("text") is not None:
                await send({"type": "websocket.send", "text": msg["text"]})
            else:
                await send({"type": "websocket.send", "bytes": msg["bytes"]})
    elif scope["type"] == "http":
        while (await receive()).get("more_body"):
            pass
        body = b"ok " + scope["http_version"].encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
    elif scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
