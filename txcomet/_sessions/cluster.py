# -*- test-case-name: tests.sessions.test_cluster -*-
"""
Questions for every node: L{Cluster} asks each node sharing the bus (other
Redis nodes, the other C{--workers}) a question and gathers the answers,
so the server API's C{info} and C{channels} and the metrics answer for the
whole cluster.

It travels by the path events take, on reserved channels no client can
reach (see L{txcomet._model.channels.isReserved}), never stored:

  - C{~txcomet/nodes}: each node says C{hello} when it starts, C{beat}
    every L{Cluster.interval} seconds, and C{bye} when it stops; a node
    that hears a C{hello} answers with a C{beat}, so a newcomer knows the
    others at once.  A node unheard for three intervals is forgotten.
  - C{~txcomet/query}: a question, with the asking node's id and a
    reference.
  - C{~txcomet/answer/<node>}: each node's answer, to the asker only.

A question waits for every node it knows of (and itself), or for
L{Cluster.wait} seconds, and says which nodes did not answer in time.
"""

import itertools
import os
import secrets
import sys
from typing import Any, Callable, Dict, List, Optional

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from txcomet._model.channels import RESERVED, Pattern, isPattern, isReserved
from txcomet._model.errors import CometError
from txcomet.interfaces import IEvent, ISubscriber

NODES_CHANNEL = RESERVED + "/nodes"
QUERY_CHANNEL = RESERVED + "/query"
ANSWER_PREFIX = RESERVED + "/answer/"


class _Question:
    """
    One question on its way: the answers so far and who is still awaited.
    """

    def __init__(self, expected: set, done: Deferred, timer: Any) -> None:
        self.expected = expected
        self.answers: Dict[str, Any] = {}
        self.done = done
        self.timer = timer


@implementer(ISubscriber)
class Cluster:
    """
    This node's membership of the cluster, and the questions it asks and
    answers.

    @ivar nodeId: this node's id (random, new at every start).
    @ivar nodes: node id -> when it was last heard of, for the other nodes.
    @ivar answerers: question name -> C{f(params)} returning a JSON value
        (or a L{Deferred} of one): this node's answer.
    """

    log = Logger()
    #: Seconds between a node's beats.
    interval = 5.0
    #: Seconds a question waits for the nodes it knows of.
    wait = 2.0

    def __init__(self, hub: Any) -> None:
        self.hub = hub
        self.clock = hub.clock
        self.nodeId = secrets.token_hex(6)
        self.startedAt = self.clock.seconds()
        self.nodes: Dict[str, float] = {}
        self.answerers: Dict[str, Callable[[dict], Any]] = {}
        self._questions: Dict[int, _Question] = {}
        self._refs = itertools.count(1)
        self._beat: Optional[LoopingCall] = None
        self.running = False

    @property
    def answerChannel(self) -> str:
        return ANSWER_PREFIX + self.nodeId

    def start(self) -> Deferred:
        """
        Listen on the cluster's channels (once the bus has started) and
        say hello.
        """
        bus = self.hub.bus
        self.startedAt = self.clock.seconds()
        self.running = True
        d = maybeDeferred(bus.subscribe, NODES_CHANNEL, self)
        d.addCallback(lambda _: bus.subscribe(QUERY_CHANNEL, self))
        d.addCallback(lambda _: bus.subscribe(self.answerChannel, self))

        def started(_: Any) -> None:
            self._beat = LoopingCall(self._say, "beat")
            self._beat.clock = self.clock
            self._beat.start(self.interval, now=False)
            self._say("hello")

        return d.addCallback(started)

    def stop(self) -> Deferred:
        self.running = False
        if self._beat is not None and self._beat.running:
            self._beat.stop()
        self._say("bye")
        for question in list(self._questions.values()):
            if question.timer.active():
                question.timer.cancel()
            if not question.done.called:
                question.done.errback(CometError("unavailable", "The node is stopping."))
        self._questions.clear()
        bus = self.hub.bus
        d = maybeDeferred(bus.unsubscribe, NODES_CHANNEL, self)
        d.addCallback(lambda _: bus.unsubscribe(QUERY_CHANNEL, self))
        d.addCallback(lambda _: bus.unsubscribe(self.answerChannel, self))
        return d

    def _say(self, what: str) -> None:
        d = self.hub.bus.publish(NODES_CHANNEL, {"op": what, "node": self.nodeId}, store=False)
        # The bus may be away for a while; the next beat says it again.
        d.addErrback(lambda f: None)

    def liveNodes(self) -> List[str]:
        """
        The ids of the nodes heard of lately, this one first.
        """
        horizon = self.clock.seconds() - 3 * self.interval
        for node, seen in list(self.nodes.items()):
            if seen < horizon:
                del self.nodes[node]
        return [self.nodeId] + sorted(self.nodes)

    def ask(self, question: str, params: Optional[dict] = None) -> Deferred:
        """
        Ask every node C{question}.

        @return: a L{Deferred} firing with C{(answers, missing)}: node id
            -> answer for each node that answered (this one included), and
            the ids of the nodes known that did not answer in time.  It
            fails with C{CometError("unavailable")} when the question
            cannot be sent (the bus is down).
        """
        ref = next(self._refs)
        done: Deferred = Deferred()
        timer = self.clock.callLater(self.wait, self._timeUp, ref)
        pending = _Question(set(self.liveNodes()), done, timer)
        self._questions[ref] = pending
        message = {"q": question, "params": params or {}, "from": self.nodeId, "ref": ref}

        def notSent(failure: Any) -> None:
            self._finish(ref)
            if not done.called:
                done.errback(failure)

        self.hub.bus.publish(QUERY_CHANNEL, message, store=False).addErrback(notSent)
        return done

    def _timeUp(self, ref: int) -> None:
        self._finish(ref, timedOut=True)

    def _finish(self, ref: int, timedOut: bool = False) -> None:
        question = self._questions.pop(ref, None)
        if question is None:
            return
        if not timedOut and question.timer.active():
            question.timer.cancel()
        if not question.done.called:
            missing = sorted(question.expected - set(question.answers))
            question.done.callback((question.answers, missing))

    # ISubscriber

    def deliver(self, event: IEvent) -> None:
        data = event.data
        if not isinstance(data, dict):
            return
        channel = event.channel
        if channel == NODES_CHANNEL:
            self._heard(data)
        elif channel == QUERY_CHANNEL:
            self._answer(data)
        elif channel == self.answerChannel:
            question = self._questions.get(data.get("ref"))
            node = data.get("node")
            if question is None or not isinstance(node, str):
                return
            question.answers[node] = data.get("answer")
            if question.expected <= set(question.answers):
                self._finish(data["ref"])

    def _heard(self, data: dict) -> None:
        node = data.get("node")
        if not isinstance(node, str) or node == self.nodeId:
            return
        if data.get("op") == "bye":
            self.nodes.pop(node, None)
            return
        self.nodes[node] = self.clock.seconds()
        if data.get("op") == "hello" and self.running:
            self._say("beat")

    def _answer(self, data: dict) -> None:
        asker = data.get("from")
        answerer = self.answerers.get(data.get("q"))
        if not isinstance(asker, str) or answerer is None:
            return
        params = data.get("params") if isinstance(data.get("params"), dict) else {}
        d = maybeDeferred(answerer, params)

        def failed(failure: Any) -> dict:
            self.log.failure("Answering a cluster question failed", failure)
            return {"error": "internal_error"}

        d.addErrback(failed)

        def send(answer: Any) -> Deferred:
            reply = {"ref": data.get("ref"), "node": self.nodeId, "answer": answer}
            return self.hub.bus.publish(ANSWER_PREFIX + asker, reply, store=False)

        d.addCallback(send)
        d.addErrback(lambda f: None)  # the asker times out and says so


