# tests/bench/bench.py: tangled from notes/benchmarks.org; edit the note, not this file.

# [[file:../../notes/benchmarks.org::*Settings][Settings:2]]
"""caracal against nginx and Puma on one machine, in one run (make bench)."""
import json, os, re, resource, shutil, signal, socket, statistics
import subprocess, sys, tempfile, time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "build", "bench")
CARACAL_BIN = os.environ.get("CARACAL_BIN") or os.path.join(ROOT, "build", "caracal")

def setting(name, default):
    return int(os.environ.get(name, default))

ROUNDS = setting("BENCH_ROUNDS", 3)        # interleaved rounds per scenario
SECONDS = setting("BENCH_SECONDS", 3)      # length of one wrk run
IDLE = setting("BENCH_IDLE", 10000)        # idle keep-alive connections held open
BUILD = setting("BENCH_BUILD", 0)          # 1: also time a clean build (minutes)
NOOP_MAKE = setting("BENCH_NOOP_MAKE", 1)  # 0: skip timing a no-op make
ONLY = os.environ.get("BENCH_ONLY", "").split()  # scenario numbers, empty = all

def log(*words):
    print(*words, file=sys.stderr, flush=True)

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
# Settings:2 ends here

# [[file:../../notes/benchmarks.org::*The servers it starts and stops][The servers it starts and stops:1]]
def process_tree(root_pid):
    # Every process whose chain of parents leads to root_pid, root included.
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                parents[int(entry)] = int(fields[1])
            except OSError:
                pass
    tree, grew = {root_pid}, True
    while grew:
        more = {pid for pid, ppid in parents.items() if ppid in tree} - tree
        tree |= more
        grew = bool(more)
    return tree

def rss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                total += sum(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        except OSError:
            pass
    return total
# The servers it starts and stops:1 ends here

# [[file:../../notes/benchmarks.org::*The servers it starts and stops][The servers it starts and stops:2]]
class Server:
    """One server under test: started in its own session, so stop() ends exactly it."""
    running = []

    def __init__(self, name, argv, port, workers=2):
        self.name, self.argv, self.port, self.workers = name, argv, port, workers
        self.proc = None

    def start(self):
        self.logfile = open(os.path.join(OUT, f"{self.name}-{self.port}.log"), "wb")
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=self.logfile,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        Server.running.append(self)
        self.wait_until_ready()
        return self

    def wait_until_ready(self, deadline_s=30):
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see build/bench/")
            status, _ = request_once(self.port, "/hello", timeout=2)
            # Any answer will do (a static root may have no /hello), but a master
            # and all its workers must be up before measuring.
            if status is not None and len(process_tree(self.proc.pid)) >= self.workers + 1:
                time.sleep(0.5)
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer on port {self.port} within {deadline_s} s")

    def rss_kib(self):
        return rss_kib(process_tree(self.proc.pid))

    def group_alive(self):
        self.proc.poll()  # reap the master first: a zombie still counts as a member
        try:
            os.killpg(self.proc.pid, 0)
            return True
        except ProcessLookupError:
            return False

    def stop(self):
        # SIGTERM to the server's whole process group, then SIGKILL to what is left.
        if self.proc is None:
            return
        for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            if not self.group_alive():
                break
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + grace
            while self.group_alive() and time.monotonic() < deadline:
                time.sleep(0.05)
        self.logfile.close()
        if self in Server.running:
            Server.running.remove(self)
# The servers it starts and stops:2 ends here

# [[file:../../notes/benchmarks.org::*The servers it starts and stops][The servers it starts and stops:3]]
def stop_all_servers():
    for server in list(Server.running):
        server.stop()
# The servers it starts and stops:3 ends here

# [[file:../../notes/benchmarks.org::*The peers' configuration][The peers' configuration:1]]
NGINX_CONF = """\
{user}worker_processes 2;
worker_rlimit_nofile {nofile};
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections {connections}; }}
http {{
  access_log off;
  default_type text/plain;
  types {{ application/octet-stream bin; }}
  sendfile on;
  keepalive_timeout 65s;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  server {{
    listen 127.0.0.1:{port};
    location = / {{ return 200 "Hello, world!"; }}
    location = /hello {{ return 200 "Hello, world!"; }}
    location /static/ {{ alias {static}/; }}
  }}
}}
"""
# The peers' configuration:1 ends here

# [[file:../../notes/benchmarks.org::*The peers' configuration][The peers' configuration:2]]
def nginx(port=None):
    port = port or free_port()
    folder = os.path.join(OUT, f"nginx-{port}")
    os.makedirs(folder, exist_ok=True)
    # As root, nginx's workers would become "nobody"; keep them root so that
    # they can read build/bench whatever its permissions.
    user = "user root root;\n" if os.geteuid() == 0 else ""
    conf = NGINX_CONF.format(user=user, nofile=IDLE + 4096, dir=folder, connections=IDLE + 2048,
                             port=port, static=os.path.join(OUT, "static"))
    with open(os.path.join(folder, "nginx.conf"), "w") as f:
        f.write(conf)
    server = Server("nginx", ["nginx", "-p", folder, "-e", os.path.join(folder, "error.log"),
                              "-c", os.path.join(folder, "nginx.conf")], port)
    server.again = nginx
    return server
# The peers' configuration:2 ends here

# [[file:../../notes/benchmarks.org::*The peers' configuration][The peers' configuration:3]]
def puma(port=None, threads="1:4"):
    port = port or free_port()
    server = Server("puma", ["puma", "-w", "2", "-t", threads, "-e", "production",
                             "-b", f"tcp://127.0.0.1:{port}", "tests/bench/config.ru"], port)
    server.again = lambda: puma(threads=threads)
    return server

def caracal(port=None, threads="1:4", root=None):
    port = port or free_port()
    argv = [CARACAL_BIN, "-w", "2", "-t", threads, "-e", "production", "-b", f"tcp://127.0.0.1:{port}"]
    server = Server("caracal", argv + (["--root", root] if root else []), port)
    server.again = lambda: caracal(threads=threads, root=root)
    return server
# The peers' configuration:3 ends here

# [[file:../../notes/benchmarks.org::*Measuring][Measuring:1]]
WRK_LATENCY = re.compile(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)
UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}

