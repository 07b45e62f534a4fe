# -*- test-case-name: tests.system.test_workers,tests.bus.test_workers,tests.node.test_auth_options,tests.bus.test_workers_bayeux -*-
"""
Several worker processes serving one port (C{twist txcomet --workers N}).

One Python process uses one core.  With C{--workers N} the process started
is the group's supervisor (L{makeSupervisor}): it holds the bus hub and the
ports, and starts N workers (L{WorkerPool}), starting again any that dies.
Every worker listens on the same TCP port with C{SO_REUSEPORT}
(L{ReusePortEndpoint}), so the kernel spreads new connections over them,
and the workers share one bus through the hub (L{txcomet._bus.workers}).

Sessions belong to the worker that made them; their ids start with the
worker's number (C{Hub.sessionPrefix}).  Each worker also serves its site
on a private UNIX socket, and a request that names another worker's
session (C{session=} in the query, or in a control message's body) is
forwarded there by L{WorkerRouter}, streaming answers included, so a
browser's connections may land on any worker.  Join-listen data channels,
WebSocket connections and the publish API are served where they land.
"""

import json
import os
import secrets
import shutil
import socket
import sys
import tempfile
from io import BytesIO
from typing import Any, Dict, List, Optional
from urllib.parse import parse_qs

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService, Service
from twisted.internet import error
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.endpoints import UNIXClientEndpoint, UNIXServerEndpoint
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.internet.protocol import ProcessProtocol, Protocol
from twisted.logger import Logger
from twisted.web.client import Agent, FileBodyProducer
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from txcomet._bus.workers import BusHub, HubClient, WorkerBus
from txcomet._demo.chart import CounterService
from txcomet._demo.page import IndexPage
from txcomet._model.errors import CometError
from txcomet._server.admin import TICKET_SECRET_ENV
from txcomet._node.site import guardedFactory, makeComet, makeRoot, makeSite, metricsService, warnOpenPublish
from txcomet._transports.http import writeError

log = Logger()


@implementer(IStreamServerEndpoint)
class ReusePortEndpoint:
    """
    A TCP server endpoint whose socket has C{SO_REUSEPORT}, so several
    processes can listen on the same port and the kernel balances new
    connections between them.

    @ivar port: the port number asked for (0: any free port).
    """

    def __init__(self, reactor: Any, port: int, interface: str = "", backlog: int = 50, after: Any = None) -> None:
        self.reactor = reactor
        self.port = port
        self.interface = interface
        self.backlog = backlog
        self.after = after

    def listen(self, factory: Any) -> Deferred:
        """
        Listen with C{factory}, once the L{Deferred} returned by C{after}
        (if given: the bus being ready) has fired.
        """
        if self.after is not None:
            return self.after().addCallback(lambda _: self._listen(factory))
        return self._listen(factory)

    def _listen(self, factory: Any) -> Deferred:
        family = socket.AF_INET6 if ":" in self.interface else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((self.interface, self.port))
            sock.listen(self.backlog)
            sock.setblocking(False)
            port = self.reactor.adoptStreamPort(sock.fileno(), family, factory)
        except OSError as e:
            sock.close()
            return fail(error.CannotListenError(self.interface, self.port, e))
        sock.close()
        return succeed(port)


def reusePortEndpoint(reactor: Any, description: str, after: Any = None) -> ReusePortEndpoint:
    """
    A L{ReusePortEndpoint} for a C{tcp:} (or C{tcp6:}) endpoint string;
    L{ValueError} for any other kind.
    """
    from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint, serverFromString

    endpoint = serverFromString(reactor, description)
    if not isinstance(endpoint, (TCP4ServerEndpoint, TCP6ServerEndpoint)):
        raise ValueError("--workers needs tcp: endpoints, not %r" % (description,))
    return ReusePortEndpoint(reactor, endpoint._port, endpoint._interface, endpoint._backlog, after)


# ------------------------------------------------------------------ sessions


def workerSocket(directory: str, index: int) -> str:
    """
    The path of worker C{index}'s private UNIX socket.
    """
    return os.path.join(directory, "worker-%d.sock" % (index,))


