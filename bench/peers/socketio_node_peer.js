// Socket.IO's own Node server as a benchmark peer (what most people pick
// for real-time): every client joins the default namespace; POST /publish
// emits the body as a "bench" event to all of them, as the python-socketio
// peer does.  Usage: node socketio_node_peer.js PORT [--recovery]
//
// --recovery turns on connection state recovery (Socket.IO 4.6+): each
// broadcast is kept for two minutes and carries an offset, and a client
// that reconnects with its session id and last offset gets what it missed.
// The reconnect storm needs it; fan-out runs without it, as by default.
'use strict';
const http = require('http');
const {Server} = require('socket.io');

const port = Number(process.argv[2]);
const server = http.createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/publish') {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      io.emit('bench', Buffer.concat(chunks).toString('utf8'));
      res.writeHead(200, {'Content-Type': 'text/plain'});
      res.end('ok\n');
    });
    return;
  }
  res.writeHead(404);
  res.end();
});
const options = {transports: ['websocket'], serveClient: false};
if (process.argv.includes('--recovery')) {
  options.connectionStateRecovery = {maxDisconnectionDuration: 2 * 60 * 1000, skipMiddlewares: true};
}
const io = new Server(server, options);
server.listen(port, '127.0.0.1', 1024);
