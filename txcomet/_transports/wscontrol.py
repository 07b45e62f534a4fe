# -*- test-case-name: tests.transports.test_websocket,tests.sessions.test_ratelimit -*-
"""
A WebSocket connection's control channel: L{WebSocketControl}, a part of
L{txcomet._transports.websocket.CometWebSocketProtocol}.

Text frames from the client are control operations (the JSON objects
C{POST <mount>/control} takes, with the session implied by the
connection), run by the hub's L{txcomet._sessions.control.ControlDispatcher};
the answers are C{reply} and C{error} messages on the same connection.
"""

from typing import Any, Dict

from twisted.logger import Logger
from twisted.python.failure import Failure

from txcomet._model.errors import CometError
from txcomet._model.event import encodeJSON
from txcomet._sessions.control import OPS
from txcomet._transports.http import asCometError, decodeJSON
from txcomet._transports.wscommon import CLOSE_CODES, ERROR_CODE_BASE, UNSUPPORTED_DATA

log = Logger()

#: Control messages refused as C{rate_limited} in a row after which the
#: connection is closed (code 4429).
RATE_LIMIT_STRIKES = 20


def _ref(message: object) -> Any:
    if isinstance(message, dict):
        ref = message.get("ref")
        if isinstance(ref, (str, int)) and not isinstance(ref, bool):
            return ref
    return None


class WebSocketControl:
    """
    The control operations a WebSocket client sends, and their answers.
    A mixin of L{txcomet._transports.websocket.CometWebSocketProtocol},
    whose state it shares.
    """

    __slots__ = ()

    def _context(self) -> dict:
        token, headers = self._auth or (None, {})
        return {"origin": self._origin, "token": token, "transport": "ws", "headers": headers}

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if self.state != self.STATE_OPEN:
            return
        if isBinary:
            self.sendCloseFrame(UNSUPPORTED_DATA, b"binary messages are not supported")
            return
        try:
            message = decodeJSON(payload)
        except CometError as error:
            self._sendError(error, None)
            return
        ref = _ref(message)
        op = message.get("op") if isinstance(message, dict) else None
        if op == "join":
            self._join(message, ref)
            return
        session = self.session
        if session is not None and isinstance(message, dict):
            given = message.get("session")
            if given is not None and given != session.id:
                self._sendError(
                    CometError(
                        "invalid_request",
                        "This connection belongs to one session, implied: leave 'session' out.",
                    ),
                    ref,
                )
                return
            message = dict(message, session=session.id)
        elif op in OPS and isinstance(message, dict) and "session" not in message:
            self._sendError(
                CometError(
                    "invalid_request",
                    'This connection has no session yet: send {"op": "join"} first, or connect'
                    " with ?session=ID or ?channel=NAME.",
                ),
                ref,
            )
            return
        self._dispatch(message, ref)

    def _dispatch(self, message: Any, ref: Any) -> None:
        # A close that the operation itself causes (leave) waits until its
        # reply is sent, so the client sees the reply, then the close.
        self._holdClose = True
        try:
            d = self.factory.dispatcher.dispatch(message, self._context())
        finally:
            self._holdClose = False
        d.addCallbacks(self._replied, self._refused, errbackArgs=(ref,))
        d.addErrback(lambda f: log.failure("Answering a WebSocket control message failed", f))
        held, self._heldClose = self._heldClose, None
        if held is not None:
            self._close(*held)

    def _join(self, message: dict, ref: Any) -> None:
        if self.session is not None or self._joining:
            self._sendError(
                CometError("invalid_request", "This connection has a session already; it carries one."),
                ref,
            )
            return
        self._joining = True
        d = self.factory.dispatcher.dispatch(message, self._context())

        def joined(reply: dict) -> None:
            self._joining = False
            session = self.factory.hub.sessions.get(reply["session"])
            if session is None:
                self._sendError(CometError("unknown_session"), ref)
                return
            if self.state != self.STATE_OPEN:
                session.close(None)
                return
            self._sendReply(reply)
            self._listen(session, None)

        def failed(failure: Failure) -> None:
            self._joining = False
            self._sendError(asCometError(failure, "a WebSocket join"), ref)

        d.addCallbacks(joined, failed)
        d.addErrback(lambda f: log.failure("Answering a WebSocket join failed", f))

    def _sendReply(self, reply: dict) -> None:
        answer: Dict[str, Any] = {"type": "reply"}
        answer.update(reply)
        self._sendText(encodeJSON(answer))

    def _errorMessage(self, error: CometError, ref: Any) -> Dict[str, Any]:
        answer: Dict[str, Any] = {"type": "error"}
        answer.update(error.asDict())
        if ref is not None:
            answer["ref"] = ref
        return answer

    def _sendError(self, error: CometError, ref: Any) -> None:
        self._sendText(encodeJSON(self._errorMessage(error, ref)))

    def _replied(self, reply: dict) -> None:
        self._strikes = 0
        self._sendReply(reply)

    def _refused(self, failure: Failure, ref: Any) -> None:
        error = asCometError(failure, "a WebSocket control message")
        if error.code == "rate_limited":
            # A client that goes on past the limit is cut off (4429).
            self._strikes += 1
            if self._strikes > RATE_LIMIT_STRIKES:
                self._fail(error)
                return
        self._sendError(error, ref)

    def _fail(self, error: CometError) -> None:
        """
        End the connection for C{error}: the error message, then a close
        with code C{4000 + status}.
        """
        if self.state != self.STATE_OPEN:
            return
        self._flushAll()
        self._sendNow(encodeJSON(self._errorMessage(error, None)))
        self.sendClose(CLOSE_CODES.get(error.code, ERROR_CODE_BASE + error.status), error.code)
