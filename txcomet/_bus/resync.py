# -*- test-case-name: tests.system.test_redisbus,tests.system.test_multinode -*-
"""
Keeping a Redis bus in step with Redis after an outage, and saying what
may have been missed rather than carrying on as if nothing happened.

  - A node that published while cut off from Redis (its events reached
    only its own subscribers, with ids in a local epoch: an L{Outage})
    marks, once Redis is back, the positions before that moment as not
    covered on the channels it published on (the C{gap} script), and tells
    the other nodes (a gap notice on C{P:all}).
  - A node whose pub/sub connection was down finds the channels with
    local subscribers that had events meanwhile (the C{lasts} script) and
    tells those subscribers of the gap.
  - A Redis with another epoch (it lost its data, or is another one) makes
    every position from before uncovered: every local subscriber is told.

Telling is L{IGapListener.gap}: a session then closes with
C{replay_unavailable}, and its client resumes from history and learns
whether anything was lost.
"""

import secrets
from typing import Any, Iterable, Optional, Set

from twisted.internet.defer import Deferred, inlineCallbacks, succeed

from txcomet._bus.resp import RedisUnavailable
from txcomet._model.event import encodeJSON
from txcomet._model.stats import GAPS
from txcomet.interfaces import IGapListener

#: The channels a node remembers publishing on while cut off from Redis;
#: past this many it marks every channel as having a gap.
MAX_OUTAGE_CHANNELS = 1000


def redisGlob(pattern: str) -> str:
    """
    The Redis glob that matches at least every channel C{pattern} matches
    (C{*} in a glob also crosses C{/}; the bus filters exactly afterwards).
    Channel names hold no other glob characters.
    """
    return "/".join("*" if segment in ("*", "**") else segment for segment in pattern.split("/"))


class Outage:
    """
    What happened on this node while it could not publish through Redis:
    the local epoch its events got ids in, and the channels published on.
    """

    def __init__(self) -> None:
        self.epoch = secrets.token_hex(4)
        self.offset = 0
        self.channels: Set[str] = set()
        self.everything = False

    def published(self, channel: str) -> None:
        if not self.everything:
            self.channels.add(channel)
            if len(self.channels) > MAX_OUTAGE_CHANNELS:
                self.everything = True
                self.channels.clear()



