#!/usr/bin/env python3
"""
txcomet's fan-out benchmark: txcomet against the servers a user would pick
instead, under the same load, in one invocation.

    python3 bench/run.py --quick        # under 5 minutes
    python3 bench/run.py                # the full run behind docs/benchmarks.md

It installs what it needs when it is missing (Debian's nginx and
libnginx-mod-nchan, gcc; the Python peers into bench/.venv), builds the C
load generator (bench/loadgen.c), starts every server on a free loopback
port, drives it with the generator, and writes docs/benchmarks.md, its plots
(docs/img/bench-*.png) and the raw results (docs/benchmarks.json).

Only loopback traffic; every run is bounded and stops by itself.
"""

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
BUILD = BENCH / "build"
VENV = BENCH / ".venv"
PEERS = BENCH / "peers"

PYTHON_DEPS = ["twisted", "autobahn", "treq", "zope.interface", "aiohttp", "aiohttp_sse", "socketio", "matplotlib"]
PIP_PEERS = ["aiohttp", "aiohttp-sse", "python-socketio", "matplotlib"]
NCHAN_MODULE = "/usr/lib/nginx/modules/ngx_nchan_module.so"

CHANNEL = "bench"


def log(message):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), message), flush=True)


# ---------------------------------------------------------------- setup


def ensurePython(args):
    """
    Re-run under bench/.venv unless this interpreter has every dependency.
    """
    missing = []
    for name in PYTHON_DEPS:
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if not missing:
        return
    python = VENV / "bin" / "python"
    # Venvs share the base interpreter's binary: which venv this is shows
    # in sys.prefix, not in the executable's resolved path.
    if Path(sys.prefix).resolve() == VENV.resolve():
        sys.exit("bench: %s missing even in %s" % (", ".join(missing), VENV))
    if not python.exists():
        log("creating %s (missing here: %s)" % (VENV, ", ".join(missing)))
        subprocess.check_call([sys.executable, "-m", "venv", str(VENV)])
    log("installing txcomet's dependencies and the Python peers into %s" % (VENV,))
    subprocess.check_call([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"])
    subprocess.check_call([str(python), "-m", "pip", "install", "-q", str(ROOT)] + PIP_PEERS)
    os.execv(str(python), [str(python), str(Path(__file__).resolve())] + sys.argv[1:])


def ensureSystem(args):
    """
    Install gcc, nginx and Nchan from Debian when they are missing.
    """
    missing = []
    if shutil.which("gcc") is None:
        missing.append("gcc")
    if not args.skip_nchan:
        if shutil.which("nginx") is None:
            missing.append("nginx")
        if not os.path.exists(NCHAN_MODULE):
            missing.append("libnginx-mod-nchan")
    if not missing:
        return
    if os.geteuid() != 0:
        sys.exit("bench: please install %s (apt-get install %s), or run with --skip-nchan"
                 % (", ".join(missing), " ".join(missing)))
    log("installing %s from Debian" % (" ".join(missing),))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.check_call(["apt-get", "update", "-q"], env=env)
    subprocess.check_call(["apt-get", "install", "-y", "-q", "--no-install-recommends"] + missing, env=env)
    # The package may have started the system's nginx; this benchmark never
    # uses it, and leaves it as the package set it up.


def buildLoadgen():
    """
    Build bench/loadgen.c, with TLS (--tls) where OpenSSL's headers are
    here (libssl-dev), without otherwise.
    """
    BUILD.mkdir(exist_ok=True)
    source = BENCH / "loadgen.c"
    binary = BUILD / "loadgen"
    if not binary.exists() or binary.stat().st_mtime < source.stat().st_mtime:
        log("building %s" % (binary.relative_to(ROOT),))
        tls = subprocess.run(["gcc", "-O2", "-Wall", "-DLOADGEN_TLS", "-o", str(binary), str(source),
                              "-lssl", "-lcrypto"], capture_output=True)
        if tls.returncode != 0:
            log("  without TLS (no OpenSSL headers: apt-get install libssl-dev); the tls workload will not run")
            subprocess.check_call(["gcc", "-O2", "-Wall", "-o", str(binary), str(source)])
    return binary


def loadgenHasTLS(binary):
    return subprocess.run([str(binary), "--has-tls"]).returncode == 0


def certificate():
    """
    A self-signed EC P-256 certificate for the TLS workload (both servers
    use the same one): the paths of its key and certificate.
    """
    directory = BUILD / "tls"
    key, cert = directory / "key.pem", directory / "cert.pem"
    if not cert.exists():
        directory.mkdir(parents=True, exist_ok=True)
        subprocess.check_call(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                               "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "3650",
                               "-subj", "/CN=127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return key, cert


def freePort():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def descendants(pid):
    """
    C{pid} and every process below it.
    """
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, []))
    return found


# ---------------------------------------------------------------- servers


class Endpoint:
    """
    How the load generator subscribes on one transport of one server.
    """

    def __init__(self, mode, path, headers=(), joinPath=None, joinBody=None):
        self.mode = mode
        self.path = path
        self.headers = list(headers)
        self.joinPath = joinPath
        self.joinBody = joinBody

    def args(self):
        args = ["--mode", self.mode, "--path", self.path]
        for header in self.headers:
            args += ["--header", header]
        if self.joinPath:
            args += ["--join-path", self.joinPath, "--join-body", self.joinBody]
        return args


class Server:
    """
    A server under test: how to start it and where its endpoints are.
    """

    name = ""
    label = ""
    publishPath = ""
    endpoints = {}
    #: transports on which a dropped subscriber resumes where it was (the
    #: reconnect storm runs there): SSE with Last-Event-ID, WebSocket by
    #: the server's own means
    resumes = ()

    def __init__(self):
        self.process = None
        self.port = None
        self.tmp = None

    def command(self, port):
        raise NotImplementedError

    def env(self):
        return dict(os.environ)

    def prepare(self, port):
        pass

    def start(self):
        self.port = freePort()
        self.tmp = tempfile.mkdtemp(prefix="txcomet-bench-%s-" % (self.name,))
        self.prepare(self.port)
        self.logPath = os.path.join(self.tmp, "server.log")
        logFile = open(self.logPath, "wb")
        self.process = subprocess.Popen(
            self.command(self.port),
            stdout=logFile,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.tmp,
            env=self.env(),
            start_new_session=True,
        )
        logFile.close()
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("%s exited at start:\n%s" % (self.name, self.logTail()))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("%s did not listen on %d:\n%s" % (self.name, self.port, self.logTail()))
        time.sleep(0.3)

    def pids(self):
        return descendants(self.process.pid)

    def logTail(self):
        try:
            with open(self.logPath, "rb") as f:
                return f.read()[-3000:].decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self):
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        shutil.rmtree(self.tmp, ignore_errors=True)

    def versions(self):
        return {}

    def resumeArgs(self, transport):
        """
        The load generator's options for resuming on C{transport}.
        """
        return []


