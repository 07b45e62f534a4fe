# -*- test-case-name: tests.bus.test_memory,tests.server.test_health,tests.server.test_metrics,tests.sessions.test_cluster -*-
"""
The in-memory bus, txcomet's embedded default.
"""

import secrets
from collections import OrderedDict, deque
from typing import Any, Deque, Dict, Optional, Sequence

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from zope.interface import implementer

from txcomet._model.channels import validateChannel, validatePattern
from txcomet._model.event import Event, History, formatId, parsePosition
from txcomet._bus.subscribers import LocalSubscribers, BusCommon
from txcomet.interfaces import IEncodedPublisher, IEventBus, IPresence, ISubscriber


class _ChannelHistory:
    """
    The retained events of one channel, and the offset up to which events
    have been dropped from it.
    """

    __slots__ = ("events", "truncatedThrough")

    def __init__(self, length: int) -> None:
        self.events: Deque[Event] = deque(maxlen=length)
        self.truncatedThrough = 0


@implementer(IEventBus, IEncodedPublisher, IPresence)
class InMemoryBus(BusCommon):
    """
    A bus within one process.

    Fan-out is synchronous: L{publish} has delivered the event to every
    subscriber by the time its L{Deferred} fires.  A subscriber that raises
    is logged and removed from all its subscriptions, and delivery to the
    others goes on.

    History keeps the last C{historyLength} events of each channel, for at
    most C{maxChannels} channels (the least recently published is forgotten
    first; a position on a forgotten channel is then reported as not
    covered).

    @ivar epoch: a random name for this bus's life; positions from before a
        restart are never covered.
    """

    log = Logger()

    def __init__(self, historyLength: int = 100, maxChannels: int = 10000, epoch: Optional[str] = None) -> None:
        if historyLength < 0:
            raise ValueError("historyLength must be 0 or more")
        self.epoch = epoch if epoch is not None else secrets.token_hex(4)
        self.historyLength = historyLength
        self.maxChannels = maxChannels
        self._offset = 0
        self._local = self.localSubscribers = LocalSubscribers(self.log)
        self._fanOut = self._local.fanOut
        self._history: "OrderedDict[str, _ChannelHistory]" = OrderedDict()
        self._forgottenThrough = 0
        self._presence: Dict[str, Dict[str, dict]] = {}

    # lifecycle

    def start(self) -> Deferred:
        return succeed(None)

    def stop(self) -> Deferred:
        return succeed(None)

    # publishing

    def publishEncoded(
        self, channel: str, data: Any, dataJSON: Optional[bytes], kind: str = "event", store: bool = True
    ) -> Deferred:
        validateChannel(channel)
        self._offset += 1
        event = Event(channel, data, self.epoch, self._offset, kind, dataJSON)
        if store:
            self._remember(event)
        self._fanOut(event)
        return succeed(event)

    def _remember(self, event: Event) -> None:
        histories = self._history
        history = histories.get(event.channel)
        if history is None:
            history = histories[event.channel] = _ChannelHistory(self.historyLength)
            while len(histories) > self.maxChannels:
                _, forgotten = histories.popitem(last=False)
                if forgotten.events:
                    self._forgottenThrough = max(
                        self._forgottenThrough, forgotten.events[-1].offset
                    )
        else:
            histories.move_to_end(event.channel)
        events = history.events
        if len(events) == self.historyLength:
            # Full (or keeping nothing): the oldest event, or this one, is dropped.
            history.truncatedThrough = events[0].offset if events else event.offset
        events.append(event)

    # subscribing

    def subscribe(self, pattern: str, subscriber: ISubscriber) -> Deferred:
        validatePattern(pattern)
        self._local.add(pattern, subscriber)
        return succeed(None)

    # history

    def position(self) -> Deferred:
        return succeed(formatId(self.epoch, self._offset))

    def history(self, channel: str, since: Optional[str]) -> Deferred:
        validateChannel(channel)
        position = formatId(self.epoch, self._offset)
        history = self._history.get(channel)
        retained: Sequence[Event] = list(history.events) if history is not None else []
        if since is None:
            truncated = history.truncatedThrough if history is not None else self._forgottenThrough
            return succeed(History(retained, truncated == 0, position))
        epoch, offset = parsePosition(since)
        if epoch != self.epoch:
            return succeed(History(retained, False, position))
        if history is None:
            covered = offset >= self._forgottenThrough
        else:
            covered = offset >= history.truncatedThrough
        return succeed(History([e for e in retained if e.offset > offset], covered, position))

    # presence

    def addMember(self, channel: str, clientId: str, info: dict) -> Deferred:
        members = self._presence.setdefault(channel, {})
        added = clientId not in members
        members[clientId] = info
        return succeed(added)

    def removeMember(self, channel: str, clientId: str) -> Deferred:
        members = self._presence.get(channel)
        if members is None or clientId not in members:
            return succeed(False)
        del members[clientId]
        if not members:
            del self._presence[channel]
        return succeed(True)

    def members(self, channel: str) -> Deferred:
        members = self._presence.get(channel, {})
        return succeed([dict(info, client=clientId) for clientId, info in members.items()])
