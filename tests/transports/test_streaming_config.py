"""
The streaming transports' settings: C{CometConfig.recycleBytes} and the
C{--recycle-bytes} option.
"""

from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from txcomet import CometConfig
from txcomet.tap import Options


class RecycleBytesTests(SynchronousTestCase):
    def test_default(self):
        """
        Streams are recycled after 1 MiB unless configured otherwise.
        """
        self.assertEqual(CometConfig().recycleBytes, 1024 * 1024)
        options = Options()
        options.parseOptions([])
        self.assertEqual(options["config"].recycleBytes, 1024 * 1024)

    def test_option(self):
        """
        C{--recycle-bytes} sets the limit; 0 turns recycling off.
        """
        for given in ("4096", "0"):
            options = Options()
            options.parseOptions(["--recycle-bytes", given])
            self.assertEqual(options["config"].recycleBytes, int(given))

    def test_negative(self):
        """
        A negative limit is refused, in code and on the command line.
        """
        self.assertRaises(ValueError, CometConfig, recycleBytes=-1)
        self.assertRaises(UsageError, Options().parseOptions, ["--recycle-bytes", "-1"])