def pipVersion(name):
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:
        return "?"


class Txcomet(Server):
    name = "txcomet"
    label = "txcomet"
    publishPath = "/comet/publish/" + CHANNEL
    resumes = ("sse", "ws")  # Last-Event-ID; ?last=ID

    def __init__(self, workers=1, extra=(), token=None, name=None, label=None, root=None, tls=False):
        super().__init__()
        #: subscribers over TLS: a second, ssl: listener (publishes stay plain)
        self.tls = tls
        #: the checkout the server runs from (another revision for --base)
        self.root = root or ROOT
        self.workers = workers
        self.extra = list(extra)
        if workers > 1:
            self.name = "txcomet-%dw" % (workers,)
            self.label = "txcomet, %d workers" % (workers,)
        if name:
            self.name, self.label = name, label or name
        self.endpoints = {
            "sse": Endpoint("sse", "/comet/sse?channel=" + CHANNEL),
            "ws": Endpoint("ws", "/comet/ws?channel=" + CHANNEL),
            "stream": Endpoint("stream", "/comet/xhr-stream?channel=" + CHANNEL),
            "longpoll": Endpoint(
                "longpoll",
                "/comet/longpoll?session={session}",
                joinPath="/comet/control",
                joinBody=json.dumps({"op": "join", "channels": [CHANNEL]}),
            ),
            "bayeux-ws": Endpoint("bayeux-ws", "/comet/bayeux"),
            "bayeux-lp": Endpoint("bayeux-longpoll", "/comet/bayeux"),
        }
        if token:
            # the token travels as ?token= (EventSource and WebSocket
            # clients cannot set headers), in the join's auth otherwise
            for name in ("sse", "ws", "stream"):
                self.endpoints[name].path += "&token=" + token
            self.endpoints["longpoll"].joinBody = json.dumps({"op": "join", "channels": [CHANNEL], "auth": token})

    def command(self, port):
        # No access log: nginx runs with access_log off too.
        command = [sys.executable, "-m", "twisted", "txcomet", "--no-access-log",
                   "--listen", "tcp:%d:interface=127.0.0.1:backlog=1024" % (port,)]
        if self.workers > 1:
            command += ["--workers", str(self.workers)]
        if self.tls:
            key, cert = certificate()
            self.subPorts = [freePort()]
            command += ["--listen", "ssl:%d:interface=127.0.0.1:backlog=1024:privateKey=%s:certKey=%s"
                        % (self.subPorts[0], key, cert)]
        return command + self.extra

    def env(self):
        env = dict(os.environ)
        env["PYTHONPATH"] = str(self.root) + os.pathsep + env.get("PYTHONPATH", "")
        return env

    def versions(self):
        if self.root != ROOT:
            return {}
        out = subprocess.run(
            [sys.executable, "-c", "import txcomet, twisted, autobahn; print(txcomet.__version__, twisted.__version__, autobahn.__version__)"],
            env=self.env(), capture_output=True, text=True, cwd="/",
        ).stdout.split()
        if len(out) == 3:
            return {"txcomet": out[0], "Twisted": out[1], "Autobahn": out[2]}
        return {}


class TxcometRedisPair(Server):
    """
    Two txcomet nodes on one Redis (a redis-server of its own on a free
    port, no persistence): subscribers are spread over both
    (C{subPorts}), publishes go to the first.
    """

    name = "txcomet-redis-2n"
    label = "txcomet, 2 nodes on Redis"
    publishPath = Txcomet.publishPath

    def __init__(self):
        super().__init__()
        self.redis = None
        self.nodes = []
        self.endpoints = Txcomet().endpoints

    def start(self):
        self.tmp = tempfile.mkdtemp(prefix="txcomet-bench-redis-")
        self.logPath = os.path.join(self.tmp, "redis.log")
        redisPort = freePort()
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.tmp, "--logfile", self.logPath],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        self.nodes = [Txcomet(extra=["--redis", "redis://127.0.0.1:%d/0" % (redisPort,)]) for _ in range(2)]
        for node in self.nodes:
            node.start()
        self.port = self.nodes[0].port
        self.subPorts = [node.port for node in self.nodes]

    def pids(self):
        # the nodes' first, then redis-server's (told apart in the record)
        return [pid for node in self.nodes for pid in node.pids()] + [self.redis.pid]

    def logTail(self):
        return "\n".join(node.logTail() for node in self.nodes)

    def stop(self):
        for node in self.nodes:
            node.stop()
        self.nodes = []
        if self.redis is not None:
            self.redis.terminate()
            self.redis.wait(10)
            self.redis = None
        shutil.rmtree(self.tmp, ignore_errors=True)

    def versions(self):
        out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()
        version = next((w.split("=", 1)[1] for w in out if w.startswith("v=")), "?")
        return {"redis-server": version}


NGINX_CONF = """\
load_module {module};
worker_processes {workers};
worker_rlimit_nofile 20000;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
daemon off;
events {{ worker_connections 20000; use epoll; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  server {{
    listen 127.0.0.1:{port} backlog=1024;
    {tls}
    location ~ ^/pub/(.+)$ {{
      nchan_publisher;
      nchan_channel_id $1;
      nchan_message_buffer_length 100;
    }}
    location ~ ^/sub/(.+)$ {{
      nchan_subscriber;
      nchan_channel_id $1;
      nchan_subscriber_first_message newest;
    }}
  }}
}}
"""


