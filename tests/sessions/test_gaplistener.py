"""
Sessions hear of gaps in what the bus delivered (L{IGapListener}).
"""

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from txcomet.interfaces import IGapListener
from txcomet.testing import RecordingDataChannel, makeComet

from tests.support import subscriberCount


class SessionGapTests(SynchronousTestCase):
    def test_sessionIsAGapListener(self):
        """
        A session provides IGapListener.
        """
        comet, clock = makeComet()
        session = self.successResultOf(comet.hub.join())
        self.assertTrue(verifyObject(IGapListener, session))

    def test_gapClosesTheSessionForResume(self):
        """
        A gap closes the session with replay_unavailable (reconnect: true),
        so its client joins again and resumes from history; the session is
        gone from the hub and no longer subscribed.
        """
        comet, clock = makeComet()
        session = self.successResultOf(comet.hub.join())
        self.successResultOf(session.subscribe("news"))
        channel = RecordingDataChannel()
        session.attach(channel)
        session.gap()
        self.assertEqual(channel.closed, ("replay_unavailable", True))
        self.assertNotIn(session.id, comet.hub.sessions)
        self.assertEqual(subscriberCount(comet.bus, "news"), 0)
