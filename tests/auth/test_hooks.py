"""
Backend hooks in memory (StubTreq, an injected clock): identical
concurrent questions share one request, a timeout refuses everyone
waiting, and malformed answers fail closed.
"""

import json

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tests.support.auth import Backend
from txcomet._auth.hooks import BackendHooks
from txcomet._model.errors import CometError


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
