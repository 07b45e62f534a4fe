# -*- test-case-name: tests.node.test_tap,tests.transports.test_websocket,tests.node.test_auth_options,tests.node.test_site -*-
"""
The C{txcomet} twistd plugin: C{twist txcomet} or C{twistd -n txcomet}.

Options follow twisted.web's tap: a repeatable C{--listen} takes endpoint
strings (C{tcp:8080}, C{ssl:8443:privateKey=key.pem}, C{unix:/run/comet.sock}).
"""

import os
from typing import Any, List

from twisted.application import strports
from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService
from twisted.python import usage
from twisted.web.resource import Resource
from twisted.web.server import Site

from txcomet._demo.chart import CounterService
from txcomet._demo.page import IndexPage
from txcomet._model.config import CometConfig
from txcomet._node.site import (
    WhenReadyEndpoint,
    guardedFactory,
    leanRoutes,
    makeComet,
    makeRoot,
    makeSite,
    metricsService,
    warnOpenPublish,
)


def _timestamp(value: str) -> float:
    """
    Seconds since the epoch, from a number or an ISO 8601 time with an
    offset.
    """
    try:
        return float(value)
    except ValueError:
        pass
    from datetime import datetime

    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise usage.UsageError("%r is neither seconds since the epoch nor an ISO 8601 time" % (value,))
    if moment.tzinfo is None:
        raise usage.UsageError("%r has no UTC offset (add +00:00)" % (value,))
    return moment.timestamp()


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
         "(default: $TXCOMET_PUBLISHER_SECRET; with neither it nor --api-key, the publish API answers "
         "only clients on this machine)."],
        ["api-key", None, None, "The key the server API (<prefix>/api) and the metrics require, as X-API-Key "
         "or Authorization: Bearer; the publish API takes it too (default: $TXCOMET_API_KEY; unset: they "
         "answer only clients on this machine)."],
        ["metrics-listen", None, None, "An endpoint serving GET /metrics to anyone who reaches it, with no API key "
         "(e.g. tcp:9100:interface=10.0.0.5 on a private network); the metrics stay at <prefix>/metrics too. "
         "With --workers, worker 0 serves it for the whole group."],
        ["static", None, None, "A directory to serve at / instead of the demo page."],
        ["redis", None, None, "Share a bus with other txcomet nodes through Redis: "
         "redis://[[user]:password@]host[:port][/db], rediss://... (TLS) or unix:///path?db=N; "
         "the query may set prefix=, history_age= (seconds, default 3600), presence_ttl= "
         "(seconds, default 30) and outage= (refuse: publishes fail with 503 while Redis is unreachable, "
         "the default; local: they reach this node's subscribers only). "
         "Default: $TXCOMET_REDIS; unset: an in-memory bus."],
        ["ws-ping-timeout", None, 10.0, "Seconds a WebSocket peer has to answer a ping "
         "(sent every --heartbeat seconds) before it is dropped.", _positiveFloat],
        ["workers", None, 1, "Worker processes serving the same tcp: port(s) with SO_REUSEPORT, sharing one bus "
         "through the process started, which supervises them and starts again any that dies (one per core).", _count],
        ["token-secret", None, None, "The shared secret of HS256/384/512 connection tokens "
         "(default: $TXCOMET_TOKEN_SECRET; prefer the environment: a command line is visible to other users)."],
        ["token-public-key", None, None, "A PEM public key (RSA, EC or Ed25519) for RS*/PS*/ES*/EdDSA tokens."],
        ["token-jwks", None, None, "The URL of a JWKS key set for tokens (fetched, cached, refetched on an unknown kid)."],
        ["token-previous-secret", None, None, "During a key rotation: the previous secret, accepted until "
         "--token-previous-until (default: $TXCOMET_TOKEN_PREVIOUS_SECRET)."],
        ["token-previous-public-key", None, None, "During a key rotation: the previous PEM public key."],
        ["token-previous-until", None, None, "When the previous key stops being accepted: seconds since the "
         "epoch or an ISO 8601 time with its offset (2026-01-31T12:00:00+00:00)."],
        ["token-audience", None, None, "The aud claim tokens must carry."],
        ["token-issuer", None, None, "The iss claim tokens must carry."],
        ["token-leeway", None, 5.0, "Seconds of clock skew allowed on exp, nbf and iat.", float],
        ["token-grace", None, 30.0, "Seconds a session outlives its token's exp without a refresh "
         "before it is closed (token_expired).", float],
        ["connect-hook", None, None, "A backend URL asked (JSON POST) whether a client may connect."],
        ["subscribe-hook", None, None, "A backend URL asked whether a session may subscribe."],
        ["publish-hook", None, None, "A backend URL asked whether a session may publish."],
        ["hook-timeout", None, 1.0, "Seconds a hook has to answer; then the request is refused (503 unavailable).",
         _positiveFloat],
        ["hook-headers", None, "cookie,authorization", "The request headers forwarded to hooks, comma-separated."],
        ["control-rate", None, 50.0, "Control operations a session may make per second on average "
         "(past --control-burst in a row: 429 rate_limited; 0: no limit).", float],
        ["control-burst", None, 200, "Control operations a session may make at once.", _count],
        ["head-timeout", None, 10.0, "Seconds a client has to send a complete request head, from its first "
         "byte (or the connection's start); then the connection is closed (0: no limit).", float],
        ["max-connections", None, None, "Connections open at once; more are answered 503 and closed "
         "(default: the open-files limit less 256).", _count],
        ["max-connections-per-address", None, 1000, "Connections open at once from one client address; "
         "more are answered 429 too_many_connections (0: no limit).", _count],
        ["worker-hub", None, None, "(Internal: set by the supervisor for the workers it starts.) The UNIX socket of the bus hub."],
        ["worker-index", None, 0, "(Internal.) This worker's number.", _count],
    ]
    optFlags = [
        ["no-client-publish", None, "Sessions may not publish through the control channel."],
        ["token-required", None, "Joining needs a connection token (else clients without one join anonymously "
         "and the rules decide what they may do)."],
        ["token-require-sub", None, "A connection token must name its user (sub)."],
        ["ws-compression", None, "Let WebSocket clients negotiate permessage-deflate (costs "
         "CPU per connection: a compressed connection cannot share the frame built once per event)."],
        ["no-access-log", None, "Do not log every HTTP request (at thousands of long-polls a second, "
         "formatting the access log is a fifth of the server's work); turns on --lean-http unless "
         "--no-lean-http is given."],
        ["lean-http", None, "With one process, plain HTTP/1.1 control, long-poll, poll and publish requests take a "
         "lean path past twisted.web's per-request work (same answers; they are not logged, so this needs "
         "--no-access-log). Default: on with --no-access-log, else off."],
        ["no-lean-http", None, "Every request goes through twisted.web, even with --no-access-log."],
    ]

    def __init__(self) -> None:
        usage.Options.__init__(self)
        self["listen"] = []
        self["allowedOrigins"] = []
        self["trustedProxies"] = []
        self["rulesPath"] = None

    def opt_listen(self, endpoint: str) -> None:
        """
        An endpoint to serve on (repeatable; default tcp:8080), e.g.
        tcp:8080, tcp:8080:interface=127.0.0.1, ssl:8443:privateKey=key.pem,
        unix:/run/txcomet.sock.
        """
        self["listen"].append(endpoint)

    def opt_config(self, path: str) -> None:
        """
        The channel rules file (TOML): who may subscribe, publish, see
        presence and history on which channels (docs/auth.md).  Without it
        (and without tokens or hooks) the server is open.
        """
        self["rulesPath"] = os.path.abspath(path)

    def opt_trust_proxy(self, address: str) -> None:
        """
        The address of a reverse proxy in front of txcomet (repeatable): its
        connections count against the client address it names in
        X-Forwarded-For (or Forwarded), not against its own.
        """
        self["trustedProxies"].append(address)

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
        if self["api-key"] is None:
            self["api-key"] = os.environ.get("TXCOMET_API_KEY") or None
        if self["token-secret"] is None:
            self["token-secret"] = os.environ.get("TXCOMET_TOKEN_SECRET") or None
        if self["token-previous-secret"] is None:
            self["token-previous-secret"] = os.environ.get("TXCOMET_TOKEN_PREVIOUS_SECRET") or None
        previousKey: Any = self["token-previous-secret"]
        if self["token-previous-public-key"] is not None:
            try:
                with open(self["token-previous-public-key"], "rb") as f:
                    previousKey = f.read()
            except OSError as e:
                raise usage.UsageError("--token-previous-public-key: %s" % (e.strerror,))
        previousUntil = None
        if self["token-previous-until"] is not None:
            previousUntil = _timestamp(self["token-previous-until"])
        try:
            self["config"] = CometConfig(
                heartbeat=self["heartbeat"],
                sessionTimeout=self["session-timeout"],
                historyLength=self["history"],
                queueMessages=self["queue-messages"],
                queueBytes=self["queue-bytes"],
                maxMessageSize=self["max-message-size"],
                controlRate=self["control-rate"],
                controlBurst=self["control-burst"],
                allowedOrigins=self["allowedOrigins"],
                publisherSecret=self["publisher-secret"],
                apiKey=self["api-key"],
                clientPublish=not self["no-client-publish"],
                recycleBytes=self["recycle-bytes"],
                webSocketPingTimeout=self["ws-ping-timeout"],
                webSocketCompression=bool(self["ws-compression"]),
                tokenSecret=self["token-secret"],
                tokenPublicKey=self["token-public-key"],
                tokenJWKS=self["token-jwks"],
                tokenPreviousKey=previousKey,
                tokenPreviousUntil=previousUntil,
                tokenAudience=self["token-audience"],
                tokenIssuer=self["token-issuer"],
                tokenLeeway=self["token-leeway"],
                tokenGrace=self["token-grace"],
                tokenRequired=bool(self["token-required"]),
                tokenRequireSub=bool(self["token-require-sub"]),
                rulesPath=self["rulesPath"],
                connectHook=self["connect-hook"],
                subscribeHook=self["subscribe-hook"],
                publishHook=self["publish-hook"],
                hookTimeout=self["hook-timeout"],
                hookHeaders=[h.strip() for h in self["hook-headers"].split(",") if h.strip()],
            )
        except ValueError as e:
            raise usage.UsageError(str(e))
        if not self["config"].isOpen:
            # Read the keys and the rules file now: a mistake is a usage
            # error, not a server that refuses everyone.
            from twisted.internet.task import Clock

            from txcomet._auth.authorizer import authorizerFromConfig

            try:
                authorizerFromConfig(self["config"], Clock())
            except ValueError as e:
                raise usage.UsageError(str(e))
        if self["redis"] is None:
            self["redis"] = os.environ.get("TXCOMET_REDIS") or None
        self["bus"] = None
        if self["redis"] is not None:
            from txcomet._bus.redis import RedisBus

            try:
                self["bus"] = RedisBus.fromURL(self["redis"], historyLength=self["history"])
            except ValueError as e:
                raise usage.UsageError("--redis: %s" % (e,))
        for endpoint in self["listen"]:
            try:
                strports.service(endpoint, Site(Resource()))
            except (ValueError, KeyError, TypeError) as e:
                raise usage.UsageError("--listen %s is not a valid endpoint: %s" % (endpoint, e))
        if self["metrics-listen"] is not None:
            try:
                strports.service(self["metrics-listen"], Site(Resource()))
            except (ValueError, KeyError, TypeError) as e:
                raise usage.UsageError("--metrics-listen %s is not a valid endpoint: %s" % (self["metrics-listen"], e))
        if self["lean-http"] and self["no-lean-http"]:
            raise usage.UsageError("--lean-http and --no-lean-http contradict each other")
        if self["lean-http"] and not self["no-access-log"]:
            raise usage.UsageError("--lean-http needs --no-access-log: requests on the lean path are not logged")
        # The lean path serves one process only; with --workers it is unused.
        self["leanHTTP"] = bool(self["no-access-log"] and not self["no-lean-http"])
        if self["workers"] < 1:
            raise usage.UsageError("--workers is 1 or more")
        if self["workers"] > 1 or self["worker-hub"] is not None:
            for endpoint in self["listen"]:
                if endpoint.split(":", 1)[0] not in ("tcp", "tcp6"):
                    raise usage.UsageError(
                        "--workers shares tcp: ports between processes; --listen %s is not one" % (endpoint,)
                    )


