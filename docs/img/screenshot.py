"""
Takes docs/img/demo.png: two people chat in the demo, one typing, while a
burst of events feeds the chart.  Run against a server started with
`twist txcomet`:  python docs/img/screenshot.py http://127.0.0.1:8080
"""

import json
import sys
import time
import urllib.request

from playwright.sync_api import sync_playwright

base = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080"
out = sys.argv[2] if len(sys.argv) > 2 else "docs/img/demo.png"


def publish(channel, data):
    request = urllib.request.Request(
        base + "/comet/publish/" + channel, json.dumps(data).encode(), {"Content-Type": "application/json"}
    )
    urllib.request.urlopen(request).read()


with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox", "--disable-gpu"])
    pages = {}
    for user in ("ann", "bob", "cho"):
        page = browser.new_context(viewport={"width": 1180, "height": 640}).new_page()
        page.goto("%s/?user=%s&room=lobby%s" % (base, user, "&transport=sse" if user == "cho" else ""))
        page.wait_for_function("document.body.dataset.state === 'listening'")
        pages[user] = page
    for user, text in [
        ("ann", "Morning! Is the deploy out?"),
        ("bob", "Yes, 0.1.0 went out ten minutes ago."),
        ("cho", "The chart on the right is every event on the bus."),
        ("ann", "Switching to long-polling to see the fallback..."),
    ]:
        pages[user].fill("#text", text)
        pages[user].press("#text", "Enter")
        time.sleep(0.3)
    for second in range(6):
        for i in range(3 + 4 * second):
            publish("metrics/load", {"i": i})
        time.sleep(1)
    pages["ann"].fill("#text", "one more thing")
    pages["bob"].wait_for_function("document.getElementById('typing').textContent.includes('ann')")
    time.sleep(0.8)
    pages["bob"].screenshot(path=out)
    browser.close()