class Nchan(Server):
    name = "nchan"
    label = "nginx + Nchan"
    publishPath = "/pub/" + CHANNEL
    # Last-Event-ID from the message buffer.  Its plain WebSocket frames
    # carry no message id to resume with (that takes the ws+meta.nchan
    # subprotocol), so the storm runs on SSE only.
    resumes = ("sse",)
    endpoints = {
        "sse": Endpoint("sse", "/sub/" + CHANNEL),
        "ws": Endpoint("ws", "/sub/" + CHANNEL),
        "stream": Endpoint("stream", "/sub/" + CHANNEL, headers=["TE: chunked"]),
        "longpoll": Endpoint("nchan-longpoll", "/sub/" + CHANNEL),
    }

    def __init__(self, workers=1, tls=False):
        super().__init__()
        self.workers = workers
        self.tls = tls

    def prepare(self, port):
        self.conf = os.path.join(self.tmp, "nginx.conf")
        tls = ""
        if self.tls:
            key, cert = certificate()
            self.subPorts = [freePort()]
            tls = ("listen 127.0.0.1:%d ssl backlog=1024; ssl_certificate %s; ssl_certificate_key %s;"
                   % (self.subPorts[0], cert, key))
        with open(self.conf, "w") as f:
            f.write(NGINX_CONF.format(module=NCHAN_MODULE, workers=self.workers, tmp=self.tmp, port=port, tls=tls))

    def command(self, port):
        return ["nginx", "-p", self.tmp, "-c", self.conf, "-e", os.path.join(self.tmp, "error.log")]

    def versions(self):
        nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
        nchan = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "libnginx-mod-nchan"], capture_output=True, text=True
        ).stdout.strip()
        return {"nginx": nginx.split("/")[-1], "Nchan (libnginx-mod-nchan)": nchan}

    def resumeArgs(self, transport):
        return ["--resume-param", "last_event_id"]


class Peer(Server):
    """
    A Python peer in bench/peers/, started as C{python SCRIPT PORT}.
    """

    def __init__(self, name, label, script, endpoints, publishPath="/publish", packages=(), args=(), resumes=()):
        super().__init__()
        self.name = name
        self.label = label
        self.script = script
        self.endpoints = endpoints
        self.publishPath = publishPath
        self.packages = packages
        self.args = list(args)
        self.resumes = resumes

    def command(self, port):
        return [sys.executable, str(PEERS / self.script), str(port)] + self.args

    def versions(self):
        return {p: pipVersion(p) for p in self.packages}


NODE_DIR = BENCH / "node"


class NodePeer(Peer):
    """
    A Node peer in bench/peers/, started as C{node SCRIPT PORT} with the
    packages of bench/node/package.json (installed by L{ensureNode}).
    """

    def command(self, port):
        return ["node", str(PEERS / self.script), str(port)] + self.args

    def env(self):
        return dict(os.environ, NODE_PATH=str(NODE_DIR / "node_modules"))

    def versions(self):
        found = {}
        for package in self.packages:
            try:
                found[package + " (Node)"] = json.loads(
                    (NODE_DIR / "node_modules" / package / "package.json").read_text())["version"]
            except (OSError, ValueError, KeyError):
                found[package + " (Node)"] = "?"
        return found


def ensureNode(args):
    """
    Install bench/node's npm packages (Faye, Socket.IO) when missing; leave
    the Node peers out when there is no node or npm.
    """
    if args.skip_node:
        return False
    if shutil.which("node") is None or shutil.which("npm") is None:
        log("no node/npm here: the Node peers (Faye, Socket.IO) are left out")
        return False
    wanted = json.loads((NODE_DIR / "package.json").read_text())["dependencies"]
    if all((NODE_DIR / "node_modules" / name / "package.json").exists() for name in wanted):
        return True
    log("installing %s into %s" % (", ".join(sorted(wanted)), NODE_DIR.relative_to(ROOT)))
    subprocess.check_call(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=str(NODE_DIR))
    return True


def benchToken():
    """
    A connection token for the auth workload, and the secret it is signed
    with (PyJWT: a dependency of txcomet).
    """
    import jwt

    secret = "bench-secret-" + os.urandom(8).hex()
    token = jwt.encode({"sub": "bench", "exp": int(time.time()) + 3600}, secret, algorithm="HS256")
    return secret, token


AUTH_RULES = """\
# the auth workload: a rule per channel, subscribers must be authenticated
[[channel]]
pattern = "bench"
subscribe = "authenticated"
publish = "anyone"
"""


def authServers():
    """
    The open server and one with a rules file and tokens, alike otherwise.
    """
    secret, token = benchToken()
    rules = os.path.join(tempfile.mkdtemp(prefix="txcomet-bench-rules-"), "txcomet.toml")
    with open(rules, "w") as f:
        f.write(AUTH_RULES)
    return [
        Txcomet(name="txcomet", label="txcomet, open"),
        Txcomet(extra=["--config", rules, "--token-secret", secret], token=token,
                name="txcomet-auth", label="txcomet, rules + tokens"),
    ]


def baseCheckout(revision):
    """
    A checkout of C{revision} (a git worktree under bench/build/), for
    running the commit before a change beside it in the same invocation.
    """
    commit = subprocess.run(["git", "rev-parse", "--short", revision], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.strip()
    path = BUILD / ("base-" + commit)
    if not path.exists():
        BUILD.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "worktree", "add", "--detach", str(path), commit], cwd=ROOT, check=True,
                       capture_output=True)
    return commit, path


