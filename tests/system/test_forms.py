"""
txcomet's endpoints take JSON or text bodies: a form body (urlencoded or
multipart, well-formed or not) is never parsed by twisted.web into request
parameters, and a malformed one is answered with txcomet's JSON error, not
the framework's bare 400.
"""

import json

from twisted.trial.unittest import TestCase

from tests.support.realhttp import exchange, serveNode


class FormBodyTests(TestCase):
    timeout = 30

    async def post(self, port, path, contentType, body):
        return await exchange(port, b"POST", path, {"Content-Type": contentType}, body)

    async def check(self, *argv):
        comet, port = await serveNode(self, *argv)
        # A malformed multipart body: txcomet's JSON error, not a bare 400.
        client = await self.post(port, "/comet/control", "multipart/form-data; boundary=zzz", b"garbage")
        self.assertEqual(client.status, 400, client.body)
        self.assertEqual(client.headers["content-type"], "application/json; charset=utf-8")
        self.assertEqual(json.loads(client.body)["error"], "malformed_json")
        # A well-formed form is not the request's parameters: no join.
        client = await self.post(port, "/comet/control", "application/x-www-form-urlencoded", b"op=join")
        self.assertEqual(client.status, 400, client.body)
        self.assertEqual(json.loads(client.body)["error"], "malformed_json")
        self.assertEqual(comet.hub.sessions, {})
        # On the publish API a multipart body is text like any other.
        client = await self.post(port, "/comet/publish/chat", "multipart/form-data; boundary=zzz", b"garbage")
        self.assertEqual(client.status, 200, client.body)
        self.assertTrue(json.loads(client.body)["ok"])
        history = await comet.hub.bus.history("chat", None)
        self.assertEqual([e.data for e in history.events], ["garbage"])

    async def test_site(self):
        await self.check()

    async def test_leanSite(self):
        await self.check("--no-access-log")
