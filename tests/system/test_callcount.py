"""
Python calls per delivery, pinned for each delivery regime
(docs/architecture.md, "The three delivery regimes"): a change that makes
fan-out do more Python work per subscriber fails here, whatever the
machine's speed.  Counted with C{sys.setprofile} (Python function calls
only, not C functions) over one publish to N subscribers on real loopback
sockets, from the publish to the end of its reactor turn.

The bounds are today's counts with 5% room; lower them when the fast path
gets cheaper, never raise them without a reason in the commit.  (The
roster's 0.525 is the publish's own fixed cost spread over the 200
subscribers: the roster loop itself calls no Python function per member.)
"""

import socket
import sys

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from tests.support.realhttp import serveNode, until

SUBSCRIBERS = 200

#: regime -> the most Python calls per delivery allowed: the counts of
#: 2026-12-04 (roster 0.505; direct 7.4 to 9.6, by whether a heartbeat
#: round falls in the measurement; slow 182.4, at 200 subscribers) plus
#: about 5% for what another Twisted release may add
BOUNDS = {
    "roster": 0.53,
    "direct": 10.1,
    "slow": 183.0,
}


class CallCountTests(TestCase):
    timeout = 120

    async def open(self, port, path, count):
        sockets = []
        for n in range(count):
            if n % 20 == 0:
                # let the server accept: this thread is its reactor's
                await deferLater(reactor, 0.01, lambda: None)
            s = socket.create_connection(("127.0.0.1", port))
            s.setblocking(False)
            s.sendall(b"GET " + path.encode("ascii") + b" HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
            sockets.append(s)
            self.addCleanup(s.close)
        return sockets

    def drain(self, sockets):
        for s in sockets:
            try:
                while s.recv(65536):
                    pass
            except (BlockingIOError, ConnectionError):
                pass

    async def perDelivery(self, comet, sockets, channel):
        """
        Python calls made from one publish on C{channel} to the end of its
        turn, per subscriber.
        """
        calls = [0]

        def profile(frame, event, arg):
            if event == "call":
                calls[0] += 1

        self.drain(sockets)
        sys.setprofile(profile)
        try:
            comet.publish(channel, "x" * 50)
            await deferLater(reactor, 0, lambda: None)
        finally:
            sys.setprofile(None)
        self.drain(sockets)
        return calls[0] / float(len(sockets))

    async def warm(self, comet, sockets, channel, condition):
        """
        Publish (and read) until C{condition()} holds for every session:
        each sink has written cleanly once, and joined its roster if it may.
        """
        for _ in range(50):
            if condition():
                return
            await comet.publish(channel, "warm")
            await deferLater(reactor, 0.02, lambda: None)
            self.drain(sockets)
        self.fail("the sessions never got where this regime needs them")

    async def test_roster(self):
        """
        Join-listen SSE streams on one channel: after a clean write each is
        in the channel's roster, and a delivery is no Python call of its
        own.
        """
        comet, port = await serveNode(self)
        sockets = await self.open(port, "/comet/sse?channel=roster", SUBSCRIBERS)
        await until(lambda: len(comet.hub.sessions) == SUBSCRIBERS)
        sessions = list(comet.hub.sessions.values())
        await self.warm(comet, sockets, "roster",
                        lambda: all(s._sink is not None and s._sink.seat is not None for s in sessions))
        perDelivery = await self.perDelivery(comet, sockets, "roster")
        self.assertLessEqual(perDelivery, BOUNDS["roster"], perDelivery)

    async def test_direct(self):
        """
        Streams that listen on two channels may not join a roster: each
        delivery takes the direct path through its session's sink.
        """
        comet, port = await serveNode(self)
        sockets = await self.open(port, "/comet/sse?channel=direct&channel=other", SUBSCRIBERS)
        await until(lambda: len(comet.hub.sessions) == SUBSCRIBERS)
        sessions = list(comet.hub.sessions.values())
        await self.warm(comet, sockets, "direct", lambda: all(s._sink is not None for s in sessions))
        self.assertTrue(all(s._sink.seat is None for s in sessions))
        perDelivery = await self.perDelivery(comet, sockets, "direct")
        self.assertLessEqual(perDelivery, BOUNDS["direct"], perDelivery)

    async def test_slow(self):
        """
        Held long-polls: each delivery goes through the session's queue and
        answers (and ends) its request.
        """
        comet, port = await serveNode(self, "--heartbeat", "30")
        sockets = await self.open(port, "/comet/longpoll?channel=slow", SUBSCRIBERS)
        await until(lambda: len(comet.hub.sessions) == SUBSCRIBERS
                    and all(s.dataChannel is not None for s in comet.hub.sessions.values()))
        perDelivery = await self.perDelivery(comet, sockets, "slow")
        self.assertLessEqual(perDelivery, BOUNDS["slow"], perDelivery)
