# -*- test-case-name: tests.server.test_revocation -*-
"""
Cutting a user off on every node: L{Revocations} carries C{disconnect} and
C{unsubscribe} orders over the bus itself, so they reach every node that
shares it (a Redis bus, C{--workers}) as well as this one, by the path
events take.

The orders travel on a reserved channel (L{REVOCATION_CHANNEL}, see
L{txcomet._model.channels.isReserved}) that clients can neither subscribe
to nor publish on, and that no wildcard subscription receives; orders are
not kept in history.
"""

from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger
from zope.interface import implementer

from txcomet._model.channels import REVOCATION_CHANNEL, Pattern, isPattern, validatePattern
from txcomet.interfaces import IEvent, ISubscriber


@implementer(ISubscriber)
class Revocations:
    """
    Sends revocation orders on the bus and carries out those that arrive
    on this node's sessions.
    """

    log = Logger()

    def __init__(self, hub: Any) -> None:
        self.hub = hub

    def start(self) -> Deferred:
        """
        Listen for orders (once the bus has started).
        """
        return maybeDeferred(self.hub.bus.subscribe, REVOCATION_CHANNEL, self)

    def stop(self) -> Deferred:
        return maybeDeferred(self.hub.bus.unsubscribe, REVOCATION_CHANNEL, self)

    def disconnect(self, user: str, reason: str = "kicked") -> Deferred:
        """
        Close every session of C{user} on every node with C{reason}; the
        client is told not to reconnect.
        """
        if not isinstance(user, str) or not user:
            raise ValueError("disconnect needs a user")
        return self._order({"op": "disconnect", "user": user, "reason": reason})

    def disconnectSession(self, sessionId: str, reason: str = "kicked") -> Deferred:
        """
        Close the session C{sessionId}, on whichever node holds it, with
        C{reason}; the client is told not to reconnect.
        """
        if not isinstance(sessionId, str) or not sessionId:
            raise ValueError("disconnectSession needs a session id")
        return self._order({"op": "disconnect", "session": sessionId, "reason": reason})

    def unsubscribe(self, user: str, channel: str) -> Deferred:
        """
        End C{user}'s subscriptions to C{channel} on every node: the
        subscription of that name, and any wildcard one matching it (a
        pattern cannot leave one channel out).
        """
        if not isinstance(user, str) or not user:
            raise ValueError("unsubscribe needs a user")
        validatePattern(channel)
        return self._order({"op": "unsubscribe", "user": user, "channel": channel})

    def _order(self, order: dict) -> Deferred:
        return self.hub.bus.publish(REVOCATION_CHANNEL, order, store=False)

    # ISubscriber

    def deliver(self, event: IEvent) -> None:
        order = event.data
        if not isinstance(order, dict):
            return
        user = order.get("user")
        if "session" in order:
            one = self.hub.sessions.get(order["session"]) if isinstance(order["session"], str) else None
            sessions = [one] if one is not None else []
        else:
            sessions = [s for s in list(self.hub.sessions.values()) if s.user == user]
        if order.get("op") == "disconnect":
            for session in sessions:
                session.close(order.get("reason") or "kicked", reconnect=False)
        elif order.get("op") == "unsubscribe":
            channel = order.get("channel")
            for session in sessions:
                for pattern in list(session.subscriptions):
                    if pattern == channel or isPattern(pattern) and not isPattern(channel) and Pattern(pattern).matches(channel):
                        session.unsubscribe(pattern).addErrback(
                            lambda f: self.log.failure("Revoking a subscription failed", f)
                        )
