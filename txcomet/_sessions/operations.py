# -*- test-case-name: tests.sessions.test_session,tests.sessions.test_subscribeposition -*-
"""
What a session does when its client asks: subscribe (with a position to
replay from, presence and the authorizer's say), unsubscribe and publish.
L{SessionOperations} is a part of L{txcomet._sessions.session.Session}:
the same object, whose state it shares; the control dispatcher, the
WebSocket control channel, Bayeux and the server API all call these.
"""

from typing import Any, Dict, Optional

from twisted.internet.defer import inlineCallbacks, maybeDeferred

from txcomet._model.channels import isPattern, isReserved, validateChannel, validatePattern
from txcomet._model.errors import CometError
from txcomet._model.event import parsePosition
from txcomet._model.stats import RESUMES, countRefusals, forbidden
from txcomet._sessions.states import CLOSED, OLDEST


class SessionOperations:
    """
    The control operations of one session (a mixin of
    L{txcomet._sessions.session.Session}).
    """

    __slots__ = ()

    @inlineCallbacks
    def subscribe(self, pattern: str, since: Optional[str] = None, token: Optional[str] = None):
        """
        Subscribe to C{pattern}.  With C{since} (an event id, or L{OLDEST})
        on a plain channel, first queue the channel's retained events after
        that position, and say in the answer whether that was all of them.
        With C{token}, a channel token grants the subscription (see
        L{ITokenAuthorizer.authorizeChannelToken}).

        @return: a L{Deferred} firing with the acknowledgement dict:
            C{channel}, C{position} and, with C{since}, C{recovered}.
        """
        self.checkOpen()
        validatePattern(pattern)
        hub = self.hub
        admitted = False
        if isReserved(pattern):
            # Only the admin page's channel, with its ticket as the token.
            if not hub.admitReserved(pattern, token):
                raise CometError("forbidden", "Channels under ~txcomet/ are the server's own.")
            admitted = True
        if since is not None:
            if isPattern(pattern):
                raise CometError(
                    "invalid_request", "since resumes a channel, not a wildcard pattern."
                )
            if since != OLDEST:
                parsePosition(since)
        new = pattern not in self.subscriptions
        if new and len(self.subscriptions) >= hub.config.maxSubscriptions:
            raise CometError("too_many_subscriptions")
        if not admitted:
            yield hub.authorizeSubscribe(self, pattern, since, token)
        self.checkOpen()
        ack: Dict[str, Any] = {"channel": pattern}
        start = None
        if since is None and new and not isPattern(pattern):
            # Where the subscription starts, read before subscribing, and
            # caught up from history: on a networked bus events can arrive
            # between the subscription taking effect and a position read
            # after it, and a client resuming from that later position
            # would miss them if it lost them in flight.
            start = yield hub.bus.position()
            self.checkOpen()
            since = start
        if since is None:
            self.subscriptions[pattern] = None
            if new:
                yield hub.bus.subscribe(pattern, self)
            ack["position"] = yield hub.bus.position()
        else:
            if self._resuming is None:
                self._resuming = {}
            self._resuming[pattern] = []
            self._dropSink()
            try:
                self.subscriptions[pattern] = None
                if new:
                    yield hub.bus.subscribe(pattern, self)
                history = yield hub.bus.history(pattern, None if since == OLDEST else since)
            finally:
                held = self._resuming.pop(pattern, [])
                if not self._resuming:
                    self._resuming = None
                    self._updateSink()
            self.checkOpen()
            have = {e.id for e in self._buffer}
            replay = [e for e in history.events if e.id not in have]
            have.update(e.id for e in replay)
            replay.extend(e for e in held if e.id not in have)
            if replay:
                self._enqueueMany(replay)
            if start is None:
                ack["position"] = history.position
                ack["recovered"] = history.covered
                RESUMES.labels("true" if history.covered else "false").inc()
            else:
                ack["position"] = start
        if new and self.presence and not isPattern(pattern) and self.state != CLOSED:
            added = yield hub.bus.addMember(pattern, self.clientId, self.memberInfo())
            if added and hub.notices(pattern):
                yield hub.bus.publish(pattern, self.member(), kind="join", store=False)
        return ack

    def memberInfo(self) -> dict:
        """
        What presence keeps of this session (L{member} less the client id).
        """
        info = self.member()
        del info["client"]
        return info

    @inlineCallbacks
    def unsubscribe(self, pattern: str):
        """
        Drop the subscription to C{pattern}; announce the leave on its
        channel if this session was present there.
        """
        self.checkOpen()
        validatePattern(pattern)
        if pattern not in self.subscriptions:
            return {"channel": pattern, "subscribed": False}
        del self.subscriptions[pattern]
        yield self.hub.bus.unsubscribe(pattern, self)
        if self.presence and not isPattern(pattern):
            yield self.hub._announceLeave(self, pattern)
        return {"channel": pattern, "subscribed": True}

    @inlineCallbacks
    def publish(self, channel: str, data: Any):
        """
        Publish C{data} on C{channel} as this session.
        """
        self.checkOpen()
        validateChannel(channel)
        if isReserved(channel):
            raise CometError("forbidden", "Channels under ~txcomet/ are the server's own.")
        hub = self.hub
        if not hub.config.clientPublish:
            raise CometError("forbidden", "Clients may not publish on this server.")
        dataJSON = hub.checkSize(data)
        allowed = yield countRefusals(maybeDeferred(hub.authorizer.authorizePublish, self, channel))
        if not allowed:
            raise forbidden("Publishing on %r is not allowed." % (channel,))
        self.checkOpen()
        event = yield hub.publishEncoded(channel, data, dataJSON)
        return {"channel": channel, "id": event.id}
