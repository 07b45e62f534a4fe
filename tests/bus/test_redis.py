"""
The Redis bus's configuration, without a Redis server.
"""


from twisted.trial.unittest import SynchronousTestCase

from txcomet._bus.redis import RedisBus



class FromURLTests(SynchronousTestCase):
    def test_options(self):
        """
        The URL's query sets the prefix, the history age and the presence
        TTL; the database is in the path.
        """
        bus = RedisBus.fromURL("redis://127.0.0.1:1/5?prefix=app&history_age=60&presence_ttl=9", historyLength=7)
        self.assertEqual(
            (bus.prefix, bus.historyAge, bus.presenceTTL, bus.historyLength, bus.address.db),
            ("app", 60.0, 9.0, 7, 5),
        )

    def test_badOptions(self):
        """
        Unknown options, bad numbers and bad prefixes are refused with a
        ValueError naming them.
        """
        for url, words in [
            ("redis://h/0?colour=red", "colour"),
            ("redis://h/0?history_age=soon", "soon"),
            ("redis://h/0?history_age=0", "historyAge"),
            ("redis://h/0?prefix=a*b", "prefix"),
        ]:
            error = self.assertRaises(ValueError, RedisBus.fromURL, url)
            self.assertIn(words, str(error))


class InterfaceTests(SynchronousTestCase):
    def test_presenceIsItsOwnObject(self):
        """
        The bus keeps presence in a L{RedisPresence} of its own, which
        provides L{IPresence}; the bus's presence methods are its.
        """
        from zope.interface.verify import verifyObject

        from txcomet._bus.redis import RedisBus
        from txcomet._bus.redispresence import RedisPresence
        from txcomet.interfaces import IPresence

        bus = RedisBus.fromURL("redis://127.0.0.1:1/0?presence_ttl=12")
        self.assertIsInstance(bus.presence, RedisPresence)
        self.assertTrue(verifyObject(IPresence, bus.presence))
        self.assertEqual(bus.presence._ttlMs, 12000)
        bus.presence.keepMember("room", "c1", {"user": "ann"})
        self.assertEqual(bus.presence.vouched, {("room", "c1"): b'{"user":"ann"}'})
        bus.presence.forgetMember("room", "c1")
        self.assertEqual(bus.presence.vouched, {})


class EpochChangeTests(SynchronousTestCase):
    def test_pubsubDownKeepsTheOutage(self):
        """
        A new epoch adopted while pub/sub is still down leaves the outage
        marked from the epoch's start, so the resync once pub/sub is back
        looks for what the new epoch published meanwhile; with pub/sub up
        there is nothing to look for.
        """
        from txcomet._bus.redis import RedisBus

        bus = RedisBus.fromURL("redis://127.0.0.1:1/0")
        self.assertFalse(bus.pubsub.ready)
        bus._pubsubLostAt = 17
        bus.resync.epochChanged("newepoch")
        self.assertEqual((bus.epoch, bus._seen, bus._pubsubLostAt), ("newepoch", 0, 0))
        bus.pubsub.protocol = object()  # as when connected
        self.addCleanup(setattr, bus.pubsub, "protocol", None)
        self.assertTrue(bus.pubsub.ready)
        bus.resync.epochChanged("another")
        self.assertIsNone(bus._pubsubLostAt)
