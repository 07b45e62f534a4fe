"""
Debian's nginx in front of txcomet with the configuration docs/transports.md
documents (its C{nginx} block, as written, with txcomet's port for 8080),
on a port of its own: SSE arrives unbuffered, XHR streaming and long-polls
work, and a page served through nginx on that non-default port opens a
WebSocket through it and receives.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, browserMissing
from tests.support.redisserver import freePort, waitForPort

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

PAGE = """<!doctype html>
<meta charset="utf-8">
<script src="/comet/txcomet.js"></script>
<script>
  window.got = [];
  const client = new TxComet.Client('/comet', {transports: ['ws']});
  client.subscribe('news', (event) => window.got.push(event.data));
</script>
"""

WRAPPER = """
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
daemon off;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  server {{
    listen 127.0.0.1:{port};
    # the page itself (not part of the documented block)
    location / {{
      proxy_pass http://127.0.0.1:{upstream};
      proxy_set_header Host $http_host;
    }}
{documented}
  }}
}}
"""


def documentedBlock():
    with open(os.path.join(ROOT, "docs", "transports.md"), encoding="utf-8") as f:
        text = f.read()
    section = text[text.index("### nginx") :]
    return re.search(r"```nginx\n(.*?)```", section, re.S).group(1)


class NginxTests(SynchronousTestCase):
    def setUp(self):
        if not os.access(NGINX, os.X_OK):
            raise SkipTest("nginx is not installed (apt-get install nginx-light)")
        self.tmp = tempfile.mkdtemp(prefix="txcomet-nginx-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        static = os.path.join(self.tmp, "static")
        os.mkdir(static)
        with open(os.path.join(static, "index.html"), "w") as f:
            f.write(PAGE)
        self.upstream, self.port = freePort(), freePort()
        # Behind a proxy every request comes from loopback with
        # X-Forwarded-For: the publish API needs its secret.
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT] + [p for p in sys.path if p]),
                   TXCOMET_PUBLISHER_SECRET="behind-nginx")
        txcomet = subprocess.Popen(
            [sys.executable, "-m", "twisted", "txcomet", "--listen", "tcp:%d:interface=127.0.0.1" % (self.upstream,),
             "--static", static, "--heartbeat", "2"],
            cwd=self.tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.addCleanup(txcomet.wait)
        self.addCleanup(txcomet.terminate)
        waitForPort(self.upstream, txcomet)
        documented = documentedBlock().replace("8080", str(self.upstream))
        conf = os.path.join(self.tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(WRAPPER.format(tmp=self.tmp, port=self.port, upstream=self.upstream, documented=documented))
        nginx = subprocess.Popen([NGINX, "-p", self.tmp, "-c", conf, "-e", os.path.join(self.tmp, "error.log")],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.addCleanup(nginx.wait)
        self.addCleanup(nginx.terminate)
        waitForPort(self.port, nginx)
        self.base = "http://127.0.0.1:%d" % (self.port,)

    def publish(self, channel, data):
        done = subprocess.run(["curl", "-s", "-H", "Content-Type: application/json", "-H", "X-Comet-Secret: behind-nginx",
                               "-d", json.dumps(data), "%s/comet/publish/%s" % (self.base, channel)],
                              capture_output=True, timeout=10)
        self.assertTrue(json.loads(done.stdout)["ok"], done.stdout)

    def test_publishWithoutSecretRefused(self):
        """
        Through the proxy, a publish without the secret is not taken for a
        local one (the proxy's X-Forwarded-For says otherwise): 403.
        """
        done = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-d", "x",
                               "%s/comet/publish/news" % (self.base,)], capture_output=True, timeout=10)
        self.assertEqual(done.stdout, b"403")

    def stream(self, path):
        """
        Open C{path} through nginx with a raw socket; read with
        L{readUntil}.
        """
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        self.addCleanup(s.close)
        s.sendall(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept: text/event-stream\r\n\r\n"
                  % (path.encode("ascii"), self.port))
        return s

    def readUntil(self, s, marker, seconds=10):
        got = b""
        deadline = time.time() + seconds
        while marker not in got:
            s.settimeout(max(0.1, deadline - time.time()))
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        return got

    def test_sseUnbuffered(self):
        """
        An SSE event arrives through nginx as it is published, not when a
        proxy buffer fills or the stream ends.
        """
        s = self.stream("/comet/sse?channel=news")
        head = self.readUntil(s, b"\r\n\r\n")
        self.assertIn(b"200 OK", head)
        self.assertIn(b"text/event-stream", head)
        time.sleep(0.3)
        started = time.time()
        self.publish("news", {"n": 1})
        got = self.readUntil(s, b'"n":1')
        self.assertIn(b'"n":1', got)
        self.assertLess(time.time() - started, 2.0)

    def test_xhrStreamAndLongPoll(self):
        """
        XHR streaming delivers through nginx; a long-poll is held and
        answered with the event.
        """
        s = self.stream("/comet/xhr-stream?channel=news")
        self.readUntil(s, b"\r\n\r\n")
        time.sleep(0.3)
        poll = subprocess.Popen(["curl", "-s", "-m", "10", self.base + "/comet/longpoll?channel=news"],
                                stdout=subprocess.PIPE)
        time.sleep(0.5)
        self.publish("news", {"n": 2})
        self.assertIn(b'"n":2', self.readUntil(s, b'"n":2'))
        out, _ = poll.communicate(timeout=15)
        self.assertEqual([e["data"] for e in json.loads(out)], [{"n": 2}])

    def test_browserWebSocket(self):
        """
        A page served through nginx on its own (non-default) port opens a
        WebSocket through nginx, passes the Origin check (nginx passes the
        Host with its port) and receives.
        """
        missing = browserMissing()
        if missing:
            raise SkipTest(missing)
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                # what came over WebSocket frames (the client's probe polls
                # would deliver events too if the handshake were refused)
                frames = []
                page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(payload)))
                page.goto(self.base + "/")
                page.wait_for_function("() => window.TxComet && true")
                deadline = time.time() + 15
                while not any('"n":3' in str(f) for f in frames) and time.time() < deadline:
                    self.publish("news", {"n": 3})
                    page.wait_for_timeout(500)
                self.assertTrue(any('"n":3' in str(f) for f in frames), frames)
                self.assertIn({"n": 3}, page.evaluate("window.got"))
                self.assertEqual(page.evaluate("client.state"), "listening")
            finally:
                browser.close()
