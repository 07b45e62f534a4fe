"""
First checks that the in-memory client and the server agree.
"""

from twisted.trial.unittest import SynchronousTestCase

from txcomet.testing import MemoryCometClient, makeComet


class PollTests(SynchronousTestCase):
    def test_joinSubscribePublishPoll(self):
        """
        A joined, subscribed session polls what is published on its channel.
        """
        comet, clock = makeComet()
        client = MemoryCometClient(comet)
        session = client.join()
        self.assertTrue(client.subscribe(session, "news")["ok"])
        self.assertTrue(client.publish("news", {"a": 1})["ok"])
        events = client.poll(session)
        self.assertEqual([e["data"] for e in events], [{"a": 1}])
        self.assertEqual(client.poll(session), [])
