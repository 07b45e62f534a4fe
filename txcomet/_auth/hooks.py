# -*- test-case-name: tests.auth.test_hooks -*-
"""
Backend hooks: ask the application's own HTTP backend whether a client
may connect, subscribe or publish (for apps whose users have cookie
sessions rather than tokens).

txcomet POSTs a JSON object to the hook's URL:

    {"hook": "subscribe", "transport": "sse", "channel": "chat/room",
     "headers": {"cookie": "..."}, "claims": {...} or null, "user": "alice"}

and the backend answers C{200} with C{{"allow": true}} (a connect hook
may add C{"user"}, C{"info"} and C{"channels"}) or C{{"allow": false,
"reason": "..."}}, which is answered C{403 forbidden} with the reason.
Anything else (another status, a body that is not such an object, no
answer within C{timeout} seconds, a backend that cannot be reached) is
C{503 unavailable}: the hook fails closed, never open.

Identical questions asked while one is in flight share its request, so a
thousand clients reconnecting at once with the same cookie cost the
backend one request.
"""

import json
from typing import Any, Dict, List, Optional, Sequence, Tuple

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from txcomet._model.errors import CometError

log = Logger()

#: The request headers forwarded to hooks unless configured otherwise.
DEFAULT_FORWARDED = ("cookie", "authorization")

#: The largest hook answer read, in bytes.
MAX_ANSWER = 64 * 1024


class BackendHooks:
    """
    The connect, subscribe and publish hooks of one server.

    @ivar connect: the connect hook's URL, or C{None}.
    @ivar subscribe: the subscribe hook's URL, or C{None}.
    @ivar publish: the publish hook's URL, or C{None}.
    @ivar forwardHeaders: the request headers (lower-case names) passed on.
    """

    def __init__(
        self,
        clock: Any,
        http: Any = None,
        connect: Optional[str] = None,
        subscribe: Optional[str] = None,
        publish: Optional[str] = None,
        timeout: float = 1.0,
        forwardHeaders: Sequence[str] = DEFAULT_FORWARDED,
    ) -> None:
        if http is None:
            import treq as http
        self.clock = clock
        self.http = http
        self.connect = connect
        self.subscribe = subscribe
        self.publish = publish
        self.timeout = timeout
        self.forwardHeaders = tuple(h.lower() for h in forwardHeaders)
        self._inFlight: Dict[Tuple[str, str], List[Deferred]] = {}

    def forwarded(self, headers: Dict[str, str]) -> Dict[str, str]:
        """
        The headers of C{headers} (lower-case names) that hooks are given.
        """
        return {name: headers[name] for name in self.forwardHeaders if name in headers}

    def ask(self, kind: str, question: Dict[str, Any]) -> Deferred:
        """
        Ask the C{kind} hook C{question}: a L{Deferred} firing with the
        backend's answer (a dict with C{"allow": true}), or failing with
        L{CometError} C{forbidden} or C{unavailable}.
        """
        url = getattr(self, kind)
        body = json.dumps(dict(question, hook=kind), sort_keys=True, separators=(",", ":"))
        key = (kind, body)
        d: Deferred = Deferred()
        waiters = self._inFlight.get(key)
        if waiters is not None:
            waiters.append(d)
            return d
        self._inFlight[key] = [d]
        request = self.http.post(
            url,
            data=body.encode("utf-8"),
            headers={b"Content-Type": [b"application/json"]},
        )
        timer = self.clock.callLater(self.timeout, request.cancel)

        def got(response: Any) -> Any:
            if response.code != 200:
                raise ValueError("HTTP %d" % (response.code,))
            return self.http.content(response)

        def parsed(content: bytes) -> Dict[str, Any]:
            if len(content) > MAX_ANSWER:
                raise ValueError("an answer of %d bytes" % (len(content),))
            answer = json.loads(content)
            if not isinstance(answer, dict) or not isinstance(answer.get("allow"), bool):
                raise ValueError('an answer without "allow": true or false')
            if answer["allow"]:
                _checkAllow(answer)
            return answer

        def done(result: Any) -> None:
            if timer.active():
                timer.cancel()
            waiters = self._inFlight.pop(key, [])
            if isinstance(result, Failure):
                log.warn(
                    "The {kind} hook failed ({why}); refusing",
                    kind=kind,
                    why=result.getErrorMessage() or result.type.__name__,
                )
                for waiter in waiters:
                    waiter.errback(CometError("unavailable", "The %s hook cannot answer right now." % (kind,)))
            elif not result["allow"]:
                reason = result.get("reason")
                message = "The %s hook refused%s" % (
                    kind,
                    ": %s" % (reason[:200],) if isinstance(reason, str) and reason else ".",
                )
                for waiter in waiters:
                    waiter.errback(CometError("forbidden", message))
            else:
                for waiter in waiters:
                    waiter.callback(result)

        request.addCallback(got).addCallback(parsed).addBoth(done)
        return d


def _checkAllow(answer: Dict[str, Any]) -> None:
    user = answer.get("user")
    if user is not None and (not isinstance(user, str) or len(user) > 128):
        raise ValueError("a user that is not a string of at most 128 characters")
    info = answer.get("info")
    if info is not None and not isinstance(info, dict):
        raise ValueError("info that is not an object")
    channels = answer.get("channels")
    if channels is not None and not (isinstance(channels, list) and all(isinstance(c, str) for c in channels)):
        raise ValueError("channels that are not an array of strings")
