"""
The README runs as written: every fenced code block is either run here
against a real server (with the server's port for 8080) or named in
L{NOT_RUN} with the reason, so a new example cannot go untested and an
old one cannot drift.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, browserMissing
from tests.support.redisserver import freePort, waitForPort

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as _f:
    README = _f.read()

#: (language, a line that names the block): why the block is not run here.
NOT_RUN = {
    ("sh", "python3 -m venv .venv"): "installs and starts the server: CI runs it in a fresh venv (.ci/run)",
    ("sh", "pip install '.[test]'"): "the test command itself: CI runs it",
    ("sh", 'python -m pytest -m "not system" tests'): "the test command itself",
}


def blocks():
    """
    Every fenced block of the README: C{(language, text)}.
    """
    return re.findall(r"^```(\w*)\n(.*?)^```", README, re.S | re.M)


def block(language, marker):
    """
    The one block of C{language} holding C{marker}.
    """
    found = [text for lang, text in blocks() if lang == language and marker in text]
    assert len(found) == 1, (language, marker, len(found))
    return found[0]


def environment():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([ROOT] + [p for p in sys.path if p])
    env.pop("TXCOMET_PUBLISHER_SECRET", None)
    env.pop("TXCOMET_API_KEY", None)
    return env


class ReadmeTests(SynchronousTestCase):
    def setUp(self):
        self.port = freePort()
        self.tmp = tempfile.mkdtemp(prefix="txcomet-readme-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def startServer(self, *args):
        """
        C{twist txcomet} on this test's port (a short heartbeat, so the
        examples' held long-polls answer soon).
        """
        server = subprocess.Popen(
            [sys.executable, "-m", "twisted", "txcomet", "--listen", "tcp:%d:interface=127.0.0.1" % (self.port,),
             "--heartbeat", "2"] + list(args),
            cwd=self.tmp, env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.addCleanup(server.wait)
        self.addCleanup(server.terminate)
        self.waitForPort()
        return server

    def waitForPort(self):
        waitForPort(self.port)

    def here(self, text):
        return text.replace("8080", str(self.port))

    def shell(self, line, timeout=20):
        done = subprocess.run(["bash", "-c", self.here(line)], capture_output=True, timeout=timeout,
                              env=environment(), cwd=self.tmp)
        self.assertEqual(done.returncode, 0, (line, done.stderr))
        return done.stdout.decode("utf-8")

    def background(self, line):
        process = subprocess.Popen(["bash", "-c", "exec " + self.here(line)], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, env=environment(), cwd=self.tmp,
                                   start_new_session=True)

        def stop():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
            process.wait()

        self.addCleanup(stop)
        return process

    def test_everyBlockIsAccountedFor(self):
        """
        Each block is run by a test below or named in L{NOT_RUN}; each
        L{NOT_RUN} entry still names a block.
        """
        tested = set()
        for name in dir(self):
            method = getattr(self, name)
            if name.startswith("test_") and getattr(method, "readme", None):
                tested.update(method.readme)
        for language, text in blocks():
            covered = [key for key in tested | set(NOT_RUN) if key[0] == language and key[1] in text]
            self.assertTrue(covered, "README block not run by a test:\n" + text)
        for language, marker in NOT_RUN:
            block(language, marker)

    def test_quickStart(self):
        """
        The quick start's listen-then-publish: the held long-poll prints
        the published event.
        """
        text = block("sh", "curl -N")
        listen, publish = [l for l in text.splitlines() if l.startswith("curl")][0], \
            " ".join(l.rstrip("\\").strip() for l in text.splitlines() if not l.startswith("#")
                     and not l.startswith("curl -N") and l.strip())
        self.startServer()
        listener = self.background(listen)
        time.sleep(1)
        reply = json.loads(self.shell(publish))
        self.assertTrue(reply["ok"])
        out, _ = listener.communicate(timeout=10)
        [event] = json.loads(out)
        self.assertEqual((event["channel"], event["data"]), ("demo", {"hello": "world"}))

    test_quickStart.readme = [("sh", "curl -N")]

    def test_operating(self):
        """
        The operating block: the server API's info, the command line's
        channels (with a subscriber listening), and the metrics line.
        """
        text = block("sh", '{"method": "info"}')
        info, cli, metrics = [l for l in text.splitlines() if l.strip() and not l.startswith("#")]
        self.startServer()
        listener = self.background("curl -sN 'http://localhost:8080/comet/sse?channel=news'")
        time.sleep(1)
        nodes = json.loads(self.shell(info))["result"]["nodes"]
        self.assertEqual([n["connections"] for n in nodes], [{"sse": 1}])
        self.assertEqual(json.loads(self.shell(cli))["channels"], {"news": {"subscribers": 1}})
        self.assertEqual(self.shell(metrics).strip(), "txcomet_sessions 1.0")
        listener.terminate()

    test_operating.readme = [("sh", '{"method": "info"}')]

    def test_commandLine(self):
        """
        The command line: C{subscribe} prints what C{publish} sends.
        """
        text = block("sh", "python -m txcomet subscribe")
        subscribe, publish = [l for l in text.splitlines() if l.startswith("python")]
        self.startServer()
        os.environ["TXCOMET_URL"] = "http://127.0.0.1:%d/comet" % (self.port,)
        self.addCleanup(os.environ.pop, "TXCOMET_URL", None)
        listener = self.background(subscribe)
        time.sleep(2)
        self.shell(publish)
        line = listener.stdout.readline()
        self.assertEqual(json.loads(line)["data"], {"user": "cli", "text": "hello"})

    test_commandLine.readme = [("sh", "python -m txcomet subscribe")]

    def test_controlByHand(self):
        """
        The control channel by hand: join, subscribe, publish, poll (the
        event), long-poll (held, then the heartbeat's empty answer), leave.
        """
        self.startServer()
        out = self.shell(block("sh", "B=http://localhost:8080/comet"), timeout=30)
        answers = [json.loads(line) for line in out.splitlines() if line.strip()]
        self.assertEqual([a.get("op") for a in answers[:2]], ["subscribe", "publish"])
        polled = answers[2]
        # ann's own arrival on the channel (she has a user: presence), then her event
        self.assertEqual([e["type"] for e in polled], ["join", "event"])
        self.assertEqual((polled[0]["data"]["user"], polled[1]["data"]), ("ann", "hi"))
        self.assertEqual(answers[3], [])
        self.assertEqual(answers[4]["op"], "leave")

    test_controlByHand.readme = [("sh", "B=http://localhost:8080/comet")]

    def test_pythonClient(self):
        """
        The Python client example prints its own arrival and its event.
        """
        self.startServer()
        path = os.path.join(self.tmp, "client.py")
        with open(path, "w") as f:
            f.write(self.here(block("python", 'CometClient("http')))
        done = subprocess.run([sys.executable, path], capture_output=True, timeout=30, env=environment())
        self.assertEqual(done.returncode, 0, done.stderr)
        lines = done.stdout.decode("utf-8").splitlines()
        self.assertTrue(lines[0].startswith("join {'client': "), lines)
        self.assertEqual(lines[-1], "event {'user': 'bot', 'text': 'hello'}")

    test_pythonClient.readme = [("python", 'CometClient("http')]

    def test_embedding(self):
        """
        The embedding example runs under twistd and serves /comet, with the
        event it published at start-up in the channel's history.
        """
        path = os.path.join(self.tmp, "myapp.py")
        with open(path, "w") as f:
            f.write(self.here(block("python", "Application(")))
        server = subprocess.Popen([sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
                                   "-n", "-y", path],
                                  cwd=self.tmp, env=environment(), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT)
        self.addCleanup(server.wait)
        self.addCleanup(server.terminate)
        self.waitForPort()
        info = json.loads(self.shell("curl -s http://127.0.0.1:8080/comet"))
        self.assertEqual(info["server"], "txcomet")
        polled = json.loads(self.shell("curl -s 'http://127.0.0.1:8080/comet/poll?channel=news'"))
        # what the example published as it started, from the channel's history
        self.assertEqual([e["data"] for e in polled], [{"headline": "txcomet ships"}])

    test_embedding.readme = [("python", "Application(")]

    def test_testingFakes(self):
        """
        The testing example is a test that passes.
        """
        path = os.path.join(self.tmp, "test_news.py")
        with open(path, "w") as f:
            f.write(block("python", "class NewsTests"))
        done = subprocess.run([sys.executable, "-m", "twisted.trial", "test_news"], capture_output=True,
                              timeout=60, env=dict(environment(), PYTHONPATH=environment()["PYTHONPATH"]
                                                   + os.pathsep + self.tmp), cwd=self.tmp)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        self.assertIn(b"PASSED (successes=1)", done.stdout)

    test_testingFakes.readme = [("python", "class NewsTests")]

    def test_rules(self):
        """
        The rules example is a rules file the server starts with, and it
        closes what it says: an anonymous subscriber is refused chat/.
        """
        path = os.path.join(self.tmp, "txcomet.toml")
        with open(path, "w") as f:
            f.write(block("toml", "notifications/{sub}"))
        self.startServer("--config", path)
        out = self.shell("curl -s 'http://127.0.0.1:8080/comet/poll?channel=chat/lobby'")
        self.assertEqual(json.loads(out)["error"], "forbidden")

    test_rules.readme = [("toml", "notifications/{sub}")]

    def test_minimalPage(self):
        """
        The minimal page, served with --static, shows a headline published
        with the README's curl line; the client example's calls run in it.
        """
        missing = browserMissing()
        if missing:
            raise SkipTest(missing)
        from playwright.sync_api import sync_playwright

        static = os.path.join(self.tmp, "static")
        os.mkdir(static)
        page = block("html", "TxComet.Client")
        example = block("js", "const c = new TxComet.Client")
        with open(os.path.join(static, "index.html"), "w") as f:
            f.write(page)
        with open(os.path.join(static, "example.html"), "w") as f:
            f.write('<!doctype html><script src="/comet/txcomet.js"></script><script>\n'
                    "window.logged = []; console.log = (...a) => window.logged.push(a);\n"
                    + example + "\n</script>")
        self.startServer("--static", static)
        publish = re.search(r"`(curl -H 'Content-Type: application/json' -d\s+'\{\"headline\"[^`]*)`", README, re.S)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                tab = browser.new_page()
                tab.goto("http://127.0.0.1:%d/" % (self.port,))
                tab.wait_for_function("() => window.TxComet !== undefined")
                time.sleep(1.5)
                self.shell(" ".join(publish.group(1).split()))
                tab.wait_for_selector("#news li", timeout=15000)
                self.assertEqual(tab.inner_text("#news li"), "txcomet ships")
                # a browser context of its own: tabs of one origin would
                # share the first page's session
                other = browser.new_context().new_page()
                other.goto("http://127.0.0.1:%d/example.html" % (self.port,))
                try:
                    other.wait_for_function("() => window.logged.some((a) => a[0] === 'ws')", timeout=15000)
                except Exception:
                    raise AssertionError("the example logged %r" % (other.evaluate("window.logged"),))
                logged = other.evaluate("window.logged")
                self.assertIn(["event", {"text": "hello"}], logged)
                [members] = [a[0] for a in logged if isinstance(a[0], list)]
                self.assertEqual([m["user"] for m in members], ["ann"])
            finally:
                browser.close()

    test_minimalPage.readme = [("html", "TxComet.Client"), ("js", "const c = new TxComet.Client")]
