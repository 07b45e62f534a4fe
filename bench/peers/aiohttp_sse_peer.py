"""
An aiohttp-sse broadcast server, as its documentation suggests writing one:
one asyncio.Queue and one coroutine per subscriber.

GET /sse streams; POST /publish puts its body on every subscriber's queue.

    python aiohttp_sse_peer.py PORT
"""

import asyncio
import sys

from aiohttp import web
from aiohttp_sse import sse_response

SUBSCRIBERS = set()


async def subscribe(request):
    queue = asyncio.Queue()
    SUBSCRIBERS.add(queue)
    try:
        async with sse_response(request) as response:
            while response.is_connected():
                data = await queue.get()
                await response.send(data)
    finally:
        SUBSCRIBERS.discard(queue)
    return response


async def publish(request):
    data = await request.text()
    for queue in SUBSCRIBERS:
        queue.put_nowait(data)
    return web.Response(text="ok\n")


def main(port):
    app = web.Application()
    app.router.add_get("/sse", subscribe)
    app.router.add_post("/publish", publish)
    web.run_app(app, host="127.0.0.1", port=port, backlog=1024, access_log=None, print=None)


if __name__ == "__main__":
    main(int(sys.argv[1]))