def allServers(args):
    servers = [Txcomet()]
    if args.base:
        commit, path = baseCheckout(args.base)
        servers.append(Txcomet(name="txcomet-base", label="txcomet @ %s (before)" % (commit,), root=path))
    if not args.skip_nchan:
        servers.append(Nchan())
    servers += [
        Peer("twisted-web", "bare twisted.web SSE", "twisted_sse.py",
             {"sse": Endpoint("sse", "/sse")}, packages=["Twisted"]),
        Peer("autobahn", "bare Autobahn broadcast", "autobahn_ws.py",
             {"ws": Endpoint("ws", "/ws")}, packages=["autobahn"]),
        Peer("aiohttp-sse", "aiohttp-sse", "aiohttp_sse_peer.py",
             {"sse": Endpoint("sse", "/sse")}, packages=["aiohttp", "aiohttp-sse"]),
        Peer("socketio", "python-socketio (aiohttp)", "socketio_peer.py",
             {"ws": Endpoint("sio", "/socket.io/?EIO=4&transport=websocket")},
             packages=["python-socketio", "python-engineio"]),
    ]
    if args.node:
        servers += [
            NodePeer("faye", "Faye (Node)", "faye_peer.js",
                     {"bayeux-ws": Endpoint("bayeux-ws", "/bayeux"),
                      "bayeux-lp": Endpoint("bayeux-longpoll", "/bayeux")},
                     publishPath="/publish/" + CHANNEL, packages=["faye"]),
            NodePeer("socketio-node", "Socket.IO (Node)", "socketio_node_peer.js",
                     {"ws": Endpoint("sio", "/socket.io/?EIO=4&transport=websocket")},
                     packages=["socket.io"]),
        ]
    if args.only:
        wanted = set(args.only.split(","))
        servers = [s for s in servers if s.name in wanted]
    return servers


# ---------------------------------------------------------------- runs


