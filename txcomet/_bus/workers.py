# -*- test-case-name: tests.bus.test_workers,tests.system.test_workers -*-
"""
The bus shared by worker processes (C{twist txcomet --workers N}).

The supervisor of the group holds the L{BusHub}: it numbers every event (so an id means the
same event on every worker), relays it to every worker over a UNIX socket,
and keeps presence.  Each worker's bus is a L{WorkerBus}: an L{InMemoryBus}
whose publishes go through the hub and whose subscribers, fan-out and
history are local, fed by the hub's relay in publish order.  An event is
relayed once per worker, then fanned out by each worker to its own
subscribers.

The process group itself (starting the workers, C{SO_REUSEPORT}, routing a
request to the worker holding its session) is the node's:
L{txcomet._node.workers}.
"""


import json
from typing import Any, Dict, List, Optional, Tuple

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.endpoints import UNIXClientEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.protocols.basic import Int32StringReceiver

from txcomet._model.channels import validateChannel
from txcomet._model.errors import CometError
from txcomet._model.event import Event, encodeJSON
from txcomet._bus.memory import InMemoryBus

log = Logger()

#: The largest relayed message: a message of the largest configurable size,
#: JSON-escaped, with room to spare.
MAX_RELAY_MESSAGE = 64 * 1024 * 1024


def _decode(data: bytes) -> dict:
    return json.loads(data.decode("utf-8"))


# ------------------------------------------------------------------ the bus


class WorkerBus(InMemoryBus):
    """
    One worker's view of the shared bus: local subscribers, fan-out and
    history, fed in publish order by the L{BusHub}; publishing and presence
    go through the hub.

    @ivar link: what reaches the hub (L{BusHub.localLink} in the supervisor, a
        L{HubClient} elsewhere).
    """

    def __init__(self, link: Any, historyLength: int = 100, maxChannels: int = 10000) -> None:
        InMemoryBus.__init__(self, historyLength, maxChannels, epoch="-")
        self.link = link
        self._last: Optional[Event] = None
        self._started: Any = None
        self._waiting: List[Deferred] = []
        link.bus = self

    def start(self) -> Deferred:
        def started(result: Any) -> Any:
            self._started = result if isinstance(result, Failure) else True
            waiting, self._waiting = self._waiting, []
            for d in waiting:
                if isinstance(result, Failure):
                    d.errback(result)
                else:
                    d.callback(None)
            return result

        return self.link.start().addBoth(started)

    def whenStarted(self) -> Deferred:
        """
        A L{Deferred} that fires once L{start} has connected this worker
        to the hub (or fails as it did).
        """
        if self._started is True:
            return succeed(None)
        if self._started is not None:
            return fail(self._started)
        d: Deferred = Deferred()
        self._waiting.append(d)
        return d

    def stop(self) -> Deferred:
        return self.link.stop()

    def joined(self, epoch: str, offset: int) -> None:
        """
        The hub's epoch and position when this worker joined it.  History
        before that position was never seen here, so it is not covered.
        """
        self.epoch = epoch
        self._offset = offset
        self._forgottenThrough = offset

    def received(self, channel: str, data: Any, kind: str, offset: int, store: bool) -> Event:
        """
        An event relayed by the hub: remember it and deliver it here.
        """
        self._offset = offset
        event = self._last = Event(channel, data, self.epoch, offset, kind)
        if store:
            self._remember(event)
        self._fanOut(event)
        return event

    def eventAt(self, channel: str, data: Any, kind: str, offset: int) -> Event:
        """
        The event at C{offset}, which this worker has just received.
        """
        last = self._last
        if last is not None and last.offset == offset:
            return last
        return Event(channel, data, self.epoch, offset, kind)

    def publish(self, channel: str, data: Any, kind: str = "event", store: bool = True) -> Deferred:
        validateChannel(channel)
        return self.link.publish(channel, data, kind, store)

    def publishEncoded(
        self, channel: str, data: Any, dataJSON: Optional[bytes], kind: str = "event", store: bool = True
    ) -> Deferred:
        # The hub's relay carries the data inside its own message: the
        # encoding is made there.
        return self.publish(channel, data, kind, store)

    def addMember(self, channel: str, clientId: str, info: dict) -> Deferred:
        return self.link.call("addMember", channel=channel, client=clientId, info=info)

    def removeMember(self, channel: str, clientId: str) -> Deferred:
        return self.link.call("removeMember", channel=channel, client=clientId)

    def members(self, channel: str) -> Deferred:
        return self.link.call("members", channel=channel)


