# -*- test-case-name: tests.server.test_api -*-
"""
The server API: what a backend (in any language) asks of txcomet and
orders it to do, at C{POST <prefix>/api}, and the same operations for
Python on L{txcomet.Comet.api}.

A call is C{{"method": NAME, "params": {...}}}; the answer is
C{{"result": ...}}, or an error body (C{{"error": code, "message": ...}})
with its status.  C{POST <prefix>/api/<method>} takes the params alone as
its body.  The methods, their params and their answers are in
docs/operations.md.

Who may call it (L{checkAccess}): a client with the API key, or, when no
key is configured, a client on loopback only.  The publish API follows the
same rule when it has no publisher secret, and the metrics too.
"""

import hmac
import ipaddress
from typing import Any, Callable, Dict, List, Optional, Tuple

from twisted.internet.address import UNIXAddress
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.web.server import Request

from txcomet._model.channels import isReserved, validateChannel, validatePattern
from txcomet._model.errors import CometError
from txcomet._model.event import parsePosition
from txcomet._model.stats import AUTH_FAILURES
from txcomet._sessions.cluster import channelCounts, nodeInfo
from txcomet._transports.http import JSONResource, decodeJSON, readBody, respondLater, writeJSON

#: The most calls one C{batch} may hold, and the most channels one
#: C{broadcast} may name.
MAX_BATCH = 100
#: The most events one C{history} call answers.
MAX_HISTORY = 1000

#: Headers that say a request came through a proxy: such a request is not
#: taken for a local one, whatever address it arrives from.
_PROXY_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")