class Runner:
    def __init__(self, args, loadgen):
        self.args = args
        self.loadgen = loadgen
        self.results = []

    def loadgenRun(self, server, endpoint, subs, rate=10.0, events=100, warmup=10, size=100,
                   drain=10.0, slow=0, hold=None, procs=1, settle=None, keepalive=0, churn=False, extra=()):
        command = [str(self.loadgen), "--port", str(server.port), "--subs", str(subs),
                   "--pids", ",".join(map(str, server.pids())), "--procs", str(procs)]
        if getattr(server, "subPorts", None):
            command += ["--sub-ports", ",".join(map(str, server.subPorts))]
        if getattr(server, "tls", False):
            command += ["--tls"]
        command += endpoint.args()
        if settle is None:
            settle = 0.5 + subs / 10000.0
        command += ["--settle", str(settle)]
        if hold is None:
            command += ["--pub-path", server.publishPath, "--rate", str(rate), "--events", str(events),
                        "--warmup", str(warmup), "--size", str(size), "--drain", str(drain),
                        "--slow", str(slow)]
            if keepalive:
                command += ["--keepalive", str(keepalive)]
            if churn:
                command += ["--churn"]
            command += list(extra)
        else:
            command += ["--hold", str(hold), "--events", "1"]
        started = time.time()
        process = subprocess.run(command, capture_output=True, text=True,
                                 timeout=120 + events / max(rate, 0.1) + drain + (hold or 0))
        lines = [l for l in process.stdout.splitlines() if l.startswith("{")]
        if process.returncode != 0 or not lines:
            raise RuntimeError("loadgen failed (%s): %s %s" % (process.returncode, process.stdout[-500:], process.stderr[-1500:]))
        result = json.loads(lines[-1])
        result["elapsed_s"] = round(time.time() - started, 2)
        result["loadgen_stderr"] = process.stderr.strip().splitlines()[-5:]
        return result

    def record(self, kind, server, transport, subs, result, **extra):
        entry = dict(kind=kind, server=server.name, label=server.label, transport=transport,
                     subs=subs, **extra)
        entry.update(result)
        if entry.get("server_cpu_s"):
            entry["deliveries_per_cpu_s"] = round(entry["deliveries"] / entry["server_cpu_s"], 1)
        else:
            entry["deliveries_per_cpu_s"] = None
        if entry.get("active_s"):
            entry["deliveries_per_s"] = round(entry["deliveries"] / entry["active_s"], 1)
        self.results.append(entry)
        self.save()
        return entry

    def save(self):
        if self.args.results:
            with open(self.args.results, "w") as f:
                json.dump({"meta": self.meta, "results": self.results}, f, indent=1)

    def withServer(self, server, fn):
        try:
            server.start()
        except Exception as e:
            log("  %s would not start: %s" % (server.name, e))
            return None
        try:
            return fn(server)
        except Exception as e:
            log("  %s failed: %s" % (server.name, e))
            log("  server log: %s" % (server.logTail()[-800:],))
            return None
        finally:
            server.stop()
            time.sleep(0.5)

    # workloads

    def fanout(self, server, transport, subs, rep, kind="fanout"):
        p = self.profile

        def go(server):
            r = self.loadgenRun(server, server.endpoints[transport], subs, rate=p["rate"],
                                events=p["events"], warmup=p["warmup"], size=100, drain=p["drain"])
            e = self.record(kind, server, transport, subs, r, rep=rep, rate=p["rate"], size=100)
            log("  %-12s %-6s %6d subs: %8s deliveries/CPU-s, p99 %s ms, lost %d, dup %d, server %.2f CPU-s, loadgen %.2f CPU-s, others %.2f CPU-s"
                % (server.name, transport, subs, e["deliveries_per_cpu_s"], e["latency_us"]["p99"] / 1000.0,
                   e["lost"], e["duplicates"], e["server_cpu_s"], e["gen_cpu_s"],
                   e["machine_cpu_s"] - e["server_cpu_s"] - e["gen_cpu_s"]))

        self.withServer(server, go)

    def publish(self, server, subs, rep=0):
        """
        Publish rate: events accepted through the HTTP publish API per
        server CPU-second, from keep-alive publishers sending as fast as
        they are answered, with C{subs} SSE subscribers listening (0: the
        request path alone).
        """
        p = self.profile

        def go(server):
            # Enough publishes that the server's CPU time (counted in
            # ticks of 10 ms) is long: a fast server takes 50,000 in well
            # under a second.
            events = p["pub_events"] if subs == 0 else p["pub_events_busy"]
            r = self.loadgenRun(server, server.endpoints["sse"], subs, rate=1, events=events,
                                warmup=p["warmup"] * 10, size=100, drain=p["drain"],
                                keepalive=p["pub_connections"])
            e = self.record("publish", server, "sse", subs, r, rep=rep, size=100,
                            connections=p["pub_connections"])
            e["publishes_per_cpu_s"] = round(events / e["server_cpu_s"], 1) if e.get("server_cpu_s") else None
            e["publishes_per_s"] = round(events / e["publish_s"], 1) if e.get("publish_s") else None
            self.save()
            log("  %-12s %5d subscribers: %s publishes/CPU-s (%s/s), %d errors, lost %d, dup %d"
                % (server.name, subs, e["publishes_per_cpu_s"], e["publishes_per_s"], e["publish_errors"],
                   e["lost"], e["duplicates"]))

        self.withServer(server, go)

    def connect(self, server, transport, subs, rep=0):
        """
        Connection rate: C{subs} subscribers that each, once an event
        reaches them, close their connection and open a new one at once
        (connect, subscribe, one event, close), while events go out at
        C{conn_rate} a second; new connections per server CPU-second.
        """
        p = self.profile

        def go(server):
            r = self.loadgenRun(server, server.endpoints[transport], subs, rate=p["conn_rate"],
                                events=p["conn_events"], warmup=p["warmup"], size=100, drain=1.0, churn=True)
            e = self.record("connect", server, transport, subs, r, rep=rep, rate=p["conn_rate"], size=100)
            e["connections_per_cpu_s"] = (round(e["requests"] / e["server_cpu_s"], 1)
                                          if e.get("server_cpu_s") else None)
            e["connections_per_s"] = round(e["requests"] / e["window_s"], 1) if e.get("window_s") else None
            self.save()
            log("  %-13s %-4s %5d churning subscribers: %s connections/CPU-s (%s/s), %d failed, dup %d"
                % (server.name, transport, subs, e["connections_per_cpu_s"], e["connections_per_s"],
                   e["failed"], e["duplicates"]))

        self.withServer(server, go)

    def storm(self, server, transport, subs, rep=0):
        """
        Reconnect storm: C{subs} subscribers whose connections are all
        reset at once mid-stream, while events keep flowing at
        C{storm_rate}; each reconnects within C{storm_spread} seconds and
        resumes after its last event.  The time until every one has
        resumed (received an event published after the storm), and
        losses and duplicates over the whole run.
        """
        p = self.profile

        def go(server):
            # A long drain: subscribers whose connection attempts the
            # kernel dropped (a full accept queue) retry after 1, 3, 7, 15 s
            r = self.loadgenRun(server, server.endpoints[transport], subs, rate=p["storm_rate"],
                                events=p["storm_events"], warmup=p["warmup"], size=100, drain=p["storm_drain"],
                                procs=2, extra=["--storm", str(p["storm_at"]), "--storm-spread",
                                                str(p["storm_spread"])] + server.resumeArgs(transport))
            e = self.record("storm", server, transport, subs, r, rep=rep, rate=p["storm_rate"], size=100,
                            spread_s=p["storm_spread"])
            storm = e["storm"]
            log("  %-14s %-4s %6d subscribers: %d dropped, %d reconnected (the last after %.2f s, %d attempts "
                "retried), %d resumed, all within %.2f s (p50 %.2f s), lost %d, dup %d, failed %d, server %.2f CPU-s"
                % (server.name, transport, subs, storm["dropped"], storm["reconnected"],
                   storm["reconnect_max_us"] / 1e6, storm.get("retries", 0), storm["resumed"],
                   storm["resume_us"]["max"] / 1e6, storm["resume_us"]["p50"] / 1e6, e["lost"], e["duplicates"],
                   e["failed"], e["server_cpu_s"]))

        self.withServer(server, go)

    def multinode(self, server, subs, rep=0):
        """
        Cross-node fan-out: SSE fan-out at the fan-out rate on one node on
        the in-memory bus, or on two nodes on Redis with C{subs} spread
        over both and events published to the first; deliveries per
        CPU-second of the txcomet nodes (Redis's CPU apart).
        """
        p = self.profile

        def go(server):
            r = self.loadgenRun(server, server.endpoints["sse"], subs, rate=p["rate"], events=p["events"],
                                warmup=p["warmup"], size=100, drain=p["drain"], procs=2)
            nodes = getattr(server, "nodes", None)
            e = self.record("multinode", server, "sse", subs, r, rep=rep, rate=p["rate"], size=100,
                            nodes=len(nodes) if nodes else 1)
            byPid = e.get("server_cpu_by_pid", {})
            redisPid = str(server.redis.pid) if nodes else None
            e["redis_cpu_s"] = round(byPid.get(redisPid, 0.0), 3) if redisPid else 0.0
            e["node_cpu_s"] = round(e["server_cpu_s"] - e["redis_cpu_s"], 3)
            e["deliveries_per_node_cpu_s"] = (round(e["deliveries"] / e["node_cpu_s"], 1)
                                              if e["node_cpu_s"] else None)
            self.save()
            log("  %-17s %6d subs: %s deliveries per node CPU-s (nodes %.2f CPU-s, redis %.2f CPU-s), "
                "p99 %.1f ms, lost %d, dup %d"
                % (server.name, subs, e["deliveries_per_node_cpu_s"], e["node_cpu_s"], e["redis_cpu_s"],
                   e["latency_us"]["p99"] / 1000.0, e["lost"], e["duplicates"]))

        self.withServer(server, go)

    def idle(self, server, transport, subs):
        def go(server):
            # A few connections first, so that what the first connection
            # costs once (lazy imports, caches) is not counted per connection.
            self.loadgenRun(server, server.endpoints[transport], 200, hold=0.3, settle=0.3)
            time.sleep(0.5)
            r = self.loadgenRun(server, server.endpoints[transport], subs, hold=1.0, settle=1.0)
            e = self.record("idle", server, transport, subs, r)
            e["kib_per_connection"] = (round((e["rss_ready_kib"] - e["rss_before_kib"]) / e["connected"], 2)
                                       if e["connected"] else None)
            self.save()
            log("  %-12s %-6s %6d idle: %d connected, %s KiB per connection"
                % (server.name, transport, subs, e["connected"], e["kib_per_connection"]))

        self.withServer(server, go)

    def longpoll(self, server, subs, transport="longpoll", kind="longpoll"):
        p = self.profile

        def go(server):
            r = self.loadgenRun(server, server.endpoints[transport], subs, rate=p["lp_rate"],
                                events=p["lp_events"], warmup=p["warmup"], size=100, drain=p["drain"])
            e = self.record(kind, server, transport, subs, r, rate=p["lp_rate"], size=100)
            log("  %-12s longpoll %5d clients: %s deliveries/CPU-s, %d requests, p99 %.1f ms, lost %d"
                % (server.name, subs, e["deliveries_per_cpu_s"], e["requests"], e["latency_us"]["p99"] / 1000.0, e["lost"]))

        self.withServer(server, go)

    def slow(self, server, transport, subs, slow):
        p = self.profile

        def go(server):
            r = self.loadgenRun(server, server.endpoints[transport], subs, rate=p["slow_rate"],
                                events=p["slow_events"], warmup=p["warmup"], size=p["slow_size"],
                                drain=p["drain"], slow=slow)
            e = self.record("slow", server, transport, subs, r, slowCount=slow, rate=p["slow_rate"],
                            size=p["slow_size"])
            log("  %-12s %-6s %5d subs, %d slow: p99 %.1f ms, RSS %d -> peak %d KiB, slow closed %d, lost %d"
                % (server.name, transport, subs, slow, e["latency_us"]["p99"] / 1000.0,
                   e["rss_ready_kib"], e["rss_peak_kib"], e["slow_closed"], e["lost"]))

        self.withServer(server, go)

    def many(self, server, transport, subs):
        def go(server):
            r = self.loadgenRun(server, server.endpoints[transport], subs, rate=2, events=10,
                                warmup=4, size=100, drain=15, procs=2, settle=2.0)
            e = self.record("many", server, transport, subs, r, rate=2, size=100)
            log("  %-12s %-6s %6d connections: %d connected, %d failed, %d of %d delivered"
                % (server.name, transport, subs, e["connected"], e["failed"], e["deliveries"], e["expected"]))

        self.withServer(server, go)

    def workers(self, server, transport, subs, rate, seconds, rep=0):
        """
        One fixed load on one worker and on several: the wall-clock rate,
        and the capacity the busiest worker's CPU share implies (what the
        setup would deliver with that worker at 100% of a core), which
        does not depend on cores the load generator and other processes
        take.
        """

        def go(server):
            r = self.loadgenRun(server, server.endpoints[transport], subs, rate=rate,
                                events=int(rate * seconds), warmup=self.profile["warmup"], size=100,
                                drain=self.profile["drain"])
            e = self.record("workers", server, transport, subs, r, rep=rep, rate=rate, size=100,
                            workers=getattr(server, "workers", 1))
            byPid = [c for c in e.get("server_cpu_by_pid", {}).values() if c > 0.05]
            busiest = max(byPid) if byPid else e["server_cpu_s"]
            e["busiest_share"] = round(busiest / e["active_s"], 3) if e.get("active_s") else None
            e["capacity_per_s"] = (round(e["deliveries_per_s"] / e["busiest_share"])
                                   if e.get("busiest_share") and e.get("deliveries_per_s") else None)
            self.save()
            log("  %-12s %-6s %6d subs at %g/s: %.0f deliveries/s, server %.2f CPU-s (per process %s), "
                "busiest %.0f%% -> capacity %s deliveries/s, lost %d"
                % (server.name, transport, subs, rate, e.get("deliveries_per_s", 0), e["server_cpu_s"],
                   ", ".join("%.2f" % c for c in byPid), 100 * (e["busiest_share"] or 0),
                   e["capacity_per_s"], e["lost"]))

        self.withServer(server, go)


