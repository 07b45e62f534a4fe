# -*- test-case-name: tests.fastpath.test_roster,tests.fastpath.test_contracts -*-
"""
The subscribers one process holds, by channel and by pattern, and the
fan-out to them: shared by every bus (in memory, Redis, worker).
"""

from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from txcomet._fastpath.contracts import IRosterSubscriber
from txcomet._model.channels import RESERVED, Pattern, isPattern

_RESERVED_PREFIX = RESERVED + "/"
from txcomet._model.event import Event
from txcomet._fastpath.roster import Roster, Seat
from txcomet.interfaces import ISubscriber


class LocalSubscribers:
    """
    Which local subscribers want which channels and patterns.

    Fan-out delivers an event once to each subscriber it matches, however
    many of its subscriptions do; a subscriber that raises is logged and
    removed from all its subscriptions, and delivery to the others goes on
    (as Twisted's C{LogPublisher} treats a failing observer).

    @ivar exact: channel -> ordered set (dict) of subscribers.
    @ivar patterns: pattern -> (compiled L{Pattern}, ordered set of subscribers).
    @ivar bySubscriber: subscriber -> ordered set of its patterns and channels.
    @ivar rosters: channel -> its L{_RosterGroup}, for the channels with
        members (see L{join}).
    @ivar members: subscriber -> the L{Seat} of its data channel's sink, in
        a roster.
    """

    def __init__(self, log: Logger, onEmpty: Optional[Callable[[str], None]] = None) -> None:
        """
        @param onEmpty: called with a channel or pattern once its last local
            subscriber has gone (a networked bus unsubscribes upstream).
        """
        self.log = log
        self.onEmpty = onEmpty
        self.exact: Dict[str, Dict[ISubscriber, None]] = {}
        self.patterns: Dict[str, Tuple[Pattern, Dict[ISubscriber, None]]] = {}
        self.bySubscriber: Dict[ISubscriber, Dict[str, None]] = {}
        self.rosters: Dict[str, _RosterGroup] = {}
        self.members: Dict[ISubscriber, Seat] = {}

    def add(self, pattern: str, subscriber: ISubscriber) -> None:
        """
        Subscribe C{subscriber} to C{pattern} (already valid).
        """
        if subscriber in self.members:
            # A roster member has one subscription, no more.
            self.evictSubscriber(subscriber)
        if isPattern(pattern):
            entry = self.patterns.get(pattern)
            if entry is None:
                entry = self.patterns[pattern] = (Pattern(pattern), {})
            entry[1][subscriber] = None
        else:
            self.exact.setdefault(pattern, {})[subscriber] = None
            group = self.rosters.get(pattern)
            if group is not None:
                group.loose[subscriber] = None
        self.bySubscriber.setdefault(subscriber, {})[pattern] = None

    def remove(self, pattern: str, subscriber: ISubscriber) -> None:
        """
        Drop one subscription; unknown pairs are ignored.
        """
        if subscriber in self.members:
            self.evictSubscriber(subscriber)
        self._drop(pattern, subscriber)
        patterns = self.bySubscriber.get(subscriber)
        if patterns is not None:
            patterns.pop(pattern, None)
            if not patterns:
                del self.bySubscriber[subscriber]

    def removeAll(self, subscriber: ISubscriber) -> None:
        """
        Drop every subscription of C{subscriber}.
        """
        if subscriber in self.members:
            self.evictSubscriber(subscriber)
        for pattern in self.bySubscriber.pop(subscriber, ()):
            self._drop(pattern, subscriber)

    def _drop(self, pattern: str, subscriber: ISubscriber) -> None:
        if "*" in pattern:
            entry = self.patterns.get(pattern)
            if entry is None:
                return
            entry[1].pop(subscriber, None)
            if entry[1]:
                return
            del self.patterns[pattern]
        else:
            subscribers = self.exact.get(pattern)
            if subscribers is None:
                return
            subscribers.pop(subscriber, None)
            group = self.rosters.get(pattern)
            if group is not None:
                group.loose.pop(subscriber, None)
            if subscribers:
                return
            del self.exact[pattern]
            self.rosters.pop(pattern, None)
        if self.onEmpty is not None:
            self.onEmpty(pattern)

    def fanOut(self, event: Event) -> None:
        """
        Deliver C{event} to every subscriber it matches, once each.
        """
        group = self.rosters.get(event.channel)
        if group is None:
            exact = self.exact.get(event.channel)
            loose = list(exact) if exact else None
        else:
            # Who gets the event one by one is settled first: a member the
            # roster drops while it sends has had the event already.
            loose = list(group.loose)
            for roster in list(group.byFraming.values()):
                if roster.seats:
                    roster.deliver(event)
        if not self.patterns or event.channel.startswith(_RESERVED_PREFIX):
            # txcomet's own channels reach exact subscribers only.
            if loose:
                self._deliverAll(event, loose)
            return
        targets: Dict[ISubscriber, None] = dict.fromkeys(loose) if loose else {}
        for compiled, subscribers in self.patterns.values():
            if compiled.matches(event.channel):
                targets.update(subscribers)
        if targets:
            self._deliverAll(event, list(targets))

    def _deliverAll(self, event: Event, subscribers: List[ISubscriber]) -> None:
        for subscriber in subscribers:
            try:
                subscriber.deliver(event)
            except Exception:
                self.log.failure(
                    "Subscriber {subscriber!r} raised on {event!r}; it is unsubscribed",
                    subscriber=subscriber,
                    event=event,
                )
                self.removeAll(subscriber)

    # rosters

    def join(self, subscriber: ISubscriber, member: Any) -> bool:
        """
        Let C{member}, the data channel C{subscriber} writes through, take
        the events of C{subscriber}'s channel straight from that channel's
        L{Roster} (see there), if C{subscriber} has just the one
        subscription, to a channel, not a pattern, and the roster holds
        nothing back in this turn (the member has not had it).

        @return: whether C{member} joined.
        """
        subscriptions = self.bySubscriber.get(subscriber)
        if subscriptions is None or len(subscriptions) != 1 or subscriber in self.members:
            return False
        (channel,) = subscriptions
        if isPattern(channel):
            return False
        group = self.rosters.get(channel)
        if group is None:
            group = self.rosters[channel] = _RosterGroup(self.exact[channel])
        framing = member.rosterFraming
        roster = group.byFraming.get(framing.name)
        if roster is None:
            roster = group.byFraming[framing.name] = Roster(self, channel, framing, member.rosterTurn, member.rosterTally)
        elif roster.pending:
            return False
        budget = member.rosterBudget
        if budget is not None and budget <= 0:
            return False
        del group.loose[subscriber]
        self.members[subscriber] = roster.add(member, subscriber, budget)
        return True

    def evictSubscriber(self, subscriber: ISubscriber) -> None:
        """
        C{subscriber}'s member, if it has one, leaves its roster.
        """
        seat = self.members.get(subscriber)
        if seat is not None:
            self.evict(seat.member)

    def evict(self, member: Any) -> None:
        """
        C{member} leaves its roster: what the roster held back in this turn
        is handed to it to write first, and its subscriber gets events one
        by one again.
        """
        seat = member.seat
        if seat is None:
            return
        roster = seat.roster
        subscriber = seat.subscriber
        del self.members[subscriber]
        roster.remove(seat)
        group = self.rosters.get(roster.channel)
        if group is not None:
            group.loose[subscriber] = None
            if not any(r.seats or r.pending for r in group.byFraming.values()):
                del self.rosters[roster.channel]
        listener = IRosterSubscriber(subscriber, None)
        if listener is not None:
            listener.leftRoster(seat)
        member.rosterLeft(seat, roster.heldBytes())

    def subscribersOf(self, channels: Optional[Iterable[str]]) -> List[ISubscriber]:
        """
        The subscribers to any of C{channels} (directly or through a
        pattern), each once; every subscriber for C{None}.
        """
        if channels is None:
            return list(self.bySubscriber)
        found: Dict[ISubscriber, None] = {}
        for channel in channels:
            found.update(self.exact.get(channel, {}))
            for compiled, subscribers in self.patterns.values():
                if compiled.matches(channel):
                    found.update(subscribers)
        return list(found)


