// Faye (Node) as a benchmark peer: its Bayeux server on /bayeux (WebSocket
// and long-polling), and POST /publish/<channel>, whose body is published
// to /<channel> by the server's own in-process client, as txcomet's publish
// API does.  Usage: node faye_peer.js PORT
'use strict';
const http = require('http');
const faye = require('faye');

const port = Number(process.argv[2]);
const bayeux = new faye.NodeAdapter({mount: '/bayeux', timeout: 25});
const client = bayeux.getClient();

const server = http.createServer((req, res) => {
  const m = /^\/publish\/(.+)$/.exec(req.url);
  if (req.method === 'POST' && m) {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      client.publish('/' + m[1], Buffer.concat(chunks).toString('utf8')).then(
        () => { res.writeHead(200, {'Content-Type': 'application/json'}); res.end('{"ok":true}'); },
        (e) => { res.writeHead(500, {'Content-Type': 'application/json'}); res.end(JSON.stringify({error: String(e)})); });
    });
    return;
  }
  res.writeHead(404);
  res.end();
});
bayeux.attach(server);
server.listen(port, '127.0.0.1', 1024);
