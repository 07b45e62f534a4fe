"""
The wheel ships the plugin: built, installed in a clean virtual
environment and run from outside the source tree, `twist --help` lists
txcomet.
"""

import glob
import os
import subprocess
import sys
import tempfile
import zipfile

from twisted.trial.unittest import SynchronousTestCase

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(args, **kwargs):
    return subprocess.run(args, check=True, capture_output=True, text=True, timeout=600, **kwargs)


class WheelTests(SynchronousTestCase):
    def test_wheelShipsPlugin(self):
        """
        The wheel holds twisted/plugins/txcomet_plugin.py (and no
        twisted/__init__.py); installed in a fresh virtual environment and
        run from a directory outside the source tree, `twist --help` lists
        txcomet and `twist txcomet --help` shows its options.
        """
        work = tempfile.mkdtemp(prefix="txcomet-wheel-")
        run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", work, ROOT], cwd=work)
        [wheel] = glob.glob(os.path.join(work, "txcomet-*.whl"))
        names = zipfile.ZipFile(wheel).namelist()
        self.assertIn("twisted/plugins/txcomet_plugin.py", names)
        self.assertNotIn("twisted/__init__.py", names)
        self.assertNotIn("twisted/plugins/__init__.py", names)
        self.assertIn("txcomet/py.typed", names)
        # what the package reads from its own directory at run time
        for shipped in ("txcomet/_bus/lua/publish.lua", "txcomet/_bus/lua/prelude.lua", "txcomet/static/admin.html",
                        "txcomet/static/admin.js", "txcomet/static/txcomet.js"):
            self.assertIn(shipped, names)
        self.assertFalse([n for n in names if n.startswith("tests/")])

        venv = os.path.join(work, "venv")
        run([sys.executable, "-m", "venv", venv])
        python = os.path.join(venv, "bin", "python")
        # Without PYTHONPATH: a source tree on it (as when the suite runs
        # uninstalled) holds txcomet.egg-info, and pip would take that for
        # an installed txcomet and skip the wheel.
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        run([python, "-m", "pip", "install", "-q", wheel], cwd=work, env=env)
        twist = os.path.join(venv, "bin", "twist")
        listing = run([twist, "--help"], cwd=work, env=env).stdout
        self.assertIn("txcomet", listing)
        options = run([twist, "txcomet", "--help"], cwd=work, env=env).stdout
        self.assertIn("--listen", options)
        self.assertIn("--heartbeat", options)
        run([python, "-c", "import txcomet._bus.redis as r; assert 'PUBLISH' in r._SCRIPTS['publish']"], cwd=work, env=env)
        where = run([python, "-c", "import txcomet; print(txcomet.__file__)"], cwd=work, env=env).stdout
        self.assertTrue(where.startswith(venv), where)
