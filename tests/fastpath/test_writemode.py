"""
The stream write modes (setStreamWriteMode), the seam the fan-out benchmark
uses to compare ways of writing a stream.
"""

from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.http import HTTPChannel, Request

from txcomet._fastpath import writer
from txcomet._fastpath.writer import STREAM_WRITE_MODES, StreamWriter, setStreamWriteMode


def _startedRequest():
    """
    A request on an HTTP/1.1 channel over an in-memory transport, its
    headers written.
    """
    channel = HTTPChannel()
    channel.makeConnection(StringTransport())
    request = Request(channel)
    request.method = b"GET"
    request.clientproto = b"HTTP/1.1"
    request.write(b"")
    return request


class _SocketlessTransport:
    """
    Stands for a TCP connection: C{write} records; sending on its socket
    would fail the test.
    """

    socket = None

    def __init__(self):
        self.written = []

    def write(self, data):
        self.written.append(data)


class WriteModeTests(SynchronousTestCase):
    def setUp(self):
        self.addCleanup(setStreamWriteMode, "direct")

    def test_default(self):
        """
        Streams write the shipped way unless told otherwise, on the
        connection's transport.
        """
        self.assertEqual(StreamWriter.writeMode, "direct")
        self.assertIsNotNone(StreamWriter(_startedRequest()).transport)

    def test_requestMode(self):
        """
        In the request mode a stream writes through Request.write, even on
        an HTTP/1.1 channel.
        """
        setStreamWriteMode("request")
        request = _startedRequest()
        stream = StreamWriter(request)
        self.assertIsNone(stream.transport)
        self.assertIsNone(stream.direct)
        stream.write(b"x")
        self.assertIn(b"1\r\nx\r\n", request.channel.transport.value())

    def test_transportMode(self):
        """
        The transport mode's writer hands every write to transport.write
        and says something is buffered, so its stream never counts as
        idle.
        """
        transport = _SocketlessTransport()
        direct = writer._TransportWriter(transport, exclusive=True)
        self.assertTrue(direct.write(b"a"))
        self.assertTrue(direct.write(b"b"))
        self.assertEqual(transport.written, [b"a", b"b"])
        self.assertTrue(direct.spilled)

    def test_unknownMode(self):
        """
        Another mode is a ValueError naming the modes.
        """
        error = self.assertRaises(ValueError, setStreamWriteMode, "fast")
        for mode in STREAM_WRITE_MODES:
            self.assertIn(mode, str(error))
        self.assertEqual(StreamWriter.writeMode, "direct")
