# -*- test-case-name: tests.node.test_site,tests.node.test_auth_options,tests.system.test_auth_lean,tests.server.test_lean -*-
"""
The stand-alone node's site: the comet service, root resource and site built from the plugin's options.
"""

from typing import Any, Callable, Dict

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.static import File
from zope.interface import implementer

from txcomet._demo.page import IndexPage
from txcomet._server.guard import ConnectionGuard
from txcomet._server.lean import LeanSite
from txcomet._server.service import Comet
from txcomet._transports.http import CometRequest, redactedLogFormatter

log = Logger()


def makeComet(options: Any, bus: Any = None, stop: Any = None) -> Comet:
    """
    The L{Comet} service for C{options}: on C{bus} if given, else on the
    Redis bus of C{--redis}, else on an in-memory bus.

    On the Redis bus of C{--redis}, a bus that cannot start (Redis gone
    between the check in C{makeService} and the start) stops the server
    with a clear message instead of leaving it half alive.

    @param stop: called with no arguments to stop the server in that
        case (default: the global reactor's C{stop}).
    """
    if bus is not None:
        return Comet(bus=bus, config=options["config"])
    bus = options.get("bus")
    comet = Comet(bus=bus, config=options["config"])
    if bus is not None:
        if stop is None:
            from twisted.internet import reactor

            stop = reactor.stop

        def cannotStart(failure: Any) -> None:
            log.critical("txcomet cannot start: {why}", why=failure.getErrorMessage())
            stop()

        comet.whenReady().addErrback(cannotStart)
    return comet


def makeRoot(options: Any, comet: Comet) -> Resource:
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


class _UnloggedSite(LeanSite):
    """
    A site that keeps no access log; its long-poll and poll requests may
    take the lean path (see L{txcomet._server.lean}) when L{makeSite} gives it
    their routes.
    """

    def log(self, request: Any) -> None:
        pass


def makeSite(options: Any, comet: Comet, root: Any = None) -> Site:
    """
    The L{Site} serving C{root} (by default L{makeRoot}), with or without
    an access log.  It takes no lean route yet: L{leanRoutes} gives them.
    """
    factory = _UnloggedSite if options["no-access-log"] else Site
    if root is None:
        root = makeRoot(options, comet)
    # A token in a URL (token=, auth=) never reaches the access log.
    site = factory(root, requestFactory=CometRequest, logFormatter=redactedLogFormatter)
    site.displayTracebacks = False
    return site


def guardedFactory(options: Any, site: Site) -> ConnectionGuard:
    """
    C{site} behind the connection guard the options describe: deadlines
    for request heads, and caps on connections in all and per client
    address (see L{txcomet._server.guard}).
    """
    from twisted.internet import reactor

    perAddress = options["max-connections-per-address"]
    return ConnectionGuard(
        site,
        reactor,
        headTimeout=options["head-timeout"],
        maxConnections=options["max-connections"],
        maxPerAddress=perAddress if perAddress else 2**62,
        trustedProxies=options["trustedProxies"],
    )


def leanRoutes(options: Any, comet: Comet) -> Dict[bytes, Resource]:
    """
    The request paths of the control channel and the polling transports
    (long-polling and short polling), and the publish API's prefix
    (C{<mount>/publish/}), and their resources, for a L{LeanSite}.  Only
    the one-process server uses them: with workers, a request may be for
    another worker's session, which the worker router in front of the
    resources forwards.
    """
    prefix = b"/" + b"/".join(options["prefixSegments"])
    children = comet.resource.children
    routes = {prefix + b"/" + name: children[name] for name in (b"control", b"longpoll", b"poll") if name in children}
    if b"publish" in children:
        routes[prefix + b"/publish/"] = children[b"publish"]
    return routes


@implementer(IStreamServerEndpoint)
class WhenReadyEndpoint:
    """
    A server endpoint that starts listening only once C{ready()} fires, so
    a node takes no request before its bus is connected to the other
    nodes.  Stopping the listening service before then cancels the wait
    (and only the wait).

    @ivar endpoint: the endpoint listened on once ready.
    """

    def __init__(self, endpoint: IStreamServerEndpoint, ready: Callable[[], Deferred]) -> None:
        self.endpoint = endpoint
        self._ready = ready

    def listen(self, protocolFactory: Any) -> Deferred:
        waiting = self._ready()
        d: Deferred = Deferred(lambda _: waiting.cancel())
        waiting.addCallback(lambda _: self.endpoint.listen(protocolFactory))
        waiting.chainDeferred(d)
        return d


def warnOpenPublish(options: Any) -> None:
    """
    Log a warning when the server is open (no channel rules, tokens or
    hooks: anyone may subscribe to anything) and when the publish API is
    open (no publisher secret).
    """
    if options["config"].isOpen:
        log.warn(
            "No channel rules, tokens or hooks: this server is OPEN. Anyone who reaches it may subscribe"
            " to any channel (** reads them all) and publish. Set --config, --token-secret or a hook"
            " (docs/auth.md)."
        )
    config = options["config"]
    if config.apiKey is None:
        log.warn(
            "No API key: the server API ({prefix}/api) and the metrics answer only clients on this machine"
            " (loopback, no proxy headers). Set --api-key or TXCOMET_API_KEY to reach them from elsewhere.",
            prefix=options["prefix"],
        )
    if config.publisherSecret is None and config.apiKey is None:
        log.warn(
            "No publisher secret or API key: the publish API ({prefix}/publish) answers only clients on this"
            " machine. Set --publisher-secret (TXCOMET_PUBLISHER_SECRET) or --api-key.",
            prefix=options["prefix"],
        )


def metricsService(options: Any, comet: Comet) -> Any:
    """
    The C{--metrics-listen} endpoint's service, or C{None} without one:
    C{GET /metrics} there answers anyone who reaches it (choose its
    interface accordingly), with no API key.
    """
    description = options["metrics-listen"]
    if description is None:
        return None
    from twisted.application.internet import StreamServerEndpointService
    from twisted.internet import reactor
    from twisted.internet.endpoints import serverFromString

    from txcomet._server.metrics import MetricsResource
    from txcomet._version import __version__

    from txcomet._transports.http import NotFound

    root = Resource()
    # Anything but /metrics is a JSON 404.
    root.getChild = lambda path, request: NotFound(comet.hub.config)  # type: ignore[method-assign]
    root.putChild(b"metrics", MetricsResource(comet, __version__, guarded=False))
    site = Site(root)
    site.noisy = False
    endpoint = WhenReadyEndpoint(serverFromString(reactor, description), comet.whenReady)
    return StreamServerEndpointService(endpoint, site)