def wrk(port, path, headers=(), seconds=SECONDS):
    argv = ["wrk", "-t2", "-c32", f"-d{seconds}s", "--latency", "--timeout", "2s"]
    for header in headers:
        argv += ["-H", header]
    out = subprocess.run(argv + [f"http://127.0.0.1:{port}{path}"], capture_output=True,
                         text=True, timeout=seconds + 30).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    latency = {p: float(v) * UNIT_MS[u] for p, v, u in WRK_LATENCY.findall(out)}
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(rps.group(1)) if rps else None,
            "p50_ms": latency.get("50"), "p99_ms": latency.get("99"),
            "errors": (sum(map(int, errors.groups())) if errors else 0) + (int(non2xx.group(1)) if non2xx else 0)}
# Measuring:1 ends here

# [[file:../../notes/benchmarks.org::*Measuring][Measuring:2]]
def request_once(port, path, timeout=10.0):
    # One GET on a new connection; returns (status, seconds) or (None, seconds).
    start = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.") else None
    except (OSError, ValueError, IndexError):
        status = None
    return status, time.perf_counter() - start

def percentile(values, p):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]

def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None
# Measuring:2 ends here

# [[file:../../notes/benchmarks.org::*Measuring][Measuring:3]]
def interleave(servers, measure):
    # Rounds A B C, B C A, C A B ...: each server is measured once per round,
    # and no server always runs first, right after a quiet moment.
    runs = {s.name: [] for s in servers}
    for r in range(ROUNDS):
        for s in servers[r % len(servers):] + servers[:r % len(servers)]:
            runs[s.name].append(measure(s))
            log(f"    round {r + 1} {s.name}: {runs[s.name][-1]}")
    return runs

def summary(runs, keys):
    return {name: {k: median([run.get(k) for run in rounds]) for k in keys} | {"runs": rounds}
            for name, rounds in runs.items()}
# Measuring:3 ends here

