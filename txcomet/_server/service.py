# -*- test-case-name: tests.test_layers,tests.node.test_auth_options,tests.server.test_health,tests.server.test_revocation -*-
"""
L{Comet}: the service an application adds, holding the hub and the resource.
"""

from typing import Any, List, Optional

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.python.failure import Failure

from txcomet._model.config import CometConfig
from txcomet._server.resource import CometResource
from txcomet._sessions.revocation import Revocations
from txcomet._server.api import APIResource, ServerAPI, installAnswerers
from txcomet._server.admin import installAdmin
from txcomet._server.health import HealthResource
from txcomet._server.metrics import installMetrics
from txcomet._sessions.cluster import Cluster
from txcomet._version import __version__
from txcomet._sessions.hub import Hub
from txcomet.interfaces import IAuthorizer, IEventBus


class Comet(Service):
    """
    A txcomet server to embed in a Twisted application: mount
    L{resource} in a site, make this service a child of the application's,
    and publish from application code with L{publish}.

        comet = Comet()
        root.putChild(b"comet", comet.resource)
        comet.setServiceParent(application)
        comet.publish("news", {"headline": "..."})

    @ivar hub: the L{Hub}: sessions, bus, configuration.
    @ivar resource: the L{CometResource} to mount.
    """

    name = "txcomet"
    #: Whether C{<prefix>/metrics} answers for every node on the bus (the
    #: workers of one C{--workers} group, set by the node assembly) rather
    #: than for this one.
    metricsGroup = False

    def __init__(
        self,
        bus: Optional[IEventBus] = None,
        config: Optional[CometConfig] = None,
        clock: Any = None,
        authorizer: Optional[IAuthorizer] = None,
    ) -> None:
        if authorizer is None and config is not None and not config.isOpen:
            from txcomet._auth.authorizer import authorizerFromConfig

            if clock is None:
                from twisted.internet import reactor as clock
            authorizer = authorizerFromConfig(config, clock)
        self.hub = Hub(bus=bus, config=config, clock=clock, authorizer=authorizer)
        self.resource = CometResource(self.hub)
        self.resource.putChild(b"health", HealthResource(self.hub, lambda: self._ready))
        self.revocations = Revocations(self.hub)
        #: This node in the cluster sharing its bus: asks and answers the
        #: server API's questions for every node.
        self.cluster = Cluster(self.hub)
        #: The server API (docs/operations.md): C{comet.api.call("info")}.
        self.api = ServerAPI(self)
        installAnswerers(self, __version__)
        self.resource.putChild(b"api", APIResource(self.api))
        installMetrics(self, __version__)
        #: The admin page's tickets (L{txcomet._server.admin.AdminTickets}).
        self.adminTickets: Any = None
        self.adminFeed = installAdmin(self, __version__)
        self._ready = False
        self._startFailure: Optional[Failure] = None
        self._waiting: List[Deferred] = []

    @property
    def bus(self) -> IEventBus:
        return self.hub.bus

    @property
    def config(self) -> CometConfig:
        return self.hub.config

    def startService(self) -> Deferred:
        """
        Start the bus, then the transports' services; then fire every
        L{whenReady}.  If the start fails, the failure goes to those
        waiting on L{whenReady} (and, with nobody waiting, stays on the
        L{Deferred} returned here).
        """
        Service.startService(self)
        self._startFailure = None
        d = self.hub.start()
        d.addCallback(lambda _: self.revocations.start())
        d.addCallback(lambda _: self.cluster.start())
        d.addCallback(lambda _: self.adminFeed.startService())
        d.addCallback(lambda _: self.resource.transportServices.startService())
        d.addBoth(self._settleReady)
        return d

    def _settleReady(self, result: Any) -> Any:
        waiting, self._waiting = self._waiting, []
        if isinstance(result, Failure):
            self._startFailure = result
            for d in waiting:
                d.errback(result)
            return None if waiting else result
        self._ready = True
        for d in waiting:
            d.callback(None)
        return result

    def whenReady(self) -> Deferred:
        """
        A L{Deferred} that fires (with C{None}) once this service has
        started and its bus is connected, or at once if it has; it fails
        with the reason if the start failed.  Cancelling it stops only
        this wait.  A node listens for requests only once it fires.
        """
        if self._startFailure is not None:
            return fail(self._startFailure)
        if self._ready:
            return succeed(None)
        d: Deferred = Deferred(self._waiting.remove)
        self._waiting.append(d)
        return d

    def stopService(self) -> Deferred:
        """
        Close every session (reason C{shutdown}), then stop the transports'
        services (which end the connections left, such as WebSockets that
        never joined), then the bus.
        """
        Service.stopService(self)
        self._ready = False
        self.hub.closeAll("shutdown")
        if self.adminFeed.running:
            self.adminFeed.stopService()
        if self.cluster.running:
            self.cluster.stop()
        transports = self.resource.transportServices
        d = maybeDeferred(transports.stopService) if transports.running else succeed(None)
        # The sessions are closed already: stop only the bus.
        d.addCallback(lambda _: self.hub.bus.stop())
        stop = getattr(self.hub.authorizer, "stop", None)
        if stop is not None:
            # The hooks' and key set's connections.
            d.addCallback(lambda _: stop())
        return d

    def publish(self, channel: str, data: Any) -> Deferred:
        """
        Publish C{data} (any JSON value) on C{channel}.

        @return: a L{Deferred} firing with the published L{IEvent}.
        """
        return self.hub.publish(channel, data)

    def disconnect(self, user: str, reason: str = "kicked") -> Deferred:
        """
        Close every session of C{user} (the C{sub} of its token) on every
        node sharing the bus, at once, with close reason C{reason}
        (C{kicked} by default); clients are told not to reconnect.

        @return: a L{Deferred} firing once the order is on the bus.
        """
        return self.revocations.disconnect(user, reason)

    def unsubscribe(self, user: str, channel: str) -> Deferred:
        """
        End C{user}'s subscription to C{channel} (and any wildcard one
        matching it) on every node sharing the bus.

        @return: a L{Deferred} firing once the order is on the bus.
        """
        return self.revocations.unsubscribe(user, channel)

    def addBayeuxService(self, channel: str, handler: Any) -> None:
        """
        Hand what Bayeux clients publish on C{channel} (C{/service/...},
        or C{/service/**} for every service channel without a handler of
        its own) to C{handler(session, channel, data)} instead of the bus.
        Its answer (a JSON value, C{None} for none, or a L{Deferred} of
        one) goes back to that client only, in the publish's reply.
        """
        self.resource.bayeux.endpoint.addService(channel, handler)

    def presence(self, channel: str) -> Deferred:
        """
        Who is on C{channel}: a L{Deferred} firing with a list of member
        dicts (C{client}, and C{user}/C{info} where given).
        """
        return self.hub.bus.members(channel)

    def history(self, channel: str, since: Optional[str] = None, limit: int = 100, order: str = "oldest") -> Deferred:
        """
        The events C{channel} retains after C{since} (all retained when
        C{None}), at most C{limit}, oldest first or (C{order="newest"})
        newest first: a L{Deferred} firing with the server API's answer,
        C{{"events": [...], "complete": bool, "position": id}}.
        """
        params: dict = {"channel": channel, "limit": limit, "order": order}
        if since is not None:
            params["since"] = since
        return self.api.call("history", params)

    def channels(self, pattern: Optional[str] = None) -> Deferred:
        """
        The channels with subscribers on any node sharing the bus (those
        C{pattern} matches, if given), with their subscriber counts.
        """
        return self.api.call("channels", {} if pattern is None else {"pattern": pattern})

    def info(self) -> Deferred:
        """
        Each node's figures: version, uptime, sessions, connections by
        transport, subscriptions, channels, memory.
        """
        return self.api.call("info")