class _RosterGroup:
    """
    A channel's rosters, one per wire framing, and its other subscribers.

    @ivar loose: the channel's subscribers not in a roster (in C{exact} too).
    """

    __slots__ = ("byFraming", "loose")

    def __init__(self, subscribers: Dict[ISubscriber, None]) -> None:
        self.byFraming: Dict[str, Roster] = {}
        self.loose: Dict[ISubscriber, None] = dict(subscribers)


class BusCommon:
    """
    What every bus with a registry of local subscribers does alike: drop
    subscriptions from that registry (C{localSubscribers}, a
    L{LocalSubscribers}, which tells a networked bus when a channel has no
    local subscriber left), and publish through C{publishEncoded} (see
    L{txcomet.interfaces.IEncodedPublisher}).
    """

    localSubscribers: LocalSubscribers

    def publishEncoded(
        self, channel: str, data: Any, dataJSON: Optional[bytes], kind: str = "event", store: bool = True
    ) -> Deferred:
        raise NotImplementedError()

    def publish(self, channel: str, data: Any, kind: str = "event", store: bool = True) -> Deferred:
        return self.publishEncoded(channel, data, None, kind, store)

    def unsubscribe(self, pattern: str, subscriber: ISubscriber) -> Deferred:
        self.localSubscribers.remove(pattern, subscriber)
        return succeed(None)

    def unsubscribeAll(self, subscriber: ISubscriber) -> Deferred:
        self.localSubscribers.removeAll(subscriber)
        return succeed(None)
