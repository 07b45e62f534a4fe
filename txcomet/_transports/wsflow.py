# -*- test-case-name: tests.transports.test_websocket,tests.system.test_websocket_real -*-
"""
A WebSocket connection's writing, with flow control: L{WebSocketFlow}, a
part of L{txcomet._transports.websocket.CometWebSocketProtocol}.

The turn rule (L{txcomet._fastpath.turn.TurnBatch}), as for every
stream: the first frame of a reactor turn goes straight to the socket (the
sink's C{deliverEvent}, through the connection's
L{txcomet._fastpath.writer.DirectWriter}, or L{WebSocketFlow.writeNow}),
frames written after it in the same turn wait in C{pending} until the end
of the turn, then go out in one write: at most two sends per connection
per turn, however many events the turn published.  While the transport is
full (paused), frames wait in C{_backlog} instead, within the session
queue limits.  C{pending} is only ever non-empty while not paused and
C{_backlog} is empty, so it always comes first.
"""

from collections import deque

from txcomet._fastpath.writer import writeThrough
from txcomet._transports.wscommon import OPEN, frameText


class WebSocketFlow:
    """
    Writing to one WebSocket connection, and being its transport's
    producer.  A mixin of L{txcomet._transports.websocket.CometWebSocketProtocol},
    whose state (in its slots) it reads and writes: the same object, so
    the fan-out path hands nothing between objects.
    """

    __slots__ = ()

    def _sendText(self, payload: bytes) -> None:
        if self.state != self.STATE_OPEN:
            return
        if self._perMessageCompress is None:
            self._write(frameText(payload), 1)
        else:
            self._writeMessage(payload)

    def _sendNow(self, payload: bytes) -> None:
        """
        Send a last message past any flow control: the connection is being
        closed, and what waited has just been written.
        """
        if self._perMessageCompress is None:
            if self._direct is not None:
                self.sink.leaveRoster()
                self._direct.spilled = True
            self.transport.write(frameText(payload))
        else:
            self.sendMessage(payload)

    def _write(self, frames: bytes, count: int) -> None:
        self.wrote = True
        sink = self.sink
        if sink is not None and sink.seat is not None:
            sink.leaveRoster()
        if self._paused or self._backlog:
            self._backlog.append((True, frames))
            self._queued(len(frames), count)
            return
        self.writeInTurn(frames, count)

    def _writeMessage(self, payload: bytes) -> None:
        self.wrote = True
        if self._paused or self._backlog:
            self._backlog.append((False, payload))
            self._queued(len(payload), 1)
        else:
            self.sendMessage(payload)

    def writeNow(self, data: bytes, events: int) -> None:
        """
        Write frames now, in one write (see L{TurnBatch}).
        """
        if self._direct is not None:
            self._direct.write(data)
        else:
            writeThrough(self.transport, data)

    def _queued(self, size: int, count: int, check: bool = True) -> None:
        self._backlogBytes += size
        self._backlogCount += count
        config = self.factory.hub.config
        if check and (self._backlogCount > config.queueMessages or self._backlogBytes > config.queueBytes):
            if self.session is not None:
                self.session.close("slow_consumer")
            else:
                self.closeChannel("slow_consumer", True)

    def _flushBacklog(self, force: bool = False) -> None:
        backlog = self._backlog
        while backlog and (force or not self._paused):
            isFrame, data = backlog.popleft()
            if isFrame:
                # Join what follows, up to a send's worth.
                chunk = [data]
                size = len(data)
                while backlog and backlog[0][0] and size < 65536:
                    data = backlog.popleft()[1]
                    chunk.append(data)
                    size += len(data)
                data = chunk[0] if len(chunk) == 1 else b"".join(chunk)
                if self._direct is not None:
                    self._direct.write(data)
                else:
                    writeThrough(self.transport, data)
            else:
                self.sendMessage(data)
        if not backlog:
            self._backlogBytes = 0
            self._backlogCount = 0

    def _flushAll(self) -> None:
        self.flushPending()
        self._flushBacklog(force=True)

    def _unblock(self) -> None:
        """
        Let the direct path write again if the connection is open, not
        paused and has no backlog.
        """
        if self.sink is not None:
            self.sink.blocked = bool(self._paused or self._backlog or self.state != OPEN)

    def _startBacklog(self) -> None:
        # Paused: what is written from now on waits in a deque.
        self._paused = True
        if not isinstance(self._backlog, deque):
            self._backlog = deque()

    def pauseProducing(self) -> None:
        self._startBacklog()
        if self.sink is not None:
            self.sink.leaveRoster()
            self.sink.blocked = True
        data = self.heldBytes()
        if data is not None:
            # Keep their place ahead of what comes next.  The limits are
            # checked on the next write, not here, inside the transport's.
            count = self.pendingEvents
            self.pending = ()
            self.pendingSize = 0
            self.pendingEvents = 0
            self._backlog.appendleft((True, data))
            self._queued(len(data), count, check=False)

    def resumeProducing(self) -> None:
        self._paused = False
        if self._backlog and self.state == self.STATE_OPEN:
            self._flushBacklog()
        if not self._paused and not self._backlog:
            # Writing it may have paused the connection again.
            self._backlog = ()
        self._unblock()

    def stopProducing(self) -> None:
        self._startBacklog()
        if self.sink is not None:
            self.sink.leaveRoster()
            self.sink.blocked = True
