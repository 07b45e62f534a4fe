"""
Which worker a Bayeux request is for: L{bayeuxClientId} reads the client
id from its messages, wherever the request carries them.
"""

import json
from io import BytesIO
from urllib.parse import urlencode

from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from txcomet._node.workers import bayeuxClientId


class ClientIdTests(SynchronousTestCase):
    def request(self, method, body=b"", args=None):
        request = DummyRequest([b"bayeux"])
        request.method = method
        request.args = args or {}
        request.content = BytesIO(body)
        return request

    def test_sources(self):
        """
        The client id is read from a JSON body, a form body and a GET's
        message parameter; the first message naming one wins.
        """
        messages = [{"channel": "/meta/handshake"}, {"channel": "/a", "clientId": "1.x"}]
        text = json.dumps(messages).encode("utf-8")
        self.assertEqual(bayeuxClientId(self.request(b"POST", text)), "1.x")
        self.assertEqual(bayeuxClientId(self.request(b"POST", urlencode({"message": text}).encode("ascii"))), "1.x")
        self.assertEqual(bayeuxClientId(self.request(b"GET", args={b"message": [text]})), "1.x")

    def test_none(self):
        """
        Bodies that name no client, or are not JSON, name no worker.
        """
        for body in [b"", b"[{", b"7", b'[{"channel": "/meta/handshake"}]', b'{"clientId": 3}']:
            self.assertIsNone(bayeuxClientId(self.request(b"POST", body)), body)
