"""
A real C{twist txcomet --listen ssl:...} with a self-signed certificate:
every HTTP transport over HTTP/2 (curl C{--http2}, and Chromium with more
streams than HTTP/1.1's six connections per host), the same over HTTP/1.1,
WebSocket over TLS (C{wss:}), and the lean publish path under TLS.

Needs C{twisted[tls,http2]} (in the test extra) and curl.
"""

import asyncio
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

import pytest

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, browserMissing
from tests.support.multinode import stopProcessGroup

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = pytest.mark.system


def _missing():
    try:
        import h2  # noqa: F401
        import OpenSSL  # noqa: F401
    except ImportError:
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


@pytest.fixture(scope="module")
def server():
    """
    C{twist txcomet} on a TLS endpoint and a free port; yields its base URL.
    """
    why = _missing()
    if why:
        pytest.skip(why)
    directory = tempfile.mkdtemp(prefix="txcomet-tls-")
    keyPath, certPath = makeCertificate(directory)
    logPath = os.path.join(directory, "server.log")
    with open(logPath, "wb") as logFile:
        process = subprocess.Popen(
            [sys.executable, "-m", "twisted", "txcomet", "--heartbeat", "5",
             "--listen", "ssl:0:interface=127.0.0.1:privateKey=%s:certKey=%s" % (keyPath, certPath)],
            cwd=directory, env=dict(os.environ, PYTHONPATH=ROOT), stdout=logFile, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        port = None
        deadline = time.time() + 30
        while port is None and time.time() < deadline and process.poll() is None:
            time.sleep(0.1)
            with open(logPath, "rb") as f:
                found = re.search(rb"Site \(TLS\) starting on (\d+)", f.read())
            port = int(found.group(1)) if found else None
        assert port is not None, open(logPath, "rb").read()[-2000:]
        yield "https://127.0.0.1:%d" % (port,)
    finally:
        stopProcessGroup(process)
        shutil.rmtree(directory, True)


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


@pytest.mark.parametrize("version,expected", [("--http2", "2"), ("--http1.1", "1.1")])
@pytest.mark.parametrize("path,marker", TRANSPORTS)
def test_transportOverTLS(server, path, marker, version, expected):
    """
    Each HTTP transport, held open over TLS with HTTP/2 and with HTTP/1.1,
    delivers an event published while it waits.
    """
    channel = "tls-" + re.sub(r"\W", "", path.split("?")[0]) + expected.replace(".", "")
    body, tail, published = listenWhilePublishing(server, "/comet/" + path.format(c=channel), channel, version)
    assert tail == expected + " 200", (tail, body[-500:])
    assert marker in body, body[-500:]
    assert published["id"] in body


def test_shortPollOverHTTP2(server):
    """
    A short poll answers at once with what the channel holds.
    """
    published = publish(server, "tls-poll", {"n": 1})
    out = curl("--http2", "-w", "\n@@%{http_version}", server + "/comet/poll?channel=tls-poll")
    body, _, version = out.rpartition("\n@@")
    assert version == "2"
    assert [m["id"] for m in json.loads(body) if m.get("type") == "event"] == [published["id"]]


def test_bayeuxOverHTTP2(server):
    """
    A Bayeux handshake over HTTP/2 gets a client id.
    """
    out = curl("--http2", "-H", "Content-Type: application/json", "-w", "\n@@%{http_version}", "-d",
               json.dumps([{"channel": "/meta/handshake", "version": "1.0",
                            "supportedConnectionTypes": ["long-polling"]}]),
               server + "/comet/bayeux")
    body, _, version = out.rpartition("\n@@")
    assert version == "2"
    answer = json.loads(body)[0]
    assert answer["successful"] is True and answer["clientId"]


def test_manyStreamsOneConnection(server):
    """
    curl multiplexes ten SSE streams over one HTTP/2 connection: each gets
    its channel's event, and curl connected once (its log names one
    connection, and streams 1 to 19 on it).
    """
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


def test_websocketOverTLS(server):
    """
    A WebSocket over TLS (C{wss:}; WebSocket stays on HTTP/1.1) receives a
    published event.
    """
    import websockets

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE

    async def run():
        url = server.replace("https:", "wss:") + "/comet/ws?channel=tls-ws"
        async with websockets.connect(url, ssl=context, origin=None) as ws:
            await asyncio.sleep(0.3)
            published = await asyncio.get_running_loop().run_in_executor(
                None, publish, server, "tls-ws", {"over": "wss"})
            message = json.loads(await asyncio.wait_for(ws.recv(), 5))
            return published, message

    published, message = asyncio.run(run())
    assert (message["id"], message["data"]) == (published["id"], {"over": "wss"})


def test_leanPublishOverTLS(server):
    """
    The publish API (the lean path) over TLS with HTTP/1.1, on a kept-alive
    connection: two publishes in one curl, one connection.
    """
    url = server + "/comet/publish/tls-lean"
    each = ["-k", "--http1.1", "-H", "Content-Type: application/json", "-w", "\n#%{num_connects}\n"]
    out = curl(*(each + ["-d", '{"n":1}', url, "--next"] + each + ["-d", '{"n":2}', url]))
    lines = [line for line in out.splitlines() if line]
    assert [json.loads(line)["ok"] for line in lines[0::2]] == [True, True], out
    assert lines[1::2] == ["#1", "#0"], out


@pytest.mark.skipif(browserMissing() is not None, reason=str(browserMissing()))
def test_chromiumOverHTTP2(server):
    """
    Chromium speaks HTTP/2 to the server and holds ten EventSources and two
    long-polls to one host at once (over HTTP/1.1 it would hold six and
    queue the rest), each receiving its event; a WebSocket on the same
    page receives one too.
    """
    from playwright.sync_api import sync_playwright

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
    assert got["sse9"] == {"to": "tls-browser-9"}
    assert got["lp1"] == {"to": "tls-browser-lp1"}
    assert got["ws"] == {"to": "tls-browser-ws"}
    assert set(protocols) == {"h2"}, protocols