# [[file:../../notes/benchmarks.org::*Scenario 1 and 2: hello world, kept alive and not][Scenario 1 and 2: hello world, kept alive and not:1]]
def hello_keep_alive(servers):
    return summary(interleave(servers, lambda s: wrk(s.port, "/hello")), ["rps", "p50_ms", "p99_ms", "errors"])

def hello_close(servers):
    measure = lambda s: wrk(s.port, "/hello", headers=["Connection: close"])
    return summary(interleave(servers, measure), ["rps", "p50_ms", "p99_ms", "errors"])
# Scenario 1 and 2: hello world, kept alive and not:1 ends here

# [[file:../../notes/benchmarks.org::*Scenario 3: fairness, fast requests beside slow ones][Scenario 3: fairness, fast requests beside slow ones:1]]
SLOW_REQUESTS, FAST_REQUESTS, SLOW_MS, FAST_LANES = 20, 180, 200, 8

class Lane:
    """One client: a new connection per request, or one kept-alive connection."""

    def __init__(self, port, keep_alive):
        self.port, self.keep_alive, self.sock = port, keep_alive, None

    def get(self, path):
        if not self.keep_alive:
            return request_once(self.port, path, timeout=15)
        start = time.perf_counter()
        for attempt in (1, 2):  # a server may close a kept-alive connection: reconnect once
            try:
                if self.sock is None:
                    self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=15)
                self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
                if read_one_response(self.sock):
                    return 200, time.perf_counter() - start
            except OSError:
                pass
            self.close()
        return None, time.perf_counter() - start

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None
# Scenario 3: fairness, fast requests beside slow ones:1 ends here

# [[file:../../notes/benchmarks.org::*Scenario 3: fairness, fast requests beside slow ones][Scenario 3: fairness, fast requests beside slow ones:2]]
def fairness_run(server, keep_alive):
    # One lane sleeps 200 ms twenty times in a row, so exactly one request at a
    # time holds a thread; eight lanes send 180 fast requests at a steady pace
    # meanwhile.  A fast request only waits if it is handed to the busy thread.
    span = SLOW_REQUESTS * SLOW_MS / 1000
    start = time.monotonic() + 0.05
    lanes = [Lane(server.port, keep_alive) for _ in range(FAST_LANES + 1)]
    def slow_lane():
        return [lanes[-1].get(f"/sleep?ms={SLOW_MS}")[0] for _ in range(SLOW_REQUESTS)]
    def fast_lane(lane):
        results = []
        for i in range(lane, FAST_REQUESTS, FAST_LANES):
            time.sleep(max(0.0, start + i * span / FAST_REQUESTS - time.monotonic()))
            results.append(lanes[lane].get("/hello"))
        return results
    try:
        with ThreadPoolExecutor(FAST_LANES + 1) as pool:
            slow = pool.submit(slow_lane)
            fast_results = sum((f.result() for f in [pool.submit(fast_lane, n) for n in range(FAST_LANES)]), [])
            slow_statuses = slow.result()
    finally:
        for lane in lanes:
            lane.close()
    fast_ms = [t * 1000 for status, t in fast_results if status == 200]
    failed = sum(status != 200 for status, _ in fast_results) + sum(s != 200 for s in slow_statuses)
    return {"p50_ms": percentile(fast_ms, 50), "p99_ms": percentile(fast_ms, 99),
            "max_ms": max(fast_ms, default=None), "failed": failed}

def fairness(servers, keep_alive):
    measure = lambda s: fairness_run(s, keep_alive)
    return summary(interleave(servers, measure), ["p50_ms", "p99_ms", "max_ms", "failed"])
# Scenario 3: fairness, fast requests beside slow ones:2 ends here

# [[file:../../notes/benchmarks.org::*Scenario 4: ten thousand idle connections][Scenario 4: ten thousand idle connections:1]]
KEEP_ALIVE_REQUEST = b"GET /hello HTTP/1.1\r\nHost: bench\r\n\r\n"

def read_one_response(sock):
    # Reads one response with a Content-Length body; True if it was a 200.
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return False
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    while length and len(body) < int(length.group(1)):
        chunk = sock.recv(4096)
        if not chunk:
            return False
        body += chunk
    return head.startswith(b"HTTP/1.1 200")
# Scenario 4: ten thousand idle connections:1 ends here

