"""
The C{txcomet} twistd plugin: C{twist txcomet} or C{twistd -n txcomet}.

Options follow twisted.web's tap: a repeatable C{--listen} takes endpoint
strings (C{tcp:8080}, C{ssl:8443:privateKey=key.pem}, C{unix:/run/comet.sock}).
"""

import os

from twisted.internet.defer import maybeDeferred
from typing import Any, List

from twisted.application import strports
from twisted.application.service import MultiService
from twisted.python import usage
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.static import File

from ._config import CometConfig
from ._http import CometRequest
from ._demo import CounterService
from ._root import IndexPage
from ._service import Comet


def _positiveFloat(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError("must be more than 0")
    return number


def _count(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError("must be 0 or more")
    return number


_positiveFloat.coerceDoc = "A number of seconds, more than 0."  # type: ignore[attr-defined]
_count.coerceDoc = "A whole number."  # type: ignore[attr-defined]


class Options(usage.Options):
    """
    Command line options for the txcomet server.
    """

    synopsis = "[options]"
    longdesc = (
        "Runs a txcomet server: the control channel, the publish API, every "
        "comet transport and the browser client (txcomet.js) under --prefix, and "
        "at / a chat demo that says what runs where. "
        "Without --redis the bus is in memory."
    )

    optParameters: List[List[Any]] = [
        ["prefix", None, "/comet", "The path every txcomet endpoint is under."],
        ["heartbeat", None, 25.0, "Seconds of silence before a data channel gets a heartbeat.", _positiveFloat],
        ["session-timeout", None, 60.0, "Seconds a session lives with no data channel.", _positiveFloat],
        ["history", None, 100, "Events kept per channel for resuming (0: none).", _count],
        ["queue-messages", None, 1000, "Undelivered events a session may hold before it is closed as a slow consumer.", _count],
        ["queue-bytes", None, 1048576, "Undelivered bytes a session may hold before it is closed as a slow consumer.", _count],
        ["max-message-size", None, 65536, "The largest message accepted, in bytes.", _count],
        ["recycle-bytes", None, 1048576, "Bytes after which an XHR-streaming or iframe response is "
         "closed and reopened by its client (0: never).", _count],
        ["publisher-secret", None, None, "The secret POST <prefix>/publish/<channel> requires "
         "(default: $TXCOMET_PUBLISHER_SECRET; unset: the publish API is open)."],
        ["static", None, None, "A directory to serve at / instead of the demo page."],
        ["redis", None, None, "Share a bus with other txcomet nodes through Redis: "
         "redis://[[user]:password@]host[:port][/db], rediss://... (TLS) or unix:///path?db=N; "
         "the query may set prefix=, history_age= (seconds, default 3600) and presence_ttl= "
         "(seconds, default 30). Default: $TXCOMET_REDIS; unset: an in-memory bus."],
        ["ws-ping-timeout", None, 10.0, "Seconds a WebSocket peer has to answer a ping "
         "(sent every --heartbeat seconds) before it is dropped.", _positiveFloat],
    ]
    optFlags = [
        ["no-client-publish", None, "Sessions may not publish through the control channel."],
        ["ws-compression", None, "Let WebSocket clients negotiate permessage-deflate (costs "
         "CPU per connection: a compressed connection cannot share the frame built once per event)."],
    ]

    def __init__(self) -> None:
        usage.Options.__init__(self)
        self["listen"] = []
        self["allowedOrigins"] = []

    def opt_listen(self, endpoint: str) -> None:
        """
        An endpoint to serve on (repeatable; default tcp:8080), e.g.
        tcp:8080, tcp:8080:interface=127.0.0.1, ssl:8443:privateKey=key.pem,
        unix:/run/txcomet.sock.
        """
        self["listen"].append(endpoint)

    def opt_allow_origin(self, origin: str) -> None:
        """
        An origin (https://example.com, or *) granted cross-origin access to
        the control channel, the data channels and WebSocket (repeatable).
        """
        self["allowedOrigins"].append(origin)

    def postOptions(self) -> None:
        if not self["listen"]:
            self["listen"] = ["tcp:8080"]
        prefix = self["prefix"].strip("/")
        if not prefix or any(not part for part in prefix.split("/")):
            raise usage.UsageError("--prefix must be a path like /comet, not %r" % (self["prefix"],))
        self["prefixSegments"] = [part.encode("utf-8") for part in prefix.split("/")]
        if self["static"] is not None and not os.path.isdir(self["static"]):
            raise usage.UsageError("--static %s is not a directory" % (self["static"],))
        if self["publisher-secret"] is None:
            self["publisher-secret"] = os.environ.get("TXCOMET_PUBLISHER_SECRET") or None
        try:
            self["config"] = CometConfig(
                heartbeat=self["heartbeat"],
                sessionTimeout=self["session-timeout"],
                historyLength=self["history"],
                queueMessages=self["queue-messages"],
                queueBytes=self["queue-bytes"],
                maxMessageSize=self["max-message-size"],
                allowedOrigins=self["allowedOrigins"],
                publisherSecret=self["publisher-secret"],
                clientPublish=not self["no-client-publish"],
                recycleBytes=self["recycle-bytes"],
                webSocketPingTimeout=self["ws-ping-timeout"],
                webSocketCompression=bool(self["ws-compression"]),
            )
        except ValueError as e:
            raise usage.UsageError(str(e))
        if self["redis"] is None:
            self["redis"] = os.environ.get("TXCOMET_REDIS") or None
        self["bus"] = None
        if self["redis"] is not None:
            from ._redis import RedisBus

            try:
                self["bus"] = RedisBus.fromURL(self["redis"], historyLength=self["history"])
            except ValueError as e:
                raise usage.UsageError("--redis: %s" % (e,))
        for endpoint in self["listen"]:
            try:
                strports.service(endpoint, Site(Resource()))
            except (ValueError, KeyError, TypeError) as e:
                raise usage.UsageError("--listen %s is not a valid endpoint: %s" % (endpoint, e))


class _NodeComet(Comet):
    """
    The stand-alone server's L{Comet}: a bus that cannot start (Redis gone
    between the check in L{makeService} and the start) stops the server
    with a clear message instead of leaving it half alive.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        Comet.__init__(self, *args, **kwargs)
        self.ready: Any = None

    def startService(self) -> Any:
        from twisted.internet.defer import Deferred

        self.ready = Deferred()
        d = Comet.startService(self)

        def started(result: Any) -> Any:
            self.ready.callback(None)
            return result

        def failed(failure: Any) -> None:
            from twisted.internet import reactor
            from twisted.logger import Logger

            Logger().critical("txcomet cannot start: {why}", why=failure.getErrorMessage())
            reactor.stop()

        return d.addCallbacks(started, failed)


class _ListenWhenReady(MultiService):
    """
    Starts its children (the listening ports) once the comet service's bus
    is ready, so a node takes no request before it is connected to the
    other nodes.
    """

    def __init__(self, comet: _NodeComet) -> None:
        MultiService.__init__(self)
        self.comet = comet

    def startService(self) -> None:
        from twisted.application.service import Service

        Service.startService(self)
        ready = self.comet.ready
        if ready is not None:
            ready.addCallback(lambda _: self.running and self._startChildren())

    def _startChildren(self) -> None:
        for child in self:
            if not child.running:
                child.startService()

    def stopService(self) -> Any:
        from twisted.application.service import Service
        from twisted.internet.defer import DeferredList

        Service.stopService(self)
        return DeferredList([maybeDeferred(child.stopService) for child in reversed(list(self)) if child.running])


def makeComet(options: Options) -> Comet:
    """
    The L{Comet} service for C{options}.
    """
    bus = options.get("bus")
    if bus is None:
        return Comet(config=options["config"])
    return _NodeComet(bus=bus, config=options["config"])


def makeRoot(options: Options, comet: Comet) -> Resource:
    """
    The root resource: the static directory or the demo page, with the
    comet resource mounted at the prefix.
    """
    segments = options["prefixSegments"]
    root: Resource
    if options["static"] is not None:
        root = File(options["static"])
    else:
        root = IndexPage("/" + "/".join(s.decode("utf-8") for s in segments), comet)
    parent = root
    for segment in segments[:-1]:
        child = Resource()
        parent.putChild(segment, child)
        parent = child
    parent.putChild(segments[-1], comet.resource)
    return root


def makeService(options: Options) -> MultiService:
    """
    The txcomet server: the L{Comet} service, then one listening service per
    C{--listen} endpoint, all serving one site.
    """
    if options.get("bus") is not None:
        from ._resp import RedisUnavailable, probe

        try:
            probe(options["bus"].address)
        except RedisUnavailable as e:
            raise SystemExit("txcomet: %s" % (e,))
    service = MultiService()
    comet = makeComet(options)
    comet.setServiceParent(service)
    root = makeRoot(options, comet)
    if isinstance(root, IndexPage):
        # The demo's chart counts every event on the bus.
        CounterService(comet.bus, root.counter).setServiceParent(service)
    site = Site(root, requestFactory=CometRequest)
    site.displayTracebacks = False
    listeners = _ListenWhenReady(comet) if isinstance(comet, _NodeComet) else service
    if listeners is not service:
        listeners.setServiceParent(service)
    for endpoint in options["listen"]:
        strports.service(endpoint, site).setServiceParent(listeners)
    if options["config"].publisherSecret is None:
        from twisted.logger import Logger

        Logger().warn(
            "No publisher secret: anyone who reaches this server can POST to its publish API."
            " Set --publisher-secret or TXCOMET_PUBLISHER_SECRET."
        )
    return service
