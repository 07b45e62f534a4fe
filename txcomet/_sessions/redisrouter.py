# -*- test-case-name: tests.system.test_redisroute,tests.sessions.test_sessionrouter -*-
"""
Sessions across Redis nodes: L{RedisSessionRouter}, the L{ISessionRouter}
of a L{txcomet._bus.redis.RedisBus} (registered as its adapter, so the hub
finds it with C{ISessionRouter(bus, None)}).

A request naming a session another node holds is run there
(L{RedisSessionRouter.forwardControl}), or the session moves here
(L{RedisSessionRouter.claimSession}): the holder exports its state and
keeps queueing, this node subscribes to the session's channels, then takes
what arrived meanwhile, and the holder lets go.  Both steps travel on the
holder's pub/sub connection behind the events, so nothing published in
between is lost.  The requests go through the bus's C{ask} (one PUBLISH
to every node, or to one); what is done with a session at either end is
L{txcomet._sessions.handover}'s.
"""

from typing import Any, List, Set

from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.python.components import registerAdapter
from zope.interface import implementer

from txcomet._bus.redis import RedisBus
from txcomet._model.channels import isPattern
from txcomet._model.errors import CometError
from txcomet._sessions.handover import Handover, adopt
from txcomet._model.event import Event
from txcomet.interfaces import ISessionRouter, ISubscriber


@implementer(ISubscriber)
class _Holder:
    """
    Holds the events of a session's channels while the session moves to
    this node.
    """

    def __init__(self) -> None:
        self.events: List[Event] = []

    def deliver(self, event: Event) -> None:
        self.events.append(event)



