"""
The worker bus's session ids and the --workers options, in memory.
"""

import sys

from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from txcomet._node.workers import sessionOwner, workerCommand
from txcomet.tap import Options



class SessionOwnerTests(SynchronousTestCase):
    def test_sessionOwner(self):
        """
        The worker number is read from an id's prefix; ids without one, or
        naming a worker that does not exist, name no worker.
        """
        self.assertEqual(sessionOwner("1.abc", 2), 1)
        self.assertEqual(sessionOwner(b"0.abc", 2), 0)
        for bad in ("abc", "2.abc", "x.abc", ".abc", "-1.abc", None, 7, "99999.a"):
            self.assertIsNone(sessionOwner(bad, 2), bad)


class OptionsTests(SynchronousTestCase):
    def parse(self, *args):
        options = Options()
        options.parseOptions(list(args))
        return options

    def test_workersNeedTCP(self):
        """
        --workers is 1 or more and shares only tcp: endpoints.
        """
        self.assertRaises(UsageError, self.parse, "--workers", "0")
        self.assertRaises(UsageError, self.parse, "--workers", "2", "--listen", "unix:/tmp/x.sock")
        self.assertEqual(self.parse("--workers", "2", "--listen", "tcp:0")["workers"], 2)

    def test_workerCommand(self):
        """
        A worker's command line carries this server's options (the worker
        count too), the ports the supervisor resolved and the hub socket, but
        never the publisher secret.
        """
        options = self.parse(
            "--workers", "2", "--listen", "tcp:0", "--heartbeat", "5", "--history", "7",
            "--allow-origin", "https://a.example", "--no-client-publish", "--publisher-secret", "s3cret",
        )
        argv = workerCommand(options, 1, ["tcp:4321:interface=127.0.0.1"], "/run/hub.sock")
        self.assertEqual(argv[:4], [sys.executable, "-m", "twisted", "txcomet"])
        worker = self.parse(*argv[4:])
        self.assertEqual(worker["listen"], ["tcp:4321:interface=127.0.0.1"])
        self.assertEqual((worker["config"].heartbeat, worker["config"].historyLength), (5.0, 7))
        self.assertEqual(worker["config"].allowedOrigins, ("https://a.example",))
        self.assertFalse(worker["config"].clientPublish)
        self.assertEqual((worker["worker-hub"], worker["worker-index"], worker["workers"]), ("/run/hub.sock", 1, 2))
        self.assertNotIn("s3cret", " ".join(argv))
