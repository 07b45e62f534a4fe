"""
What the hub logs of sessions: a structured event (client, user, transport,
reason, channels) for a close worth a look, none for the everyday ones,
and nothing secret, so C{twist --log-format=json} output can be searched.
"""

import json

from twisted.logger import Logger, eventAsJSON, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from txcomet.testing import RecordingDataChannel, makeComet


class CloseLogTests(SynchronousTestCase):
    def setUp(self):
        self.comet, self.clock = makeComet()
        self.comet.startService()
        self.addCleanup(self.comet.stopService)
        self.events = []
        self.comet.hub.log = Logger(observer=self.events.append)

    def session(self, user="ann"):
        session = self.comet.hub.join(user=user, credentials={"auth": "SECRET-TOKEN"}).result
        session.subscribe("news")
        channel = RecordingDataChannel()
        channel.transportName = "sse"
        session.attach(channel)
        return session

    def test_notableCloseIsLoggedWithFields(self):
        session = self.session()
        session.close("slow_consumer")
        [event] = self.events
        self.assertEqual(
            (event["client"], event["user"], event["transport"], event["reason"], event["channels"]),
            (session.clientId, "ann", "sse", "slow_consumer", ["news"]),
        )
        self.assertIn("slow_consumer", formatEvent(event))
        text = eventAsJSON(event)
        self.assertEqual(json.loads(text)["reason"], "slow_consumer")
        self.assertNotIn("SECRET-TOKEN", text)
        self.assertNotIn(session.id, text)  # the session id opens the session: never logged

    def test_everydayClosesAreNot(self):
        for reason in ("left", "expired", "shutdown"):
            self.session().close(reason)
        self.assertEqual(self.events, [])

    def test_revocationReasonIsLogged(self):
        self.session("bob")
        self.comet.disconnect("bob", "banned")
        self.assertEqual([(e["user"], e["reason"]) for e in self.events], [("bob", "banned")])
