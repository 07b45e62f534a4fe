"""
Write-through (L{writeThrough}) on transports that are not TCP sockets.
"""


from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from txcomet._fastpath.writer import writeThrough


class OtherTransportTests(SynchronousTestCase):
    def test_otherTransportsWrite(self):
        """
        A transport that is not a plain TCP connection gets C{write}.
        """
        transport = StringTransport()
        writeThrough(transport, b"abc")
        self.assertEqual(transport.value(), b"abc")