def sessionOwner(sessionId: object, workers: int) -> Optional[int]:
    """
    The number of the worker that made C{sessionId}, or C{None} when the
    id names none (no prefix, or one out of range).
    """
    if isinstance(sessionId, bytes):
        sessionId = sessionId.decode("ascii", "replace")
    if not isinstance(sessionId, str):
        return None
    number, dot, _ = sessionId.partition(".")
    if not dot or not number.isdigit() or len(number) > 4:
        return None
    index = int(number)
    return index if index < workers else None


def bayeuxClientId(request: Any) -> Optional[str]:
    """
    The first C{clientId} in a Bayeux request's messages (a C{POST} body,
    JSON or a C{message=} form, or a C{GET}'s C{message=}), if any.
    """
    values = (request.args or {}).get(b"message")
    if values:
        raw = values[0]
    elif request.method == b"POST" and request.content is not None:
        raw = request.content.read(64 * 1024)
        request.content.seek(0)
        if raw.startswith(b"message="):
            raw = parse_qs(raw).get(b"message", [b""])[0]
    else:
        return None
    try:
        messages = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if isinstance(messages, dict):
        messages = [messages]
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict) and isinstance(message.get("clientId"), str):
                return message["clientId"]
    return None


class WorkerRouter(Resource):
    """
    The root of a worker's public site: a request for another worker's
    session is forwarded to that worker's private socket; everything else
    is served by C{root} here.

    @param controlPath: the control channel's path (C{b"/comet/control"}),
        whose POST bodies may name a session.
    """

    def __init__(self, root: Resource, index: int, workers: int, directory: str, controlPath: bytes, reactor: Any) -> None:
        Resource.__init__(self)
        self.root = root
        self.index = index
        self.workers = workers
        self.directory = directory
        self.controlPath = controlPath
        #: The Bayeux endpoint's path, beside the control channel's.
        self.bayeuxPath = controlPath.rpartition(b"/")[0] + b"/bayeux"
        self.reactor = reactor

    def ownerOf(self, request: Any) -> Optional[int]:
        """
        The worker whose session C{request} is for, if it names one.
        """
        values = (request.args or {}).get(b"session")
        if values:
            return sessionOwner(values[0], self.workers)
        if request.method == b"POST" and request.path == self.controlPath and request.content is not None:
            body = request.content.read(64 * 1024)
            request.content.seek(0)
            try:
                message = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                return None
            if isinstance(message, dict):
                return sessionOwner(message.get("session"), self.workers)
        if request.path == self.bayeuxPath or request.path.startswith(self.bayeuxPath + b"/"):
            return sessionOwner(bayeuxClientId(request), self.workers)
        return None

    def getChildWithDefault(self, path: bytes, request: Any) -> Resource:
        if request.getHeader("upgrade") is None:
            owner = self.ownerOf(request)
            if owner is not None and owner != self.index:
                return ForwardResource(self.reactor, workerSocket(self.directory, owner))
        return self.root.getChildWithDefault(path, request)

    def render(self, request: Any) -> Any:
        return self.root.render(request)


@implementer(IAgentEndpointFactory)
class _SocketEndpoints:
    """
    Every URI is reached through one UNIX socket.
    """

    def __init__(self, reactor: Any, path: str) -> None:
        self.reactor = reactor
        self.path = path

    def endpointForURI(self, uri: Any) -> UNIXClientEndpoint:
        return UNIXClientEndpoint(self.reactor, self.path)


class _Relay(Protocol):
    """
    Streams a forwarded answer's body into the original request.
    """

    def __init__(self, request: Any) -> None:
        self.request = request
        self.gone = False

    def dataReceived(self, data: bytes) -> None:
        if not self.gone:
            self.request.write(data)

    def connectionLost(self, reason: Any = None) -> None:
        if not self.gone:
            self.gone = True
            self.request.finish()

    def stop(self) -> None:
        """
        The client went away: drop the forwarded request.
        """
        self.gone = True
        if self.transport is not None:
            self.transport.stopProducing()


#: Headers that belong to one connection, not to the request or answer.
_HOP_BY_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"te", b"upgrade", b"proxy-connection"}


