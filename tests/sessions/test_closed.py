"""
A session the server closed answers the next request naming it with
C{410 session_closed}, its reason and whether to join again, for
C{closedSessionMemory} seconds, in bounded memory.
"""

from twisted.trial.unittest import SynchronousTestCase

from txcomet._model.errors import CometError
from txcomet._sessions import hub as hubModule
from txcomet.testing import MemoryCometClient, makeComet


class ClosedSessionTests(SynchronousTestCase):
    def test_closedSaysWhy(self):
        """
        Slow consumer, expiry and a kick are each named to the next
        control request and data channel for that session, with
        C{reconnect} as the close message would have said.
        """
        comet, clock = makeComet(sessionTimeout=10)
        client = MemoryCometClient(comet)
        cases = []
        for reason in ("slow_consumer", "kicked"):
            session = client.join()
            comet.hub.sessions[session].close(reason)
            cases.append((session, reason, reason != "kicked"))
        expiring = client.join()
        clock.advance(11)
        cases.append((expiring, "expired", True))
        for session, reason, reconnect in cases:
            reply = client.subscribe(session, "news")
            self.assertEqual(
                (reply["error"], reply["status"], reply["reason"], reply["reconnect"]),
                ("session_closed", 410, reason, reconnect),
            )
            response = client.request("GET", "poll", session=session)
            self.assertEqual(response.code, 410)
            self.assertEqual(response.json()["reason"], reason)

    def test_leftAndUnknownAreNotNews(self):
        """
        A session its client left, and one never made, are
        C{unknown_session} as before.
        """
        comet, clock = makeComet()
        client = MemoryCometClient(comet)
        session = client.join()
        client.control(op="leave", session=session)
        for name in (session, "never-made"):
            reply = client.subscribe(name, "news")
            self.assertEqual((reply["error"], reply["status"]), ("unknown_session", 404))

    def test_forgottenAfterAWhile(self):
        """
        Past C{closedSessionMemory} seconds the session is unknown again,
        and the record is dropped as the next one comes.
        """
        comet, clock = makeComet(closedSessionMemory=30)
        hub = comet.hub
        first = hub.sessions[MemoryCometClient(comet).join()]
        first.close("slow_consumer")
        self.assertEqual(hub.closedError(first.id).code, "session_closed")
        clock.advance(31)
        self.assertEqual(hub.closedError(first.id).code, "unknown_session")
        second = hub.sessions[MemoryCometClient(comet).join()]
        second.close("kicked")
        self.assertEqual(list(hub._closed), [second.id])

    def test_boundedMemory(self):
        """
        At most C{CLOSED_SESSIONS_KEPT} are remembered: the oldest go.
        """
        self.patch(hubModule, "CLOSED_SESSIONS_KEPT", 3)
        comet, clock = makeComet()
        client = MemoryCometClient(comet)
        ids = []
        for _ in range(5):
            session = comet.hub.sessions[client.join()]
            session.close("slow_consumer")
            ids.append(session.id)
        self.assertEqual(list(comet.hub._closed), ids[2:])
        self.assertEqual(comet.hub.closedError(ids[0]).code, "unknown_session")

    def test_offWithZero(self):
        """
        C{closedSessionMemory=0} remembers nothing.
        """
        comet, clock = makeComet(closedSessionMemory=0)
        session = comet.hub.sessions[MemoryCometClient(comet).join()]
        session.close("slow_consumer")
        self.assertEqual(comet.hub._closed, {})
        self.assertRaises(ValueError, makeComet, closedSessionMemory=-1)

    def test_errorBody(self):
        """
        The error's body carries its details beside the usual fields.
        """
        error = CometError("session_closed", "closed", details={"reason": "kicked", "reconnect": False})
        self.assertEqual(
            error.asDict(),
            {"error": "session_closed", "message": "closed", "status": 410, "reason": "kicked", "reconnect": False},
        )
