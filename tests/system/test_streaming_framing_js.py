"""
The framings read by the browser client's own parsers, run in node.
"""

import json
import shutil
import subprocess

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from txcomet._model.event import Event
from txcomet._transports.streaming import SCRIPT_ARRAY, SCRIPT_CALLS

from tests.support.wire import ScriptPageParser
from tests.transports.test_streaming_framing import NASTY, envelopes


class JavaScriptTests(SynchronousTestCase):
    """
    What script transports send is run by a real JavaScript engine (Node),
    when there is one.
    """

    def run_node(self, program):
        node = shutil.which("node") or shutil.which("nodejs")
        if node is None:
            raise SkipTest("no node to run JavaScript")
        result = subprocess.run([node, "-e", program], capture_output=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stderr)
        return json.loads(result.stdout)

    def nastyEvents(self):
        payloads = NASTY + ["".join(NASTY), {"k\u2028": ["</script><script>alert(1)</script>", "\U0001f600"]}]
        return [Event("news", p, "e9", i) for i, p in enumerate(payloads, start=1)]

    def test_scriptAnswerRuns(self):
        """
        A script-tag answer is a valid program that calls the callback with
        the messages, unchanged, and the position.
        """
        evs = self.nastyEvents()
        answer = b"/**/cb([" + b",".join(e.framed(SCRIPT_ARRAY) for e in evs) + b'],"e9-0");\n'
        program = "var out=[];function cb(a,p){out.push([a,p])};\n" + answer.decode("utf-8")
        program += ";process.stdout.write(JSON.stringify(out))"
        self.assertEqual(self.run_node(program), [[envelopes(evs), "e9-0"]])

    def test_iframeScriptsRun(self):
        """
        Each script the HTML parser finds in an iframe stream is a valid
        program calling C{p} with the message, unchanged.
        """
        evs = self.nastyEvents()
        parser = ScriptPageParser()
        page = b"<html><body>" + b"".join(e.framed(SCRIPT_CALLS) for e in evs)
        parser.feed(page)
        scripts = parser.html.scripts
        self.assertEqual(len(scripts), len(evs))
        program = "var out=[];function p(m){out.push(m)};\n" + "\n".join(scripts)
        program += ";process.stdout.write(JSON.stringify(out))"
        self.assertEqual(self.run_node(program), envelopes(evs))
