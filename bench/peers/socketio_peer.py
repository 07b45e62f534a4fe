"""
A python-socketio server on aiohttp: every connected client is in the
default namespace; POST /publish emits the body as a "bench" event to all.

    python socketio_peer.py PORT
"""

import sys

import socketio
from aiohttp import web


def main(port):
    sio = socketio.AsyncServer(async_mode="aiohttp", logger=False, engineio_logger=False)
    app = web.Application()
    sio.attach(app)

    async def publish(request):
        await sio.emit("bench", await request.text())
        return web.Response(text="ok\n")

    app.router.add_post("/publish", publish)
    web.run_app(app, host="127.0.0.1", port=port, backlog=1024, access_log=None, print=None)


if __name__ == "__main__":
    main(int(sys.argv[1]))
