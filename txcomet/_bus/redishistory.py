# -*- test-case-name: tests.bus.test_redis,tests.system.test_redisbus -*-
"""
A Redis bus's history and positions: L{RedisHistory}, a part of
L{txcomet._bus.redis.RedisBus}.

A channel's history is a Redis stream beside its events; reading it also
says whether it covers a position (nothing dropped after it).  The events
a read returns may still be on their way through pub/sub (another
connection), so a read waits for a sync token it sent behind them to come
back first: a subscriber that resumes from history and keeps what arrives
meanwhile gets each event once.
"""

from typing import Optional, Tuple

from twisted.internet.defer import Deferred, inlineCallbacks, succeed

from txcomet._bus.resp import RedisUnavailable
from txcomet._model.channels import validateChannel
from txcomet._model.event import Event, History, formatId, parsePosition


class RedisHistory:
    """
    History, positions and sync tokens (a mixin of
    L{txcomet._bus.redis.RedisBus}).
    """

    __slots__ = ()

    def _localPosition(self) -> str:
        outage = self._outage
        if outage is not None and outage.offset:
            return formatId(outage.epoch, outage.offset)
        return formatId(self.epoch, self._seen)

    @inlineCallbacks
    def position(self):
        if not self.commands.ready:
            return self._localPosition()
        try:
            epoch, counter = yield self.commands.execute(b"MGET", self._key("epoch"), self._key("offset"))
        except RedisUnavailable:
            return self._localPosition()
        epoch = (epoch or b"").decode("ascii")
        if epoch != self.epoch:
            yield self.resync.epochMismatch(epoch)
            return (yield self.position())
        return formatId(epoch, int(counter or 0))

    @inlineCallbacks
    def history(self, channel: str, since: Optional[str]):
        validateChannel(channel)
        position = parsePosition(since) if since is not None else None
        if not self.commands.ready:
            return History([], False, self._localPosition())
        sinceOffset = -1
        if position is not None and position[0] == self.epoch:
            sinceOffset = position[1]
        token = self._syncWaiter()
        try:
            epoch, counter, dropped, kept = yield self._script(
                "history",
                self._historyKeys(channel) + [self._key("gap")],
                [sinceOffset, self._ageMs, self._nodeChannel, token[0]],
            )
            # The events read from the stream may still be on their way
            # through pub/sub (another socket): wait for them to arrive
            # before answering, so a subscriber that resumes from this
            # history and holds what arrives meanwhile gets each once.
            yield token[1]
        except RedisUnavailable:
            self._syncs.pop(int(token[0] or 0), None)
            return History([], False, self._localPosition())
        epoch = epoch.decode("ascii")
        if epoch != self.epoch:
            yield self.resync.epochMismatch(epoch)
            return History([], False, formatId(self.epoch, 0))
        events = [Event.fromEnvelope(payload) for payload in kept]
        if position is None:
            covered = dropped == 0
        else:
            covered = position[0] == epoch and position[1] >= dropped
        return History(events, covered, formatId(epoch, counter))

    def _syncWaiter(self) -> Tuple[bytes, Deferred]:
        """
        A sync token and a L{Deferred} that fires when it comes back
        through pub/sub (at once, with no token, when pub/sub is down, and
        when it goes down meanwhile).
        """
        if not self.pubsub.ready:
            return b"", succeed(None)
        self._syncCount += 1
        d: Deferred = Deferred()
        self._syncs[self._syncCount] = d
        return str(self._syncCount).encode("ascii"), d

    def _releaseSyncs(self, upTo: Optional[int] = None) -> None:
        for token in sorted(self._syncs):
            if upTo is not None and token > upTo:
                break
            self._syncs.pop(token).callback(None)