@implementer(ISessionRouter)
class RedisSessionRouter:
    """
    Moves sessions between the nodes of one Redis bus, and runs control
    requests where their session is.
    """

    def __init__(self, bus: RedisBus) -> None:
        self.bus = bus
        self._hub: Any = None
        self._dispatcher: Any = None
        self._handover: Any = None
        # Sessions whose holder may have let them go to this node after it
        # stopped waiting for the take: the answer is on its way, and until
        # it comes the session is on no node's books.
        self._moving: Set[str] = set()
        bus.answerers.update(claim=self._answerClaim, take=self._answerTake, control=self._answerControl)
        bus.whenStopping.append(self._stop)

    def _stop(self) -> None:
        if self._handover is not None:
            self._handover.stop()

    def bindHub(self, hub: Any) -> None:
        self._hub = hub
        # A claimed session waits this long for the claiming node's take.
        self._handover = Handover(hub, self.bus.clock, self.bus.requestTimeout * 2)
        # forwarded control requests run as the hub runs its own
        self._dispatcher = hub.dispatcher

    def sessionClosed(self, session: Any) -> None:
        if self._handover is not None:
            self._handover.closed(session)

    @inlineCallbacks
    def claimSession(self, sessionId: str):
        """
        Move session C{sessionId} here.  Every node is asked (one PUBLISH
        to all); the one holding it hands over its state and keeps queueing
        for it; this node subscribes to the session's channels, then asks
        for what arrived meanwhile, and the other node lets go.  Both steps
        travel on the holder's pub/sub connection behind the events, so
        nothing published in between is lost.
        """
        if sessionId in self._moving:
            raise CometError("unavailable", "The session is moving between nodes; try again.")
        answers, complete = yield self.bus.ask("claim", {"session": sessionId})
        found = [a for a in answers if a.get("found")]
        if not found:
            if any(a.get("busy") for a in answers):
                raise CometError("unavailable", "The session is moving between nodes; try again.")
            if not complete:
                raise CometError("unavailable", "Not every node answered; the session may be on one of them.")
            return None
        state, owner = found[0]["state"], found[0]["node"]
        holder = _Holder()
        patterns = state["subscriptions"]
        waitingLate = False
        try:
            for pattern in patterns:
                yield self.bus.subscribe(pattern, holder)

            def lateTake(reply: dict) -> None:
                # The holder let go after this node stopped waiting: the
                # session exists nowhere else now, so carry on with it here.
                try:
                    if reply.get("found"):
                        self._adopt(sessionId, state, reply["tail"], holder, owner)
                finally:
                    self._moving.discard(sessionId)
                    self.bus.unsubscribeAll(holder)

            answers, complete = yield self.bus.ask("take", {"session": sessionId}, node=owner, late=lateTake)
            taken = [a for a in answers if a.get("found")]
            if not taken:
                if not complete:
                    # The take may still reach the holder, behind whatever
                    # its pub/sub connection is working through; keep the
                    # holder so that a late answer loses nothing.
                    waitingLate = True
                    self._moving.add(sessionId)
                    raise CometError("unavailable", "The node holding the session is slow to let it go; try again.")
                raise CometError("unavailable", "The node holding the session did not let it go; try again.")
            session = self._adopt(sessionId, state, taken[0]["tail"], holder, owner)
        finally:
            if not waitingLate:
                self.bus.unsubscribeAll(holder)
        return session

    def _adopt(self, sessionId: str, state: dict, tail: List[str], holder: _Holder, owner: str) -> Any:
        """
        Carry on here with the session node C{owner} let go: its exported
        C{state}, the C{tail} queued there after the export, and what
        C{holder} caught here since subscribing.
        """
        if sessionId in self._hub.sessions:
            return self._hub.sessions[sessionId]
        patterns = state["subscriptions"]
        session = adopt(self._hub, dict(state, events=state["events"] + tail), holder.events)
        for pattern in patterns:
            self.bus.subscribe(pattern, session)
        if state["presence"]:
            info = session.memberInfo()
            for pattern in patterns:
                if not isPattern(pattern):
                    self.bus.presence.keepMember(pattern, session.clientId, info)
        self.bus.log.info("Session of client {client} moved here from node {node}", client=state["client"], node=owner)
        return session

    def forwardControl(self, sessionId: str, message: dict, context: dict) -> Deferred:
        d = self.bus.ask("control", {"session": sessionId, "message": message, "context": context})

        def answered(result):
            answers, complete = result
            for answer in answers:
                if answer.get("found"):
                    if "error" in answer:
                        error = answer["error"]
                        raise CometError(error["error"], error["message"], error["status"])
                    return answer["answer"]
            if not complete:
                raise CometError("unavailable", "Not every node answered; the session may be on one of them.")
            raise CometError("unknown_session")

        return d.addCallback(answered)

    def _answerClaim(self, request: dict) -> dict:
        if request.get("session") in self._moving:
            # let go to this node, which has not had the answer yet
            return {"found": False, "busy": True}
        return self._handover.claim(request.get("session"))

    def _answerTake(self, request: dict) -> dict:
        return self._handover.take(request.get("session"), leaving=self._forgetPresence)

    def _forgetPresence(self, session: Any) -> None:
        # The claiming node keeps the member alive from now on.
        if session.presence:
            for pattern in session.subscriptions:
                if not isPattern(pattern):
                    self.bus.presence.forgetMember(pattern, session.clientId)

    def _answerControl(self, request: dict) -> Deferred:
        sessionId = request.get("session")
        if not isinstance(sessionId, str) or sessionId not in self._hub.sessions:
            return succeed({"found": False})
        context = request.get("context") if isinstance(request.get("context"), dict) else {}
        d = self._dispatcher.dispatch(request.get("message"), context)

        def ok(answer):
            return {"found": True, "answer": answer}

        def failed(failure):
            if failure.check(CometError):
                return {"found": True, "error": failure.value.asDict()}
            self.bus.log.failure("A forwarded control operation failed", failure)
            return {"found": True, "error": CometError("internal_error").asDict()}

        return d.addCallbacks(ok, failed)


def routerOf(bus: RedisBus) -> RedisSessionRouter:
    """
    The one L{RedisSessionRouter} of C{bus} (made on first use, kept as
    its C{router}).
    """
    if bus.router is None:
        bus.router = RedisSessionRouter(bus)
    return bus.router


registerAdapter(routerOf, RedisBus, ISessionRouter)
