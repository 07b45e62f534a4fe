"""
The benchmark scripts still run: each one, at tiny sizes for a few
seconds, exits cleanly and reports every route it measures.  (Not a
measurement: the numbers are not looked at.  bench/run.py, which installs
its own tools and peers, is left out.)
"""

import json
import os
import shutil
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def runBench(name, *args):
    """
    Run bench/NAME.py with C{args} from the repository root; its output.
    """
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT] + [p for p in sys.path if p]))
    done = subprocess.run(
        [sys.executable, os.path.join("bench", name + ".py")] + list(args),
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=120,
    )
    if done.returncode != 0:
        raise AssertionError("bench/%s.py exited %d:\n%s" % (name, done.returncode, done.stderr.decode("utf-8", "replace")))
    return done.stdout.decode("utf-8")


class BenchSmokeTests(SynchronousTestCase):
    def test_fanout(self):
        """
        bench/fanout.py runs its server in each stream write mode (the
        seam setStreamWriteMode) and reports each.
        """
        out = runBench("fanout", "--subscribers", "4", "--messages", "2")
        rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        self.assertEqual([row["mode"] for row in rows], ["direct", "transport", "request"])
        self.assertEqual({row["deliveries"] for row in rows}, {8})

    def test_fanoutAuth(self):
        """
        bench/fanout.py's auth mode: subscribers join with tokens against a
        server with a rules file, and every event reaches them.
        """
        out = runBench("fanout", "--subscribers", "4", "--messages", "2", "--modes", "auth")
        rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        self.assertEqual([(row["mode"], row["deliveries"]) for row in rows], [("auth", 8)])

    def test_fanoutServerRejectsUnknownMode(self):
        """
        bench/fanout_server.py refuses a write mode it does not know.
        """
        error = self.assertRaises(AssertionError, runBench, "fanout_server", "0", "fast")
        self.assertIn("unknown stream write mode", str(error))

    def test_latency(self):
        """
        bench/latency.py measures every data channel transport.
        """
        out = runBench("latency", "--messages", "2")
        transports = [json.loads(line)["transport"] for line in out.splitlines() if line.startswith("{")]
        self.assertEqual(sorted(transports), sorted(["sse", "xhr-stream", "iframe", "multipart", "jsonp", "longpoll"]))

    def test_wsFanout(self):
        """
        bench/ws_fanout.py measures its four WebSocket routes.
        """
        out = runBench("ws_fanout", "--subscribers", "4", "--events", "2", "--rounds", "1")
        for route in ("txcomet", "buffered", "prepared", "message"):
            self.assertIn("  " + route, out)

    def test_wsFrameMicro(self):
        """
        bench/ws_frame_micro.py measures its five routes.
        """
        out = runBench("ws_frame_micro", "--subscribers", "4", "--events", "2", "--rounds", "1")
        for route in ("txcomet", "prepared", "message", "raw", "deflate"):
            self.assertIn("  " + route, out)

    def test_multinode(self):
        """
        bench/multinode.py runs one node and two nodes on Redis.
        """
        if shutil.which("redis-server") is None:
            self.skipTest("needs redis-server")
        out = runBench("multinode", "--subscribers", "4", "--messages", "2", "--latency", "2")
        for row in ("1 node, in-memory bus", "2 nodes + Redis, same node", "2 nodes + Redis, cross-node"):
            self.assertIn(row, out)


