"""
A bare twisted.web SSE broadcast server: the floor of txcomet's own stack.

GET /sse holds the request open as text/event-stream; POST /publish frames
its body once as an SSE event and hands it to every held request with
Request.write.  No sessions, no ids, no history: what twisted.web costs by
itself.

    python twisted_sse.py PORT
"""

import sys

from twisted.internet import reactor
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site


class Subscribe(Resource):
    isLeaf = True

    def __init__(self, subscribers):
        super().__init__()
        self.subscribers = subscribers

    def render_GET(self, request):
        request.setHeader(b"Content-Type", b"text/event-stream")
        request.setHeader(b"Cache-Control", b"no-store")
        request.write(b": ok\n\n")
        self.subscribers.add(request)
        request.notifyFinish().addBoth(lambda _: self.subscribers.discard(request))
        return NOT_DONE_YET


class Publish(Resource):
    isLeaf = True

    def __init__(self, subscribers):
        super().__init__()
        self.subscribers = subscribers

    def render_POST(self, request):
        body = request.content.read()
        frame = b"data: " + b"\ndata: ".join(body.split(b"\n")) + b"\n\n"
        for subscriber in list(self.subscribers):
            subscriber.write(frame)
        return b"ok\n"


def main(port):
    subscribers = set()
    root = Resource()
    root.putChild(b"sse", Subscribe(subscribers))
    root.putChild(b"publish", Publish(subscribers))
    site = Site(root)
    site.log = lambda request: None  # no access log, as nginx is run here
    reactor.listenTCP(port, site, backlog=1024, interface="127.0.0.1")
    reactor.run()


if __name__ == "__main__":
    main(int(sys.argv[1]))
