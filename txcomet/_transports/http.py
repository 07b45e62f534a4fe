# -*- test-case-name: tests.transports.test_http,tests.node.test_auth_options,tests.model.test_json_surrogates -*-
"""
HTTP plumbing shared by every txcomet resource: JSON and script-tag
answers, errors, CORS, capped request bodies and query parameters.
"""

import json
import re
from typing import Any, Callable, Dict, List, Optional

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import combinedLogFormatter
from twisted.web.iweb import IAccessLogFormatter
from twisted.web.resource import Resource
from zope.interface import provider
from twisted.web.server import NOT_DONE_YET, Request

from txcomet._auth.tokens import bearerToken
from txcomet._model.config import CometConfig
from txcomet._model.errors import CometError
from txcomet._model.event import encodeJSON
from txcomet._model.stats import ERRORS

log = Logger()

_CALLBACK = re.compile(r"[A-Za-z0-9_.]{1,64}\Z")

#: The largest request body any txcomet resource reads, whatever the
#: configured message size: a body larger than this is not even buffered
#: when the server runs on L{CometRequest}.
HARD_BODY_LIMIT = 16 * 1024 * 1024


def validateCallback(callback: object) -> str:
    """
    Return C{callback} if it is a valid script-tag callback name: 1 to 64
    letters, digits, C{_} and C{.}.  Else raise L{CometError}
    C{invalid_callback}.
    """
    if isinstance(callback, str) and _CALLBACK.match(callback):
        return callback
    raise CometError(
        "invalid_callback",
        "A callback is 1-64 characters of A-Z a-z 0-9 _ and '.'.",
    )


def escapeScript(payload: bytes) -> bytes:
    """
    Make JSON safe inside a JavaScript program and inside an HTML
    C{<script>} element: C{<}, C{>} and C{&} and the line separators
    U+2028/U+2029 (line breaks in older JavaScript) become escapes, so no
    payload can close the element or break the statement.
    """
    return (
        payload.replace(b"<", b"\\u003c")
        .replace(b">", b"\\u003e")
        .replace(b"&", b"\\u0026")
        .replace("\u2028".encode("utf-8"), b"\\u2028")
        .replace("\u2029".encode("utf-8"), b"\\u2029")
    )


def setNoCache(request: Request) -> None:
    request.setHeader(b"Cache-Control", b"no-store")


def applyCORS(request: Request, config: CometConfig, preflight: bool = False) -> None:
    """
    Grant cross-origin access to an allowed C{Origin}.  Requests from other
    origins get no CORS headers, so browsers keep their answers from the
    page (same-origin requests need none).
    """
    request.setHeader(b"Vary", b"Origin")
    if not config.allowedOrigins:
        # No origin is granted anything: the request's Origin need not be read.
        return
    origin = request.getHeader("Origin")
    if origin is None or not config.originAllowed(origin):
        return
    request.setHeader(b"Access-Control-Allow-Origin", origin.encode("utf-8"))
    request.setHeader(
        b"Access-Control-Expose-Headers",
        b"X-Comet-Position, X-Comet-Session, X-Comet-Recovered, X-Comet-Token-Expires",
    )
    if preflight:
        request.setHeader(b"Access-Control-Allow-Methods", b"GET, POST, OPTIONS")
        request.setHeader(
            b"Access-Control-Allow-Headers",
            b"Content-Type, Last-Event-ID, Authorization, X-Comet-Secret",
        )
        request.setHeader(b"Access-Control-Max-Age", b"600")


def writeJSON(request: Request, status: int, body: Any) -> bytes:
    """
    Set up C{request} to answer C{body} as JSON with C{status}, and return
    the bytes to write.
    """
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
    setNoCache(request)
    return encodeJSON(body) + b"\n"


def writeScript(request: Request, callback: str, body: Any) -> bytes:
    """
    Set up C{request} to answer C{/**/callback(body);} as JavaScript, and
    return the bytes.  The status is always 200: a script element runs
    nothing from an error status, so errors travel in the body.
    """
    request.setResponseCode(200)
    request.setHeader(b"Content-Type", b"application/javascript; charset=utf-8")
    request.setHeader(b"X-Content-Type-Options", b"nosniff")
    setNoCache(request)
    return b"/**/" + callback.encode("ascii") + b"(" + escapeScript(encodeJSON(body)) + b");\n"


def writeError(request: Request, error: CometError, callback: Optional[str] = None) -> bytes:
    """
    The bytes of an error answer, as JSON with the error's status, or as a
    script call when the client asked for one.
    """
    ERRORS.labels(error.code).inc()
    if callback is not None:
        return writeScript(request, callback, error.asDict())
    if error.status == 503:
        # unavailable: worth trying again, shortly
        request.setHeader(b"Retry-After", b"1")
    return writeJSON(request, error.status, error.asDict())


