"""
Backend hooks against a real HTTP backend (a Twisted site on a free
port): allow (with user, info and channels), deny with a reason, slow and
down (both fail closed with 503 C{unavailable}), the forwarded Cookie
header.  (Shared requests and bad answers, in memory: tests/auth/test_hooks.py.)
"""

import json

import treq
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase
from twisted.web.server import Site

from tests.support import RealServerMixin
from tests.support.auth import Backend
from tests.support.realhttp import rawRequest


class HookServerTests(RealServerMixin, TestCase):
    timeout = 30

    async def startAll(self, **config):
        self.backend = Backend()
        self.backendPort = reactor.listenTCP(0, Site(self.backend), interface="127.0.0.1")
        self.addCleanup(self.backendPort.stopListening)
        hook = "http://127.0.0.1:%d/hook" % (self.backendPort.getHost().port,)
        config.setdefault("connectHook", hook)
        await self.startServer(subscribeHook=hook, hookTimeout=0.5, **config)

    async def control(self, message, headers=None):
        allHeaders = {b"Content-Type": [b"application/json"]}
        allHeaders.update(headers or {})
        response = await self.post(self.url + "/control", json.dumps(message).encode(), headers=allHeaders)
        return response.code, await treq.json_content(response)

    async def test_allowWithCookie(self):
        """
        The connect hook gets the client's Cookie (and the transport); its
        answer's user, info and channels are the session's.
        """
        await self.startAll()
        code, reply = await self.control({"op": "join", "user": "mallory"}, {b"Cookie": [b"session=alice"]})
        self.assertEqual(code, 200, reply)
        session = self.comet.hub.sessions[reply["session"]]
        self.assertEqual((session.user, session.info), ("alice", {"name": "Alice"}))
        self.assertEqual(list(session.subscriptions), ["inbox/alice"])
        question = self.backend.questions[0]
        self.assertEqual((question["hook"], question["transport"]), ("connect", "control"))
        self.assertEqual(question["headers"], {"cookie": "session=alice"})

    async def test_deny(self):
        """
        A backend that says no is 403 C{forbidden} with its reason, for a
        control join and a join-listen data channel alike.
        """
        await self.startAll()
        code, reply = await self.control({"op": "join"}, {b"Cookie": [b"session=eve"]})
        self.assertEqual((code, reply["error"]), (403, "forbidden"))
        self.assertIn("unknown cookie", reply["message"])
        client = await rawRequest(self.port.getHost().port, "/comet/sse?channel=news", {"Cookie": "session=eve"})
        await client.waitFor(lambda: client.ended)
        self.assertEqual(client.status, 403)
        self.assertEqual(self.comet.hub.sessions, {})

    async def test_subscribeHookDenies(self):
        """
        The subscribe hook is asked with the channel and the forwarded
        headers of the join; a refusal is 403.
        """
        await self.startAll()
        code, reply = await self.control({"op": "join"}, {b"Cookie": [b"session=alice"]})
        self.backend.mode = "deny"
        code, answer = await self.control({"op": "subscribe", "session": reply["session"], "channel": "news"})
        self.assertEqual((code, answer["error"]), (403, "forbidden"))
        last = self.backend.questions[-1]
        self.assertEqual((last["hook"], last["channel"], last["user"]), ("subscribe", "news", "alice"))
        self.assertEqual(last["headers"], {"cookie": "session=alice"})

    async def test_slowFailsClosed(self):
        """
        A backend that does not answer within the timeout is 503
        C{unavailable}: no session is made.
        """
        await self.startAll()
        self.backend.mode = "slow"
        code, reply = await self.control({"op": "join"})
        self.assertEqual((code, reply["error"]), (503, "unavailable"))
        self.assertEqual(self.comet.hub.sessions, {})
        for request in self.backend.held:
            request.transport.abortConnection()

    async def test_errorFailsClosed(self):
        """
        A backend answering 500 is 503 C{unavailable}, never a pass.
        """
        await self.startAll()
        self.backend.mode = "error"
        code, reply = await self.control({"op": "join"})
        self.assertEqual((code, reply["error"]), (503, "unavailable"))

    async def test_downFailsClosed(self):
        """
        A backend that cannot be reached is 503 C{unavailable}.
        """
        await self.startAll(connectHook="http://127.0.0.1:1/nothing-listens-here")
        code, reply = await self.control({"op": "join"})
        self.assertEqual((code, reply["error"]), (503, "unavailable"))
        self.assertEqual(self.comet.hub.sessions, {})

    async def test_webSocketHandshakeCookie(self):
        """
        Over WebSocket, the connect hook gets the handshake's Cookie and
        the transport C{ws}, for a join sent on the socket; its user is the
        session's.
        """
        from autobahn.twisted.websocket import WebSocketClientFactory
        from twisted.internet import defer
        from twisted.internet.endpoints import TCP4ClientEndpoint

        from tests.system.test_auth_transports import _WSClient

        await self.startAll()
        port = self.port.getHost().port
        factory = WebSocketClientFactory(
            "ws://127.0.0.1:%d/comet/ws" % (port,), headers={"Cookie": "session=alice"}
        )
        factory.protocol = _WSClient
        factory.opened, factory.closed, factory.messages = defer.Deferred(), defer.Deferred(), []
        protocol = await TCP4ClientEndpoint(reactor, "127.0.0.1", port).connect(factory)
        self.addCleanup(lambda: protocol.transport.abortConnection() if protocol.transport.connected else None)
        await factory.opened
        protocol.sendMessage(json.dumps({"op": "join", "ref": 1}).encode())
        while not [m for m in factory.messages if m.get("type") == "reply"]:
            await deferLater(reactor, 0.01, lambda: None)
        [reply] = [m for m in factory.messages if m.get("type") == "reply"]
        self.assertEqual(self.comet.hub.sessions[reply["session"]].user, "alice")
        question = self.backend.questions[0]
        self.assertEqual((question["transport"], question["headers"]), ("ws", {"cookie": "session=alice"}))