class ForwardResource(Resource):
    """
    Forwards a request, as it came, to another worker's private socket,
    and streams the answer back.
    """

    isLeaf = True

    def __init__(self, reactor: Any, path: str) -> None:
        Resource.__init__(self)
        self.reactor = reactor
        self.path = path

    def render(self, request: Any) -> Any:
        headers = Headers()
        for name, values in request.requestHeaders.getAllRawHeaders():
            if name.lower() not in _HOP_BY_HOP and name.lower() != b"content-length":
                headers.setRawHeaders(name, values)
        host = getattr(request.getClientAddress(), "host", None)
        if host is not None:
            headers.addRawHeader(b"X-Forwarded-For", host.encode("ascii"))
        body = None
        if request.content is not None:
            request.content.seek(0)
            data = request.content.read()
            if data or request.method in (b"POST", b"PUT"):
                body = FileBodyProducer(BytesIO(data))
        agent = Agent.usingEndpointFactory(self.reactor, _SocketEndpoints(self.reactor, self.path))
        d = agent.request(request.method, b"http://worker" + request.uri, headers, body)
        relay = _Relay(request)
        finished = request.notifyFinish()

        def answered(response: Any) -> None:
            if relay.gone:
                response.deliverBody(Protocol())
                return
            request.setResponseCode(response.code, response.phrase)
            for name, values in response.headers.getAllRawHeaders():
                if name.lower() not in _HOP_BY_HOP and name.lower() != b"content-length":
                    request.responseHeaders.setRawHeaders(name, values)
            response.deliverBody(relay)

        def failed(failure: Any) -> None:
            if relay.gone:
                return
            relay.gone = True
            request.write(writeError(request, CometError(
                "unknown_session", "The worker that held this session is not running."
            )))
            request.finish()

        def clientGone(failure: Any) -> None:
            if not relay.gone:
                relay.stop()
                d.cancel()

        d.addCallbacks(answered, failed)
        d.addErrback(lambda f: log.failure("Forwarding a request to another worker failed", f))
        finished.addErrback(clientGone)
        return NOT_DONE_YET


# ------------------------------------------------------------------ the pool


class _WorkerProcess(ProcessProtocol):
    def __init__(self, pool: "WorkerPool", index: int) -> None:
        self.pool = pool
        self.index = index
        self.ended: Deferred = Deferred()

    def processEnded(self, reason: Any) -> None:
        self.ended.callback(None)
        self.pool._ended(self, reason)


class WorkerPool(Service):
    """
    Starts workers 0..N-1, starts again any that exits while the pool runs
    (after L{restartDelay} seconds), and stops them all with itself.

    @param argv: a callable given the worker's index, returning its command
        line.
    """

    restartDelay = 1.0

    def __init__(self, reactor: Any, count: int, argv: Any, env: Optional[dict] = None) -> None:
        self.reactor = reactor
        self.count = count
        self.argv = argv
        self.env = env if env is not None else dict(os.environ)
        self.processes: Dict[int, _WorkerProcess] = {}

    def startService(self) -> None:
        Service.startService(self)
        for index in range(self.count):
            self._spawn(index)

    def _spawn(self, index: int) -> None:
        argv = self.argv(index)
        process = _WorkerProcess(self, index)
        self.processes[index] = process
        log.info("Starting worker {index}", index=index)
        self.reactor.spawnProcess(process, argv[0], argv, env=self.env, childFDs={0: "w", 1: 1, 2: 2})

    def _ended(self, process: _WorkerProcess, reason: Any) -> None:
        if self.processes.get(process.index) is process:
            del self.processes[process.index]
        if self.running:
            log.warn("Worker {index} ended ({reason}); starting it again", index=process.index, reason=reason.value)
            self.reactor.callLater(self.restartDelay, self._respawn, process.index)

    def _respawn(self, index: int) -> None:
        if self.running and index not in self.processes:
            self._spawn(index)

    def stopService(self) -> Deferred:
        Service.stopService(self)
        from twisted.internet.defer import DeferredList

        waits = []
        for process in list(self.processes.values()):
            try:
                process.transport.signalProcess("TERM")
            except error.ProcessExitedAlready:
                continue
            killer = self.reactor.callLater(10, self._kill, process)
            process.ended.addBoth(lambda _, k=killer: k.active() and k.cancel())
            waits.append(process.ended)
        return DeferredList(waits)

    def _kill(self, process: _WorkerProcess) -> None:
        try:
            process.transport.signalProcess("KILL")
        except error.ProcessExitedAlready:
            pass


