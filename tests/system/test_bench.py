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
