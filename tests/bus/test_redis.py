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
