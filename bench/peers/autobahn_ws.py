"""
A bare Autobahn broadcast server on Twisted.

WebSocket at /ws; POST /publish prepares its body once as a text message
(Autobahn's prepareMessage, given bytes) and sends the prepared frame to
every open connection.

    python autobahn_ws.py PORT
"""

import sys

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet import reactor
from twisted.web.resource import Resource
from twisted.web.server import Site


class BroadcastProtocol(WebSocketServerProtocol):
    def onOpen(self):
        self.factory.clients.add(self)

    def onClose(self, wasClean, code, reason):
        self.factory.clients.discard(self)


class BroadcastFactory(WebSocketServerFactory):
    protocol = BroadcastProtocol

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.clients = set()

    def broadcast(self, payload):
        prepared = self.prepareMessage(payload, isBinary=False)
        for client in list(self.clients):
            client.sendPreparedMessage(prepared)


class Publish(Resource):
    isLeaf = True

    def __init__(self, factory):
        super().__init__()
        self.factory = factory

    def render_POST(self, request):
        self.factory.broadcast(request.content.read())
        return b"ok\n"


def main(port):
    factory = BroadcastFactory()
    root = Resource()
    root.putChild(b"ws", WebSocketResource(factory))
    root.putChild(b"publish", Publish(factory))
    site = Site(root)
    site.log = lambda request: None
    reactor.listenTCP(port, site, backlog=1024, interface="127.0.0.1")
    reactor.run()


if __name__ == "__main__":
    main(int(sys.argv[1]))
