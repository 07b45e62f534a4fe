# -*- test-case-name: tests.fastpath.test_contracts,tests.fastpath.test_writer,tests.fastpath.test_roster -*-
"""
The fast path's contracts, declared (private: txcomet's own transports and
sessions meet on them; applications do not implement them).

  - L{IDirectChannel}: a data channel with a direct path, its L{ISink}.
  - L{ISink}: what a session hands an event straight to, while nothing is
    pending for it.
  - L{IRosterMember}: a sink that can join a channel's
    L{txcomet._fastpath.roster.Roster}, and what the roster needs of it.
  - L{IRosterSubscriber}: the subscriber (a session) behind a roster
    member, told when its member joins and leaves.
"""

from zope.interface import Attribute, Interface

from txcomet.interfaces import IDataChannel


class ISink(Interface):
    """
    A data channel's direct path.
    """

    seat = Attribute("Its L{txcomet._fastpath.roster.Seat} while it is in a roster, or C{None}.")

    def deliverEvent(event):
        """
        Write C{event} now (or with the rest of this reactor turn).
        """


class IDirectChannel(IDataChannel):
    """
    A data channel that may take events by a direct path.
    """

    sink = Attribute("Its L{ISink} while the direct path is open (a plain connection, the prelude out), else C{None}.")


class IRosterMember(ISink):
    """
    A sink that can be a member of a roster; see
    L{txcomet._fastpath.roster.Roster}.
    """

    rosterSocket = Attribute("The member's socket, which the roster sends to.")
    rosterFraming = Attribute("The L{txcomet.interfaces.IFraming} of its wire bytes.")
    rosterTurn = Attribute("Its L{txcomet._fastpath.turn.Turn}.")
    rosterTally = Attribute("Its transport's delivery counters (L{txcomet._model.stats.Tally}).")
    rosterBudget = Attribute("Bytes it may take before it must leave (to be recycled), or C{None}.")

    def rosterLeft(seat, pending):
        """
        It has left its roster, where it had C{seat}; C{pending} (bytes, or
        C{None}) is what the roster held back for it in this turn, to be
        written first.
        """

    def rosterSpill(data):
        """
        Write C{data}, what its socket did not take of a roster's send.
        """

    def rosterSpent():
        """
        It has had its budget: recycle the stream.
        """


class IRosterSubscriber(Interface):
    """
    The subscriber whose sink is a roster member (a session).
    """

    def joinRoster(sink):
        """
        Let C{sink} join its channel's roster; whether it did, or C{None}
        when it never may.
        """

    def leftRoster(seat):
        """
        Its sink has left its roster, where it had C{seat} (a
        L{txcomet._fastpath.roster.Seat}).
        """
