"""
What each transport does on its own: SSE resumption and event types,
script-tag callbacks and errors, the iframe page, multipart boundaries and
image parts, the XHR prelude.
"""

import base64
import json

from tests.support.streamkit import STREAMING, CometTestCase
from tests.support.wire import EventStreamParser, MultipartParser, ScriptPageParser, parseScriptAnswer

XHR, IFRAME, SSE, MULTIPART = STREAMING


class EventSourceTests(CometTestCase):
    def test_prelude(self):
        """
        An event stream opens with a padding comment, C{retry:} advice and
        an C{id:} with no data: the position, which becomes the browser's
        last event id without firing an event.
        """
        reader = self.openStream(SSE, channel="news")
        parser = EventStreamParser()
        self.assertEqual(parser.feed(reader.stream.read()), [])
        self.assertEqual(parser.retry, 2000)
        self.assertEqual(parser.lastEventId, reader.stream.header("X-Comet-Position"))
        self.assertEqual(len(reader.stream.body), 2048 + len("retry: 2000\nid: %s\n\n" % (parser.lastEventId,)))

    def test_eventTypes(self):
        """
        Messages are C{message} events; presence notices are C{join} and
        C{leave} events, each with its id.
        """
        reader = self.openStream(SSE, channel="room")
        parser = EventStreamParser()
        parser.feed(reader.stream.read())
        member = self.client.join(user="ann", channels=["room"])
        eventId = self.publish("room", "hi")
        self.client.control(op="leave", session=member)
        self.http.flush()
        events = parser.feed(reader.stream.read())
        self.assertEqual([e[0] for e in events], ["join", "message", "leave"])
        self.assertEqual(events[1][2], eventId)
        self.assertEqual([json.loads(e[1])["type"] for e in events], ["join", "event", "leave"])

    def test_lastEventIdHeaderJoinListen(self):
        """
        A browser reconnecting with C{Last-Event-ID} (join-listen) gets
        exactly what it missed, from the channel's history.
        """
        ids = [self.publish("news", i) for i in range(4)]
        reader = self.openStream(SSE, headers={"Last-Event-ID": [ids[1]]}, channel="news")
        self.assertEqual([e["id"] for e in reader.events()], ids[2:])

    def test_lastEventIdQuery(self):
        """
        C{lastEventId=} does the same for clients that cannot set headers.
        """
        ids = [self.publish("news", i) for i in range(3)]
        reader = self.openStream(SSE, channel="news", lastEventId=ids[0])
        self.assertEqual([e["id"] for e in reader.events()], ids[1:])

    def test_lastEventIdHeaderSession(self):
        """
        With a session, C{Last-Event-ID} replays from the session's own
        buffer: only what came after it, once.
        """
        session = self.client.join(channels=["news"])
        reader = self.openStream(SSE, session=session)
        ids = [self.publish("news", i) for i in range(3)]
        self.assertEqual([e["id"] for e in reader.events()], ids)
        reader.stream.kill()
        ids.append(self.publish("news", 3))
        again = self.openStream(SSE, headers={"Last-Event-ID": [ids[0]]}, session=session)
        self.assertEqual([e["id"] for e in again.events()], ids[1:])

    def test_reconnectBeforeFirstEvent(self):
        """
        A browser whose stream dies before any event reconnects with the
        prelude's id as its Last-Event-ID and misses nothing: the event in
        flight is sent again.
        """
        session = self.client.join(channels=["news"])
        reader = self.openStream(SSE, session=session)
        reader.messages()
        reply = self.client.publish("news", "in flight")  # not flushed to the client
        reader.stream.kill(keep=0)
        position = reader.parser.position
        self.assertEqual(position, "%s-0" % (self.comet.bus.epoch,))
        again = self.openStream(SSE, headers={"Last-Event-ID": [position]}, session=session)
        self.assertEqual([e["id"] for e in again.events()], [reply["id"]])

    def test_unsafePositionNotEchoed(self):
        """
        A C{last} holding a line break is never written into the stream as
        an C{id:} line (it would inject fields); the session cannot resume
        from it and says so.
        """
        session = self.client.join(channels=["news"])
        reader = self.openStream(SSE, session=session, last="x\ndata: evil\n\nid: 1-2")
        body = reader.stream.read()
        self.assertNotIn(b"evil", body)
        self.assertEqual(reader.parser.feed(body), [{"type": "close", "reason": "replay_unavailable", "reconnect": True}])

    def test_closeEvent(self):
        """
        The close message is an C{event: close} with no id (it must not
        move the browser's last event id).
        """
        session = self.client.join(channels=["news"])
        reader = self.openStream(SSE, session=session)
        eventId = self.publish("news", 1)
        self.client.control(op="leave", session=session)
        parser = EventStreamParser()
        events = parser.feed(reader.stream.read())
        self.assertEqual(events[-1][0], "close")
        self.assertEqual(json.loads(events[-1][1])["reason"], "left")
        self.assertEqual(parser.lastEventId, eventId)