def workerCommand(options: Any, index: int, listens: List[str], hubPath: str) -> List[str]:
    """
    The command line of worker C{index}: this server's options, listening
    on the ports the supervisor resolved, joined to the hub at C{hubPath}.  (The
    publisher secret and a Redis URL go in the environment, not on a
    command line.)
    """
    argv = [sys.executable, "-m", "twisted", "txcomet"]
    for listen in listens:
        argv += ["--listen", listen]
    # Secrets travel in the environment, not on a command line.
    skip = {"publisher-secret", "api-key", "metrics-listen", "token-secret", "token-previous-secret", "redis", "worker-hub", "worker-index"}
    for parameter in options.optParameters:
        name = parameter[0]
        if name not in skip and options[name] is not None:
            argv.append("--%s=%s" % (name, options[name]))
    for flag in options.optFlags:
        if flag[0] not in skip and options[flag[0]]:
            argv.append("--" + flag[0])
    for origin in options["allowedOrigins"]:
        argv += ["--allow-origin", origin]
    for proxy in options["trustedProxies"]:
        argv += ["--trust-proxy", proxy]
    if options.get("rulesPath") is not None:
        argv += ["--config", options["rulesPath"]]
    if index == 0 and options["metrics-listen"] is not None:
        argv += ["--metrics-listen", options["metrics-listen"]]
    argv += ["--worker-hub", hubPath, "--worker-index", str(index)]
    return argv


# ------------------------------------------------------------------ assembly


class _RemoveDirectory(Service):
    """
    Removes a directory when the server stops.
    """

    def __init__(self, path: str) -> None:
        self.path = path

    def stopService(self) -> None:
        Service.stopService(self)
        shutil.rmtree(self.path, ignore_errors=True)


class PortHold:
    """
    A TCP port the supervisor binds (with C{SO_REUSEPORT}, never listening)
    for the life of the group: it resolves C{tcp:0} to one port for every
    worker, and keeps that port the group's while workers come and go.
    The kernel hands connections only to listening sockets, so this one
    takes none.

    @ivar description: the endpoint string the workers listen on.
    """

    def __init__(self, reactor: Any, description: str) -> None:
        endpoint = reusePortEndpoint(reactor, description)
        family = socket.AF_INET6 if ":" in endpoint.interface else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            self.socket.bind((endpoint.interface, endpoint.port))
        except OSError as e:
            self.socket.close()
            raise SystemExit("txcomet: cannot listen on %s: %s" % (description, e.strerror))
        port = self.socket.getsockname()[1]
        interface = endpoint.interface.replace(":", "\\:")
        self.description = (
            "tcp:%d:interface=%s:backlog=%d" % (port, interface, endpoint.backlog)
            if interface
            else "tcp:%d:backlog=%d" % (port, endpoint.backlog)
        )


class _Holds(Service):
    """
    Releases the supervisor's L{PortHold}s when the group stops.
    """

    def __init__(self, holds: List[PortHold]) -> None:
        self.holds = holds

    def stopService(self) -> None:
        Service.stopService(self)
        for hold in self.holds:
            hold.socket.close()


def makeWorkerService(options: Any) -> MultiService:
    """
    C{--workers N}: the process started is the group's supervisor
    (L{makeSupervisor}); it starts workers 0..N-1, each of which runs
    L{makeWorker}.
    """
    if options["worker-hub"] is None:
        return makeSupervisor(options)
    return makeWorker(options)


def workerEnvironment(options: Any) -> dict:
    """
    The environment of a worker: this one's, with the secrets (which never
    go on a command line, where other users could read them).
    """
    config = options["config"]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    if config.publisherSecret is not None:
        env["TXCOMET_PUBLISHER_SECRET"] = config.publisherSecret
    if config.apiKey is not None:
        env["TXCOMET_API_KEY"] = config.apiKey
    if config.tokenSecret is not None:
        env["TXCOMET_TOKEN_SECRET"] = config.tokenSecret
    if options["token-previous-secret"] is not None:
        env["TXCOMET_TOKEN_PREVIOUS_SECRET"] = options["token-previous-secret"]
    if options["redis"] is not None:
        env["TXCOMET_REDIS"] = options["redis"]
    if config.apiKey is None and not env.get(TICKET_SECRET_ENV):
        # The admin page's tickets are signed with a secret of the group's
        # (without an API key to derive it from), so that any worker
        # accepts a ticket another issued.
        env[TICKET_SECRET_ENV] = secrets.token_urlsafe(32)
    return env