class _Presence:
    """
    Who is on each channel, and which worker connection added them (so a
    worker that goes away takes its members with it).
    """

    def __init__(self) -> None:
        self.channels: Dict[str, Dict[str, dict]] = {}
        self.owners: Dict[Tuple[str, str], Any] = {}

    def add(self, owner: Any, channel: str, client: str, info: dict) -> bool:
        members = self.channels.setdefault(channel, {})
        added = client not in members
        members[client] = info
        self.owners[(channel, client)] = owner
        return added

    def remove(self, channel: str, client: str) -> bool:
        members = self.channels.get(channel)
        if members is None or client not in members:
            return False
        del members[client]
        self.owners.pop((channel, client), None)
        if not members:
            del self.channels[channel]
        return True

    def members(self, channel: str) -> List[dict]:
        return [dict(info, client=client) for client, info in self.channels.get(channel, {}).items()]

    def dropOwner(self, owner: Any) -> None:
        for (channel, client), who in list(self.owners.items()):
            if who is owner:
                self.remove(channel, client)


class BusHub:
    """
    The group's sequencer, in the supervisor: numbers every event of every worker and relays it
    to all of them, in one order.

    @ivar bus: the hub's own L{WorkerBus} (its history of the group's events).
    @ivar epoch: the shared bus's epoch.
    """

    def __init__(self, historyLength: int = 100, maxChannels: int = 10000) -> None:
        import secrets

        self.epoch = secrets.token_hex(4)
        self.offset = 0
        self.connections: List["_HubProtocol"] = []
        self.presence = _Presence()
        self.localLink = _LocalLink(self)
        self.bus = WorkerBus(self.localLink, historyLength, maxChannels)
        self.bus.joined(self.epoch, 0)

    def publish(self, channel: str, data: Any, kind: str, store: bool) -> int:
        """
        Give the event its position, relay it to every other worker and
        deliver it in this one.
        """
        self.offset += 1
        offset = self.offset
        if self.connections:
            message = encodeJSON(
                {"op": "event", "channel": channel, "data": data, "kind": kind, "offset": offset, "store": store}
            )
            for connection in self.connections:
                connection.sendString(message)
        self.bus.received(channel, data, kind, offset, store)
        return offset

    def call(self, owner: Any, op: str, args: dict) -> Any:
        """
        A presence operation for C{owner} (a worker connection, or C{None}
        for the hub's own bus).
        """
        if op == "addMember":
            return self.presence.add(owner, args["channel"], args["client"], args["info"])
        if op == "removeMember":
            return self.presence.remove(args["channel"], args["client"])
        if op == "members":
            return self.presence.members(args["channel"])
        raise CometError("invalid_request", "Unknown bus operation %r." % (op,))

    def factory(self) -> Factory:
        """
        The factory for the UNIX socket the other workers connect to.
        """
        return Factory.forProtocol(lambda: _HubProtocol(self))


class _LocalLink:
    """
    The hub's own bus's link to it: plain calls.
    """

    bus: WorkerBus

    def __init__(self, hub: BusHub) -> None:
        self.hub = hub

    def start(self) -> Deferred:
        return succeed(None)

    def stop(self) -> Deferred:
        return succeed(None)

    def publish(self, channel: str, data: Any, kind: str, store: bool) -> Deferred:
        offset = self.hub.publish(channel, data, kind, store)
        return succeed(self.bus.eventAt(channel, data, kind, offset))

    def call(self, op: str, **args: Any) -> Deferred:
        try:
            return succeed(self.hub.call(None, op, args))
        except Exception:
            return fail()


