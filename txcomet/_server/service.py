"""
L{Comet}: the service an application adds, holding the hub and the resource.
"""

from typing import Any, Optional

from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred, succeed

from txcomet._model.config import CometConfig
from txcomet._server.resource import CometResource
from txcomet._sessions.session import Hub
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

    def __init__(
        self,
        bus: Optional[IEventBus] = None,
        config: Optional[CometConfig] = None,
        clock: Any = None,
        authorizer: Optional[IAuthorizer] = None,
    ) -> None:
        self.hub = Hub(bus=bus, config=config, clock=clock, authorizer=authorizer)
        self.resource = CometResource(self.hub)

    @property
    def bus(self) -> IEventBus:
        return self.hub.bus

    @property
    def config(self) -> CometConfig:
        return self.hub.config

    def startService(self) -> Deferred:
        Service.startService(self)
        d = self.hub.start()
        d.addCallback(lambda _: self.resource.transportServices.startService())
        return d

    def stopService(self) -> Deferred:
        """
        Close every session (reason C{shutdown}), then stop the transports'
        services (which end the connections left, such as WebSockets that
        never joined), then the bus.
        """
        Service.stopService(self)
        self.hub.closeAll("shutdown")
        transports = self.resource.transportServices
        d = maybeDeferred(transports.stopService) if transports.running else succeed(None)
        d.addCallback(lambda _: self.hub.stop())
        return d

    def publish(self, channel: str, data: Any) -> Deferred:
        """
        Publish C{data} (any JSON value) on C{channel}.

        @return: a L{Deferred} firing with the published L{IEvent}.
        """
        return self.hub.publish(channel, data)

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
