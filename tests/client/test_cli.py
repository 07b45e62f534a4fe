"""
The command line client's argument parsing.
"""


from twisted.trial.unittest import SynchronousTestCase

from txcomet._client.cli import parser



class ParserTests(SynchronousTestCase):
    def test_defaults(self):
        """
        The URL defaults to http://127.0.0.1:8080/comet, the transport to
        long-polling; DATA and CHANNEL are positional with options anywhere.
        """
        options = parser().parse_args(["subscribe", "a", "b"])
        self.assertEqual((options.url, options.transport, options.channels), ("http://127.0.0.1:8080/comet", "longpoll", ["a", "b"]))
        options = parser().parse_args(["publish", "news", "--text", "1", "--url", "http://h/c"])
        self.assertEqual((options.channel, options.data, options.text, options.url), ("news", "1", True, "http://h/c"))

    def test_badCount(self):
        """
        --count is a positive number.
        """
        import contextlib
        import io

        with contextlib.redirect_stderr(io.StringIO()) as err:
            self.assertRaises(SystemExit, parser().parse_args, ["subscribe", "a", "--count", "0"])
        self.assertIn("must be 1 or more", err.getvalue())
