"""
Tokens and channel rules on a server of several processes: two nodes
sharing a Redis (C{twist txcomet --redis}), and C{--workers 2}.  Requests
land on either node (or worker); a session's control operations and data
channel are served wherever they land, and the rules and tokens hold the
same: the token's user is the identity, a user channel refuses another
user, a private channel takes its channel token, C{**} is refused, a
refresh on another node keeps the session, and a token left to expire
closes the session with C{token_expired}.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import treq
from twisted.internet import reactor
from twisted.internet.defer import DeferredList, inlineCallbacks
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from tests.support.auth import EXAMPLE, SECRET, mint
from tests.support.multinode import NodeProcess
from tests.support.redisserver import RedisServer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def token(sub, lifetime=600.0, **claims):
    claims.update(sub=sub, exp=time.time() + lifetime)
    return mint(claims)


class ScenarioMixin:
    """
    The scenario, against C{self.urls}: mount points of the nodes (the
    same URL twice for workers sharing a port).
    """

    timeout = 120

    def rulesFile(self):
        directory = tempfile.mkdtemp(prefix="txcomet-rules-")
        self.addCleanup(shutil.rmtree, directory, True)
        path = os.path.join(directory, "txcomet.toml")
        with open(path, "w") as f:
            f.write(EXAMPLE)
        return path

    def setUpClient(self):
        # A new connection per request: with workers, each may land on
        # either process.
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(self.pool.closeCachedConnections)

    async def control(self, url, message, bearer=None):
        headers = {b"Content-Type": [b"application/json"]}
        if bearer is not None:
            headers[b"Authorization"] = [b"Bearer " + bearer.encode("ascii")]
        response = await treq.post(url + "/control", json.dumps(message).encode(), headers=headers, pool=self.pool)
        return response.code, await treq.json_content(response)

    async def publish(self, url, channel, data):
        response = await treq.post(
            url + "/publish/" + channel, json.dumps(data).encode(),
            headers={b"Content-Type": [b"application/json"]}, pool=self.pool,
        )
        body = await treq.json_content(response)
        self.assertEqual(response.code, 200, body)
        return body

    async def get(self, url, path):
        response = await treq.get(url + "/" + path, pool=self.pool)
        return response.code, await treq.json_content(response)

    async def pollUntil(self, url, session, predicate):
        messages, last = [], None
        while not predicate(messages):
            path = "longpoll?session=%s%s" % (session, "&last=" + last if last else "")
            code, body = await self.get(url, path)
            self.assertEqual(code, 200, body)
            messages.extend(body)
            if body and "id" in body[-1]:
                last = body[-1]["id"]
            if any(m.get("type") == "close" for m in body):
                break
        return messages

    async def scenario(self):
        a, b = self.urls
        code, reply = await self.control(a, {"op": "join", "user": "mallory"}, bearer=token("alice"))
        self.assertEqual(code, 200, reply)
        alice = reply["session"]
        # Operations for alice's session, wherever they land.
        for url, channel in [(b, "notifications/alice"), (a, "chat/room")]:
            code, answer = await self.control(url, {"op": "subscribe", "session": alice, "channel": channel})
            self.assertEqual(code, 200, answer)
        code, answer = await self.control(b, {"op": "subscribe", "session": alice, "channel": "private/x"})
        self.assertEqual((code, answer["error"]), (403, "forbidden"))
        wrong = mint({"sub": "bob", "channel": "private/x"})
        code, answer = await self.control(b, {"op": "subscribe", "session": alice, "channel": "private/x", "token": wrong})
        self.assertEqual((code, answer["error"]), (403, "forbidden"))
        right = mint({"sub": "alice", "channel": "private/x"})
        code, answer = await self.control(b, {"op": "subscribe", "session": alice, "channel": "private/x", "token": right})
        self.assertEqual(code, 200, answer)
        # Bob cannot read alice's channel, nor everything.
        code, reply = await self.control(b, {"op": "join"}, bearer=token("bob"))
        bob = reply["session"]
        for channel in ["notifications/alice", "**"]:
            code, answer = await self.control(a, {"op": "subscribe", "session": bob, "channel": channel})
            self.assertEqual((code, answer["error"]), (403, "forbidden"), channel)
        code, answer = await self.get(b, "longpoll?channel=notifications/alice&token=" + token("bob"))
        self.assertEqual((code, answer["error"]), (403, "forbidden"))
        # The token's user is the presence identity.
        code, answer = await self.control(b, {"op": "presence", "session": alice, "channel": "chat/room"})
        self.assertEqual([m.get("user") for m in answer["members"]], ["alice"])
        # A refresh wherever it lands keeps the session.
        code, answer = await self.control(b, {"op": "refresh", "session": alice, "token": token("alice", 1200)})
        self.assertEqual(code, 200, answer)
        # What is published anywhere reaches alice, wherever she listens.
        await self.publish(b, "notifications/alice", "ding")
        await self.publish(a, "private/x", "psst")
        messages = await self.pollUntil(b, alice, lambda ms: len([m for m in ms if m.get("type") == "event"]) >= 2)
        self.assertEqual([m["data"] for m in messages if m.get("type") == "event"], ["ding", "psst"])
        # A token left to expire closes its session with token_expired.
        code, reply = await self.control(a, {"op": "join"}, bearer=token("carol", lifetime=1.0))
        self.assertEqual(code, 200, reply)
        messages = await self.pollUntil(b, reply["session"], lambda ms: False)
        self.assertEqual(
            [m for m in messages if m.get("type") == "close"],
            [{"type": "close", "reason": "token_expired", "reconnect": True}],
        )


class TwoRedisNodesTests(ScenarioMixin, TestCase):
    """
    Two nodes on one Redis.
    """

    @inlineCallbacks
    def setUp(self):
        self.setUpClient()
        self.redis = RedisServer.forTest(self)
        rules = self.rulesFile()
        args = ("--token-secret", SECRET, "--config", rules, "--token-grace", "0.5", "--heartbeat", "2")
        self.nodes = [NodeProcess(self.redis.url, *args), NodeProcess(self.redis.url, *args)]
        for node in self.nodes:
            self.addCleanup(node.kill)
        yield DeferredList([n.start() for n in self.nodes], fireOnOneErrback=True, consumeErrors=True)
        self.urls = [n.url for n in self.nodes]

    def test_scenario(self):
        """
        See the module docstring.
        """
        return self.scenario()


class TwoWorkersTests(ScenarioMixin, TestCase):
    """
    C{--workers 2} on one port (the token secret in the environment).
    """

    def setUp(self):
        self.setUpClient()
        rules = self.rulesFile()
        env = dict(os.environ, PYTHONPATH=ROOT, TXCOMET_TOKEN_SECRET=SECRET)
        directory = tempfile.mkdtemp(prefix="txcomet-test-")
        self.addCleanup(shutil.rmtree, directory, True)
        logPath = os.path.join(directory, "server.log")
        with open(logPath, "wb") as logFile:
            process = subprocess.Popen(
                [sys.executable, "-m", "twisted", "txcomet", "--listen", "tcp:0:interface=127.0.0.1",
                 "--workers", "2", "--config", rules, "--token-grace", "0.5", "--heartbeat", "2"],
                cwd=tempfile.gettempdir(), env=env, stdout=logFile, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.addCleanup(self._stop, process)
        found = []
        deadline = time.time() + 30
        while len(found) < 2 and time.time() < deadline and process.poll() is None:
            time.sleep(0.1)
            with open(logPath, "rb") as f:
                found = [int(m.group(1)) for m in (re.search(rb"Site starting on (\d+)", line) for line in f) if m]
        self.assertEqual(len(found), 2, "both workers listen")
        url = "http://127.0.0.1:%d/comet" % (found[0],)
        self.urls = [url, url]
        self.logPath = logPath

    def _stop(self, process):
        if process.poll() is None:
            os.killpg(process.pid, 15)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait()

    async def test_scenario(self):
        """
        See the module docstring.
        """
        await self.scenario()
        with open(self.logPath, "rb") as f:
            log = f.read()
        self.assertNotIn(SECRET.encode(), log)
        self.assertNotIn(b"Traceback", log)


def _sleep(seconds):
    return deferLater(reactor, seconds, lambda: None)