def asCometError(failure: Failure, what: str) -> CometError:
    """
    The L{CometError} in C{failure}, or C{internal_error} (with the real
    failure logged) when it holds anything else.
    """
    if failure.check(CometError):
        return failure.value
    log.failure("Unexpected failure in {what}", failure, what=what)
    return CometError("internal_error")


def finishWhole(request: Request, body: bytes) -> None:
    """
    Write C{body}, the rest of the answer, and finish; if nothing was
    written yet, say its length first, as Twisted does for a body rendered
    at once, so HTTP/1.1 needs no chunked framing (nor its closing chunk)
    and the status line, headers and body go out in one write.
    """
    if not request.startedWriting:
        request.setHeader(b"Content-Length", b"%d" % (len(body),))
    request.write(body)
    request.finish()


class RequestTracker:
    """
    Knows whether a request's client has gone, so nothing is written to or
    finished on a dead request.
    """

    def __init__(self, request: Request) -> None:
        self.request = request
        self.gone = False
        self.done = False
        request.notifyFinish().addErrback(self._lost)

    def _lost(self, failure: Failure) -> None:
        self.gone = True

    def finish(self, body: bytes) -> None:
        """
        Write C{body} and finish, unless the client has gone or the request
        is already finished.
        """
        if self.gone or self.done:
            return
        self.done = True
        finishWhole(self.request, body)


def respondLater(
    request: Request,
    deferred: Deferred,
    render: Callable[[Any], bytes],
    callback: Optional[str] = None,
    what: str = "a request",
) -> int:
    """
    Answer C{request} when C{deferred} fires: with C{render(result)}, or
    with the error it failed with.  Returns L{NOT_DONE_YET} for C{render_*}.
    """
    tracker = RequestTracker(request)

    def failed(failure: Failure) -> bytes:
        return writeError(request, asCometError(failure, what), callback)

    deferred.addCallbacks(render, failed)
    deferred.addCallback(tracker.finish)
    deferred.addErrback(lambda f: log.failure("Answering {what} failed", f, what=what))
    return NOT_DONE_YET


def readBody(request: Request, limit: int) -> bytes:
    """
    The request body, or L{CometError} C{too_large} when it is larger than
    C{limit} bytes.
    """
    if getattr(request, "bodyTooLarge", False):
        raise CometError("too_large", "The body is larger than %d bytes." % (limit,))
    content = request.content
    if content is None:
        return b""
    content.seek(0, 2)
    size = content.tell()
    if size > limit:
        raise CometError("too_large", "The body is %d bytes; at most %d are allowed." % (size, limit))
    content.seek(0)
    return content.read()


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _refuseConstant(name: str) -> Any:
    # Python's decoder takes NaN, Infinity and -Infinity; JSON does not.
    raise ValueError("%s is not a JSON value" % (name,))


def _finiteFloat(text: str) -> float:
    # 1e999 would decode to an infinity, which could never be encoded again.
    value = float(text)
    if value in (_INFINITY, -_INFINITY):
        raise ValueError("%s is out of a double's range" % (text,))
    return value


_INFINITY = float("inf")


def decodeJSON(body: bytes) -> Any:
    """
    Decode a UTF-8 JSON body, or raise L{CometError} C{malformed_json}:
    also for C{NaN}, C{Infinity}, numbers past a double's range and values
    nested too deeply for the decoder, none of which could be sent on.

    JSON may spell a lone UTF-16 surrogate (C{"\\ud800"}); no UTF-8 text can
    carry one, so such a value could never be encoded again (for instance
    as the envelope of an event every subscriber is sent).  It is refused
    here, where the client can be told.
    """
    try:
        text = body.decode("utf-8")
        value = json.loads(text, parse_constant=_refuseConstant, parse_float=_finiteFloat)
    except RecursionError:
        raise CometError("malformed_json", "The JSON is nested too deeply.")
    except (UnicodeDecodeError, ValueError) as e:
        raise CometError("malformed_json", "The body is not UTF-8 JSON: %s." % (e,))
    if _SURROGATE_ESCAPE.search(text) is not None:
        try:
            encodeJSON(value)
        except UnicodeEncodeError:
            raise CometError(
                "malformed_json",
                "The JSON holds a lone surrogate escape (\\ud800-\\udfff): not a character.",
            )
    return value


