"""
The fast path's contracts (L{txcomet._fastpath.contracts}) hold for their
implementations: verifyObject for each, and the roster registry finding a
session's roster side by its interface, not by probing attributes.
"""

from twisted.internet.task import Clock
from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyClass, verifyObject

from tests.fastpath.test_roster import Member
from txcomet._bus.subscribers import LocalSubscribers
from txcomet._fastpath.contracts import IDirectChannel, IRosterMember, IRosterSubscriber, ISink
from txcomet._fastpath.turn import Turn
from txcomet._sessions.session import Session
from txcomet._transports.streaming import EventSourceChannel, StreamingDataChannel
from txcomet._transports.websocket import CometWebSocketProtocol, _WebSocketSink
from txcomet.testing import RecordingDataChannel, makeComet


class ContractTests(SynchronousTestCase):
    def test_implementations(self):
        self.assertTrue(verifyClass(IDirectChannel, StreamingDataChannel))
        self.assertTrue(verifyClass(IRosterMember, StreamingDataChannel))
        self.assertTrue(verifyClass(IDirectChannel, CometWebSocketProtocol))
        self.assertTrue(verifyClass(IRosterMember, _WebSocketSink))
        self.assertTrue(verifyClass(IRosterSubscriber, Session))
        self.assertTrue(IRosterMember.extends(ISink))
        self.assertTrue(IDirectChannel.providedBy(EventSourceChannel.__new__(EventSourceChannel)))

    def test_testMember(self):
        """
        The roster tests' member keeps the contract it stands in for.
        """
        member = Member(Turn(Clock()))
        self.addCleanup(member.close)
        self.assertTrue(verifyObject(IRosterMember, member))

    def test_sessionWithoutDirectChannel(self):
        """
        A session attached to a channel that is no L{IDirectChannel} takes
        the slow path: it has no sink.
        """
        comet, clock = makeComet()
        session = comet.hub.join().result
        session.attach(RecordingDataChannel())
        self.assertIsNone(session._sink)

    def test_leavingTellsOnlyRosterSubscribers(self):
        """
        When a member leaves, the registry tells its subscriber only if it
        provides L{IRosterSubscriber}.
        """
        told = []
        local = LocalSubscribers(Logger())

        class Plain:
            def deliver(self, event):
                pass

            def leftRoster(self, roster):  # not declared: not called
                told.append(roster)

        turn = Turn(Clock())
        subscriber = Plain()
        member = Member(turn)
        self.addCleanup(member.close)
        local.add("c", subscriber)
        self.assertTrue(local.join(subscriber, member))
        local.evict(member)
        self.assertEqual(told, [])
