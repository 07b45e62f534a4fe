"""
The admin page's server side in memory: its tickets, who may fetch the
page, the ticket as a pass to the admin channel and the server API, and
the feed that publishes the figures only while a page listens.  (In
Chromium: tests/system/test_admin_browser.py.)
"""

import base64
import json

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txcomet._model.config import CometConfig
from txcomet._server.admin import ADMIN_CHANNEL, TICKET_LIFETIME, AdminTickets
from txcomet.testing import MemoryCometClient, RecordingDataChannel, makeComet

ELSEWHERE = {"X-Forwarded-For": ["198.51.100.2"]}


class TicketTests(SynchronousTestCase):
    def test_validUntilExpiry(self):
        clock = Clock()
        tickets = AdminTickets(CometConfig(apiKey="k"), clock)
        ticket = tickets.issue()
        self.assertTrue(tickets.valid(ticket))
        clock.advance(TICKET_LIFETIME + 1)
        self.assertFalse(tickets.valid(ticket))

    def test_forgedOrOtherKey(self):
        """
        A ticket signed under another key, an altered expiry, and things
        that are no ticket at all are refused.
        """
        clock = Clock()
        ours = AdminTickets(CometConfig(apiKey="k"), clock)
        theirs = AdminTickets(CometConfig(apiKey="other"), clock)
        ticket = ours.issue()
        self.assertTrue(AdminTickets(CometConfig(apiKey="k"), clock).valid(ticket))
        self.assertFalse(theirs.valid(ticket))
        expiry, signature = ticket.split(".")
        self.assertFalse(ours.valid("%d.%s" % (int(expiry) + 1, signature)))
        for junk in (None, 5, "", ".", "x.y", "1.2.3", "٣٣.abc", "9" * 300):
            self.assertFalse(ours.valid(junk), junk)


class PageTests(SynchronousTestCase):
    def started(self, **config):
        comet, clock = makeComet(**config)
        comet.startService()
        self.addCleanup(comet.stopService)
        return comet, clock, MemoryCometClient(comet)

    def test_localWithoutKey(self):
        comet, clock, client = self.started()
        page = client.request("GET", "admin")
        self.assertEqual(page.code, 200)
        self.assertIn(b'data-ticket="', page.body)
        self.assertEqual(client.request("GET", "admin", headers=ELSEWHERE).code, 401)

    def test_basicPasswordIsTheKey(self):
        """
        With a key, the page asks for it as a Basic password; the page
        holds a ticket, never the key.
        """
        comet, clock, client = self.started(apiKey="the-key")
        refused = client.request("GET", "admin")
        self.assertEqual(refused.code, 401)
        self.assertIn("Basic", refused.header("WWW-Authenticate"))
        wrong = base64.b64encode(b"ops:nope").decode()
        self.assertEqual(client.request("GET", "admin", headers={"Authorization": ["Basic " + wrong]}).code, 401)
        right = base64.b64encode(b"ops:the-key").decode()
        page = client.request("GET", "admin", headers=dict(ELSEWHERE, Authorization=["Basic " + right]))
        self.assertEqual(page.code, 200)
        self.assertNotIn(b"the-key", page.body)

    def ticketOf(self, client, headers=None):
        body = client.request("GET", "admin", headers=headers).body.decode()
        return body.split('data-ticket="', 1)[1].split('"', 1)[0]

    def test_ticketOpensTheAPI(self):
        """
        The page's ticket is a pass to the server API (X-Admin-Ticket); a
        bad one is not.
        """
        comet, clock, client = self.started(apiKey="the-key")
        right = base64.b64encode(b"ops:the-key").decode()
        ticket = self.ticketOf(client, {"Authorization": ["Basic " + right]})
        body = json.dumps({"method": "info"}).encode()
        ok = client.request("POST", "api", body, headers=dict(ELSEWHERE, **{"X-Admin-Ticket": [ticket]}))
        self.assertEqual(ok.code, 200)
        bad = client.request("POST", "api", body, headers=dict(ELSEWHERE, **{"X-Admin-Ticket": [ticket + "x"]}))
        self.assertEqual(bad.code, 401)

    def test_ticketOpensTheAdminChannelOnly(self):
        """
        With the ticket as its token, a session may subscribe to the admin
        channel, and to no other reserved channel; without it, not there.
        """
        comet, clock, client = self.started()
        ticket = self.ticketOf(client)
        session = client.join()
        refused = client.subscribe(session, ADMIN_CHANNEL)
        self.assertEqual(refused["error"], "forbidden")
        self.assertEqual(client.subscribe(session, ADMIN_CHANNEL, token="1.x")["error"], "forbidden")
        self.assertEqual(client.subscribe(session, "~txcomet/query", token=ticket)["error"], "forbidden")
        self.assertTrue(client.subscribe(session, ADMIN_CHANNEL, token=ticket)["ok"])

    def test_feedOnlyWhileWatched(self):
        """
        The feed publishes the cluster's figures once a second while a
        session here listens to the admin channel, and not otherwise.
        """
        comet, clock, client = self.started()
        published = []
        comet.bus.subscribe(ADMIN_CHANNEL, type("S", (), {"deliver": lambda s, e: published.append(e.data)})())
        clock.advance(3)
        self.assertEqual(published, [])
        session = comet.hub.join().result
        channel = RecordingDataChannel()
        session.attach(channel)
        session.subscribe(ADMIN_CHANNEL, token=comet.adminTickets.issue())
        other = comet.hub.join().result
        other.subscribe("news")
        clock.advance(1)
        self.assertEqual(len(published), 1)
        update = published[0]
        self.assertEqual([n["sessions"] for n in update["nodes"]], [2])
        self.assertEqual(update["channels"], [{"channel": "news", "subscribers": 1}])
        self.assertEqual(update["nodes"][0]["channels"], 1)  # the admin channel is not counted
        self.assertEqual([w[0] for w in channel.writes], ["events"])
        session.close("left")
        clock.advance(2)
        self.assertEqual(len(published), 1)