def queryArgs(request: Request) -> Dict[str, List[str]]:
    """
    The query parameters as text, or L{CometError} C{invalid_request} when
    one is not UTF-8.
    """
    raw = request.args
    if not raw:
        return {}
    args: Dict[str, List[str]] = {}
    try:
        for key, values in raw.items():
            if len(values) == 1:
                # The usual case, without a comprehension's own frame.
                args[key.decode("utf-8")] = [values[0].decode("utf-8")]
            else:
                args[key.decode("utf-8")] = [v.decode("utf-8") for v in values]
    except UnicodeDecodeError:
        raise CometError("invalid_request", "Query parameters must be UTF-8.")
    return args


#: Query parameters whose values are secrets: txcomet's own (C{token},
#: C{auth}) and those a client or a proxy in front may add by habit.
_SECRET_PARAMETERS = re.compile(
    rb"(?i)(?<=[?&;])(token|auth|access_token|key|api_key|apikey|secret|ticket|password)=[^&;#]*"
)


def redactURI(uri: bytes) -> bytes:
    """
    C{uri} with the value of every secret query parameter (C{token=},
    C{auth=}, C{key=}, C{api_key=}, C{secret=}, C{ticket=}, C{password=},
    ...) replaced by C{REDACTED}: what a log line may show of a request.
    """
    if b"=" not in uri:
        return uri
    return _SECRET_PARAMETERS.sub(lambda m: m.group(1) + b"=REDACTED", uri)


class _Redacted:
    """
    A request as an access log formatter sees it, with secrets in its URI
    and C{Referer} redacted (see L{redactURI}).
    """

    def __init__(self, request: Request) -> None:
        self._request = request
        self.uri = redactURI(request.uri)

    def getHeader(self, name: Any) -> Any:
        if name in (b"referer", "referer"):
            value = self._request.getHeader(b"referer")
            if value is None:
                return None
            value = redactURI(value)
            return value if isinstance(name, bytes) else value.decode("utf-8", "replace")
        return self._request.getHeader(name)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)


@provider(IAccessLogFormatter)
def redactedLogFormatter(timestamp: str, request: Request) -> str:
    """
    twisted.web's combined access log format, with the values of C{token=}
    and C{auth=} query parameters replaced by C{REDACTED}: a token in a URL
    (EventSource, script tags, iframes and WebSocket cannot send headers)
    never reaches a log.  Pass it as C{logFormatter} to the L{Site} that
    serves txcomet.
    """
    return combinedLogFormatter(timestamp, _Redacted(request))


def requestToken(request: Request, args: Dict[str, List[str]]) -> Optional[str]:
    """
    The connection token a request carries: its C{Authorization: Bearer}
    header, else its C{token=} query parameter (for EventSource, script
    tags, iframes and WebSocket, which cannot set headers); or C{None}.
    """
    token = bearerToken(request.getHeader("Authorization"))
    if token is None:
        token = singleArg(args, "token")
    return token


def forwardedHeaders(request: Request, config: CometConfig) -> Dict[str, str]:
    """
    The request headers backend hooks are given (C{config.hookHeaders}),
    lower-case names; empty when no hook is configured.
    """
    if not (config.connectHook or config.subscribeHook or config.publishHook):
        return {}
    headers = {}
    for name in config.hookHeaders:
        value = request.getHeader(name)
        if value is not None:
            headers[name] = value
    return headers


def singleArg(args: Dict[str, List[str]], name: str) -> Optional[str]:
    """
    The one value of query parameter C{name}, or C{None}.  Given twice, it
    is an C{invalid_request}.
    """
    values = args.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise CometError("invalid_request", "The %r parameter is given more than once." % (name,))
    return values[0]


