"""
The subscribers one process holds, by channel and by pattern, and the
fan-out to them: shared by every bus (in memory, Redis, worker).
"""

from typing import Callable, Dict, Iterable, List, Optional, Tuple

from twisted.logger import Logger

from ._channels import Pattern, isPattern
from ._event import Event
from .interfaces import ISubscriber


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

    def add(self, pattern: str, subscriber: ISubscriber) -> None:
        """
        Subscribe C{subscriber} to C{pattern} (already valid).
        """
        if isPattern(pattern):
            entry = self.patterns.get(pattern)
            if entry is None:
                entry = self.patterns[pattern] = (Pattern(pattern), {})
            entry[1][subscriber] = None
        else:
            self.exact.setdefault(pattern, {})[subscriber] = None
        self.bySubscriber.setdefault(subscriber, {})[pattern] = None

    def remove(self, pattern: str, subscriber: ISubscriber) -> None:
        """
        Drop one subscription; unknown pairs are ignored.
        """
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
            if subscribers:
                return
            del self.exact[pattern]
        if self.onEmpty is not None:
            self.onEmpty(pattern)

    def fanOut(self, event: Event) -> None:
        """
        Deliver C{event} to every subscriber it matches, once each.
        """
        exact = self.exact.get(event.channel)
        if not self.patterns:
            if exact:
                self._deliverAll(event, list(exact))
            return
        targets: Dict[ISubscriber, None] = dict(exact) if exact else {}
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