class Resync:
    """
    The resynchronisation of one L{txcomet._bus.redis.RedisBus}, whose
    connections, scripts, keys and local subscribers it uses.
    """

    def __init__(self, bus: Any) -> None:
        self.bus = bus
        self._resyncing: Optional[Deferred] = None
        self._resyncAgain = False

    def epochMismatch(self, epoch: Any) -> Deferred:
        """
        Redis answered with another epoch than ours (as its scripts give
        it: bytes), or none: adopt it, making one if Redis has none (it
        lost its data).
        """
        if isinstance(epoch, bytes):
            # An epoch is text everywhere else: ids are "<epoch>-<offset>".
            epoch = epoch.decode("ascii")
        if epoch:
            self.epochChanged(epoch)
            return succeed(None)
        d = self.bus._script("init", [self.bus._key("epoch"), self.bus._key("offset")], [secrets.token_hex(4)])

        def adopted(result):
            self.epochChanged(result[0].decode("ascii"))

        return d.addCallback(adopted)

    def epochChanged(self, epoch: str) -> None:
        if epoch == self.bus.epoch:
            return
        self.bus.log.warn(
            "The bus epoch changed from {old} to {new} (Redis lost its data, or is another one): "
            "positions from before are not covered, and every local subscriber is told of the gap",
            old=self.bus.epoch, new=epoch,
        )
        self.bus.epoch = epoch
        self.bus._seen = 0
        # With pub/sub still down, every event of the new epoch may be
        # missed until it is back: the resync then looks from its start,
        # rather than forgetting the outage and missing them silently.
        self.bus._pubsubLostAt = None if self.bus.pubsub.ready else 0
        self.reportGap(None)

    def schedule(self) -> None:
        if self._resyncing is not None:
            self._resyncAgain = True
            return
        self._resyncing = self._run()

        def done(result):
            self._resyncing = None
            if self._resyncAgain:
                self._resyncAgain = False
                self.schedule()

        self._resyncing.addErrback(
            lambda f: None if f.check(RedisUnavailable) else self.bus.log.failure("Resynchronising with Redis failed", f)
        )
        self._resyncing.addBoth(done)

    @inlineCallbacks
    def _run(self):
        """
        Both connections are (again) ready: find out what may have been
        missed while they were not, and report it.
        """
        if not (self.bus.commands.ready and self.bus.pubsub.ready):
            return
        epoch, counter = yield self.bus._script(
            "init", [self.bus._key("epoch"), self.bus._key("offset")], [secrets.token_hex(4)]
        )
        epoch = epoch.decode("ascii")
        counter = int(counter)
        if epoch != self.bus.epoch:
            self.epochChanged(epoch)
        elif self.bus._pubsubLostAt is not None:
            lostAt, self.bus._pubsubLostAt = self.bus._pubsubLostAt, None
            if counter > lostAt:
                missed = yield self._channelsPublishedAfter(lostAt)
                if missed is None or missed:
                    self.bus.log.warn(
                        "Events were published on {what} while this node's pub/sub connection "
                        "was down; reporting a gap to their local subscribers",
                        what="channels this node listens to" if missed is None else ", ".join(sorted(missed)),
                    )
                    self.reportGap(missed)
        outage, self.bus._outage = self.bus._outage, None
        if outage is not None and outage.offset:
            channels = sorted(outage.channels)
            keys = [self.bus._key("epoch"), self.bus._key("offset"), self.bus._key("gap")]
            if not outage.everything:
                keys += [self.bus._key("t", c) for c in channels]
            result = yield self.bus._script(
                "gap", keys,
                [self.bus.epoch, self.bus._ageMs, b"1" if outage.everything else b"0",
                 self.bus._noticeChannel, self.bus.nodeId, encodeJSON(channels)],
            )
            self.bus.log.warn(
                "Redis is back: {count} event(s) published here during the outage reached "
                "only this node; positions before {gap} are marked not covered on {what}",
                count=outage.offset, gap=int(result[1]),
                what="every channel" if outage.everything else ", ".join(channels),
            )

    @inlineCallbacks
    def _channelsPublishedAfter(self, offset: int):
        """
        The channels with local subscribers (through patterns too) that had
        an event after C{offset}; C{None} when that cannot be told.
        """
        candidates = set(self.bus._exact)
        if self.bus._patterns:
            globs = {redisGlob(p) for p in self.bus._patterns}
            prefix = self.bus._key("l") + b":"
            for glob in globs:
                cursor = b"0"
                scanned = 0
                while True:
                    cursor, keys = yield self.bus.commands.execute(
                        b"SCAN", cursor, b"MATCH", prefix + glob.encode("utf-8"), b"COUNT", 1000
                    )
                    for key in keys:
                        channel = key[len(prefix):].decode("utf-8")
                        if any(compiled.matches(channel) for compiled, _ in self.bus._patterns.values()):
                            candidates.add(channel)
                    scanned += 1000
                    if cursor == b"0":
                        break
                    if scanned > 1000000:
                        return None
        channels = sorted(candidates)
        missed = []
        for start in range(0, len(channels), 500):
            batch = channels[start : start + 500]
            lasts = yield self.bus._script("lasts", [self.bus._key("l", c) for c in batch], [])
            missed.extend(c for c, last in zip(batch, lasts) if last > offset)
        return missed

    def reportGap(self, channels: Optional[Iterable[str]]) -> None:
        """
        Tell the local subscribers of C{channels} (all, for C{None}) that
        events may have been lost on their way to them.
        """
        GAPS.inc()
        for subscriber in self.bus._subscribersOf(channels):
            listener = IGapListener(subscriber, None)
            if listener is None:
                self.bus.log.warn("{subscriber!r} may have missed events and cannot be told", subscriber=subscriber)
                continue
            try:
                listener.gap()
            except Exception:
                self.bus.log.failure("Telling {subscriber!r} of a gap failed", subscriber=subscriber)