class LoadgenBayeuxTests(SynchronousTestCase):
    """
    bench/loadgen.c's Bayeux clients (what bench/run.py's Bayeux workload
    measures with, against txcomet and Faye) handshake, subscribe, keep a
    connect outstanding and count every event, against a real server.
    """

    def setUp(self):
        if shutil.which("gcc") is None:
            self.skipTest("needs gcc to build bench/loadgen.c")
        import tempfile

        from tests.support.redisserver import freePort, waitForPort

        self.tmp = tempfile.mkdtemp(prefix="txcomet-loadgen-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.loadgen = os.path.join(self.tmp, "loadgen")
        subprocess.check_call(["gcc", "-O2", "-o", self.loadgen, os.path.join(ROOT, "bench", "loadgen.c")])
        self.port = freePort()
        self.server = self.startServer("tcp:%d:interface=127.0.0.1" % (self.port,))
        waitForPort(self.port, self.server)

    def startServer(self, *listen):
        """
        A C{twist txcomet} on the C{listen} endpoints, stopped after the
        test.
        """
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT] + [p for p in sys.path if p]))
        command = [sys.executable, "-m", "twisted", "txcomet", "--no-access-log"]
        for endpoint in listen:
            command += ["--listen", endpoint]
        server = subprocess.Popen(command, cwd=self.tmp, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        self.addCleanup(server.wait)
        self.addCleanup(server.terminate)
        return server

    def runLoadgen(self, *args, binary=None, server=None):
        """
        Run the load generator (C{binary}, or the plain build) with
        C{args}, measuring C{server} (or the test's); its JSON result.
        """
        server = server or self.server
        done = subprocess.run([binary or self.loadgen] + list(args) + ["--pids", str(server.pid)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        lines = [l for l in done.stdout.decode().splitlines() if l.startswith("{")]
        self.assertTrue(lines, done.stderr.decode())
        return json.loads(lines[-1])

    def drive(self, mode, path="/comet/bayeux"):
        return self.runLoadgen(
            "--port", str(self.port), "--mode", mode, "--path", path, "--subs", "50",
            "--pub-path", "/comet/publish/bench", "--rate", "20", "--events", "10", "--warmup", "3", "--drain", "3",
        )

    def test_webSocket(self):
        result = self.drive("bayeux-ws")
        self.assertEqual((result["connected"], result["failed"]), (50, 0))
        self.assertEqual(result["deliveries"], 50 * 10)
        self.assertEqual((result["lost"], result["duplicates"], result["http_errors"]), (0, 0, 0))

    def test_longPolling(self):
        result = self.drive("bayeux-longpoll")
        self.assertEqual((result["connected"], result["failed"]), (50, 0))
        self.assertEqual(result["deliveries"], 50 * 10)
        self.assertEqual((result["lost"], result["duplicates"], result["http_errors"]), (0, 0, 0))
        # every event answered the outstanding connects, which came again
        self.assertGreaterEqual(result["requests"], 50 * 10)

    def test_refusedHandshakeCounts(self):
        """
        A server that is not Bayeux at that path fails every client: the
        load generator does not count a subscriber it never had.
        """
        result = self.drive("bayeux-ws", path="/comet/ws?channel=bench")
        self.assertEqual(result["connected"], 0)
        self.assertEqual(result["failed"], 50)

    def test_keepAlivePublishers(self):
        """
        The publish-rate workload's keep-alive publishers (--keepalive):
        every publish answered on a few persistent connections, each event
        delivered once to every subscriber, and with no subscriber at all.
        """
        for subs in ("20", "0"):
            result = self.runLoadgen(
                "--port", str(self.port), "--mode", "sse", "--path", "/comet/sse?channel=bench",
                "--subs", subs, "--pub-path", "/comet/publish/bench", "--keepalive", "3", "--events", "200",
                "--warmup", "20", "--drain", "3",
            )
            self.assertEqual((result["published"], result["publish_errors"]), (220, 0))
            self.assertEqual(result["publish_max_inflight"], 3)
            self.assertEqual(result["deliveries"], int(subs) * 200)
            self.assertEqual((result["lost"], result["duplicates"]), (0, 0))
            self.assertGreater(result["server_cpu_s"], 0)

    def test_churn(self):
        """
        The connection-rate workload's churning subscribers (--churn):
        each closes its connection once an event reaches it and opens a
        new one, so the cycles outnumber the subscribers, none fails and
        no event reaches one twice.
        """
        result = self.runLoadgen(
            "--port", str(self.port), "--mode", "sse", "--path", "/comet/sse?channel=bench",
            "--subs", "20", "--pub-path", "/comet/publish/bench", "--rate", "50", "--events", "40",
            "--warmup", "5", "--drain", "1", "--churn",
        )
        self.assertEqual((result["connected"], result["failed"], result["duplicates"]), (20, 0, 0))
        self.assertGreater(result["requests"], 20 * 5)
        self.assertLessEqual(result["requests"], result["deliveries"])

    def storm(self, mode, path, *more):
        return self.runLoadgen(
            "--port", str(self.port), "--mode", mode, "--path", path, "--subs", "100",
            "--pub-path", "/comet/publish/bench", "--rate", "20", "--events", "30", "--warmup", "5",
            "--drain", "3", "--storm", "10", "--storm-spread", "0.5", "--procs", "2", *more
        )

    def test_stormResumes(self):
        """
        The reconnect storm (--storm): every subscriber's connection is
        reset after the tenth measured event, each reconnects with the id
        of the last event it had (Last-Event-ID on SSE, ?last= on a
        WebSocket), and all resume with nothing lost or repeated.
        """
        for mode, path in [("sse", "/comet/sse?channel=bench"), ("ws", "/comet/ws?channel=bench")]:
            result = self.storm(mode, path)
            storm = result["storm"]
            self.assertEqual((storm["dropped"], storm["reconnected"], storm["resumed"]), (100, 100, 100), mode)
            self.assertEqual((result["lost"], result["duplicates"], result["failed"]), (0, 0, 0), mode)
            self.assertGreater(storm["resume_us"]["max"], 0)

    def test_stormCountsLosses(self):
        """
        Reconnections that fail (the position sent in a parameter txcomet
        refuses with 400) resume nobody, and the storm reports it: no
        resumes, and the events after the storm counted as lost.
        """
        result = self.storm("ws", "/comet/ws?channel=bench", "--resume-param", "nosuch")
        self.assertEqual(result["storm"]["resumed"], 0)
        self.assertGreater(result["lost"], 0)

    def test_subPortsSpreadSubscribers(self):
        """
        --sub-ports spreads subscribers over several servers while publishes
        go to --port: with a second, unconnected txcomet as the other port,
        exactly the half of the subscribers on it miss every event.
        """
        from tests.support.redisserver import freePort, waitForPort

        other = freePort()
        waitForPort(other, self.startServer("tcp:%d:interface=127.0.0.1" % (other,)))
        result = self.runLoadgen(
            "--port", str(self.port), "--mode", "sse", "--path", "/comet/sse?channel=bench",
            "--subs", "40", "--sub-ports", "%d,%d" % (self.port, other), "--pub-path", "/comet/publish/bench",
            "--rate", "50", "--events", "10", "--warmup", "3", "--drain", "1",
        )
        self.assertEqual((result["connected"], result["deliveries"], result["lost"]), (40, 200, 200))

    def test_tlsSubscribers(self):
        """
        --tls (a build with OpenSSL): subscribers on a txcomet ssl: listener
        get every event published on the plain one; the same build without
        --tls still speaks plain HTTP.
        """
        from tests.support.redisserver import freePort, waitForPort
        from tests.system.test_tls import makeCertificate

        binary = os.path.join(self.tmp, "loadgen-tls")
        built = subprocess.run(["gcc", "-O2", "-DLOADGEN_TLS", "-o", binary, os.path.join(ROOT, "bench", "loadgen.c"),
                                "-lssl", "-lcrypto"], capture_output=True)
        if built.returncode != 0:
            self.skipTest("no OpenSSL headers to build loadgen with TLS (libssl-dev)")
        self.assertEqual(subprocess.run([binary, "--has-tls"]).returncode, 0)
        self.assertEqual(subprocess.run([self.loadgen, "--has-tls"]).returncode, 1)
        key, cert = makeCertificate(self.tmp)
        plain, secure = freePort(), freePort()
        server = self.startServer("tcp:%d:interface=127.0.0.1" % (plain,),
                                  "ssl:%d:interface=127.0.0.1:privateKey=%s:certKey=%s" % (secure, key, cert))
        waitForPort(plain, server)
        for mode, path in [("sse", "/comet/sse?channel=bench"), ("ws", "/comet/ws?channel=bench")]:
            result = self.runLoadgen(
                "--port", str(plain), "--sub-ports", str(secure), "--tls", "--mode", mode, "--path", path,
                "--subs", "30", "--pub-path", "/comet/publish/bench", "--rate", "50", "--events", "10",
                "--warmup", "3", "--drain", "2", binary=binary, server=server,
            )
            self.assertEqual((result["connected"], result["deliveries"], result["lost"]), (30, 300, 0), mode)
