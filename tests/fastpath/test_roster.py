"""
Tests for fan-out rosters: L{txcomet._fastpath.roster.Roster} and the membership
kept by L{txcomet._bus.subscribers.LocalSubscribers}.

Members here are small fakes over real UNIX socket pairs (the roster sends
with C{socket.send} itself); the streams that really join rosters are
tested over real connections in test_fastpath and test_streaming_integration.
"""

import socket

from twisted.internet.task import Clock
from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase

from txcomet._model.event import Event
from txcomet._model.stats import Tally
from txcomet._fastpath.contracts import IRosterMember
from zope.interface import implementer
from txcomet._fastpath.roster import Roster, Seat
from txcomet._fastpath.turn import Turn
from txcomet._bus.subscribers import LocalSubscribers


class Framing:
    """
    An event as C{<channel>:<data>;}.
    """

    def __init__(self, name="test"):
        self.name = name

    def frameEvent(self, event):
        return b"%s:%s;" % (event.channel.encode(), str(event.data).encode())


FRAMING = Framing()


@implementer(IRosterMember)
class Member:
    """
    A roster member: what the roster needs of a data channel's sink, and a
    record of what it was told.  What it must write itself goes to its
    socket too, so the peer sees the stream's real order.
    """

    rosterFraming = FRAMING
    rosterBudget = None
    seat = None
    #: one transport's counters, shared by every member of a test
    rosterTally = Tally()

    def __init__(self, turn, sendBuffer=None):
        self.rosterTurn = turn
        self.rosterSocket, self.peer = socket.socketpair()
        if sendBuffer is not None:
            self.rosterSocket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sendBuffer)
        self.rosterSocket.setblocking(False)
        self.peer.setblocking(False)
        self.left = []
        self.spilled = []
        self.spent = 0

    def close(self):
        self.rosterSocket.close()
        self.peer.close()

    def deliverEvent(self, event):
        # its own path: straight to its socket, as a sink writes
        self.rosterSocket.send(event.framed(self.rosterFraming))

    @property
    def roster(self):
        """
        The roster it is in (its seat's), or C{None}.
        """
        return self.seat.roster if self.seat is not None else None

    def rosterLeft(self, seat, pending):
        self.left.append((seat.roster, pending))

    def rosterSpill(self, data):
        self.spilled.append(data)

    def rosterSpent(self):
        self.spent += 1

    def received(self):
        chunks = []
        while True:
            try:
                chunk = self.peer.recv(1 << 20)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


class Subscriber:
    """
    A subscriber that records what it is delivered one by one.
    """

    def __init__(self):
        self.events = []

    def deliver(self, event):
        self.events.append(event.data)


class RosterTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.turn = Turn(self.clock)
        self.local = LocalSubscribers(Logger())
        self.offset = 0

    def member(self, channel="c", **kwargs):
        subscriber = Subscriber()
        member = Member(self.turn, **kwargs)
        self.addCleanup(member.close)
        self.local.add(channel, subscriber)
        return subscriber, member

    def publish(self, data, channel="c"):
        self.offset += 1
        self.local.fanOut(Event(channel, data, "e", self.offset))

    def test_joinedMembersGetEventsOnTheirSockets(self):
        """
        Once joined, a subscriber's events go to its member's socket, not
        through its C{deliver}; a subscriber not in the roster still gets
        them one by one; each gets each event once.
        """
        subscriber, member = self.member()
        other = Subscriber()
        self.local.add("c", other)
        self.assertTrue(self.local.join(subscriber, member))
        self.assertIsInstance(member.roster, Roster)
        self.publish(1)
        self.assertEqual(member.received(), b"c:1;")
        self.assertEqual(subscriber.events, [])
        self.assertEqual(other.events, [1])

    def test_oneSeat(self):
        """
        A member's membership is one L{Seat}: the member holds it, the
        registry finds it by subscriber, and its position is the member's
        place in the roster, kept as members leave; its marks are the
        roster's counters when it joined.
        """
        pairs = [self.member() for _ in range(3)]
        for subscriber, member in pairs[:2]:
            self.local.join(subscriber, member)
        self.publish(1)
        self.clock.advance(0)
        late, lateMember = pairs[2]
        self.assertTrue(self.local.join(late, lateMember))
        seat = lateMember.seat
        self.assertIsInstance(seat, Seat)
        self.assertIs(self.local.members[late], seat)
        roster = seat.roster
        self.assertEqual((seat.member, seat.subscriber), (lateMember, late))
        self.assertEqual((seat.events, seat.bytes, seat.delivered), (1, len(b"c:1;"), 1))
        self.local.evict(pairs[0][1])
        self.assertIsNone(pairs[0][1].seat)
        for position, each in enumerate(roster.seats):
            self.assertEqual(each.position, position)
            self.assertIs(roster.sockets[position], each.member.rosterSocket)
        self.assertEqual(sorted(id(s.member) for s in roster.seats), sorted([id(pairs[1][1]), id(lateMember)]))

    def test_turn(self):
        """
        The first event of a reactor turn goes at once; the rest of the
        turn at its end, in one write.
        """
        subscriber, member = self.member()
        self.local.join(subscriber, member)
        self.publish(1)
        self.publish(2)
        self.publish(3)
        self.assertEqual(member.received(), b"c:1;")
        self.assertEqual(member.roster.pending, [b"c:2;", b"c:3;"])
        self.clock.advance(0)
        self.assertEqual(member.received(), b"c:2;c:3;")
        self.assertEqual(member.roster.events, 3)

    def test_countsABatchAtOnce(self):
        """
        The roster counts its deliveries and their envelope bytes for its
        transport: events times members, whether sent at once or at the
        turn's end.
        """
        tally = Member.rosterTally = Tally()
        self.addCleanup(setattr, Member, "rosterTally", Tally())
        pairs = [self.member() for _ in range(3)]
        for subscriber, member in pairs:
            self.local.join(subscriber, member)
        events = []
        for n in range(4):
            self.offset += 1
            event = Event("c", n, "e", self.offset)
            event.json  # as a framing makes it
            events.append(event)
            self.local.fanOut(event)
        self.assertEqual(tally.deliveries, 3)
        self.clock.advance(0)
        self.assertEqual(tally.deliveries, 12)
        self.assertEqual(tally.bytes, 3 * sum(len(e.json) for e in events))

    def test_refused(self):
        """
        Only a subscriber with a single subscription, to a channel (not a
        pattern), joins; and not while the roster holds back events it has
        not had.
        """
        subscriber, member = self.member()
        self.local.add("d", subscriber)
        self.assertFalse(self.local.join(subscriber, member))
        wild, wildMember = Subscriber(), Member(self.turn)
        self.addCleanup(wildMember.close)
        self.local.add("c/*", wild)
        self.assertFalse(self.local.join(wild, wildMember))
        self.assertFalse(self.local.join(Subscriber(), Member(self.turn)))

        first, firstMember = self.member("e")
        late, lateMember = self.member("e")
        self.local.join(first, firstMember)
        self.publish(1, "e")
        self.publish(2, "e")
        self.assertFalse(self.local.join(late, lateMember), "the roster holds back 2")
        self.clock.advance(0)
        self.assertTrue(self.local.join(late, lateMember))
        self.assertEqual(late.events, [1, 2])

    def test_secondSubscriptionEvicts(self):
        """
        A member whose subscriber subscribes to something else leaves:
        from then on it gets events one by one.
        """
        subscriber, member = self.member()
        self.local.join(subscriber, member)
        self.local.add("d", subscriber)
        self.assertIsNone(member.roster)
        self.assertEqual(len(member.left), 1)
        self.publish(1)
        self.publish(2, "d")
        self.assertEqual(subscriber.events, [1, 2])
        self.assertEqual(member.received(), b"")

    def test_leavingTakesWhatWasHeldBack(self):
        """
        A member that leaves in the middle of a turn is handed what the
        roster held back, and the roster does not send it that again.
        """
        subscriber, member = self.member()
        stays, staying = self.member()
        self.local.join(subscriber, member)
        self.local.join(stays, staying)
        self.publish(1)
        self.publish(2)
        self.local.remove("c", subscriber)
        [(roster, pending)] = member.left
        self.assertEqual(pending, b"c:2;")
        self.assertNotIn(member, [seat.member for seat in roster.seats])
        self.clock.advance(0)
        self.assertEqual(member.received(), b"c:1;")
        self.assertEqual(staying.received(), b"c:1;c:2;")

    def test_removeAllEvicts(self):
        """
        A subscriber that goes leaves its roster, and an empty channel
        keeps no roster.
        """
        subscriber, member = self.member()
        self.local.join(subscriber, member)
        self.local.removeAll(subscriber)
        self.assertIsNone(member.roster)
        self.assertEqual(self.local.members, {})
        self.assertEqual(self.local.rosters, {})
        self.publish(1)
        self.assertEqual(member.received(), b"")

    def test_shortWrite(self):
        """
        A member whose socket does not take a whole write leaves; the rest
        of that write is handed to it, and the event is not delivered to
        it again one by one.
        """
        subscriber, member = self.member(sendBuffer=4096)
        healthy, healthyMember = self.member()
        self.local.join(subscriber, member)
        self.local.join(healthy, healthyMember)
        big = "x" * 100000
        self.publish(big)
        self.assertIsNone(member.roster)
        [rest] = member.spilled
        got = member.received()
        self.assertEqual(got + rest, b"c:%s;" % (big.encode(),))
        self.assertEqual(subscriber.events, [])
        self.assertEqual([seat.member for seat in healthyMember.roster.seats], [healthyMember])
        self.publish(2)
        self.assertEqual(subscriber.events, [2])

    def test_twoFramings(self):
        """
        Members of one channel with different wire framings are in
        different rosters; each gets its own framing.
        """
        subscriber, member = self.member()
        other, otherMember = self.member()
        otherMember.rosterFraming = Framing("other")
        self.local.join(subscriber, member)
        self.local.join(other, otherMember)
        self.assertIsNot(member.roster, otherMember.roster)
        self.publish(1)
        self.assertEqual(member.received(), b"c:1;")
        self.assertEqual(otherMember.received(), b"c:1;")
        self.assertEqual(sorted(self.local.rosters["c"].byFraming), ["other", "test"])

    def test_patternsStillOnce(self):
        """
        A pattern subscriber and the channel's members each get an event
        once.
        """
        subscriber, member = self.member()
        watcher = Subscriber()
        self.local.add("**", watcher)
        self.local.add("c", watcher)
        self.local.join(subscriber, member)
        self.publish(1)
        self.assertEqual(watcher.events, [1])
        self.assertEqual(member.received(), b"c:1;")
        self.assertEqual(subscriber.events, [])

    def test_subscribersOfCountsMembers(self):
        """
        Members are still subscribers of their channel.
        """
        subscriber, member = self.member()
        self.local.join(subscriber, member)
        self.assertEqual(self.local.subscribersOf(["c"]), [subscriber])

    def test_logForReplayers(self):
        """
        While a member's session keeps a replay buffer, the roster logs
        what it delivers, bounded but never shorter than the buffer; with
        no such member it logs nothing.
        """
        subscriber, member = self.member()
        self.local.join(subscriber, member)
        roster = member.roster
        for i in range(5):
            self.publish(i)
        self.assertEqual(roster.log, [])
        roster.addReplayer(3)
        mark = roster.delivered
        for i in range(500):
            self.publish(i)
            self.clock.advance(0)
            member.received()
        self.assertIs(member.roster, roster)
        self.assertLessEqual(len(roster.log), 3 + 64)
        tail = roster.tail(mark)
        self.assertGreaterEqual(len(tail), 3)
        self.assertEqual([e.data for e in tail[-3:]], [497, 498, 499])
        roster.removeReplayer()
        self.assertEqual(roster.log, [])

    def test_budget(self):
        """
        A member with a byte budget (a stream recycled after so many bytes)
        leaves once the roster has sent it that much, and is told; one
        with nothing left does not join.
        """
        subscriber, member = self.member()
        member.rosterBudget = 8
        unlimited, unlimitedMember = self.member()
        self.local.join(subscriber, member)
        self.local.join(unlimited, unlimitedMember)
        self.publish(1)
        self.clock.advance(0)
        self.assertIs(member.roster, unlimitedMember.roster)
        self.publish(2)
        self.clock.advance(0)
        self.assertEqual(member.roster, None)
        self.assertEqual(member.spent, 1)
        self.assertEqual(member.received(), b"c:1;c:2;")
        self.publish(3)
        self.assertEqual(subscriber.events, [3])
        self.assertIsNotNone(unlimitedMember.roster)
        self.local.remove("c", subscriber)
        self.local.add("c", subscriber)
        member.rosterBudget = 0
        self.assertFalse(self.local.join(subscriber, member))
