# -*- test-case-name: tests.transports.test_http,tests.sessions.test_ratelimit,tests.auth.test_authorizer -*-
"""
The control operations, independent of the transport that carries them.

C{POST /comet/control}, its GET/script-tag form and WebSocket text frames
all hand a decoded JSON object to L{ControlDispatcher.dispatch} and send
back what it answers.  The operations and their fields are specified in
C{docs/protocol.md}.
"""

from time import perf_counter
from typing import Any, Callable, Dict, Optional

from twisted.internet.defer import Deferred, inlineCallbacks, maybeDeferred

from txcomet._model.channels import validateChannel
from txcomet._model.errors import CometError
from txcomet._model.stats import CONTROL_REQUESTS, CONTROL_SECONDS

OPS = ("join", "subscribe", "unsubscribe", "publish", "presence", "leave", "refresh")

_MISSING = object()


def _field(message: dict, name: str, kind: Any, required: bool = False) -> Any:
    value = message.get(name, _MISSING)
    if value is _MISSING or value is None:
        if required:
            raise CometError("invalid_request", "The %r field is required." % (name,))
        return None
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise CometError(
            "invalid_request",
            "The %r field must be %s." % (name, _KIND_NAMES.get(kind, "of another type")),
        )
    return value


_KIND_NAMES = {str: "a string", dict: "an object", list: "an array", bool: "true or false"}