PROFILES = {
    "quick": dict(sizes=[1000, 5000], rate=10, events=30, warmup=10, drain=8, repeat=1,
                  idle_subs=2000, lp_subs=1000, lp_sizes=[1000], lp_rate=5, lp_events=20,
                  slow_subs=1000, slow_rate=40, slow_events=200, slow_size=8000, slow_transports=["sse"],
                  many_subs=0, sat_subs=5000, sat_rate=20, sat_seconds=3, stream_sizes=[1000],
                  auth_sizes=[1000], pub_subs=[0, 1000], pub_events=10000, pub_events_busy=1000, pub_connections=8,
                  conn_subs=200, conn_rate=50, conn_events=100,
                  storm_subs=[2000], storm_rate=10, storm_events=60, storm_at=20, storm_spread=1.0, storm_drain=30,
                  node_subs=1000, tls_sizes=[1000]),
    "full": dict(sizes=[1000, 5000, 10000], rate=10, events=100, warmup=10, drain=20, repeat=1,
                 idle_subs=10000, lp_subs=2000, lp_sizes=[2000, 10000], lp_rate=5, lp_events=50,
                 slow_subs=1000, slow_rate=40, slow_events=600, slow_size=4000, slow_transports=["sse", "ws"],
                 many_subs=19000, sat_subs=5000, sat_rate=20, sat_seconds=8, stream_sizes=[5000],
                 auth_sizes=[5000], pub_subs=[0, 1000], pub_events=50000, pub_events_busy=3000, pub_connections=8,
                 conn_subs=500, conn_rate=50, conn_events=250,
                 storm_subs=[10000], storm_rate=10, storm_events=100, storm_at=30, storm_spread=1.0, storm_drain=60,
                 node_subs=5000, tls_sizes=[1000, 5000]),
}

WORKLOADS = ["fanout", "stream", "longpoll", "idle", "slow", "many", "workers", "bayeux", "auth", "publish", "connect",
             "storm", "multinode", "tls"]