class ScriptTagTests(CometTestCase):
    """
    C{/comet/jsonp}: long-polling for script tags.
    """

    def answer(self, response):
        self.assertEqual(response.code, 200)
        self.assertEqual(response.header("Content-Type"), "application/javascript; charset=utf-8")
        self.assertEqual(response.header("X-Content-Type-Options"), "nosniff")
        self.assertEqual(response.header("Cache-Control"), "no-store")
        return parseScriptAnswer(response.body)

    def test_heldUntilAnEvent(self):
        """
        A join-listen script-tag request is held, then answered with the
        event as soon as one is published: C{/**/CALLBACK([...],POSITION);}.
        """
        d = self.client.start("GET", "jsonp", channel="news", callback="my.cb_1")
        self.assertNoResult(d)
        eventId = self.publish("news", {"x": "</script>"})
        self.client.flush()
        callback, messages, position = self.answer(self.successResultOf(d))
        self.assertEqual(callback, "my.cb_1")
        self.assertEqual(messages, [{"type": "event", "channel": "news", "id": eventId, "data": {"x": "</script>"}}])
        self.assertEqual(position, "%s-0" % (self.comet.bus.epoch,))

    def test_heartbeatAnswer(self):
        """
        With nothing to send, the answer after the heartbeat interval is an
        empty array with the position to ask again from, so no event
        published in between is missed.
        """
        d = self.client.start("GET", "jsonp", channel="news")
        self.clock.advance(self.comet.config.heartbeat)
        self.client.flush()
        callback, messages, position = self.answer(self.successResultOf(d))
        self.assertEqual((callback, messages), ("txcometCallback", []))
        eventId = self.publish("news", "between polls")
        response = self.client.request("GET", "jsonp", channel="news", last=position)
        self.assertEqual([m["id"] for m in self.answer(response)[1]], [eventId])

    def test_sessionMode(self):
        """
        With a session, queued events are answered at once.
        """
        session = self.client.join(channels=["news"])
        eventId = self.publish("news", 1)
        response = self.client.request("GET", "jsonp", session=session, callback="cb")
        self.assertEqual([m["id"] for m in self.answer(response)[1]], [eventId])

    def test_errorsAreCalls(self):
        """
        Errors are handed to the callback (a script element sees no status):
        an unknown session, a bad channel, an unknown parameter.
        """
        for params, code in [
            ({"session": "nope"}, "unknown_session"),
            ({"channel": "bad name"}, "invalid_channel"),
            ({"channel": "news", "chanel": "x"}, "invalid_request"),
            ({"channel": "news", "last": "nope"}, "invalid_position"),
        ]:
            response = self.client.request("GET", "jsonp", callback="cb", **params)
            callback, error, position = self.answer(response)
            self.assertEqual((callback, error["error"]), ("cb", code))
            self.assertIsNone(position)
        self.assertEqual(self.comet.hub.sessions, {})

    def test_invalidCallback(self):
        """
        A callback that is not 1-64 of A-Z a-z 0-9 _ . cannot be called:
        400 C{invalid_callback} as JSON, and nothing is joined.
        """
        for callback in ["alert(1)", "a b", "", "x" * 65, "</script>", "a;b", "é"]:
            response = self.client.request("GET", "jsonp", channel="news", callback=callback)
            self.assertEqual(response.code, 400, callback)
            self.assertEqual(response.json()["error"], "invalid_callback")
        self.assertEqual(self.comet.hub.sessions, {})


class IframeTests(CometTestCase):
    def test_prelude(self):
        """
        The page defines C{p} to call the parent's validated callback with
        the message and the position, then pads past 2 KiB before the first
        message.
        """
        reader = self.openStream(IFRAME, channel="news", callback="parent_fn.x")
        parser = ScriptPageParser()
        body = reader.stream.read()
        self.assertEqual(parser.feed(body), [])
        self.assertEqual(parser.callback, "parent_fn.x")
        self.assertEqual(parser.position, reader.stream.header("X-Comet-Position"))
        self.assertGreater(len(body), 2048)
        self.assertTrue(body.startswith(b"<!doctype html>"))

    def test_defaultCallback(self):
        """
        Without C{callback=}, the parent's C{txcometCallback} is called.
        """
        reader = self.openStream(IFRAME, channel="news")
        parser = ScriptPageParser()
        parser.feed(reader.stream.read())
        self.assertEqual(parser.callback, "txcometCallback")

    def test_errorPage(self):
        """
        An error is a page (with the error's status) handing the parent's
        callback an C{error} message.
        """
        for params, status, code in [
            ({"session": "nope"}, 404, "unknown_session"),
            ({"channel": "bad name"}, 400, "invalid_channel"),
        ]:
            response = self.client.request("GET", "iframe", callback="cb", **params)
            self.assertEqual(response.code, status)
            self.assertEqual(response.header("Content-Type"), "text/html; charset=utf-8")
            parser = ScriptPageParser()
            [message] = parser.feed(response.body)
            self.assertEqual((message["type"], message["error"]), ("error", code))

    def test_invalidCallback(self):
        """
        An invalid callback is a 400 C{invalid_callback} as JSON.
        """
        response = self.client.request("GET", "iframe", channel="news", callback="parent.alert(1)")
        self.assertEqual((response.code, response.json()["error"]), (400, "invalid_callback"))

    def test_closeEndsThePage(self):
        """
        The close message is the last script, and the page is ended.
        """
        session = self.client.join(channels=["news"])
        reader = self.openStream(IFRAME, session=session)
        self.client.control(op="leave", session=session)
        body = reader.stream.read()
        self.assertTrue(body.endswith(b"</body></html>\n"))
        self.assertEqual(reader.parser.feed(body)[-1]["reason"], "left")