def makeSupervisor(options: Any) -> MultiService:
    """
    The supervisor of a worker group: it serves no client itself.  It
    holds the bus hub, which numbers every event and relays it to every
    worker (with C{--redis} the workers are Redis nodes and no hub is
    needed), binds the ports (L{PortHold}), and starts the workers
    (L{WorkerPool}), starting again any that dies.  Killing a worker costs
    its clients their sessions (they join again on another worker and
    resume from the hub's history, losing nothing); killing the
    supervisor ends the group, as its workers stop when they lose the
    hub, so two numberings of events never coexist.
    """
    from twisted.internet import reactor

    config = options["config"]
    service = MultiService()
    directory = tempfile.mkdtemp(prefix="txcomet-workers-")
    hubPath = os.path.join(directory, "bus.sock")
    _RemoveDirectory(directory).setServiceParent(service)
    if options.get("bus") is None:
        hub = BusHub(config.historyLength)
        StreamServerEndpointService(UNIXServerEndpoint(reactor, hubPath), hub.factory()).setServiceParent(service)
    holds = [PortHold(reactor, description) for description in options["listen"]]
    _Holds(holds).setServiceParent(service)
    listens = [hold.description for hold in holds]
    WorkerPool(
        reactor,
        options["workers"],
        lambda index: workerCommand(options, index, listens, hubPath),
        workerEnvironment(options),
    ).setServiceParent(service)
    warnOpenPublish(options)
    return service


def makeWorker(options: Any) -> MultiService:
    """
    One worker of a group: a node on the hub's bus (or on Redis) that
    listens on the group's ports with C{SO_REUSEPORT}, serves its private
    UNIX socket for requests other workers forward to it, and forwards
    those for another worker's sessions.
    """
    from twisted.internet import reactor

    config = options["config"]
    index = options["worker-index"]
    service = MultiService()
    hubPath = options["worker-hub"]
    directory = os.path.dirname(hubPath)
    redisBus = options.get("bus")
    if redisBus is not None:
        # Every worker is a node of the Redis bus; no hub is needed.
        comet = makeComet(options)
        after = comet.whenReady
    else:
        bus = WorkerBus(HubClient(reactor, hubPath, onLost=reactor.stop), config.historyLength)
        comet = makeComet(options, bus)
        after = bus.whenStarted
    comet.hub.sessionPrefix = "%d." % (index,)
    # One scrape shows the group (on Redis, each node is scraped alone).
    comet.metricsGroup = redisBus is None
    comet.setServiceParent(service)
    root = makeRoot(options, comet)
    if isinstance(root, IndexPage):
        CounterService(comet.bus, root.counter).setServiceParent(service)
    # Requests for another worker's session reach it through its private
    # socket, which serves the same root without the router.  A worker
    # started again finds its predecessor's socket file: the pool starts
    # it only once that one has exited.
    private = workerSocket(directory, index)
    if os.path.exists(private):
        os.unlink(private)
    StreamServerEndpointService(UNIXServerEndpoint(reactor, private), makeSite(options, comet, root)).setServiceParent(
        service
    )
    controlPath = b"/" + b"/".join(options["prefixSegments"]) + b"/control"
    router = WorkerRouter(root, index, options["workers"], directory, controlPath, reactor)
    site = makeSite(options, comet, router)
    for description in options["listen"]:
        # Listen once the bus is connected: a worker takes no request it
        # could not publish or deliver for.
        endpoint = reusePortEndpoint(reactor, description, after=after)
        StreamServerEndpointService(endpoint, guardedFactory(options, site)).setServiceParent(service)
    # Worker 0 alone is given --metrics-listen, and serves it for the group.
    metrics = metricsService(options, comet)
    if metrics is not None:
        metrics.setServiceParent(service)
    return service