class CometRequest(Request):
    """
    A request that stops buffering its body past L{HARD_BODY_LIMIT} bytes
    (and marks itself C{bodyTooLarge}), so an oversize upload costs the
    server no memory or disk.  The txcomet server uses it; an application
    embedding txcomet in its own L{Site} may too.
    """

    bodyTooLarge = False
    _bodyReceived = 0
    _finishWatcher: Optional[Callable[[Optional[Failure]], None]] = None

    def __init__(self, channel: Any, *args: Any, **kwargs: Any) -> None:
        # txcomet's endpoints take JSON or text bodies (Bayeux's message=
        # form is read by its endpoint), never twisted.web's parsed forms:
        # parsing them would put body fields among the query parameters,
        # answer a malformed multipart body with a bare 400, and parse
        # every POST's Content-Type with the email package (a quarter of a
        # Bayeux long-poll's CPU time).
        kwargs["parsePOSTFormSubmission"] = False
        Request.__init__(self, channel, *args, **kwargs)

    def getHeader(self, key: Any) -> Any:
        """
        As L{Request.getHeader}, except that a header asked for by a text
        name whose bytes are not UTF-8 comes back with them replaced
        (U+FFFD) instead of raising: a bad C{Last-Event-ID}, bearer token
        or C{Origin} is then refused for what it says (400, 401, 403), and
        never a 500.
        """
        if isinstance(key, bytes):
            return Request.getHeader(self, key)
        values = self.requestHeaders.getRawHeaders(key.encode("ascii"))
        if values is None:
            return None
        return values[-1].decode("utf-8", "replace")

    def watchFinish(self, watcher: Callable[[Optional[Failure]], None]) -> None:
        """
        What L{notifyFinish} tells, without a L{Deferred} per request (a
        data channel request is one per long-poll): call C{watcher(None)}
        once the response is finished, or C{watcher(failure)} if the
        connection is lost first; only once, and only the last watcher
        given.
        """
        self._finishWatcher = watcher

    def _tellWatcher(self, result: Optional[Failure]) -> None:
        watcher = self._finishWatcher
        if watcher is not None:
            self._finishWatcher = None
            watcher(result)

    def finish(self) -> None:
        Request.finish(self)
        if self.finished:
            self._tellWatcher(None)

    def connectionLost(self, reason: Failure) -> None:
        Request.connectionLost(self, reason)
        self._tellWatcher(reason)

    def gotLength(self, length: Optional[int]) -> None:
        if length is not None and length > HARD_BODY_LIMIT:
            self.bodyTooLarge = True
            length = 0
        Request.gotLength(self, length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.bodyTooLarge:
            return
        self._bodyReceived += len(data)
        if self._bodyReceived > HARD_BODY_LIMIT:
            self.bodyTooLarge = True
            self.content.seek(0)
            self.content.truncate()
            return
        Request.handleContentChunk(self, data)


class JSONResource(Resource):
    """
    A resource whose every answer, errors included, is JSON: an unsupported
    method is a JSON 405 C{method_not_allowed} with an C{Allow} header, and
    an exception in a C{render_*} method becomes a JSON error instead of a
    traceback page.

    @ivar config: the L{CometConfig} (for CORS).
    """

    config: CometConfig

    #: Whether C{HEAD} is C{GET} without the body.  Only where C{GET} only
    #: reads (the info document, static files): elsewhere a C{GET} joins,
    #: subscribes or holds a data channel, which a C{HEAD} must never do,
    #: so it is a 405 there.
    headIsGet = False

    #: Whether paths below this leaf resource mean something to it (the
    #: publish API's channel, Bayeux's sub-paths, a static file's own
    #: check); elsewhere C{<resource>/extra} is a JSON 404, not the
    #: resource itself.
    subpaths = False

    def render(self, request: Request) -> Any:
        method = request.method.decode("ascii", "replace")
        # (A leaf that is the site's root, as in-memory tests mount one,
        # has consumed no path: its postpath is the whole path.)
        # The lean path routes exact paths only, and has none.
        postpath = getattr(request, "postpath", None)
        if postpath and not self.subpaths and self.isLeaf and request.prepath and postpath != [b""]:
            return writeError(request, CometError("not_found"))
        # Its own render_HEAD: data channels answer headers only.
        ownHead = type(self).render_HEAD is not Resource.render_HEAD
        if method == "HEAD":
            if ownHead:
                handler = self.render_HEAD
            else:
                handler = self.render_GET if self.headIsGet else None
        else:
            handler = getattr(self, "render_" + method, None)
        if handler is None or method == "OPTIONS" and not hasattr(self, "render_OPTIONS"):
            allowed = sorted(
                name[len("render_") :]
                for name in dir(self)
                if name.startswith("render_") and (name != "render_HEAD" or self.headIsGet or ownHead)
            )
            request.setHeader(b"Allow", ", ".join(allowed).encode("ascii"))
            return writeError(
                request,
                CometError("method_not_allowed", "%s is not allowed here; use %s." % (method, " or ".join(allowed))),
            )
        try:
            return handler(request)
        except CometError as error:
            return writeError(request, error, getattr(request, "cometCallback", None))
        except Exception:
            log.failure("Rendering {uri} failed", uri=redactURI(request.uri))
            return writeError(request, CometError("internal_error"))

    def render_OPTIONS(self, request: Request) -> bytes:
        applyCORS(request, self.config, preflight=True)
        request.setResponseCode(204)
        return b""


class NotFound(JSONResource):
    """
    A JSON 404 C{not_found} for any method.
    """

    isLeaf = True

    def __init__(self, config: CometConfig) -> None:
        super().__init__()
        self.config = config

    def render(self, request: Request) -> bytes:
        return writeError(request, CometError("not_found"))