def channelCounts(hub: Any, pattern: Optional[str] = None) -> Dict[str, int]:
    """
    This node's subscriptions by channel (or wildcard pattern) name, with
    how many sessions hold each, for the names C{pattern} matches (all when
    C{None}).
    """
    counts: Dict[str, int] = {}
    for session in list(hub.sessions.values()):
        for name in session.subscriptions:
            counts[name] = counts.get(name, 0) + 1
    if pattern is not None:
        match = Pattern(pattern).matches if isPattern(pattern) else pattern.__eq__
        counts = {name: n for name, n in counts.items() if match(name)}
    return {name: n for name, n in counts.items() if not isReserved(name)}


def nodeCounts(hub: Any) -> dict:
    """
    This node's sessions, data channels attached to them by transport,
    subscriptions, and channels (and patterns) with a subscriber, the
    server's own channels left out: what C{info} and the metrics say.
    """
    connections: Dict[str, int] = {}
    subscriptions = 0
    channels = set()
    sessions = list(hub.sessions.values())
    for session in sessions:
        channel = session.dataChannel
        if channel is not None:
            name = channel.transportName
            connections[name] = connections.get(name, 0) + 1
        subscriptions += len(session.subscriptions)
        channels.update(session.subscriptions)
    return {
        "sessions": len(sessions),
        "connections": connections,
        "subscriptions": subscriptions,
        "channels": len([name for name in channels if not isReserved(name)]),
    }


def nodeInfo(hub: Any, cluster: Cluster, version: str) -> dict:
    """
    What the server API's C{info} says of this node.
    """
    info = {
        "node": cluster.nodeId,
        "version": version,
        "pid": os.getpid(),
        "uptime": round(hub.clock.seconds() - cluster.startedAt, 3),
    }
    info.update(nodeCounts(hub))
    info["memory"] = memoryUse()
    return info


def memoryUse() -> dict:
    """
    This process's memory: C{rss} (resident now) and C{maxRss} (its
    peak), in bytes; C{None} where the platform does not say.
    """
    rss = None
    try:
        with open("/proc/self/statm") as f:
            rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    maxRss = None
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        maxRss = peak if sys.platform == "darwin" else peak * 1024
    except ImportError:
        pass
    return {"rss": rss, "maxRss": maxRss}