# [[file:../../notes/benchmarks.org::*Scenario 4: ten thousand idle connections][Scenario 4: ten thousand idle connections:2]]
def open_idle_connections(port, count, opened, deadline):
    # Batches of 100: connect them all, send on all, then read all, so the
    # round trips overlap instead of adding up.  Whatever is open when the
    # deadline passes is what the server managed to take in that time.
    while len(opened) < count and time.monotonic() < deadline:
        batch = []
        try:
            for _ in range(min(100, count - len(opened))):
                batch.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            for sock in batch:
                sock.sendall(KEEP_ALIVE_REQUEST)
            for sock in list(batch):
                sock.settimeout(max(0.1, deadline - time.monotonic()))
                if read_one_response(sock):
                    opened.append(sock)
                    batch.remove(sock)
        except OSError as error:
            log(f"    stopped opening at {len(opened)}: {error}")
            return
        finally:
            for sock in batch:
                sock.close()
# Scenario 4: ten thousand idle connections:2 ends here

# [[file:../../notes/benchmarks.org::*Scenario 4: ten thousand idle connections][Scenario 4: ten thousand idle connections:3]]
IDLE_OPENING_S = 15  # the time a server gets to take in the idle connections

def idle_run(server):
    before = server.rss_kib()
    held = []
    try:
        open_idle_connections(server.port, IDLE, held, time.monotonic() + IDLE_OPENING_S)
        time.sleep(1)
        after = server.rss_kib()
        new = [request_once(server.port, "/hello", timeout=5) for _ in range(200)]
        new_ms = [t * 1000 for status, t in new if status == 200]
        # Are the idle ones still there?  A sample answers a second request.
        sample = held[::max(1, len(held) // 100)]
        alive = 0
        for sock in sample:
            try:
                sock.sendall(KEEP_ALIVE_REQUEST)
                alive += read_one_response(sock)
            except OSError:
                pass
    finally:
        for sock in held:
            sock.close()
    time.sleep(1)
    return {"held": len(held), "sample_alive_pct": 100 * alive / len(sample) if sample else 0,
            "rss_before_kib": before, "rss_after_kib": after,
            "rss_per_conn_bytes": (after - before) * 1024 / len(held) if held else None,
            "p50_ms": percentile(new_ms, 50), "p99_ms": percentile(new_ms, 99),
            "failed": sum(status != 200 for status, _ in new)}
# Scenario 4: ten thousand idle connections:3 ends here

# [[file:../../notes/benchmarks.org::*Scenario 4: ten thousand idle connections][Scenario 4: ten thousand idle connections:4]]
def idle_run_on_a_fresh_server(server):
    # Memory that closed connections gave back stays in the process for the
    # next ones, so a server that has held 10,000 connections before would
    # show almost no growth: each round gets a new server, warmed up by wrk.
    fresh = server.again().start()
    try:
        wrk(fresh.port, "/hello", seconds=1)
        return idle_run(fresh)
    finally:
        fresh.stop()

def idle_connections(servers):
    keys = ["held", "sample_alive_pct", "rss_per_conn_bytes", "p50_ms", "p99_ms", "failed"]
    return summary(interleave(servers, idle_run_on_a_fresh_server), keys)
# Scenario 4: ten thousand idle connections:4 ends here

# [[file:../../notes/benchmarks.org::*Scenario 5: static files][Scenario 5: static files:1]]
STATIC_FILES = {"16k": 16 * 1024, "1m": 1024 * 1024}

def write_static_files():
    folder = os.path.join(OUT, "static")
    os.makedirs(folder, exist_ok=True)
    pattern = bytes(range(256))
    for name, size in STATIC_FILES.items():
        with open(os.path.join(folder, f"{name}.bin"), "wb") as f:
            f.write((pattern * (size // 256 + 1))[:size])
    return folder

def static_files(servers):
    # caracal --root serves the folder at /, nginx under /static/.
    prefix = {"caracal": "/", "nginx": "/static/"}
    results = {}
    for name in STATIC_FILES:
        measure = lambda s: wrk(s.port, f"{prefix[s.name]}{name}.bin")
        results[name] = summary(interleave(servers, measure), ["rps", "p50_ms", "p99_ms", "errors"])
    return results
# Scenario 5: static files:1 ends here

# [[file:../../notes/benchmarks.org::*Scenario 6: the toolchain][Scenario 6: the toolchain:1]]
def timed(argv, cwd, env=None, timeout=600):
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed in {cwd}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return time.perf_counter() - start, done.stdout + done.stderr

def scratch_copy(*entries):
    scratch = tempfile.mkdtemp(prefix="scratch-", dir=OUT)
    for entry in entries:
        source = os.path.join(ROOT, entry)
        if os.path.isdir(source):
            shutil.copytree(source, os.path.join(scratch, entry), symlinks=True)
        elif os.path.exists(source):
            shutil.copy2(source, os.path.join(scratch, entry))
    return scratch

def empty_trees(scratch):
    for tree in ("src", "tests", "diagrams"):
        shutil.rmtree(os.path.join(scratch, tree), ignore_errors=True)
        os.makedirs(os.path.join(scratch, tree))

def make_environment():
    # A make started from make bench must not inherit its parent's flags.
    return {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
# Scenario 6: the toolchain:1 ends here

# [[file:../../notes/benchmarks.org::*Scenario 6: the toolchain][Scenario 6: the toolchain:2]]
def toolchain():
    scratch = scratch_copy("notes", "tangle")
    notes = sorted(f"notes/{n}" for n in os.listdir(os.path.join(scratch, "notes")) if n.endswith(".org"))
    emacs = ["emacs", "-Q", "--batch", "-l", "tangle/emacs-tangle.el"] + notes
    runs = {"tangle": [], "emacs": []}
    try:
        for r in range(ROUNDS):
            for name, argv in (("tangle", ["tangle/tangle"]), ("emacs", emacs))[::1 if r % 2 == 0 else -1]:
                empty_trees(scratch)
                runs[name].append(timed(argv, scratch)[0])
                log(f"    round {r + 1} {name}: {runs[name][-1]:.3f} s")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result = {"notes": len(notes), "tangle_s": median(runs["tangle"]), "emacs_s": median(runs["emacs"]), "runs": runs}
    result["noop_make"] = attempt(noop_make) if NOOP_MAKE else {"skipped": "BENCH_NOOP_MAKE=0"}
    result["clean_build"] = attempt(clean_build) if BUILD else {"skipped": "make bench BENCH_BUILD=1"}
    return result

def attempt(step):
    # A make that fails leaves its error in results.json; the tangling figures stay.
    try:
        return step()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as error:
        return {"error": str(error)[-2000:]}
# Scenario 6: the toolchain:2 ends here

# [[file:../../notes/benchmarks.org::*Scenario 6: the toolchain][Scenario 6: the toolchain:3]]
def noop_make():
    timed(["make"], ROOT, env=make_environment(), timeout=1800)  # the first one may still have work
    runs, output = [], ""
    for _ in range(max(ROUNDS, 3)):
        seconds, output = timed(["make"], ROOT, env=make_environment())
        runs.append(seconds)
    did_work = bool(re.search(r"^\s+(TANGLE|CXX|PCH|AR|LINK)\s", output, re.M))
    return {"s": median(runs), "runs": runs, "was_noop": not did_work}

def clean_build():
    scratch = scratch_copy("notes", "tangle", "src", "tests", "diagrams", "Makefile")
    try:
        seconds, _ = timed(["nice", "-n", "10", "make", "-j2", "build/caracal"], scratch,
                           env=make_environment(), timeout=3600)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"s": seconds, "command": "make -j2 build/caracal in a copy without build/"}
# Scenario 6: the toolchain:3 ends here

# [[file:../../notes/benchmarks.org::*The table and the run][The table and the run:1]]
def table_rows(results):
    # (scenario, metric, better, caracal's value, peer, peer's value)
    rows = []
    def add(scenario, metric, better, data, key, peers=("nginx", "puma")):
        data = data or {}
        ours = data.get("caracal", {}).get(key)
        present = [p for p in peers if p in data] or ["-"]
        for peer in present:
            rows.append((scenario, metric, better, ours, peer, data.get(peer, {}).get(key)))
    r = results.get("scenarios", {})
    for label, section in (("1 hello, keep-alive", "1_hello_keep_alive"), ("2 hello, Connection: close", "2_hello_close")):
        add(label, "req/s", "higher", r.get(section), "rps")
        add(label, "p99 ms", "lower", r.get(section), "p99_ms")
    for label, section in (("3 fairness, new conns", "3_fairness_new"), ("3 fairness, keep-alive", "3_fairness_keep_alive")):
        add(label, "fast p50 ms", "lower", r.get(section), "p50_ms", ("puma",))
        add(label, "fast p99 ms", "lower", r.get(section), "p99_ms", ("puma",))
    label = f"4 {IDLE} idle keep-alive"
    add(label, "held", "higher", r.get("4_idle"), "held")
    add(label, "new p50 ms", "lower", r.get("4_idle"), "p50_ms")
    add(label, "new p99 ms", "lower", r.get("4_idle"), "p99_ms")
    add(label, "RSS B/conn", "lower", r.get("4_idle"), "rss_per_conn_bytes")
    for size, text in (("16k", "16 KiB"), ("1m", "1 MiB")):
        data = r.get("5_static", {}).get(size)
        add(f"5 static {text}", "req/s", "higher", data, "rps", ("nginx",))
        add(f"5 static {text}", "p99 ms", "lower", data, "p99_ms", ("nginx",))
    tool = r.get("6_toolchain", {})
    rows.append(("6 tangle all notes", "s", "lower", tool.get("tangle_s"), "emacs", tool.get("emacs_s")))
    rows.append(("6 no-op make", "s", "lower", tool.get("noop_make", {}).get("s"), "-", None))
    rows.append(("6 clean build", "s", "lower", tool.get("clean_build", {}).get("s"), "-", None))
    return rows
# The table and the run:1 ends here

# [[file:../../notes/benchmarks.org::*The table and the run][The table and the run:2]]
def show(value):
    if value is None:
        return "-"
    if abs(value) >= 1000 or float(value).is_integer():
        return f"{value:.0f}"
    if abs(value) >= 100:
        return f"{value:.1f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"

def print_table(results):
    header = ("scenario", "metric", "better", "caracal", "peer", "peer value", "caracal/peer")
    lines, previous = [], None
    for scenario, metric, better, ours, peer, theirs in table_rows(results):
        ratio = ours / theirs if ours is not None and theirs else None
        lines.append((scenario if scenario != previous else "", metric, better, show(ours), peer, show(theirs),
                      (f"{ratio:.2f}x" if ratio >= 0.1 else f"{ratio:.2g}x") if ratio is not None else "-"))
        previous = scenario
    widths = [max(len(row[i]) for row in lines + [header]) for i in range(len(header))]
    def fmt(row):
        return "  ".join(cell.ljust(w) if i < 3 or i == 4 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
    print(fmt(header))
    print("  ".join("-" * w for w in widths))
    for line in lines:
        print(fmt(line))
    print(f"medians of {ROUNDS} interleaved rounds; wrk -t2 -c32 -d{SECONDS}s; raw figures in build/bench/results.json")
    for note in results.get("notes", []):
        print("note:", note)
# The table and the run:2 ends here

# [[file:../../notes/benchmarks.org::*The table and the run][The table and the run:3]]
def start_servers(servers, notes):
    # A server that does not come up is left out of its scenarios, not the run.
    started = []
    for server in servers:
        try:
            started.append(server.start() if server.proc is None else server)
        except (RuntimeError, OSError) as error:
            notes.append(f"{server.name} did not start: {error}")
            server.stop()
    return started

def run_scenario(scenarios, notes, name, scenario, servers, *args):
    # One failed scenario must not cost the figures of the others; Ctrl-C,
    # which is no Exception, still ends the run.
    log(f"scenario {name}")
    try:
        scenarios[name] = scenario(servers, *args)
    except Exception as error:
        notes.append(f"{name} failed: {error!r}")
    for server in servers:
        if server.proc.poll() is not None:
            notes.append(f"{server.name} exited with status {server.proc.returncode} during {name}")
    if servers:
        notes.extend(failures(name, scenarios.get(name, {})))
    return [server for server in servers if server.proc.poll() is None]

def failures(name, summaries):
    # Requests that failed or were not 2xx, per server (a static summary nests one level more).
    for key, value in summaries.items():
        if isinstance(value, dict) and "runs" not in value:
            yield from failures(f"{name} {key}", value)
        elif isinstance(value, dict):
            bad = sum(run.get("errors", 0) + run.get("failed", 0) for run in value["runs"] if isinstance(run, dict))
            if bad:
                yield f"{name}: {key} had {bad} failed or non-2xx requests over all rounds"

def run_scenarios(results, notes):
    have_caracal = os.access(CARACAL_BIN, os.X_OK)
    if not have_caracal:
        notes.append(f"{CARACAL_BIN} does not exist: caracal's figures are missing")
    ours = lambda *args, **named: [caracal(None, *args, **named)] if have_caracal else []
    scenarios = results["scenarios"]
    static_root = write_static_files()
    shared_nginx = start_servers([nginx()], notes) if any(wanted(n) for n in (1, 2, 4, 5)) else []
    if any(wanted(n) for n in (1, 2, 4)):
        servers = start_servers(ours() + shared_nginx + [puma()], notes)
        for number, name, scenario in ((1, "1_hello_keep_alive", hello_keep_alive),
                                       (2, "2_hello_close", hello_close), (4, "4_idle", idle_connections)):
            if wanted(number):
                servers = run_scenario(scenarios, notes, name, scenario, servers)
        for server in servers:
            if server not in shared_nginx:
                server.stop()
    if wanted(3):
        servers = start_servers(ours("1:1") + [puma(threads="1:1")], notes)
        servers = run_scenario(scenarios, notes, "3_fairness_new", fairness, servers, False)
        servers = run_scenario(scenarios, notes, "3_fairness_keep_alive", fairness, servers, True)
        for server in servers:
            server.stop()
    if wanted(5):
        alive_nginx = [server for server in shared_nginx if server.proc.poll() is None]
        servers = start_servers(ours(root=static_root) + alive_nginx, notes)
        run_scenario(scenarios, notes, "5_static", static_files, servers)
    stop_all_servers()
    if wanted(6):
        run_scenario(scenarios, notes, "6_toolchain", lambda servers: toolchain(), [])
        tool = scenarios.get("6_toolchain", {})
        if tool.get("noop_make", {}).get("was_noop") is False:
            notes.append("the timed make still built something: not a no-op, see results.json")
        for step in ("noop_make", "clean_build"):
            if "error" in tool.get(step, {}):
                notes.append(f"{step} failed: see 6_toolchain in results.json")
        if not BUILD:
            notes.append("clean build skipped: make bench BENCH_BUILD=1 times make -j2 build/caracal in a scratch copy")
# The table and the run:3 ends here

# [[file:../../notes/benchmarks.org::*The table and the run][The table and the run:4]]
def raise_open_file_limit():
    # 10,000 client sockets here, and as many in the servers, which inherit it.
    need = IDLE + 4096
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < need and os.geteuid() == 0:
        hard = need
    soft = need if hard == resource.RLIM_INFINITY else min(need, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)

def wanted(number):
    return not ONLY or str(number) in ONLY

def main():
    os.makedirs(OUT, exist_ok=True)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda number, frame: sys.exit(128 + number))
    # Even if started with SIGINT ignored (a background job of a script).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    nofile = raise_open_file_limit()
    results = {"settings": {"rounds": ROUNDS, "wrk_seconds": SECONDS, "idle_connections": IDLE,
                            "rlimit_nofile": nofile, "caracal_bin": CARACAL_BIN},
               "machine": {"cpus": os.cpu_count(), "loadavg_start": os.getloadavg(),
                           "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
               "scenarios": {}, "notes": []}
    try:
        run_scenarios(results, results["notes"])
    finally:
        stop_all_servers()
        results["machine"]["loadavg_end"] = os.getloadavg()
        with open(os.path.join(OUT, "results.json"), "w") as f:
            json.dump(results, f, indent=1, sort_keys=True)
        print_table(results)

if __name__ == "__main__":
    main()
# The table and the run:4 ends here