def machineInfo():
    info = {"python": platform.python_version(), "kernel": platform.release(), "cores": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            info["memory"] = f.readline().split(":", 1)[1].strip()
    except OSError:
        pass
    info["loadavg_start"] = open("/proc/loadavg").read().split()[:3]
    info["nofile"] = __import__("resource").getrlimit(__import__("resource").RLIMIT_NOFILE)
    return info


def rowKey(result):
    return (result["kind"], result["server"], result.get("transport"), result.get("subs"))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the short profile (under 5 minutes)")
    parser.add_argument("--only", help="comma-separated server names (txcomet,nchan,twisted-web,autobahn,aiohttp-sse,socketio)")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated: " + ",".join(WORKLOADS))
    parser.add_argument("--transports", default="sse,ws", help="fan-out transports (sse,ws)")
    parser.add_argument("--sizes", help="fan-out subscriber counts, e.g. 1000,5000")
    parser.add_argument("--events", type=int, help="measured events per fan-out run")
    parser.add_argument("--rate", type=float, help="fan-out publish rate (events/s)")
    parser.add_argument("--repeat", type=int, help="repeat every fan-out run and every workers pair this many times")
    parser.add_argument("--skip-nchan", action="store_true", help="leave nginx+Nchan out")
    parser.add_argument("--base", metavar="REV",
                        help="also run txcomet as of git revision REV (as txcomet-base), to show a change's "
                             "before and after in one invocation")
    parser.add_argument("--skip-node", action="store_true", help="leave the Node peers (Faye, Socket.IO) out")
    parser.add_argument("--add-to", metavar="JSON",
                        help="merge this run's results into saved ones (replacing the saved rows of the same "
                             "workload, server, transport and size) "
                             "and render the report from the merged file")
    parser.add_argument("--results", help="where to write raw results (default docs/benchmarks.json; quick: bench/build/quick.json)")
    parser.add_argument("--no-report", action="store_true", help="do not write docs/benchmarks.md")
    parser.add_argument("--pub-subs", help="publish-rate subscriber counts, e.g. 0,1000")
    parser.add_argument("--report-only", metavar="JSON", help="only render docs/benchmarks.md from saved results")
    args = parser.parse_args()

    if args.report_only:
        sys.path.insert(0, str(BENCH))
        from report import render

        render(Path(args.report_only), ROOT / "docs")
        return

    ensureSystem(args)
    ensurePython(args)
    args.node = ensureNode(args)
    loadgen = buildLoadgen()

    profile = dict(PROFILES["quick" if args.quick else "full"])
    if args.sizes:
        profile["sizes"] = [int(s) for s in args.sizes.split(",")]
    if args.events:
        profile["events"] = args.events
    if args.rate:
        profile["rate"] = args.rate
    if args.repeat:
        profile["repeat"] = args.repeat
    if args.pub_subs:
        profile["pub_subs"] = [int(n) for n in args.pub_subs.split(",")]
    if args.results is None:
        if args.add_to:
            # not the file this run is merged into: the run saves as it
            # goes, and would overwrite what it is to be merged with
            args.results = str(BUILD / "added.json")
        else:
            args.results = str(BUILD / "quick.json") if args.quick else str(ROOT / "docs" / "benchmarks.json")

    runner = Runner(args, loadgen)
    runner.profile = profile
    servers = allServers(args)
    versions = {}
    for server in servers:
        versions.update(server.versions())
    runner.meta = {"profile": "quick" if args.quick else "full", "settings": profile,
                   "machine": machineInfo(), "versions": versions,
                   "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                   "command": " ".join(["python3", "bench/run.py"] + sys.argv[1:])}
    workloads = args.workloads.split(",")
    byName = {s.name: s for s in servers}
    started = time.time()

    if "fanout" in workloads:
        for rep in range(profile["repeat"]):
            for transport in args.transports.split(","):
                for subs in profile["sizes"]:
                    log("fan-out: %s, %d subscribers, %g events/s (repeat %d)" % (transport, subs, profile["rate"], rep + 1))
                    for server in servers:
                        if transport in server.endpoints:
                            runner.fanout(server, transport, subs, rep)
    if "stream" in workloads:
        for subs in profile["stream_sizes"]:
            log("fan-out: XHR streaming, %d subscribers" % (subs,))
            for server in servers:
                if "stream" in server.endpoints:
                    runner.fanout(server, "stream", subs, 0)
    if "longpoll" in workloads:
        # txcomet as one process and as a group of two workers on one port
        # (where the lean path is off: a request may be for another
        # worker's session, which the worker router forwards)
        lpServers = list(servers)
        if "txcomet" in byName:
            lpServers.insert(lpServers.index(byName["txcomet"]) + 1, Txcomet(workers=2))
        for subs in profile["lp_sizes"]:
            log("long-poll churn: %d clients, %g events/s" % (subs, profile["lp_rate"]))
            for server in lpServers:
                if "longpoll" in server.endpoints:
                    runner.longpoll(server, subs)
    if "idle" in workloads:
        log("idle connections: %d" % (profile["idle_subs"],))
        for server in servers:
            for transport in ("sse", "ws"):
                if transport in server.endpoints:
                    runner.idle(server, transport, profile["idle_subs"])
    if "slow" in workloads:
        log("one slow consumer among %d (%d-byte events at %g/s)" % (profile["slow_subs"], profile["slow_size"], profile["slow_rate"]))
        for name in ("txcomet", "nchan"):
            server = byName.get(name)
            if server is None:
                continue
            for transport in profile["slow_transports"]:
                for slow in (0, 1):
                    runner.slow(server, transport, profile["slow_subs"], slow)
    if "many" in workloads and profile["many_subs"]:
        log("concurrent connections in one process: %d" % (profile["many_subs"],))
        server = byName.get("txcomet")
        if server is not None:
            runner.many(server, "sse", profile["many_subs"])
    if "workers" in workloads and "txcomet" in byName:
        log("several workers on one port: %d SSE subscribers at %d events/s" % (profile["sat_subs"], profile["sat_rate"]))
        # One worker, then two, back to back in each repeat: each pair
        # shares the machine's state of the moment, and the report takes
        # the median of the pairs' ratios.
        for rep in range(profile["repeat"]):
            for server in (Txcomet(), Txcomet(workers=2)):
                runner.workers(server, "sse", profile["sat_subs"], profile["sat_rate"], profile["sat_seconds"], rep)

    if "bayeux" in workloads:
        # Bayeux's WebSocket connection type fans out like the others; its
        # long-polling is request-shaped, so it runs at the long-poll load
        for rep in range(profile["repeat"]):
            for subs in profile["sizes"]:
                log("fan-out: Bayeux over WebSocket, %d subscribers (repeat %d)" % (subs, rep + 1))
                for server in servers:
                    if "bayeux-ws" in server.endpoints:
                        runner.fanout(server, "bayeux-ws", subs, rep, kind="bayeux")
        log("Bayeux long-polling: %d clients, %g events/s" % (profile["lp_subs"], profile["lp_rate"]))
        for server in servers:
            if "bayeux-lp" in server.endpoints:
                runner.longpoll(server, profile["lp_subs"], transport="bayeux-lp", kind="bayeux")
    if "auth" in workloads and "txcomet" in byName:
        # open and with rules + tokens, alternating, so both see the same
        # machine: authorization is at subscribe, never per delivery
        for rep in range(max(profile["repeat"], 3)):
            for transport in args.transports.split(","):
                for subs in profile["auth_sizes"]:
                    log("auth: %s, %d subscribers, open and with tokens (repeat %d)" % (transport, subs, rep + 1))
                    for server in authServers():
                        runner.fanout(server, transport, subs, rep, kind="auth")

    if "publish" in workloads:
        for rep in range(profile["repeat"]):
            for subs in profile["pub_subs"]:
                log("publish rate: %d keep-alive publishers, %d SSE subscribers (repeat %d)"
                    % (profile["pub_connections"], subs, rep + 1))
                for server in servers:
                    if "sse" in server.endpoints and server.publishPath:
                        runner.publish(server, subs, rep)

    if "connect" in workloads:
        for rep in range(profile["repeat"]):
            for transport in args.transports.split(","):
                log("connection rate: %d churning %s subscribers, %g events/s (repeat %d)"
                    % (profile["conn_subs"], transport, profile["conn_rate"], rep + 1))
                for server in servers:
                    if transport in server.endpoints:
                        runner.connect(server, transport, profile["conn_subs"], rep)

    if "storm" in workloads:
        # Socket.IO resumes only with its connection state recovery, which
        # costs it a buffer of every broadcast: a peer of its own for this,
        # so its fan-out figures stay those of its default setup
        stormServers = [s for s in servers if s.resumes]
        if "socketio-node" in byName:
            stormServers.append(NodePeer(
                "socketio-node-recovery", "Socket.IO (Node), connection state recovery", "socketio_node_peer.js",
                byName["socketio-node"].endpoints, packages=["socket.io"], args=["--recovery"], resumes=("ws",)))
        for rep in range(profile["repeat"]):
            for transport in args.transports.split(","):
                for subs in profile["storm_subs"]:
                    log("reconnect storm: %d %s subscribers reset at once, back within %g s, %g events/s (repeat %d)"
                        % (subs, transport, profile["storm_spread"], profile["storm_rate"], rep + 1))
                    for server in stormServers:
                        if transport in server.resumes:
                            runner.storm(server, transport, subs, rep)

    if "multinode" in workloads and "txcomet" in byName:
        # one node alone and two on Redis, alternating, at the same load per
        # node: the report takes the median of the pairs' ratios
        runner.meta["versions"].update(TxcometRedisPair().versions())
        for rep in range(max(profile["repeat"], 3)):
            n = profile["node_subs"]
            log("two nodes on Redis: %d SSE subscribers per node, against one node on the in-memory bus (repeat %d)"
                % (n, rep + 1))
            runner.multinode(Txcomet(), n, rep)
            runner.multinode(TxcometRedisPair(), 2 * n, rep)

    if "tls" in workloads:
        if not loadgenHasTLS(loadgen):
            log("TLS fan-out left out: the load generator was built without OpenSSL")
        else:
            # subscribers over TLS (HTTP/1.1), publishes plain, for txcomet's
            # ssl: endpoint and nginx's "listen ssl"
            tlsServers = []
            if "txcomet" in byName:
                tlsServers.append(Txcomet(tls=True))
            if "nchan" in byName:
                tlsServers.append(Nchan(tls=True))
            for rep in range(profile["repeat"]):
                for transport in args.transports.split(","):
                    for subs in profile["tls_sizes"]:
                        log("fan-out over TLS: %s, %d subscribers (repeat %d)" % (transport, subs, rep + 1))
                        for server in tlsServers:
                            runner.fanout(server, transport, subs, rep, kind="tls")

    runner.meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    runner.meta["elapsed_s"] = round(time.time() - started, 1)
    runner.meta["machine"]["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    runner.save()
    log("done in %.0f s; results in %s" % (time.time() - started, args.results))
    if args.add_to:
        merged = json.loads(Path(args.add_to).read_text())
        kinds = {r["kind"] for r in runner.results}
        # replace exactly what this run measured: the saved rows of the same
        # workload, server, transport and size (all their repeats)
        measured = {rowKey(r) for r in runner.results}
        merged["results"] = [r for r in merged["results"] if rowKey(r) not in measured] + runner.results
        merged["meta"].setdefault("added", []).append(
            {k: runner.meta[k] for k in ("command", "started", "finished", "elapsed_s", "settings", "versions")}
            | {"kinds": sorted(kinds), "machine": runner.meta["machine"].get("cpu"),
               "loadavg": [runner.meta["machine"]["loadavg_start"], runner.meta["machine"]["loadavg_end"]]})
        Path(args.add_to).write_text(json.dumps(merged, indent=1))
        args.results = args.add_to
        log("merged into %s" % (args.add_to,))
    if not args.no_report:
        sys.path.insert(0, str(BENCH))
        from report import render

        outDir = ROOT / "docs" if (args.add_to or not args.quick) else BUILD / "report"
        render(Path(args.results), outDir)
        log("report: %s" % (outDir / "benchmarks.md",))


if __name__ == "__main__":
    main()
