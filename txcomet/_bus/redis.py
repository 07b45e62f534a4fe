# -*- test-case-name: tests.bus.test_redis,tests.system.test_redisbus,tests.system.test_packaging -*-
"""
The Redis bus: several txcomet nodes share one Redis for fan-out, history
and presence.

What lives where (C{P} is the key prefix, C{txcomet} by default):

    P:epoch          the epoch: made once (SET NX); a Redis that lost its
                     data gets a new one, so old positions read as not covered
    P:offset         the global offset, one INCR per publish on any node
    P:h:<channel>    the channel's history, a stream whose entry ids are the
                     events' offsets; bounded in length (trimmed on publish)
                     and in age (aged entries are dropped; the key expires
                     historyAge after the channel's last publish)
    P:t:<channel>    the offset through which the channel's events have
                     been dropped (so "covered" is exact)
    P:clock          checkpoints (time -> offset), at most one a second, for
                     the offset older than historyAge: what a channel whose
                     history expired may have lost
    P:gap            the offset before which no position is covered, after
                     a node published while cut off from Redis
    P:p:<channel>, P:pe:<channel>
                     presence: member info, and member expiry times; a
                     node refreshes its members, so a dead node's members
                     expire instead of staying online
    pub/sub P:c:<channel>  the events, one PUBLISH per event from the
                     publish script; each node subscribes once per channel
                     or pattern that it has local subscribers for
    pub/sub P:all    gap notices between nodes

Publishing is one Lua script: check the epoch, INCR the offset, XADD and
trim the stream, PUBLISH the encoded envelope.  Every node therefore sees
the same id and the same order for every event, and delivers an event to
its local subscribers when it arrives through pub/sub (also on the node
that published it), so a channel's order is the same everywhere.

Faults: with Redis unreachable at start, L{RedisBus.start} fails with
L{RedisUnavailable} saying where and why.  Lost while running, each
connection reconnects with exponential backoff; meanwhile a publish on this
node reaches this node's subscribers (with an id in a local epoch, which no
history covers) and nothing is buffered for later.  When Redis is back the
bus works out what may have been missed and says so: positions before the
outage are marked not covered on the channels published during it, and the
local subscribers that may have missed events are told (L{IGapListener});
a session then closes with C{replay_unavailable}, and its client resumes
from history and learns whether anything was lost.
"""

import json
import os
import secrets
from typing import Any, Dict, List, Optional, Sequence, Tuple

from twisted.internet.defer import Deferred, DeferredList, fail, inlineCallbacks, succeed
from twisted.logger import Logger
from zope.interface import implementer

from txcomet._model.channels import isPattern, validateChannel, validatePattern
from txcomet._model.errors import CometError
from txcomet._bus.redishistory import RedisHistory
from txcomet._bus.redisrequests import NodeRequests
from txcomet._bus.subscribers import LocalSubscribers, BusCommon
from txcomet._model.event import Event, encodeJSON, parsePosition
from txcomet._bus.redispresence import RedisPresence
from txcomet._bus.resync import Outage, Resync, redisGlob
from txcomet._bus.resp import RedisAddress, RedisConnection, RedisError, RedisUnavailable
from txcomet.interfaces import IBusHealth, IEncodedPublisher, IEventBus, IPresence, ISubscriber

__all__ = ["RedisBus", "RedisUnavailable"]

#: How long a channel's newest offsets are kept after its history expired
#: (so a position on it is still judged exactly), in milliseconds.
_LAST_LIFETIME_MS = 24 * 3600 * 1000


#: The Lua scripts (txcomet/_bus/lua/*.lua, shipped as package data), each
#: run with EVALSHA; those that read history or presence start with the
#: helpers of prelude.lua.
_LUA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lua")
_WITH_PRELUDE = frozenset(['addMember', 'history', 'members', 'publish', 'reap', 'refresh', 'removeMember'])


def _loadScripts() -> Dict[str, str]:
    def read(name: str) -> str:
        with open(os.path.join(_LUA, name + ".lua"), encoding="utf-8") as f:
            return f.read()

    prelude = read("prelude")
    return {
        name: (prelude if name in _WITH_PRELUDE else "") + read(name)
        for name in ['addMember', 'gap', 'history', 'init', 'lasts', 'members', 'publish', 'reap', 'refresh', 'removeMember']
    }


_SCRIPTS = _loadScripts()


def _raise(error: Exception) -> None:
    raise error


