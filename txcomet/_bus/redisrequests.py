# -*- test-case-name: tests.system.test_redisroute,tests.system.test_api_cluster,tests.bus.test_redis -*-
"""
Asking the other nodes of a Redis bus: L{NodeRequests}, a part of
L{txcomet._bus.redis.RedisBus}.

A request is one PUBLISH, to every node's shared notice channel or to one
node's own; each node answers on the asker's channel with what its
answerer for that kind of request says (C{RedisBus.answerers}: the session
router's claims, takes and forwarded control operations, the cluster's
questions).  The asker gathers answers until one says C{found}, every node
that heard has answered, or the time is up.
"""

from typing import Any, Optional

from twisted.internet.defer import Deferred, fail, maybeDeferred

from txcomet._bus.resp import RedisUnavailable
from txcomet._model.errors import CometError
from txcomet._model.event import encodeJSON

#: How many request timeouts more a node listens for the answer to a take
#: it stopped waiting for.  The holder gives up handing over two request
#: timeouts after the claim, so a take it honours is answered well within
#: this.
LATE_ANSWER_FACTOR = 4


class NodeRequests:
    """
    Requests to the other nodes and their answers (a mixin of
    L{txcomet._bus.redis.RedisBus}, whose connections and state it uses).
    """

    __slots__ = ()

    def _nodeChannelOf(self, nodeId: str) -> bytes:
        return ("%s:%d:n:%s" % (self.prefix, self.address.db, nodeId)).encode("ascii")

    def ask(self, kind: str, fields: dict, node: Optional[str] = None, late: Any = None) -> Deferred:
        """
        Publish a request to every node (or to C{node}) and gather the
        answers (for this bus's adapters: the session router): a
        L{Deferred} firing with C{(answers, complete)}, as soon
        as one answer says C{found}, or when every node that received the
        request has answered (C{complete}), or after L{requestTimeout}
        seconds (not complete).

        @param late: for a request to one C{node} whose answer must not go
            unheard: called with that answer if it comes after the
            timeout, or with C{{"found": False}} once it has not come for
            L{LATE_ANSWER_FACTOR} timeouts more.
        """
        if not (self.commands.ready and self.pubsub.ready):
            return fail(CometError("unavailable", "Redis cannot be reached, so other nodes cannot either."))
        self._requestCount += 1
        rid = "%s.%d" % (self.nodeId, self._requestCount)
        request = dict(fields, t=kind, rid=rid, node=self.nodeId)
        channel = self._noticeChannel if node is None else self._nodeChannelOf(node)
        done: Deferred = Deferred()
        d = self.commands.execute(b"PUBLISH", channel, encodeJSON(request))

        def published(receivers):
            expected = receivers - (1 if node is None else 0)  # this node hears its own broadcast
            if expected <= 0:
                done.callback(([], True))
                return
            timer = self.clock.callLater(self.requestTimeout, self._requestTimedOut, rid)
            self._requests[rid] = (done, [], expected, timer, late)

        def failed(failure):
            failure.trap(RedisUnavailable)
            # Not published, so no answer will come.
            done.errback(CometError("unavailable", "Redis was lost while asking the other nodes."))

        d.addCallbacks(published, failed)
        return done

    def _replyReceived(self, reply: dict) -> None:
        entry = self._requests.get(reply.get("rid"))
        if entry is None:
            self._lateAnswer(reply.get("rid"), reply)
            return
        done, answers, expected, timer, late = entry
        answers.append(reply)
        if reply.get("found") or len(answers) >= expected:
            del self._requests[reply["rid"]]
            if timer.active():
                timer.cancel()
            done.callback((answers, len(answers) >= expected))

    def _requestTimedOut(self, rid: str) -> None:
        entry = self._requests.pop(rid, None)
        if entry is not None:
            done, answers, expected, timer, late = entry
            if late is not None:
                giveUp = self.clock.callLater(
                    self.requestTimeout * LATE_ANSWER_FACTOR, self._lateAnswer, rid, {"found": False}
                )
                self._lateReplies[rid] = (late, giveUp)
            done.callback((answers, False))

    def _lateAnswer(self, rid: Any, reply: dict) -> None:
        """
        The answer to timed-out request C{rid}, or C{{"found": False}} when
        it is no longer listened for: give it to the request's C{late}.
        """
        waiting = self._lateReplies.pop(rid, None)
        if waiting is not None:
            late, timer = waiting
            if timer.active():
                timer.cancel()
            late(reply)

    def _requestReceived(self, kind: str, request: dict) -> None:
        answerer = self.answerers.get(kind)
        if request.get("node") == self.nodeId or answerer is None:
            return
        d = maybeDeferred(answerer, request)

        def reply(answer):
            answer.update(t="reply", rid=request.get("rid"), node=self.nodeId)
            return self.commands.execute(b"PUBLISH", self._nodeChannelOf(request["node"]), encodeJSON(answer))

        d.addCallback(reply)
        d.addErrback(lambda f: None if f.check(RedisUnavailable) else self.log.failure(
            "Answering a {kind} request failed", f, kind=kind))
