"""
A real C{twist txcomet --listen ssl:...} with a self-signed certificate:
every HTTP transport over HTTP/2 (curl C{--http2}, and Chromium with more
streams than HTTP/1.1's six connections per host), the same over HTTP/1.1,
WebSocket over TLS (C{wss:}), and the lean publish path under TLS.

Needs C{twisted[tls,http2]} (in the test extra) and curl.
"""

import datetime
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from importlib.util import find_spec

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, browserMissing
from tests.support.multinode import stopProcessGroup

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _missing():
    if find_spec("h2") is None or find_spec("OpenSSL") is None:
        return "twisted[tls,http2] is not installed (pip install '.[test]')"
    if shutil.which("curl") is None:
        return "curl is missing"
    return None


def makeCertificate(directory):
    """
    A self-signed certificate for 127.0.0.1 and localhost; return the
    paths of the key and the certificate.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    keyPath = os.path.join(directory, "key.pem")
    certPath = os.path.join(directory, "cert.pem")
    with open(keyPath, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(certPath, "wb") as f:
        f.write(certificate.public_bytes(serialization.Encoding.PEM))
    return keyPath, certPath


class TLSServer:
    """
    C{twist txcomet} on a TLS endpoint and a free port.
    """

    def __init__(self):
        self.directory = tempfile.mkdtemp(prefix="txcomet-tls-")
        keyPath, certPath = makeCertificate(self.directory)
        logPath = os.path.join(self.directory, "server.log")
        with open(logPath, "wb") as logFile:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "twisted", "txcomet", "--heartbeat", "5",
                 "--listen", "ssl:0:interface=127.0.0.1:privateKey=%s:certKey=%s" % (keyPath, certPath)],
                cwd=self.directory, env=dict(os.environ, PYTHONPATH=ROOT), stdout=logFile,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        port = None
        deadline = time.time() + 30
        while port is None and time.time() < deadline and self.process.poll() is None:
            time.sleep(0.1)
            with open(logPath, "rb") as f:
                found = re.search(rb"Site \(TLS\) starting on (\d+)", f.read())
            port = int(found.group(1)) if found else None
        if port is None:
            log = open(logPath, "rb").read()[-2000:]
            self.stop()
            raise AssertionError(log)
        self.base = "https://127.0.0.1:%d" % (port,)

    def stop(self):
        stopProcessGroup(self.process)
        shutil.rmtree(self.directory, True)


def curl(*args, timeout=10):
    """
    Run curl (certificate checks off: the certificate is self-signed) and
    return its output.
    """
    result = subprocess.run(["curl", "-sS", "-k", "-m", str(timeout)] + list(args), capture_output=True)
    return result.stdout.decode("utf-8", "replace")


def publish(base, channel, data, version="--http2"):
    answer = curl(version, "-H", "Content-Type: application/json", "-d", json.dumps(data),
                  base + "/comet/publish/" + channel)
    return json.loads(answer)


def listenWhilePublishing(base, path, channel, version):
    """
    Start curl on C{path} with HTTP C{version}, publish one event once
    it has had time to subscribe, and return (curl's output, the HTTP
    version curl used).
    """
    box = {}

    def run():
        box["out"] = curl(version, "-N", "-w", "\n@@%{http_version} %{http_code}", base + path, timeout=3)

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(0.8)
    published = publish(base, channel, {"via": path})
    thread.join()
    body, _, tail = box["out"].rpartition("\n@@")
    return body, tail, published


TRANSPORTS = [
    ("longpoll?channel={c}", '"data":{"via":'),
    ("jsonp?channel={c}&callback=cb", '/**/cb([{"type":"event"'),
    ("sse?channel={c}", 'data: {"type":"event"'),
    ("xhr-stream?channel={c}", '{"type":"event"'),
    ("iframe?channel={c}&callback=cb", "<script>p({\"type\":\"event\""),
    ("multipart?channel={c}", '{"type":"event"'),
]


def _inChromium(server, sync_playwright):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(ignore_https_errors=True).new_page()
            page.goto(server + "/comet/health")
            page.evaluate("""() => {
              window.got = {};
              for (let i = 0; i < 10; i++) {
                const es = new EventSource('/comet/sse?channel=tls-browser-' + i);
                es.onmessage = (e) => { window.got['sse' + i] = JSON.parse(e.data).data; };
              }
              for (let i = 0; i < 2; i++) {
                fetch('/comet/longpoll?channel=tls-browser-lp' + i).then((r) => r.json())
                  .then((m) => { window.got['lp' + i] = m[0].data; });
              }
              const ws = new WebSocket(location.origin.replace('https:', 'wss:') + '/comet/ws?channel=tls-browser-ws');
              ws.onmessage = (e) => { window.got.ws = JSON.parse(e.data).data; };
            }""")
            time.sleep(1.5)
            channels = ["tls-browser-%d" % (i,) for i in range(10)] + ["tls-browser-lp0", "tls-browser-lp1",
                                                                      "tls-browser-ws"]
            for channel in channels:
                publish(server, channel, {"to": channel})
            page.wait_for_function("() => Object.keys(window.got).length === 13", timeout=10000)
            got = page.evaluate("() => window.got")
            protocols = page.evaluate(
                "() => performance.getEntriesByType('resource').map((e) => e.nextHopProtocol)")
        finally:
            browser.close()
    return got, protocols


class TLSTests(SynchronousTestCase):
    """
    One server for the class (a trial test case, as in the rest of the
    suite: plain pytest functions would start pytest-twisted's reactor
    under trial's).
    """

    timeout = 120

    @classmethod
    def setUpClass(cls):
        why = _missing()
        if why:
            raise SkipTest(why)
        cls.server = TLSServer()

    @classmethod
    def tearDownClass(cls):
        server = getattr(cls, "server", None)
        if server is not None:
            server.stop()

    def test_transportsOverTLS(self):
        """
        Each HTTP transport, held open over TLS with HTTP/2 and with HTTP/1.1,
        delivers an event published while it waits.
        """
        server = self.server.base
        for version, expected in [("--http2", "2"), ("--http1.1", "1.1")]:
            for path, marker in TRANSPORTS:
                channel = "tls-" + re.sub(r"\W", "", path.split("?")[0]) + expected.replace(".", "")
                body, tail, published = listenWhilePublishing(server, "/comet/" + path.format(c=channel), channel,
                                                              version)
                assert tail == expected + " 200", (path, tail, body[-500:])
                assert marker in body, (path, version, body[-500:])
                assert published["id"] in body, (path, version)

    def test_shortPollOverHTTP2(self):
        """
        A short poll answers at once with what the channel holds.
        """
        server = self.server.base
        published = publish(server, "tls-poll", {"n": 1})
        out = curl("--http2", "-w", "\n@@%{http_version}", server + "/comet/poll?channel=tls-poll")
        body, _, version = out.rpartition("\n@@")
        assert version == "2"
        assert [m["id"] for m in json.loads(body) if m.get("type") == "event"] == [published["id"]]

    def test_bayeuxOverHTTP2(self):
        """
        A Bayeux handshake over HTTP/2 gets a client id.
        """
        server = self.server.base
        out = curl("--http2", "-H", "Content-Type: application/json", "-w", "\n@@%{http_version}", "-d",
                   json.dumps([{"channel": "/meta/handshake", "version": "1.0",
                                "supportedConnectionTypes": ["long-polling"]}]),
                   server + "/comet/bayeux")
        body, _, version = out.rpartition("\n@@")
        assert version == "2"
        answer = json.loads(body)[0]
        assert answer["successful"] is True and answer["clientId"]

    def test_manyStreamsOneConnection(self):
        """
        curl multiplexes ten SSE streams over one HTTP/2 connection: each gets
        its channel's event, and curl connected once (its log names one
        connection, and streams 1 to 19 on it).
        """
        server = self.server.base
        box = {}
        urls = [server + "/comet/sse?channel=tls-many-%d" % (i,) for i in range(10)]

        def run():
            result = subprocess.run(["curl", "-v", "-sS", "-k", "-m", "4", "--http2", "--parallel", "--parallel-max", "20"]
                                    + urls, capture_output=True)
            box["out"], box["log"] = result.stdout.decode(), result.stderr.decode()

        thread = threading.Thread(target=run)
        thread.start()
        time.sleep(1.5)
        ids = [publish(server, "tls-many-%d" % (i,), {"i": i})["id"] for i in range(10)]
        thread.join()
        for i, eventId in enumerate(ids):
            assert '"channel":"tls-many-%d","id":"%s"' % (i, eventId) in box["out"]
        assert len(re.findall(r"Connected to 127\.0\.0\.1", box["log"])) == 1, box["log"][-3000:]
        assert sorted(int(n) for n in re.findall(r"Using Stream ID: (\d+)", box["log"])) == list(range(1, 21, 2))

    def test_websocketOverTLS(self):
        """
        A WebSocket over TLS (C{wss:}; WebSocket stays on HTTP/1.1) receives a
        published event.
        """
        server = self.server.base
        from websockets.sync.client import connect

        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        url = server.replace("https:", "wss:") + "/comet/ws?channel=tls-ws"
        with connect(url, ssl=context, origin=None) as ws:
            time.sleep(0.3)
            published = publish(server, "tls-ws", {"over": "wss"})
            message = json.loads(ws.recv(timeout=5))
        assert (message["id"], message["data"]) == (published["id"], {"over": "wss"})

    def test_leanPublishOverTLS(self):
        """
        The publish API (the lean path) over TLS with HTTP/1.1, on a kept-alive
        connection: two publishes in one curl, one connection.
        """
        server = self.server.base
        url = server + "/comet/publish/tls-lean"
        each = ["-k", "--http1.1", "-H", "Content-Type: application/json", "-w", "\n#%{num_connects}\n"]
        out = curl(*(each + ["-d", '{"n":1}', url, "--next"] + each + ["-d", '{"n":2}', url]))
        lines = [line for line in out.splitlines() if line]
        assert [json.loads(line)["ok"] for line in lines[0::2]] == [True, True], out
        assert lines[1::2] == ["#1", "#0"], out

    def test_chromiumOverHTTP2(self):
        """
        Chromium speaks HTTP/2 to the server and holds ten EventSources and two
        long-polls to one host at once (over HTTP/1.1 it would hold six and
        queue the rest), each receiving its event; a WebSocket on the same
        page receives one too.
        """
        server = self.server.base
        if browserMissing() is not None:
            raise SkipTest(browserMissing())
        from playwright.sync_api import sync_playwright

        # Playwright's sync API runs an event loop of its own: in a thread of
        # its own, away from the reactor the other tests use.
        box = {}
        thread = threading.Thread(target=lambda: box.update(result=_inChromium(server, sync_playwright)))
        thread.start()
        thread.join(60)
        got, protocols = box["result"]
        assert got["sse9"] == {"to": "tls-browser-9"}
        assert got["lp1"] == {"to": "tls-browser-lp1"}
        assert got["ws"] == {"to": "tls-browser-ws"}
        assert set(protocols) == {"h2"}, protocols
