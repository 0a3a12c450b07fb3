"""The floor: a bare Starlette WebSocket echo under the server's uvicorn settings
(websockets-sansio, no deflate), for ``python -m bench.echo_app PORT``."""

from __future__ import annotations

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from client_sdk.protocol import MSGPACK


async def echo(websocket: WebSocket) -> None:
    await websocket.accept(subprotocol=MSGPACK)
    try:
        while True:
            await websocket.send_bytes(await websocket.receive_bytes())
    except WebSocketDisconnect:
        pass


async def healthz(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


app = Starlette(routes=[WebSocketRoute("/echo", echo), Route("/healthz", healthz)])


def main() -> None:
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        ws_ping_interval=10.0,
        ws_ping_timeout=10.0,
        lifespan="off",
        log_level="warning",
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