def presentedKey(request: Request) -> Optional[str]:
    """
    The key or secret a request carries: C{X-API-Key}, or the token of
    C{Authorization: Bearer}.
    """
    given = request.getHeader("X-API-Key")
    if given is not None:
        return given.strip()
    scheme, _, token = (request.getHeader("Authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def isLocal(request: Request) -> bool:
    """
    Whether C{request} comes from this machine: over a UNIX socket, or from
    a loopback address with no sign of a proxy in between (a reverse proxy
    on the same machine forwards everyone's requests from loopback).
    """
    for name in _PROXY_HEADERS:
        if request.getHeader(name) is not None:
            return False
    address = request.getClientAddress()
    if isinstance(address, UNIXAddress):
        return True
    host = getattr(address, "host", None)
    try:
        return ipaddress.ip_address(str(host).split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def checkAccess(request: Request, keys: List[str], what: str, tickets: Any = None) -> None:
    """
    Let C{request} through if it carries one of C{keys} (compared in
    constant time), or a valid admin ticket of C{tickets} (header
    C{X-Admin-Ticket}, see L{txcomet._server.admin}), or, when C{keys} is
    empty, if it is local; else raise C{CometError("unauthorized")}.  The
    key itself is never put in a message or a log line.
    """
    if tickets is not None and tickets.valid(request.getHeader("X-Admin-Ticket")):
        return
    keys = [key for key in keys if key]
    if not keys:
        if isLocal(request):
            return
        raise _unauthorized(
            "%s answers only clients on this machine while no API key is set: start the server with"
            " --api-key (or $TXCOMET_API_KEY) and send it as X-API-Key or Authorization: Bearer." % (what,)
        )
    given = presentedKey(request)
    if given is None:
        raise _unauthorized("%s needs the API key, as X-API-Key or Authorization: Bearer." % (what,))
    if not keyMatches(given, keys):
        raise _unauthorized("The key given for %s is not the right one." % (what,))


def keyMatches(given: Optional[str], keys: List[str]) -> bool:
    """
    Whether C{given} is one of C{keys}, compared in constant time: every
    key is compared, so the time says nothing of which matched.
    """
    if given is None:
        return False
    givenBytes = given.encode("utf-8", "replace")
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(givenBytes, key.encode("utf-8"))
    return matched


def _unauthorized(message: str) -> CometError:
    AUTH_FAILURES.labels("unauthorized").inc()
    return CometError("unauthorized", message)


def _params(params: Any) -> dict:
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise CometError("invalid_request", "params is a JSON object.")
    return params


def _string(params: dict, name: str, required: bool = True) -> Optional[str]:
    value = params.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise CometError("invalid_request", "params.%s is a non-empty string." % (name,))
    return value


def _channel(params: dict, name: str = "channel") -> str:
    channel = validateChannel(_string(params, name))
    if isReserved(channel):
        raise CometError("forbidden", "Channels under ~txcomet/ are the server's own.")
    return channel


def _whole(params: dict, name: str, default: int, most: int) -> int:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= most:
        raise CometError("invalid_request", "params.%s is a whole number from 1 to %d." % (name, most))
    return value


class ServerAPI:
    """
    The server API's methods on one L{txcomet.Comet}.  L{call} runs one by
    name; each returns a L{Deferred} of its JSON result, or fails with a
    L{CometError}.
    """

    def __init__(self, comet: Any) -> None:
        self.comet = comet
        self.hub = comet.hub
        self.methods: Dict[str, Callable[[dict], Deferred]] = {
            "publish": self.publish,
            "broadcast": self.broadcast,
            "history": self.history,
            "presence": self.presence,
            "presenceStats": self.presenceStats,
            "channels": self.channels,
            "info": self.info,
            "disconnect": self.disconnect,
            "unsubscribe": self.unsubscribe,
            "batch": self.batch,
        }

    def call(self, method: Any, params: Any = None) -> Deferred:
        """
        Run C{method} with C{params} (a dict).
        """
        handler = self.methods.get(method) if isinstance(method, str) else None
        if handler is None:
            return _failed(
                CometError(
                    "unknown_method",
                    "%r is not a method; the methods are %s." % (str(method)[:40], ", ".join(sorted(self.methods))),
                )
            )
        try:
            params = _params(params)
        except CometError as e:
            return _failed(e)
        return maybeDeferred(handler, params)

    # the methods

    def publish(self, params: dict) -> Deferred:
        channel = _channel(params)
        if "data" not in params:
            raise CometError("invalid_request", "params.data is the event's data (any JSON value).")
        d = self.hub.publish(channel, params["data"])
        return d.addCallback(lambda event: {"channel": channel, "id": event.id})

    def broadcast(self, params: dict) -> Deferred:
        channels = params.get("channels")
        if not isinstance(channels, list) or not 0 < len(channels) <= MAX_BATCH:
            raise CometError("invalid_request", "params.channels is a list of 1 to %d channels." % (MAX_BATCH,))
        names = [_channel({"channel": c}) for c in channels]
        if "data" not in params:
            raise CometError("invalid_request", "params.data is the event's data (any JSON value).")
        data = params["data"]
        # encoded once, for every channel
        dataJSON = self.hub.checkSize(data)
        results = [maybeDeferred(self.hub.publishEncoded, name, data, dataJSON) for name in names]

        def gathered(outcomes: list) -> dict:
            published = []
            for name, (ok, value) in zip(names, outcomes):
                if ok:
                    published.append({"channel": name, "id": value.id})
                else:
                    error = value.value if value.check(CometError) else CometError("internal_error")
                    published.append({"channel": name, "error": error.code, "message": error.message})
            return {"published": published}

        return DeferredList(results, consumeErrors=True).addCallback(gathered)

    def history(self, params: dict) -> Deferred:
        channel = _channel(params)
        since = params.get("since")
        if since is not None:
            parsePosition(since)
        limit = _whole(params, "limit", 100, MAX_HISTORY)
        order = params.get("order", "oldest")
        if order not in ("oldest", "newest"):
            raise CometError("invalid_request", 'params.order is "oldest" (oldest first) or "newest".')

        def answer(history: Any) -> dict:
            events = list(history.events)
            more = len(events) > limit
            if order == "newest":
                events = events[-limit:][::-1]
            else:
                events = events[:limit]
            return {
                "channel": channel,
                "events": [event.asDict() for event in events],
                # every event after since (or every one ever published)
                # is here: none was forgotten, none left out by limit
                "complete": bool(history.covered) and not more,
                "position": history.position,
            }

        return self.hub.bus.history(channel, since).addCallback(answer)

    def presence(self, params: dict) -> Deferred:
        channel = _channel(params)
        return self.hub.bus.members(channel).addCallback(lambda members: {"channel": channel, "members": list(members)})

    def presenceStats(self, params: dict) -> Deferred:
        channel = _channel(params)

        def count(members: Any) -> dict:
            users = {m.get("user") for m in members if m.get("user") is not None}
            return {"channel": channel, "clients": len(members), "users": len(users)}

        return self.hub.bus.members(channel).addCallback(count)

    def channels(self, params: dict) -> Deferred:
        pattern = _string(params, "pattern", required=False)
        if pattern is not None:
            validatePattern(pattern)

        def merge(answered: Tuple[dict, list]) -> dict:
            answers, missing = answered
            total: Dict[str, int] = {}
            for counts in answers.values():
                if isinstance(counts, dict):
                    for name, n in counts.items():
                        total[name] = total.get(name, 0) + n
            return {
                "channels": {name: {"subscribers": total[name]} for name in sorted(total)},
                "nodes": len(answers),
                "missing": missing,
            }

        return self.comet.cluster.ask("channels", {"pattern": pattern}).addCallback(merge)

    def info(self, params: dict) -> Deferred:
        def merge(answered: Tuple[dict, list]) -> dict:
            answers, missing = answered
            nodes = [answer for answer in answers.values() if isinstance(answer, dict)]
            nodes.sort(key=lambda node: (node.get("node") != self.comet.cluster.nodeId, str(node.get("node"))))
            return {"nodes": nodes, "missing": missing}

        return self.comet.cluster.ask("info").addCallback(merge)

    def disconnect(self, params: dict) -> Deferred:
        user = _string(params, "user", required=False)
        session = _string(params, "session", required=False)
        reason = _string(params, "reason", required=False) or "kicked"
        if (user is None) == (session is None):
            raise CometError("invalid_request", "disconnect takes params.user or params.session (one of them).")
        revocations = self.comet.revocations
        if user is not None:
            d = revocations.disconnect(user, reason)
        else:
            d = revocations.disconnectSession(session, reason)
        return d.addCallback(lambda _: {})

    def unsubscribe(self, params: dict) -> Deferred:
        user = _string(params, "user")
        channel = _string(params, "channel")
        validatePattern(channel)
        return self.comet.revocations.unsubscribe(user, channel).addCallback(lambda _: {})

    def batch(self, params: dict) -> Deferred:
        calls = params.get("calls")
        if not isinstance(calls, list) or not 0 < len(calls) <= MAX_BATCH:
            raise CometError("invalid_request", "params.calls is a list of 1 to %d calls." % (MAX_BATCH,))
        replies: List[dict] = []

        def one(call: Any) -> Deferred:
            if not isinstance(call, dict):
                return _failed(CometError("invalid_request", "Each call is {\"method\": ..., \"params\": {...}}."))
            if call.get("method") == "batch":
                return _failed(CometError("invalid_request", "A batch cannot hold a batch."))
            return self.call(call.get("method"), call.get("params"))

        def record(result: Any) -> None:
            replies.append({"result": result})

        def recordError(failure: Any) -> None:
            error = failure.value if failure.check(CometError) else CometError("internal_error")
            replies.append(error.asDict())

        # In order: each call starts once the one before it has its answer.
        d: Deferred = succeed(None)
        for call in calls:
            d.addCallback(lambda _, call=call: one(call).addCallbacks(record, recordError))
        return d.addCallback(lambda _: {"replies": replies})


def _failed(error: CometError) -> Deferred:
    d: Deferred = Deferred()
    d.errback(error)
    return d


def installAnswerers(comet: Any, version: str) -> None:
    """
    Teach C{comet}'s cluster to answer C{info} and C{channels} for this node.
    """
    cluster = comet.cluster
    hub = comet.hub
    cluster.answerers["info"] = lambda params: nodeInfo(hub, cluster, version)

    def channels(params: dict) -> dict:
        pattern = params.get("pattern")
        if pattern is not None:
            validatePattern(pattern)
        return channelCounts(hub, pattern)

    cluster.answerers["channels"] = channels


class APIResource(JSONResource):
    """
    C{POST <prefix>/api} (C{{"method": ..., "params": ...}}) and C{POST
    <prefix>/api/<method>} (the params as the body): the server API over
    HTTP; see the module docstring.
    """

    isLeaf = True
    subpaths = True  # the method

    def __init__(self, api: ServerAPI) -> None:
        super().__init__()
        self.api = api
        self.config = api.hub.config

    def render_POST(self, request: Request) -> Any:
        checkAccess(request, [self.config.apiKey], "The server API", self.api.comet.adminTickets)
        body = decodeJSON(readBody(request, max(self.config.maxMessageSize * 4, 1 << 20)))
        path = [segment for segment in request.postpath if segment]
        if len(path) > 1:
            raise CometError("not_found")
        if path:
            method: Any = path[0].decode("ascii", "replace")
            params = body
        else:
            if not isinstance(body, dict):
                raise CometError("invalid_request", 'The body is {"method": NAME, "params": {...}}.')
            method, params = body.get("method"), body.get("params")
        d = self.api.call(method, params)
        return respondLater(request, d, lambda result: writeJSON(request, 200, {"result": result}), what="a server API call")

    def render_GET(self, request: Request) -> Any:
        # Not a place for browsers: no CORS, and GET only lists the methods.
        checkAccess(request, [self.config.apiKey], "The server API")
        return writeJSON(request, 200, {"methods": sorted(self.api.methods)})
