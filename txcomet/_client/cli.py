# -*- test-case-name: tests.client.test_cli -*-
"""
The command line of C{python -m txcomet}: publish and subscribe through the Python client.

    python -m txcomet publish CHANNEL DATA [--url URL] [--secret SECRET]
    python -m txcomet subscribe CHANNEL... [--url URL] [--transport NAME]
                                [--count N] [--since ID|oldest]
    python -m txcomet api METHOD [--param NAME=VALUE ...] [--url URL] [--key KEY]

C{publish} sends DATA (JSON if it parses as JSON, else a string; C{--text}
sends it as a string always) through the publish API and prints the
answer.  C{subscribe} prints each event envelope as one line of JSON until
interrupted, or until C{--count} events have arrived.  C{api} calls the
server API (each VALUE is JSON if it parses as JSON, else a string) and
prints its result as JSON.  Errors go to stderr
as the server's JSON error, and the exit status is 1.
"""

import argparse
import json
import os
import sys
from typing import Any, List, Optional

from twisted.internet.defer import Deferred, ensureDeferred

from txcomet._client.client import TRANSPORTS, CometClient
from txcomet._model.errors import CometError

DEFAULT_URL = "http://127.0.0.1:8080/comet"


def parser() -> argparse.ArgumentParser:
    """
    The argument parser of C{python -m txcomet}.
    """
    top = argparse.ArgumentParser(
        prog="python -m txcomet",
        description="Publish to and subscribe on a txcomet server.",
    )
    commands = top.add_subparsers(dest="command", metavar="publish|subscribe|api")
    commands.required = True

    def common(command: argparse.ArgumentParser) -> None:
        command.add_argument(
            "--url", "-u", default=os.environ.get("TXCOMET_URL", DEFAULT_URL),
            help="the server's mount point (default: $TXCOMET_URL or %(default)s)",
        )

    pub = commands.add_parser("publish", help="publish DATA on CHANNEL through the publish API")
    pub.add_argument("channel", metavar="CHANNEL")
    pub.add_argument("data", metavar="DATA", help="JSON if it parses as JSON, else a string")
    pub.add_argument("--text", "-t", action="store_true", help="send DATA as a string even if it is valid JSON")
    pub.add_argument(
        "--secret", "-s", default=os.environ.get("TXCOMET_PUBLISHER_SECRET") or None,
        help="the publisher secret (default: $TXCOMET_PUBLISHER_SECRET)",
    )
    common(pub)

    sub = commands.add_parser("subscribe", help="print the events of the channels as JSON lines")
    sub.add_argument("channels", metavar="CHANNEL", nargs="+")
    sub.add_argument("--transport", "-T", default="longpoll", choices=TRANSPORTS, help="the data channel transport (default: %(default)s)")
    sub.add_argument("--count", "-n", type=_positive, default=None, help="exit after this many events")
    sub.add_argument("--since", default=None, help="start after this event id, or 'oldest' for the retained history")
    sub.add_argument("--user", default=None, help="a user name, shown in presence")
    sub.add_argument(
        "--token",
        default=os.environ.get("TXCOMET_TOKEN"),
        help="a connection token (JWT) to join with (default: $TXCOMET_TOKEN)",
    )
    common(sub)

    api = commands.add_parser("api", help="call a server API method and print its result")
    api.add_argument("method", metavar="METHOD", help="publish, broadcast, history, presence, presenceStats, "
                     "channels, info, disconnect, unsubscribe or batch")
    api.add_argument("--param", "-p", action="append", default=[], type=_param, metavar="NAME=VALUE",
                     help="a parameter (repeatable); VALUE is JSON if it parses as JSON, else a string")
    api.add_argument(
        "--key", "-k", default=os.environ.get("TXCOMET_API_KEY") or None,
        help="the API key (default: $TXCOMET_API_KEY; none: the server must be on this machine)",
    )
    common(api)
    return top


def _param(text: str) -> tuple:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError("a parameter is NAME=VALUE, not %r" % (text,))
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return number


def _fail(error: BaseException) -> int:
    if isinstance(error, CometError):
        sys.stderr.write(json.dumps({"error": error.code, "message": error.message, "status": error.status}) + "\n")
    else:
        sys.stderr.write("error: %s\n" % (error,))
    return 1


async def publish(reactor: Any, options: argparse.Namespace) -> int:
    data: Any = options.data
    if not options.text:
        try:
            data = json.loads(options.data)
        except ValueError:
            pass
    client = CometClient(options.url, secret=options.secret, reactor=reactor)
    try:
        reply = await client.publish(options.channel, data)
    except CometError as e:
        return _fail(e)
    finally:
        await client.close()
    print(json.dumps(reply))
    return 0


async def api(reactor: Any, options: argparse.Namespace, out: Any = None) -> int:
    out = out if out is not None else sys.stdout
    client = CometClient(options.url, reactor=reactor)
    try:
        result = await client.api(options.method, dict(options.param), key=options.key)
    except CometError as e:
        return _fail(e)
    finally:
        await client.close()
    out.write(json.dumps(result, ensure_ascii=False) + "\n")
    return 0


async def subscribe(reactor: Any, options: argparse.Namespace, out: Any = None) -> int:
    out = out if out is not None else sys.stdout
    client = CometClient(
        options.url, transport=options.transport, user=options.user, auth=options.token, reactor=reactor
    )
    done: Deferred = Deferred()
    count = [0]
    limit: Optional[int] = options.count

    def received(event: dict) -> None:
        out.write(json.dumps(event, ensure_ascii=False) + "\n")
        out.flush()
        count[0] += 1
        if limit is not None and count[0] >= limit and not done.called:
            done.callback(0)

    def state(value: Optional[str]) -> None:
        if value == "abort" and not done.called:
            done.callback(1)

    client.onState(state)
    try:
        for channel in options.channels:
            await client.subscribe(channel, received, since=options.since)
    except CometError as e:
        return _fail(e)
    reactor.addSystemEventTrigger("before", "shutdown", lambda: client.leave() if client.session else None)
    status = await done
    await client.leave()
    return status


def main(argv: Optional[List[str]] = None) -> None:
    options = parser().parse_args(argv)
    from twisted.internet.task import react

    command = {"publish": publish, "subscribe": subscribe, "api": api}[options.command]

    async def run(reactor: Any) -> None:
        status = await command(reactor, options)
        if status:
            raise SystemExit(status)

    react(lambda reactor: ensureDeferred(run(reactor)))