class ControlDispatcher:
    """
    Runs control operations against a L{Hub}, which owns the one
    dispatcher (L{Hub.dispatcher}).  The hub's module imports this one, so
    the hub and its sessions are typed C{Any} here rather than imported.
    """

    def __init__(self, hub: Any) -> None:
        self.hub = hub
        self._ops: Dict[str, Callable[[dict, dict], Deferred]] = {
            "join": self._join,
            "subscribe": self._subscribe,
            "unsubscribe": self._unsubscribe,
            "publish": self._publish,
            "presence": self._presence,
            "leave": self._leave,
            "refresh": self._refresh,
        }

    def dispatch(self, message: object, context: Optional[dict] = None) -> Deferred:
        """
        Run one operation.

        @param message: the decoded JSON request, which must be an object
            with an C{op} field.
        @param context: what the transport knows of the client: C{origin},
            and where known C{token} (from C{Authorization: Bearer} or
            C{token=}: a join without C{auth} uses it), C{transport} and
            C{headers}.
        @return: a L{Deferred} firing with the answer (a dict with
            C{"ok": True}, C{op} and, if the request had one, its C{ref}),
            or failing with L{CometError}.
        """
        started = perf_counter()
        d = maybeDeferred(self._dispatch, message, context or {})
        op = message.get("op") if isinstance(message, dict) else None
        if not isinstance(op, str) or op not in self._ops:
            op = "unknown"

        def ok(reply: Any) -> Any:
            CONTROL_REQUESTS.labels(op, "ok").inc()
            CONTROL_SECONDS.labels(op).observe(perf_counter() - started)
            return reply

        def failed(failure: Any) -> Any:
            CONTROL_REQUESTS.labels(op, getattr(failure.value, "code", "internal_error")).inc()
            CONTROL_SECONDS.labels(op).observe(perf_counter() - started)
            return failure

        return d.addCallbacks(ok, failed)

    def _dispatch(self, message: object, context: dict) -> Deferred:
        if not isinstance(message, dict):
            raise CometError("invalid_request", "A control message is a JSON object.")
        op = message.get("op")
        if not isinstance(op, str):
            raise CometError("invalid_request", "The 'op' field is required and is a string.")
        handler = self._ops.get(op)
        if handler is None:
            raise CometError(
                "unknown_op", "Unknown op %r; the ops are %s." % (op[:40], ", ".join(OPS))
            )
        ref = message.get("ref")
        if ref is not None and not isinstance(ref, (str, int)) or isinstance(ref, bool):
            raise CometError("invalid_request", "The 'ref' field is a string or an integer.")

        sessionId = message.get("session")
        router = self.hub.router
        if (
            op != "join"
            and router is not None
            and isinstance(sessionId, str)
            and sessionId not in self.hub.sessions
            and not self.hub.closedHere(sessionId)
        ):
            # Another node may hold the session: run the operation there.
            # (Not one this node closed lately: that is answered here,
            # 410 session_closed with the reason, which no other node knows.)
            return router.forwardControl(sessionId, message, context)

        if op != "join" and isinstance(sessionId, str):
            session = self.hub.sessions.get(sessionId)
            if session is not None:
                session.chargeControl()

        def answer(result: dict) -> dict:
            reply: Dict[str, Any] = {"ok": True, "op": op}
            if ref is not None:
                reply["ref"] = ref
            reply.update(result)
            return reply

        return handler(message, context).addCallback(answer)

    def _session(self, message: dict) -> Any:
        sessionId = _field(message, "session", str, required=True)
        return self.hub.getSession(sessionId)

    @inlineCallbacks
    def _join(self, message: dict, context: dict):
        user = _field(message, "user", str)
        if user is not None and not 0 < len(user) <= 128:
            raise CometError("invalid_request", "The 'user' field has 1 to 128 characters.")
        info = _field(message, "info", dict)
        if info is not None:
            self.hub.checkSize(info)
        auth = _field(message, "auth", str) or context.get("token")
        presence = _field(message, "presence", bool)
        channels = _field(message, "channels", list) or []
        for channel in channels:
            if not isinstance(channel, str):
                raise CometError("invalid_request", "The 'channels' field is an array of strings.")
        credentials = {
            "auth": auth,
            "origin": context.get("origin"),
            "transport": context.get("transport"),
            "headers": context.get("headers") or {},
        }
        session = yield self.hub.join(user=user, info=info, credentials=credentials, presence=presence)
        subscriptions = []
        try:
            for channel in channels:
                ack = yield session.subscribe(channel)
                subscriptions.append(ack)
        except BaseException:
            session.close(None)
            raise
        config = self.hub.config
        position = yield self.hub.bus.position()
        result = {
            "session": session.id,
            "client": session.clientId,
            "heartbeat": config.heartbeat,
            "timeout": config.sessionTimeout,
            "position": position,
            "last": session.resumePoint,
        }
        if channels:
            result["subscriptions"] = subscriptions
        expires = getattr(session.grant, "expires", None)
        if expires is not None:
            result["expires"] = expires
        return result

    def _subscribe(self, message: dict, context: dict) -> Deferred:
        session = self._session(message)
        channel = _field(message, "channel", str, required=True)
        since = _field(message, "since", str)
        token = _field(message, "token", str)
        return session.subscribe(channel, since, token)

    def _unsubscribe(self, message: dict, context: dict) -> Deferred:
        session = self._session(message)
        channel = _field(message, "channel", str, required=True)
        return session.unsubscribe(channel)

    def _publish(self, message: dict, context: dict) -> Deferred:
        session = self._session(message)
        channel = _field(message, "channel", str, required=True)
        if "data" not in message:
            raise CometError("invalid_request", "The 'data' field is required.")
        return session.publish(channel, message["data"])

    @inlineCallbacks
    def _presence(self, message: dict, context: dict):
        session = self._session(message)
        channel = validateChannel(_field(message, "channel", str, required=True))
        yield self.hub.authorizePresence(session, channel)
        members = yield self.hub.bus.members(channel)
        return {"channel": channel, "members": list(members)}

    def _refresh(self, message: dict, context: dict) -> Deferred:
        session = self._session(message)
        token = _field(message, "token", str, required=True)
        return self.hub.refresh(session, token)

    def _leave(self, message: dict, context: dict) -> Deferred:
        session = self._session(message)
        session.close("left")
        return maybeDeferred(lambda: {})
