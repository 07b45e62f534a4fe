"""
Backend hooks against a real HTTP backend (a Twisted site on a free
port): allow (with user, info and channels), deny with a reason, slow and
down (both fail closed with 503 C{unavailable}), the forwarded Cookie
header; and identical concurrent questions sharing one request.
"""

import json

import treq
from treq.testing import StubTreq
from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from txcomet._auth.hooks import BackendHooks
from txcomet._model.errors import CometError

from .realhttp import rawRequest
from .support import RealServerMixin


class Backend(Resource):
    """
    A backend answering hook questions as its C{mode} says, remembering
    each question.
    """

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.mode = "allow"
        self.questions = []
        self.held = []

    def render_POST(self, request):
        question = json.loads(request.content.read())
        self.questions.append(question)
        request.setHeader(b"Content-Type", b"application/json")
        if self.mode == "slow":
            self.held.append(request)
            return NOT_DONE_YET
        if self.mode == "error":
            request.setResponseCode(500)
            return b"{}"
        if self.mode == "deny":
            return json.dumps({"allow": False, "reason": "banned"}).encode()
        cookie = question.get("headers", {}).get("cookie", "")
        if question["hook"] == "connect" and "session=alice" in cookie:
            return json.dumps({"allow": True, "user": "alice", "info": {"name": "Alice"}, "channels": ["inbox/alice"]}).encode()
        if question["hook"] == "connect" and cookie:
            return json.dumps({"allow": False, "reason": "unknown cookie"}).encode()
        return json.dumps({"allow": True}).encode()


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


class SharedRequestTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.backend = Backend()
        self.backend.mode = "slow"
        self.hooks = BackendHooks(
            self.clock, StubTreq(self.backend), connect="http://backend/hook", subscribe="http://backend/hook", timeout=1.0
        )

    def test_identicalQuestionsShareOneRequest(self):
        """
        Identical questions asked while one is in flight share its request
        and its answer; a different question gets its own.
        """
        question = {"transport": "sse", "headers": {"cookie": "a"}, "claims": None, "user": None}
        first = self.hooks.ask("connect", question)
        second = self.hooks.ask("connect", dict(question))
        other = self.hooks.ask("connect", dict(question, headers={"cookie": "b"}))
        self.assertEqual(len(self.backend.questions), 2)
        for request in self.backend.held:
            request.write(json.dumps({"allow": True, "user": "u"}).encode())
            request.finish()
        self.hooks.http.flush()
        self.assertEqual(self.successResultOf(first)["user"], "u")
        self.assertEqual(self.successResultOf(second)["user"], "u")
        self.successResultOf(other)

    def test_timeoutFailsAllWaiters(self):
        """
        When the shared request times out, every question waiting on it is
        refused with C{unavailable}, and the next question asks again.
        """
        question = {"transport": "ws", "headers": {}, "claims": None, "user": None}
        waiting = [self.hooks.ask("connect", question) for _ in range(3)]
        self.clock.advance(1.0)
        for d in waiting:
            self.assertEqual(self.failureResultOf(d, CometError).value.code, "unavailable")
        self.hooks.ask("connect", question)
        self.assertEqual(len(self.backend.questions), 2)

    def test_badAnswers(self):
        """
        An answer without a boolean C{allow}, or an allow with a user that
        is not a string, fails closed.
        """
        for body in [b"[]", b'{"allow": "yes"}', b'{"allow": true, "user": 5}', b"not json"]:
            d = self.hooks.ask("connect", {"n": body.decode()})
            request = self.backend.held[-1]
            request.write(body)
            request.finish()
            self.hooks.http.flush()
            self.assertEqual(self.failureResultOf(d, CometError).value.code, "unavailable", body)