@implementer(IEventBus, IEncodedPublisher, IPresence, IBusHealth)
class RedisBus(NodeRequests, RedisHistory, BusCommon):
    """
    A bus shared by every txcomet node connected to the same Redis (and
    key prefix); see the module docstring for what is kept where.

    @param url: where Redis is: C{redis://[[user]:password@]host[:port][/db]},
        C{rediss://...} or C{unix:///path?db=N}.
    @param historyLength: events kept per channel (0: none).
    @param historyAge: seconds an event stays in its channel's history.
    @param prefix: the prefix of every key and pub/sub channel, so several
        txcomet deployments can share one Redis.
    @param presenceTTL: seconds a member stays listed after its node stops
        refreshing it (the node died).
    @param reactor: connects to Redis (the global reactor by default).
    @param clock: runs the presence refresh timer (C{reactor} by default).

    @ivar epoch: the epoch kept in Redis.
    @ivar nodeId: this node's random name among the nodes.
    """

    log = Logger()

    def __init__(
        self,
        url: str,
        historyLength: int = 100,
        historyAge: float = 3600.0,
        prefix: str = "txcomet",
        presenceTTL: float = 30.0,
        reactor: Any = None,
        clock: Any = None,
        outage: str = "refuse",
    ) -> None:
        if outage not in ("refuse", "local"):
            raise ValueError("outage is refuse or local, not %r" % (outage,))
        if reactor is None:
            from twisted.internet import reactor
        if clock is None:
            clock = reactor
        if historyLength < 0:
            raise ValueError("historyLength must be 0 or more")
        if not historyAge > 0:
            raise ValueError("historyAge must be more than 0 seconds")
        if not presenceTTL > 0:
            raise ValueError("presenceTTL must be more than 0 seconds")
        if not prefix or not all(c.isalnum() or c in "_-.:" for c in prefix) or not prefix.isascii():
            raise ValueError("The key prefix is letters, digits, _ - . and :, not %r" % (prefix,))
        self.address = url if isinstance(url, RedisAddress) else RedisAddress(url)
        self.reactor = reactor
        self.clock = clock
        self.historyLength = historyLength
        self.historyAge = historyAge
        self.prefix = prefix
        self.presenceTTL = presenceTTL
        #: While Redis is unreachable: C{"refuse"} (the default) fails a
        #: publish with C{unavailable}, so that nothing is acknowledged that
        #: other nodes will never deliver; C{"local"} delivers it to this
        #: node's subscribers only, in a local epoch, and tells the other
        #: nodes' subscribers of the gap once Redis is back.
        self.outage = outage
        self.nodeId = secrets.token_hex(6)
        self.epoch = ""
        self._ageMs = int(historyAge * 1000)
        self._started = False
        self._stopped = False
        # channel -> {subscriber: None}; pattern -> (compiled, {subscriber: None});
        # subscriber -> {pattern: None}
        # Local subscribers; the last one of a channel or pattern leaving
        # unsubscribes this node from Redis.  The dicts are shared, not
        # copied, so the aliases below always see the registry's state.
        self._local = self.localSubscribers = LocalSubscribers(self.log, onEmpty=self._redisUnsubscribe)
        self._exact = self._local.exact
        self._patterns = self._local.patterns
        self._fanOut = self._local.fanOut
        self._subscribersOf = self._local.subscribersOf
        # Redis pub/sub names -> Deferred of a SUBSCRIBE in flight, or None
        # once in place.
        self._subscribed: Dict[bytes, Optional[Deferred]] = {}
        # The newest event received through pub/sub, in self.epoch.
        self._seen = 0
        # Set while pub/sub is down: the offset seen when it went.
        self._pubsubLostAt: Optional[int] = None
        self._outage: Optional[Outage] = None
        #: Finds what may have been missed while Redis was away, and tells.
        self.resync = Resync(self)
        # (channel, client) -> info JSON: the members this node keeps alive.
        #: Who is on which channel: L{RedisPresence}, in Redis beside the
        #: events.
        self.presence = RedisPresence(self)
        self._shas: Dict[str, bytes] = {}
        # Pub/sub ignores the database number, so the names carry it.
        self._eventPrefix = ("%s:%d:c:" % (prefix, self.address.db)).encode("ascii")
        self._noticeChannel = ("%s:%d:all" % (prefix, self.address.db)).encode("ascii")
        self._nodeChannel = self._nodeChannelOf(self.nodeId)
        #: Its L{txcomet.interfaces.ISessionRouter}, once the adapter
        #: (L{txcomet._sessions.redisrouter.routerOf}) has made it.
        self.router: Any = None
        # Asking the other nodes (see ask).
        self.requestTimeout = 5.0
        #: Request kind -> C{f(request)} answering it (a dict, or a
        #: L{Deferred} of one): what this node answers other nodes (the
        #: session router registers its own).
        self.answerers: Dict[str, Any] = {}
        #: Called with no arguments when the bus stops.
        self.whenStopping: List[Any] = []
        self._requests: Dict[str, Tuple[Deferred, List[dict], int, Any, Any]] = {}
        # Requests whose answer still matters after the asker stopped
        # waiting: rid -> (called with the late answer, give-up timer).
        self._lateReplies: Dict[str, Tuple[Any, Any]] = {}
        # History reads waiting for their sync token: token -> Deferred.
        self._syncs: Dict[int, Deferred] = {}
        self._syncCount = 0
        self._requestCount = 0
        self.commands = RedisConnection(
            self.address, reactor, "command", onReady=self._commandsReady, onLost=self._commandsLost
        )
        self.pubsub = RedisConnection(
            self.address, reactor, "pub/sub", onReady=self._pubsubReady, onLost=self._pubsubLost,
            onMessage=self._message,
        )

    @classmethod
    def fromURL(cls, url: str, historyLength: int = 100, reactor: Any = None) -> "RedisBus":
        """
        A bus for C{url}, whose query may set C{prefix}, C{history_age}
        (seconds), C{presence_ttl} (seconds) and C{outage} (C{refuse} or
        C{local}): C{redis://host:6379/0?prefix=myapp&history_age=600}.
        """
        address = RedisAddress(url)
        options = dict(address.options)
        kwargs: Dict[str, Any] = {}
        try:
            if "prefix" in options:
                kwargs["prefix"] = options.pop("prefix")
            if "history_age" in options:
                kwargs["historyAge"] = float(options.pop("history_age"))
            if "presence_ttl" in options:
                kwargs["presenceTTL"] = float(options.pop("presence_ttl"))
            if "outage" in options:
                kwargs["outage"] = options.pop("outage")
                if kwargs["outage"] not in ("refuse", "local"):
                    raise ValueError("outage= is refuse or local")
        except ValueError as e:
            raise ValueError("%s: %s" % (url, e))
        if options:
            raise ValueError(
                "%s: unknown option(s) %s; the options are db, prefix, history_age, presence_ttl, outage"
                % (url, ", ".join(sorted(options)))
            )
        return cls(address, historyLength=historyLength, reactor=reactor, **kwargs)

    def __repr__(self) -> str:
        return "<RedisBus %s prefix=%r node=%s>" % (self.address, self.prefix, self.nodeId)

    # IBusHealth

    def problem(self) -> Optional[str]:
        if not self._started or self._stopped:
            return "the Redis bus is not running"
        if not self.commands.ready:
            return "Redis is unreachable"
        if not self.pubsub.ready:
            return "the Redis pub/sub connection is reconnecting"
        return None

    # keys

    def _key(self, kind: str, channel: str = "") -> bytes:
        return ("%s:%s%s" % (self.prefix, kind, (":" + channel) if channel else "")).encode("utf-8")

    def _historyKeys(self, channel: str) -> List[bytes]:
        return [self._key("epoch"), self._key("offset"), self._key("clock"),
                self._key("h", channel), self._key("t", channel), self._key("l", channel)]

    # lifecycle

    @inlineCallbacks
    def start(self):
        """
        Connect to Redis (both connections) and learn the epoch.  Fails
        with L{RedisUnavailable} saying where Redis was looked for and why
        it could not be used.
        """
        try:
            yield self.commands.start()
            yield self.pubsub.start()
        except BaseException:
            yield self._stopConnections()
            raise
        self._started = True
        self.presence.start()

    @inlineCallbacks
    def stop(self):
        """
        Stop refreshing presence and close both connections.
        """
        self._stopped = True
        self.presence.stop()
        for rid in list(self._requests):
            done, answers, expected, timer, late = self._requests.pop(rid)
            if timer.active():
                timer.cancel()
            done.callback((answers, False))
        for rid in list(self._lateReplies):
            self._lateAnswer(rid, {"found": False})
        for stopping in self.whenStopping:
            stopping()
        # Let what is in flight finish (leaves announced as the hub closed
        # its sessions), for a moment.
        yield self.commands.drain(2.0)
        yield self._stopConnections()

    def _stopConnections(self) -> Deferred:
        return DeferredList([self.commands.stop(), self.pubsub.stop()], consumeErrors=True)

    @inlineCallbacks
    def _commandsReady(self, protocol):
        for name, body in _SCRIPTS.items():
            self._shas[name] = yield protocol.execute(b"SCRIPT", b"LOAD", body)
        epoch, counter = yield protocol.execute(
            b"EVALSHA", self._shas["init"], 2, self._key("epoch"), self._key("offset"),
            secrets.token_hex(4),
        )
        epoch = epoch.decode("ascii")
        if not self.epoch:
            # The first connection: this node starts at the bus's present.
            self.epoch = epoch
            self._seen = int(counter)
        self.resync.schedule()

    def _commandsLost(self) -> None:
        pass

    @inlineCallbacks
    def _pubsubReady(self, protocol):
        names = list(self._subscribed)
        self._subscribed = dict.fromkeys(names)
        confirmations = [protocol.execute(self._subscribeCommand(name), name) for name in names]
        confirmations.append(protocol.execute(b"SUBSCRIBE", self._noticeChannel))
        confirmations.append(protocol.execute(b"SUBSCRIBE", self._nodeChannel))
        yield DeferredList(confirmations, fireOnOneErrback=True, consumeErrors=True)
        self.resync.schedule()

    def _pubsubLost(self) -> None:
        if self._pubsubLostAt is None:
            self._pubsubLostAt = self._seen
        self._releaseSyncs()
        # Subscriptions waiting for a confirmation will be made again on
        # the next connection, and the resync then covers the gap.
        for name, pending in list(self._subscribed.items()):
            self._subscribed[name] = None
            if pending is not None and not pending.called:
                pending.callback(None)

    @staticmethod
    def _subscribeCommand(name: bytes) -> bytes:
        return b"PSUBSCRIBE" if b"*" in name else b"SUBSCRIBE"

    # running scripts

    def _script(self, name: str, keys: Sequence[Any], args: Sequence[Any]) -> Deferred:
        """
        Run one of the bus's Lua scripts on the command connection.
        """
        d = self.commands.execute(b"EVALSHA", self._shas[name], len(keys), *keys, *args)

        def noScript(failure):
            failure.trap(RedisError)
            if not str(failure.value).startswith("NOSCRIPT"):
                return failure
            return self.commands.execute(b"EVAL", _SCRIPTS[name], len(keys), *keys, *args)

        return d.addErrback(noScript)

    # publishing

    def publishEncoded(
        self, channel: str, data: Any, dataJSON: Optional[bytes], kind: str = "event", store: bool = True
    ) -> Deferred:
        validateChannel(channel)
        if kind not in ("event", "join", "leave"):
            raise ValueError("kind is event, join or leave, not %r" % (kind,))
        if dataJSON is None:
            dataJSON = encodeJSON(data)
        if not self.commands.ready:
            if kind == "event" and self.outage == "refuse":
                # Nothing is acknowledged that the other nodes will never
                # deliver: the publisher is told to try again.
                return fail(CometError(
                    "unavailable",
                    "Redis is unreachable, so the event cannot reach the other nodes: it was not "
                    "published; try again shortly.",
                ))
            # Presence notices (and, in local mode, events) reach this
            # node's subscribers; the others are told of the gap later.
            return succeed(self._publishLocally(channel, data, kind))
        return self._publishThroughRedis(channel, data, dataJSON, kind, store, retry=True)

    def _publishThroughRedis(self, channel, data, dataJSON, kind, store, retry) -> Deferred:
        d = self._script(
            "publish",
            self._historyKeys(channel),
            [self.epoch, kind, encodeJSON(channel), dataJSON, b"1" if store else b"0",
             self.historyLength, self._ageMs, self._eventPrefix + channel.encode("utf-8"),
             self._ageMs + _LAST_LIFETIME_MS],
        )

        def published(result):
            ok, value = result
            if not ok:
                # Redis has another epoch (or none: it lost its data).
                return self.resync.epochMismatch(value).addCallback(
                    lambda _: self._publishThroughRedis(channel, data, dataJSON, kind, store, False)
                    if retry else _raise(CometError("unavailable", "The bus's epoch keeps changing."))
                )
            event = Event(channel, data, self.epoch, int(value), kind)
            if not self.pubsub.ready and event.offset > self._seen:
                # Pub/sub is down, so the echo will not come: deliver here.
                self._fanOut(event)
            return event

        def lost(failure):
            failure.trap(RedisUnavailable)
            raise CometError(
                "unavailable",
                "The connection to Redis was lost during the publish; it may or may not have been published.",
            )

        return d.addCallbacks(published, lost)

    def _publishLocally(self, channel: str, data: Any, kind: str) -> Event:
        outage = self._outage
        if outage is None:
            outage = self._outage = Outage()
            self.log.warn(
                "Redis is unreachable: publishing to this node's subscribers only, "
                "in local epoch {epoch}", epoch=outage.epoch,
            )
        outage.offset += 1
        outage.published(channel)
        event = Event(channel, data, outage.epoch, outage.offset, kind)
        self._fanOut(event)
        return event

    # receiving

    def _message(self, pattern: Optional[bytes], channel: bytes, payload: bytes) -> None:
        if channel.startswith(self._eventPrefix):
            self._eventMessage(payload)
        elif channel == self._noticeChannel or channel == self._nodeChannel:
            message = json.loads(payload)
            kind = message.get("t")
            if kind == "sync":
                self._releaseSyncs(message.get("token"))
            elif kind == "gap":
                self._noticeMessage(message)
            elif kind == "reply":
                self._replyReceived(message)
            elif isinstance(kind, str):
                self._requestReceived(kind, message)

    def _eventMessage(self, payload: bytes) -> None:
        envelope = json.loads(payload)
        epoch, offset = parsePosition(envelope["id"])
        if epoch != self.epoch:
            self.resync.epochChanged(epoch)
        elif offset <= self._seen:
            # Already delivered: the same event through a channel and a
            # pattern subscription, or delivered at publish while pub/sub
            # was down.
            return
        self._seen = offset
        self._fanOut(Event.fromEnvelope(payload, envelope))

    def _noticeMessage(self, notice: dict) -> None:
        if notice.get("node") == self.nodeId:
            return
        self.log.warn(
            "Node {node} published while cut off from Redis; reporting a gap to this node's "
            "subscribers of {what}",
            node=notice.get("node"),
            what="every channel" if notice.get("all") else ", ".join(notice.get("channels", [])),
        )
        self.resync.reportGap(None if notice.get("all") else notice.get("channels", []))

    # fan-out

    # subscribing

    def subscribe(self, pattern: str, subscriber: ISubscriber) -> Deferred:
        validatePattern(pattern)
        self._local.add(pattern, subscriber)
        if isPattern(pattern):
            name = self._eventPrefix + redisGlob(pattern).encode("utf-8")
        else:
            name = self._eventPrefix + pattern.encode("utf-8")
        return self._redisSubscribe(name)

    def _redisSubscribe(self, name: bytes) -> Deferred:
        if name in self._subscribed:
            pending = self._subscribed[name]
            if pending is None:
                return succeed(None)
            waiter: Deferred = Deferred()
            pending.addBoth(lambda result: (waiter.callback(None), result)[1])
            return waiter
        protocol = self.pubsub.protocol
        if protocol is None:
            # Subscribed when pub/sub is back; the resync reports what was
            # missed meanwhile.
            self._subscribed[name] = None
            return succeed(None)
        pending = protocol.execute(self._subscribeCommand(name), name)
        self._subscribed[name] = pending

        def done(result):
            if self._subscribed.get(name) is pending:
                self._subscribed[name] = None
            return None

        pending.addErrback(lambda failure: failure.trap(RedisUnavailable))
        pending.addBoth(done)
        waiter = Deferred()
        pending.addBoth(lambda result: (waiter.callback(None), result)[1])
        return waiter

    def _redisUnsubscribe(self, pattern: str) -> None:
        if isPattern(pattern):
            name = self._eventPrefix + redisGlob(pattern).encode("utf-8")
            command = b"PUNSUBSCRIBE"
            # Another pattern may share the glob (a/*/c and a/**/c do not,
            # but a/* and a/** do).
            if any(redisGlob(p) == redisGlob(pattern) for p in self._patterns):
                return
        else:
            name = self._eventPrefix + pattern.encode("utf-8")
            command = b"UNSUBSCRIBE"
        if self._subscribed.pop(name, False) is False:
            return
        protocol = self.pubsub.protocol
        if protocol is not None:
            protocol.execute(command, name).addErrback(lambda f: f.trap(RedisUnavailable))

    # history

    # keeping in step with Redis: self.resync (a Resync)

    # presence: kept by self.presence (a RedisPresence)

    def addMember(self, channel: str, clientId: str, info: dict) -> Deferred:
        return self.presence.addMember(channel, clientId, info)

    def removeMember(self, channel: str, clientId: str) -> Deferred:
        return self.presence.removeMember(channel, clientId)

    def members(self, channel: str) -> Deferred:
        return self.presence.members(channel)

    # asking the other nodes (the session router's requests)







