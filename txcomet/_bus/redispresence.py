# -*- test-case-name: tests.system.test_redisbus,tests.system.test_redisroute,tests.bus.test_redis -*-
"""
Presence on the Redis bus: who is on each channel, kept in Redis beside
the events so every node sees the same members.

    P:p:<channel>    member info (a hash: client id -> JSON)
    P:pe:<channel>   member expiry times (a sorted set)

A node vouches for the members it added by refreshing their expiry every
third of C{presenceTTL}; a node that dies stops vouching, and its members
are reaped (their leave announced) by whichever node next reads or
refreshes the channel.  The scripts are in C{lua/} (C{addMember},
C{removeMember}, C{members}, C{refresh}, C{reap}).
"""

import json
from typing import Any, Dict, List, Sequence, Tuple

from twisted.internet.defer import Deferred, inlineCallbacks
from zope.interface import implementer

from txcomet._bus.resp import RedisUnavailable
from txcomet._model.channels import validateChannel
from txcomet._model.errors import CometError
from txcomet._model.event import encodeJSON
from txcomet.interfaces import IPresence


@implementer(IPresence)
class RedisPresence:
    """
    The presence of one L{txcomet._bus.redis.RedisBus}: its scripts, keys,
    clock and publishing (for join and leave notices) are the bus's.

    @ivar vouched: (channel, client id) -> the member's info as JSON, for
        the members this node vouches for.
    """

    #: Members refreshed (or channels reaped) per script call.
    batch = 500

    def __init__(self, bus: Any) -> None:
        self.bus = bus
        self.vouched: Dict[Tuple[str, str], bytes] = {}
        self._ttlMs = max(1, int(bus.presenceTTL * 1000))
        self._refreshCall: Any = None
        self._running = False

    def start(self) -> None:
        """
        Begin refreshing this node's members.
        """
        self._running = True
        self._schedule()

    def stop(self) -> None:
        self._running = False
        if self._refreshCall is not None and self._refreshCall.active():
            self._refreshCall.cancel()
        self._refreshCall = None

    def _keys(self, channel: str) -> List[bytes]:
        return [self.bus._key("p", channel), self.bus._key("pe", channel)]

    def _script(self, name: str, keys: Sequence[Any], args: Sequence[Any]) -> Deferred:
        def unavailable(failure):
            failure.trap(RedisUnavailable)
            raise CometError("unavailable", "Presence is kept in Redis, which cannot be reached now.")

        return self.bus._script(name, keys, args).addErrback(unavailable)

    # IPresence

    @inlineCallbacks
    def addMember(self, channel: str, clientId: str, info: dict):
        validateChannel(channel)
        encoded = encodeJSON(info)
        self.vouched[(channel, clientId)] = encoded
        added = yield self._script("addMember", self._keys(channel), [clientId, encoded, self._ttlMs])
        return bool(added)

    @inlineCallbacks
    def removeMember(self, channel: str, clientId: str):
        validateChannel(channel)
        self.vouched.pop((channel, clientId), None)
        try:
            removed = yield self.bus._script("removeMember", self._keys(channel), [clientId])
        except RedisUnavailable:
            # No longer vouched for, the member expires within presenceTTL,
            # and its leave is announced when it is reaped.
            return False
        return bool(removed)

    @inlineCallbacks
    def members(self, channel: str):
        validateChannel(channel)
        found, ghosts = yield self._script("members", self._keys(channel), [])
        self._announceGhosts(channel, ghosts)
        return [
            dict(json.loads(found[i + 1]), client=found[i].decode("utf-8"))
            for i in range(0, len(found), 2)
        ]

    # sessions moving between nodes

    def keepMember(self, channel: str, clientId: str, info: dict) -> None:
        """
        Vouch for C{clientId} on C{channel} from this node (another node
        added it, and handed its session over).
        """
        self.vouched[(channel, clientId)] = encodeJSON(info)

    def forgetMember(self, channel: str, clientId: str) -> None:
        """
        Stop vouching for C{clientId} on C{channel} from this node.
        """
        self.vouched.pop((channel, clientId), None)

    # keeping members alive, and reaping the dead's

    def _announceGhosts(self, channel: str, ghosts: List[bytes]) -> None:
        """
        Announce the leave of members reaped because no node vouched for
        them any more (their node died).
        """
        for i in range(0, len(ghosts), 2):
            member = dict(json.loads(ghosts[i + 1]), client=ghosts[i].decode("utf-8"))
            self.bus.publish(channel, member, kind="leave", store=False).addErrback(
                lambda f: None if f.check(CometError) else self.bus.log.failure("Announcing a ghost's leave failed", f)
            )

    def _schedule(self) -> None:
        if not self._running:
            return
        self._refreshCall = self.bus.clock.callLater(self.bus.presenceTTL / 3.0, self._refresh)

    @inlineCallbacks
    def _refresh(self):
        self._refreshCall = None
        members = list(self.vouched.items())
        try:
            for start in range(0, len(members), self.batch):
                batch = members[start : start + self.batch]
                keys: List[bytes] = []
                args: List[Any] = [self._ttlMs]
                for (channel, client), info in batch:
                    keys += self._keys(channel)
                    args += [client, info]
                readded = yield self.bus._script("refresh", keys, args)
                for n in readded:
                    (channel, client), info = batch[n - 1]
                    member = dict(json.loads(info), client=client)
                    yield self.bus.publish(channel, member, kind="join", store=False)
            # Reap the members of dead nodes (or removed while Redis was
            # away) on the channels this node has members or subscribers
            # on, announcing their leave.
            channels = sorted({channel for channel, _ in self.vouched} | set(self.bus._exact))
            for start in range(0, len(channels), self.batch):
                batch = channels[start : start + self.batch]
                keys = []
                for channel in batch:
                    keys += self._keys(channel)
                reaped = yield self.bus._script("reap", keys, [])
                for channel, ghosts in zip(batch, reaped):
                    self._announceGhosts(channel, ghosts)
        except (RedisUnavailable, CometError):
            pass
        except Exception:
            self.bus.log.failure("Refreshing presence failed")
        finally:
            self._schedule()