class MultipartTests(CometTestCase):
    def boundary(self, reader):
        return reader.stream.header("Content-Type").split("boundary=")[1].encode("ascii")

    def test_boundaryPerResponse(self):
        """
        Each response has its own random boundary.
        """
        boundaries = {self.boundary(self.openStream(MULTIPART, channel="news")) for i in range(5)}
        self.assertEqual(len(boundaries), 5)

    def test_imageParts(self):
        """
        With C{parts=data}, an event whose data is a C{data:} URL is a part
        of its bytes with its media type, so the stream can be an
        C{<img>}'s source; presence notices make no part.  The next part's
        headers are sent ahead with the last type, so a part of another
        type comes after an empty one of the announced type.
        """
        png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
        reader = self.openStream(MULTIPART, channel="cam", parts="data")
        parser = MultipartParser(self.boundary(reader))
        self.client.join(user="watcher", channels=["cam"])
        self.publish("cam", "data:image/png;base64," + base64.b64encode(png).decode("ascii"))
        self.publish("cam", "plain words")
        parts = parser.feed(reader.stream.read())
        self.assertEqual(
            [(h["content-type"], b) for h, b in parts],
            [("image/png", png), ("image/png", b""), ("text/plain; charset=utf-8", b"plain words")],
        )

    def test_imageHeartbeatRepeatsLastPart(self):
        """
        In an image stream a heartbeat repeats the last part (anything else
        would replace the picture); before the first part there is none.
        """
        reader = self.openStream(MULTIPART, channel="cam", parts="data")
        parser = MultipartParser(self.boundary(reader))
        self.clock.advance(self.comet.config.heartbeat)
        self.assertEqual(parser.feed(reader.stream.read()), [])
        self.publish("cam", "data:image/gif;base64,R0lGODlh")
        self.clock.advance(self.comet.config.heartbeat)  # the part was written in this interval
        self.clock.advance(self.comet.config.heartbeat)
        parts = parser.feed(reader.stream.read())
        self.assertEqual([b for h, b in parts], [b"GIF89a", b"GIF89a"])

    def test_imageStreamEndsWithoutClosePart(self):
        """
        An image stream ends with its last part again, not a JSON close
        part (which would replace the picture with a broken one).
        """
        session = self.client.join(channels=["cam"])
        reader = self.openStream(MULTIPART, session=session, parts="data")
        parser = MultipartParser(self.boundary(reader))
        self.publish("cam", "frame")
        self.client.control(op="leave", session=session)
        parts = parser.feed(reader.stream.read())
        self.assertTrue(reader.stream.done)
        self.assertTrue(parser.closed)
        self.assertEqual([b for h, b in parts], [b"frame", b"frame"])

    def test_nextPartAnnounced(self):
        """
        Each part is followed at once by the boundary and the next part's
        headers, which is what makes a browser show it without waiting for
        the next event.
        """
        reader = self.openStream(MULTIPART, channel="cam", parts="data")
        boundary = self.boundary(reader)
        reader.stream.read()
        self.publish("cam", "data:image/gif;base64,R0lGODlh")
        self.assertEqual(
            reader.stream.read(),
            b"Content-Type: image/gif\r\n\r\nGIF89a\r\n--" + boundary + b"\r\nContent-Type: image/gif\r\n\r\n",
        )
        message = self.openStream(MULTIPART, channel="news")
        self.assertEqual(
            message.stream.read(), b"--" + self.boundary(message) + b"\r\nContent-Type: application/json; charset=utf-8\r\n\r\n"
        )

    def test_messageStreamCloses(self):
        """
        A message stream ends with the close part and the close delimiter.
        """
        session = self.client.join(channels=["news"])
        reader = self.openStream(MULTIPART, session=session)
        self.client.control(op="leave", session=session)
        parser = MultipartParser(self.boundary(reader))
        parts = parser.feed(reader.stream.read())
        self.assertTrue(parser.closed)
        self.assertEqual(json.loads(parts[-1][1])["reason"], "left")

    def test_badParts(self):
        """
        C{parts=} other than C{message} or C{data} is a 400.
        """
        response = self.client.request("GET", "multipart", channel="cam", parts="image")
        self.assertEqual((response.code, response.json()["error"]), (400, "invalid_request"))


class XHRStreamTests(CometTestCase):
    def test_prelude(self):
        """
        An XHR stream starts with 2 KiB of whitespace ending in a line
        break, which a line parser skips.
        """
        reader = self.openStream(XHR, channel="news")
        self.assertEqual(reader.stream.read(), b" " * 2047 + b"\n")
