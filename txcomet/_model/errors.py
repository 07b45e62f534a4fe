# -*- test-case-name: tests.test_layers,tests.model.test_json_surrogates,tests.server.test_revocation,tests.auth.test_tokens -*-
"""
The errors txcomet answers with, each a stable code and an HTTP status.

The codes are part of the protocol (C{docs/protocol.md}); clients switch on
them, so they never change meaning.
"""

from typing import Any, Dict, Optional

#: code -> (HTTP status, default message)
ERRORS: Dict[str, tuple] = {
    "malformed_json": (400, "The body is not valid JSON."),
    "invalid_request": (400, "The request is missing a field or has one of the wrong type."),
    "unknown_op": (400, "The op is not one of join, subscribe, unsubscribe, publish, presence, leave, refresh."),
    "invalid_channel": (400, "The channel name is not valid."),
    "invalid_callback": (400, "The callback name is not valid."),
    "invalid_position": (400, "The position is not a valid event id."),
    "too_many_subscriptions": (400, "The session holds as many subscriptions as it may."),
    "unauthorized": (401, "This endpoint needs the API key (X-API-Key or Authorization: Bearer); see docs/operations.md."),
    "unknown_method": (400, "The method is not one of the server API's; see docs/operations.md."),
    "invalid_token": (401, "The token is not valid: bad signature, claims, audience, issuer or format."),
    "token_expired": (401, "The token has expired; fetch a new one and join again (or refresh)."),
    "unknown_session": (404, "The session does not exist or has expired."),
    "not_found": (404, "There is nothing at this address."),
    "forbidden": (403, "Not allowed."),
    "session_closed": (410, "The server closed the session; the reason says why."),
    "method_not_allowed": (405, "This method is not allowed here."),
    "too_large": (413, "The body or message is larger than allowed."),
    "too_many_connections": (429, "Too many connections from this address at once."),
    "rate_limited": (429, "Too many control requests; slow down."),
    "unsupported_encoding": (415, "The body is not UTF-8."),
    "unavailable": (503, "The bus, a key set or an authorization backend is not available right now."),
    "internal_error": (500, "Something went wrong on the server; it has been logged."),
}


class CometError(Exception):
    """
    An error with a protocol code, an HTTP status and a message for people.

    @ivar code: the stable code, a key of L{ERRORS}.
    @ivar status: the HTTP status that goes with it.
    @ivar message: a sentence for the developer reading the response.
    """

    def __init__(
        self,
        code: str,
        message: Optional[str] = None,
        status: Optional[int] = None,
        details: Optional[Dict[str, Any]] = None,
    ):
        defaultStatus, defaultMessage = ERRORS[code]
        self.code = code
        self.status = status if status is not None else defaultStatus
        self.message = message if message is not None else defaultMessage
        #: more fields for the body (C{session_closed}: C{reason}, C{reconnect})
        self.details = details or {}
        super().__init__(code, self.message)

    def asDict(self) -> dict:
        """
        The error as the JSON body every transport answers with.
        """
        body = {"error": self.code, "message": self.message, "status": self.status}
        if self.details:
            body.update(self.details)
        return body


def sessionClosed(reason: Optional[str], reconnect: bool) -> CometError:
    """
    The C{session_closed} (410) error for a session the server closed with
    C{reason}, saying whether the client should join again.
    """
    return CometError(
        "session_closed",
        "The server closed the session: %s." % (reason,),
        details={"reason": reason, "reconnect": reconnect},
    )