class _HubProtocol(Int32StringReceiver):
    """
    The hub's end of one other worker's connection.
    """

    MAX_LENGTH = MAX_RELAY_MESSAGE

    def __init__(self, hub: BusHub) -> None:
        self.hub = hub

    def connectionMade(self) -> None:
        self.hub.connections.append(self)
        self.sendString(encodeJSON({"op": "hello", "epoch": self.hub.epoch, "offset": self.hub.offset}))

    def connectionLost(self, reason: Any = None) -> None:
        if self in self.hub.connections:
            self.hub.connections.remove(self)
        self.hub.presence.dropOwner(self)

    def stringReceived(self, data: bytes) -> None:
        message = _decode(data)
        op = message.pop("op")
        ref = message.pop("ref")
        try:
            if op == "publish":
                result: Any = self.hub.publish(message["channel"], message["data"], message["kind"], message["store"])
            else:
                result = self.hub.call(self, op, message)
        except Exception as e:
            log.failure("Bus operation {op} from a worker failed", op=op)
            self.sendString(encodeJSON({"op": "error", "ref": ref, "message": str(e)}))
            return
        self.sendString(encodeJSON({"op": "reply", "ref": ref, "result": result}))


class _HubClientProtocol(Int32StringReceiver):
    MAX_LENGTH = MAX_RELAY_MESSAGE

    def __init__(self, client: "HubClient") -> None:
        self.client = client

    def stringReceived(self, data: bytes) -> None:
        self.client.messageReceived(_decode(data))

    def connectionLost(self, reason: Any = None) -> None:
        self.client.connectionLost(reason)


class HubClient:
    """
    Another worker's link to the hub, over the hub's UNIX socket.

    @ivar onLost: called when the connection to the hub is lost while the
        bus is running (the worker then has no bus and should stop).
    """

    bus: WorkerBus

    def __init__(self, reactor: Any, path: str, onLost: Any = None) -> None:
        self.reactor = reactor
        self.path = path
        self.onLost = onLost
        self.protocol: Optional[_HubClientProtocol] = None
        self._ref = 0
        self._waiting: Dict[int, Tuple[Deferred, Any]] = {}
        self._hello: Optional[Deferred] = None
        self._stopping = False

    def start(self) -> Deferred:
        endpoint = UNIXClientEndpoint(self.reactor, self.path)
        self._hello = Deferred()
        d = endpoint.connect(Factory.forProtocol(lambda: _HubClientProtocol(self)))

        def connected(protocol: _HubClientProtocol) -> Deferred:
            self.protocol = protocol
            assert self._hello is not None
            return self._hello

        return d.addCallback(connected)

    def stop(self) -> Deferred:
        self._stopping = True
        if self.protocol is not None and self.protocol.transport is not None:
            self.protocol.transport.loseConnection()
        return succeed(None)

    def messageReceived(self, message: dict) -> None:
        op = message["op"]
        if op == "event":
            self.bus.received(message["channel"], message["data"], message["kind"], message["offset"], message["store"])
        elif op == "hello":
            self.bus.joined(message["epoch"], message["offset"])
            hello, self._hello = self._hello, None
            if hello is not None:
                hello.callback(None)
        elif op in ("reply", "error"):
            d, convert = self._waiting.pop(message["ref"])
            if op == "error":
                d.errback(CometError("internal_error", message["message"]))
            else:
                d.callback(convert(message["result"]))

    def connectionLost(self, reason: Any) -> None:
        self.protocol = None
        if not self._stopping:
            log.error("Lost the connection to the bus hub (the supervisor)")
            if self.onLost is not None:
                self.onLost()
        waiting, self._waiting = self._waiting, {}
        for d, _ in waiting.values():
            d.errback(CometError("unavailable", "The bus hub (the supervisor) has gone."))

    def _send(self, convert: Any, op: str, **args: Any) -> Deferred:
        if self.protocol is None:
            return fail(CometError("unavailable", "The bus hub (the supervisor) is not connected."))
        self._ref += 1
        d: Deferred = Deferred()
        self._waiting[self._ref] = (d, convert)
        args.update(op=op, ref=self._ref)
        self.protocol.sendString(encodeJSON(args))
        return d

    def publish(self, channel: str, data: Any, kind: str, store: bool) -> Deferred:
        bus = self.bus
        return self._send(
            lambda offset: bus.eventAt(channel, data, kind, offset),
            "publish", channel=channel, data=data, kind=kind, store=store,
        )

    def call(self, op: str, **args: Any) -> Deferred:
        return self._send(lambda result: result, op, **args)
