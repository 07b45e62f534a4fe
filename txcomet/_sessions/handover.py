# -*- test-case-name: tests.sessions.test_handover,tests.sessions.test_sessionrouter,tests.system.test_redisroute -*-
"""
Moving a session between nodes: the session layer's half of it, whatever
carries the requests (over Redis, L{txcomet._sessions.redisrouter}).

The node that holds a session answers a I{claim} by exporting the session
(L{exportState}) and holding it (L{hold}: its data channel ends, events go
on queueing), then a I{take} by handing over what queued since
(L{eventsSince}) and letting go (L{release}); L{Handover} keeps the claims
answered until their take comes, and carries on with a session whose take
never does.  The claiming node carries on with it (L{adopt}).

These functions read and write a L{Session}'s queue directly: beside the
session itself, they are the only code that does, so that a router never
reaches into one.
"""

from itertools import islice
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from twisted.internet.defer import maybeDeferred
from twisted.logger import Logger

from txcomet._model.event import Event
from txcomet._sessions.session import Session
from txcomet._sessions.states import CLOSED, JOINED

_log = Logger()


def exportState(session: Session) -> dict:
    """
    What another node needs to carry on with C{session}: who it is, its
    subscriptions, and its buffer (events as their JSON envelopes, with
    how many of them were already sent).  Events that arrive later are
    read with L{eventsSince}.
    """
    session._settle()
    return {
        "id": session.id,
        "client": session.clientId,
        "user": session.user,
        "info": session.info,
        "presence": session.presence,
        "grant": session.grant.export() if session.grant is not None else None,
        "subscriptions": list(session.subscriptions),
        "events": [e.json.decode("utf-8") for e in session._buffer],
        "sent": session._sent - session._base,
        "end": session._base + len(session._buffer),
    }


def eventsSince(session: Session, end: int) -> List[str]:
    """
    The JSON envelopes of the events C{session} queued after absolute
    index C{end} (an L{exportState}'s C{"end"}).
    """
    session._settle()
    start = max(0, end - session._base)
    return [e.json.decode("utf-8") for e in islice(session._buffer, start, None)]


def hold(session: Session) -> None:
    """
    Another node is taking C{session} over: end its data channel
    (C{replaced}: the client's new one is on the other node) and stop its
    expiry timer; events go on queueing until L{release}.
    """
    session._settle()
    session.checkOpen()
    session._cancelExpiry()
    session._endChannel()
    session.state = JOINED


def resume(session: Session) -> None:
    """
    The node that claimed C{session} never took it: carry on here, as
    with a session whose data channel has gone (it expires unless one
    comes).
    """
    if session.state != CLOSED and session.dataChannel is None:
        session._detached()


def release(hub: Any, session: Session) -> None:
    """
    Forget C{session} without closing it for its client: another node
    carries on with it.  No leave is announced and its presence stays.
    """
    if session.state == CLOSED:
        return
    session._cancelExpiry()
    if session.grant is not None:
        session.grant.release()
    session._dropSink()
    session._endChannel()
    session.state = CLOSED
    session.closeReason = "moved"
    session._buffer.clear()
    hub.sessions.pop(session.id, None)
    session.subscriptions.clear()
    maybeDeferred(hub.bus.unsubscribeAll, session).addErrback(
        lambda f: hub.log.failure("Unsubscribing {session!r} failed", f, session=session)
    )


def adopt(hub: Any, state: dict, caught: Iterable[Event] = ()) -> Session:
    """
    Carry on in C{hub} with a session another node held: its exported
    C{state} (with what queued there until it let go), then the events
    this node C{caught} for it meanwhile that the state does not have.
    Same id, client id, subscriptions and buffer; its presence stays as it
    is.  The caller subscribes it on the bus.
    """
    session = Session(hub, user=state["user"], info=state["info"], presence=state["presence"])
    session.id = state["id"]
    session.clientId = state["client"]
    for pattern in state["subscriptions"]:
        session.subscriptions[pattern] = None
    events = [Event.fromEnvelope(text.encode("utf-8")) for text in state["events"]]
    session._buffer.extend(events)
    session._sent = min(state["sent"], len(events))
    session._pendingBytes = sum(len(e.json) for e in events[session._sent :])
    hub.sessions[session.id] = session
    session._expiry = hub.clock.callLater(hub.config.sessionTimeout, session._expire)
    exported = state.get("grant")
    if exported is not None and hub.policy is not None:
        # Its token's expiry and what the hooks need go with it.
        session.grant = hub.policy.restoreGrant(exported)
        session.grant.bind(session)
    have = {e.id for e in events}
    missed = [e for e in caught if e.id not in have]
    if missed:
        session._enqueueMany(missed)
    return session


class Handover:
    """
    The holding node's side: the sessions it has handed over on a claim
    and holds until the claiming node takes them.

    @ivar clock: times out a claim whose take never comes.
    @ivar timeout: how long a claimed session waits for its take.
    """

    def __init__(self, hub: Any, clock: Any, timeout: float) -> None:
        self.hub = hub
        self.clock = clock
        self.timeout = timeout
        # session id -> (session, end of its exported buffer, abort timer)
        self._claimed: Dict[str, Tuple[Session, int, Any]] = {}

    def claim(self, sessionId: Any) -> dict:
        """
        Answer a claim for C{sessionId}: C{{"found": True, "state": ...}}
        when this node holds it (now held for the take), C{{"found":
        False, "busy": True}} while it is already being handed over,
        C{{"found": False}} otherwise.
        """
        session = self.hub.sessions.get(sessionId) if isinstance(sessionId, str) else None
        if session is None or session.ephemeral:
            return {"found": False}
        if sessionId in self._claimed:
            return {"found": False, "busy": True}
        state = exportState(session)
        hold(session)
        # Should the other node never take it, carry on here.
        timer = self.clock.callLater(self.timeout, self._abandoned, sessionId)
        self._claimed[sessionId] = (session, state["end"], timer)
        return {"found": True, "state": state}

    def take(self, sessionId: Any, leaving: Optional[Callable[[Session], None]] = None) -> dict:
        """
        Answer the take of a claimed session: let it go, with the events
        that queued since the claim: C{{"found": True, "tail": [...]}}, or
        C{{"found": False}}.

        @param leaving: called with the session just before it is let go
            (its subscriptions still in place).
        """
        entry = self._claimed.pop(sessionId, None) if isinstance(sessionId, str) else None
        if entry is None:
            return {"found": False}
        session, end, timer = entry
        if timer.active():
            timer.cancel()
        if session.state == CLOSED:
            return {"found": False}
        tail = eventsSince(session, end)
        if leaving is not None:
            leaving(session)
        release(self.hub, session)
        return {"found": True, "tail": tail}

    def _abandoned(self, sessionId: str) -> None:
        entry = self._claimed.pop(sessionId, None)
        if entry is not None:
            resume(entry[0])

    def closed(self, session: Session) -> None:
        """
        C{session} closed here: no take will find it.
        """
        entry = self._claimed.pop(session.id, None)
        if entry is not None and entry[2].active():
            entry[2].cancel()

    def stop(self) -> None:
        """
        Forget every claim and its timer (the bus is stopping).
        """
        for _, _, timer in self._claimed.values():
            if timer.active():
                timer.cancel()
        self._claimed.clear()