def makeService(options: Options) -> MultiService:
    """
    The txcomet server: the L{Comet} service, then one listening service per
    C{--listen} endpoint, all serving one site; the ports open once the
    comet service is ready (L{Comet.whenReady}).
    """
    if options.get("bus") is not None:
        from txcomet._bus.resp import RedisUnavailable, probe

        try:
            probe(options["bus"].address)
        except RedisUnavailable as e:
            raise SystemExit("txcomet: %s" % (e,))
    if options["workers"] > 1 or options["worker-hub"] is not None:
        from txcomet._node.workers import makeWorkerService

        return makeWorkerService(options)
    from twisted.internet import reactor
    from twisted.internet.endpoints import serverFromString

    service = MultiService()
    comet = makeComet(options)
    comet.setServiceParent(service)
    root = makeRoot(options, comet)
    if isinstance(root, IndexPage):
        # The demo's chart counts every event on the bus.
        CounterService(comet.bus, root.counter).setServiceParent(service)
    site = makeSite(options, comet, root)
    if options["leanHTTP"]:
        site.leanRoutes = leanRoutes(options, comet)
    guarded = guardedFactory(options, site)
    for description in options["listen"]:
        endpoint = WhenReadyEndpoint(serverFromString(reactor, description), comet.whenReady)
        StreamServerEndpointService(endpoint, guarded).setServiceParent(service)
    metrics = metricsService(options, comet)
    if metrics is not None:
        metrics.setServiceParent(service)
    warnOpenPublish(options)
    return service
