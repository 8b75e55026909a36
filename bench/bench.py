#!/usr/bin/env python3
"""updraft's benchmarks (issue 7): speed measured against this machine's own limits.

Runs real `updraft` processes on temporary homes (port 0, loopback only), measures, and
kills them by pid. Every figure that depends on the machine's speed is printed beside
a baseline measured in the same run, and as a ratio to it, because the machine is
shared and noisy. Medians over repetitions, with the count and the spread (min-max).
Benchmarks print figures; nothing here is a test.

The speed figures, and the idle and peak memory beside them, are the glibc release
build's (`--exe`, what `make run` starts). The idle and peak memory rows are repeated, each
with its own verdict, for the binary users get on Linux, the static musl one (`make
release`; `--mem-exe`), and the soaks run that one: its allocator is musl's, not glibc's,
so its memory is not the glibc build's. Its speed is not measured here: musl's malloc
makes it much slower (bench/PROFILES.md, "The shipped binary"). The bare tiny_http baseline is the glibc
build of examples/bare_server.rs, and the raw spawn baseline runs no binary of ours.
`--exe` alone measures everything on one binary. The table says which binary each
figure measured.

Standard library only, so `make bench` needs nothing but Python 3 and wrk.
Usage: bench/bench.py [--quick] [--out bench/RESULTS.md]   (see --help)
"""

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASH = "airflow.providers.standard.operators.bash.BashOperator"

# Product settings a user may set, chosen for speed where they matter. Printed in
# RESULTS.md. Everything else is updraft's default.
SETTINGS = {
    "UPDRAFT__CORE__LOAD_EXAMPLES": "False",
    "UPDRAFT__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
    "UPDRAFT__CORE__PARALLELISM": "32",
    "UPDRAFT__CORE__KILLED_TASK_CLEANUP_TIME": "1",
    "UPDRAFT__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "0.2",
    "UPDRAFT__API__HOST": "127.0.0.1",
    "UPDRAFT__API__PORT": "0",
}

# The PATH every process here gets, so a task's shell is found the same way everywhere.
PATH = "/usr/local/bin:/usr/bin:/bin"

# The binary the memory figures measure by default: the static musl build that
# `make release` makes and Linux users run (its allocator is not glibc's, so a glibc
# build's memory would not be theirs).
SHIPPED = "target/x86_64-unknown-linux-musl/release/updraft"
# The binary the speed figures measure by default: the glibc release build. The musl
# binary's own malloc made it much slower (bench/PROFILES.md, "The shipped binary"), so
# its speed would measure musl's allocator rather than updraft.
FASTEST = "target/release/updraft"
# The bare tiny_http baseline, a glibc build (the fastest: its figures are the bar).
BARE = "target/release/examples/bare_server"

# Time bounds, so a hung or very slow updraft cannot hold `make bench` forever.
START_TIMEOUT = 30.0
RUN_TIMEOUT = 120.0
SCALE_TIMEOUT = 60.0
PARSE_TIMEOUT = 60.0
# The soak's bound on growth over its last two thirds (KiB of VmRSS; issue 22: 1 MB over
# minutes 10-30, MB being 10^6 bytes as in every memory target): what is left when
# every cache has reached its bound.
SOAK_TAIL_KIB = 1e6 / 1024
# Issue 22's memory targets: idle and peak VmRSS in MB, growth per task in kB.
IDLE_MB = 10
PEAK_MB = 40
PER_TASK_KB = 8
# Seconds between the soak's RSS readings; each sample is the median of a minute's.
SOAK_READ_EVERY = 2.0


# ---------------------------------------------------------------- small helpers


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def parse_ts(text):
    """An RFC 3339 time as the store writes it, as seconds since the epoch."""
    if text is None:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def percentile(xs, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def spread(xs, fmt):
    if not xs:
        return "-"
    if len(xs) == 1:
        return f"n=1"
    return f"n={len(xs)}, {fmt(min(xs))}–{fmt(max(xs))}"


def mb(kib):
    """kB from /proc (KiB) as MB (10^6 bytes), the unit of the issue's targets."""
    return kib * 1024 / 1e6


def proc_kib(pid, field):
    """VmRSS, VmHWM, ... of a process in KiB; None when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def describe_binary(path):
    """What a benchmarked executable is, read from the file: `static musl, mimalloc` or
    `glibc (dynamic), system allocator`. Linkage from the ELF program headers (a dynamic
    executable names its interpreter, PT_INTERP); the allocator from the strings mimalloc
    compiles in, since release binaries are stripped."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return f"unreadable: {e}"
    if data[:4] != b"\x7fELF":
        return "not an ELF executable"
    phoff = int.from_bytes(data[0x20:0x28], "little")
    phentsize = int.from_bytes(data[0x36:0x38], "little")
    phnum = int.from_bytes(data[0x38:0x3A], "little")
    interp = None
    for i in range(phnum):
        at = phoff + i * phentsize
        if int.from_bytes(data[at:at + 4], "little") == 3:  # PT_INTERP
            off = int.from_bytes(data[at + 8:at + 16], "little")
            size = int.from_bytes(data[at + 32:at + 40], "little")
            interp = data[off:off + size].rstrip(b"\0").decode(errors="replace")
    if interp is None:
        # The only static build updraft makes is the musl one (`make release`).
        libc = "static musl"
    elif "musl" in interp:
        libc = f"musl (dynamic, {interp})"
    else:
        libc = f"glibc (dynamic, {interp})"
    alloc = "mimalloc" if b"mimalloc" in data else ("glibc's" if libc.startswith("glibc") else "musl's") + " malloc"
    return f"{libc}, {alloc}"


def children(pid):
    """Direct children of every thread of `pid`."""
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    out.extend(int(c) for c in f.read().split())
            except OSError:
                pass
    except OSError:
        pass
    return out


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def cpu_seconds(pid):
    """(own, waited-for children) CPU seconds of a process, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    utime, stime, cutime, cstime = (int(x) / tck for x in fields[11:15])
    return utime + stime, cutime + cstime


def request_time(url):
    """(count, total seconds) of every request the server has timed, from /metrics."""
    status, text = http("GET", url + "metrics")
    count = total = 0.0
    if status == 200 and isinstance(text, str):
        for line in text.splitlines():
            if line.startswith("updraft_http_request_duration_seconds_count "):
                count = float(line.split()[1])
            elif line.startswith("updraft_http_request_duration_seconds_sum "):
                total = float(line.split()[1])
    return count, total


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, token=None, timeout=10):
    """(status, parsed JSON or text) of one request; HTTP errors are results."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        raw, status = e.read(), e.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


# ---------------------------------------------------------------- DAG files


def dag_yaml(dag_id, tasks, max_active_tasks=None):
    """A dag-factory file; `tasks` is a list of (task_id, command, [upstream ids])."""
    lines = [
        f"{dag_id}:",
        "  schedule: null",
        "  catchup: false",
        "  default_args:",
        "    start_date: 2024-01-01",
    ]
    if max_active_tasks:
        lines.append(f"  max_active_tasks: {max_active_tasks}")
    lines.append("  tasks:")
    for task_id, cmd, ups in tasks:
        lines += [
            f"    - task_id: {task_id}",
            f"      operator: {BASH}",
            f"      bash_command: {json.dumps(cmd)}",
        ]
        if ups:
            lines.append(f"      dependencies: [{', '.join(ups)}]")
    return "\n".join(lines) + "\n"


def independent(dag_id, n):
    """n independent `true` tasks: a fan-out straight from the run."""
    return dag_yaml(dag_id, [(f"t{i:05d}", "true", []) for i in range(n)], 32)


def chain(dag_id, n):
    return dag_yaml(
        dag_id, [(f"c{i:04d}", "true", [f"c{i - 1:04d}"] if i else []) for i in range(n)]
    )


def factory_file(i, n_tasks=10):
    """One of the DAG-parsing files: a small realistic dag-factory DAG."""
    tasks = [(f"step_{j}", f"echo step {j} of {{{{ ds }}}}", [f"step_{j - 1}"] if j else [])
             for j in range(n_tasks)]
    return dag_yaml(f"factory_{i:04d}", tasks)


# ---------------------------------------------------------------- updraft processes


class Home:
    """A temporary UPDRAFT_HOME with a DAG folder."""

    def __init__(self, root, name):
        self.path = os.path.join(root, name)
        self.dags = os.path.join(self.path, "dags")
        os.makedirs(self.dags)
        self.db = os.path.join(self.path, "updraft.db")

    def write(self, name, text):
        with open(os.path.join(self.dags, name), "w") as f:
            f.write(text)

    def env(self, extra=None):
        env = {"PATH": PATH, "UPDRAFT_HOME": self.path}
        env.update(SETTINGS)
        env.update(extra or {})
        return env

    def cli(self, exe, args, extra=None, timeout=PARSE_TIMEOUT):
        return subprocess.run([exe, *args], env=self.env(extra), capture_output=True,
                              text=True, timeout=timeout)

    def query(self, sql, args=()):
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        try:
            return con.execute(sql, args).fetchall()
        finally:
            con.close()


class Server:
    """A running `updraft standalone` (or the bare server): URL and passwords from stdout."""

    def __init__(self, argv, env, cwd, log_path):
        self.log_path = log_path
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=open(log_path, "wb"),
                                     start_new_session=True, text=True)
        self.pid = self.proc.pid
        self.passwords = {}
        self.url = None
        deadline = time.monotonic() + START_TIMEOUT
        got = {}

        def read():
            for line in self.proc.stdout:
                m = re.match(r"Simple auth manager \| Password for user '([^']+)': (\S+)", line)
                if m:
                    self.passwords[m.group(1)] = m.group(2)
                m = re.search(r"listening on (http://\S+)", line)
                if m and "url" not in got:
                    got["url"] = m.group(1).rstrip("/") + "/"
            # Reading on to the end keeps the server from writing into a closed pipe.

        threading.Thread(target=read, daemon=True).start()
        while "url" not in got:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{argv[0]} did not start; log: {self.log_tail()}")
            time.sleep(0.005)
        self.url = got["url"]

    def log_tail(self, n=20):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def token(self, user="admin"):
        status, body = http("POST", self.url + "auth/token",
                            {"username": user, "password": self.passwords.get(user, "")})
        if status not in (200, 201) or not isinstance(body, dict):
            raise RuntimeError(f"POST /auth/token: {status} {body}")
        return body["access_token"]

    def stop(self):
        """SIGTERM to its process group (it, its tasks), SIGKILL after a bound."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGTERM)
                self.proc.wait(timeout=15)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                pass
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


def pss_kib(pid):
    """Proportional set size: shared pages split between the processes sharing them."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class MemorySampler:
    """Peak of the standalone's PSS plus any `updraft` children's, sampled.

    Supervisors are threads of the standalone, but a task may run `updraft` itself (the
    in-task CLI), and its own VmHWM would miss those. PSS rather than RSS, so the
    binary's pages shared by all of them count once in the sum."""

    PERIOD = 0.05

    def __init__(self, pid):
        self.pid = pid
        self.peak_total = 0
        self.peak_procs = 0
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop_flag.wait(self.PERIOD):
            total = pss_kib(self.pid) or 0
            kids = [c for c in children(self.pid) if comm(c) == "updraft"]
            for c in kids:
                total += pss_kib(c) or 0
            self.peak_total = max(self.peak_total, total)
            self.peak_procs = max(self.peak_procs, 1 + len(kids))

    def stop(self):
        self.stop_flag.set()
        self.thread.join()


# ---------------------------------------------------------------- the benchmarks


class Bench:
    def __init__(self, args):
        self.args = args
        exe = getattr(args, "exe", None)
        self.exe = os.path.abspath(exe or os.path.join(ROOT, FASTEST))
        # Memory is the shipped binary's; an --exe alone measures everything on that one.
        self.mem_exe = os.path.abspath(getattr(args, "mem_exe", None) or exe or os.path.join(ROOT, SHIPPED))
        self.bare = os.path.join(ROOT, BARE)
        self.tmp = tempfile.mkdtemp(prefix="updraft-bench-")
        self.results = {}
        self.notes = []
        self.homes = 0
        # CPU ms per spawn of the raw spawn baseline (the driver's own share included).
        self.spawn_cpu = []

    def home(self, name):
        self.homes += 1
        return Home(self.tmp, f"{self.homes:02d}-{name}")

    def standalone(self, home, extra=None, exe=None):
        return Server([exe or self.exe, "standalone"], home.env(extra), home.path,
                      os.path.join(home.path, "standalone.log"))

    def cleanup(self):
        if not self.args.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            log(f"kept {self.tmp}")

    # -- runs

    def trigger_cli(self, home, dag_id, exe=None):
        r = home.cli(exe or self.exe, ["dags", "trigger", dag_id], timeout=30)
        if r.returncode != 0:
            raise RuntimeError(f"dags trigger {dag_id}: {r.stderr}")
        return r.stdout.strip().splitlines()[-1]

    def trigger_api(self, srv, token, dag_id):
        """POST dagRuns; the run id, or None when this build has no such route."""
        status, body = http("POST", f"{srv.url}api/v2/dags/{dag_id}/dagRuns",
                            {"logical_date": None}, token)
        if status in (404, 405) and "not found" in json.dumps(body).lower():
            return None
        if status not in (200, 201):
            raise RuntimeError(f"POST dagRuns: {status} {body}")
        return body["dag_run_id"]

    def wait_run(self, home, dag_id, run_id, timeout, poll=0.02):
        """The run's final state, or 'timeout'."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = home.query("SELECT state FROM dag_run WHERE dag_id=? AND run_id=?",
                              (dag_id, run_id))
            if rows and rows[0][0] in ("success", "failed"):
                return rows[0][0]
            time.sleep(poll)
        return "timeout"

    def tis(self, home, dag_id, run_id):
        return home.query(
            "SELECT task_id, state, start_date, end_date FROM task_instance "
            "WHERE dag_id=? AND run_id=? ORDER BY task_id", (dag_id, run_id))

    def throughput_of(self, home, dag_id, run_id):
        """(tasks/s from first start to last end, tasks done, wall span)."""
        rows = self.tis(home, dag_id, run_id)
        done = [r for r in rows if r[1] == "success" and r[2] and r[3]]
        if not done:
            return 0.0, 0, 0.0
        first = min(parse_ts(r[2]) for r in done)
        last = max(parse_ts(r[3]) for r in done)
        span = max(last - first, 1e-9)
        return len(done) / span, len(done), span

    # -- baseline: the raw spawn rate

    def spawn_rate(self, n, threads=32, argv=None):
        """`bash -c true` (or `argv`) started and waited on by `threads` threads: spawns/s."""
        argv = argv or [shutil.which("bash", path=PATH), "-c", "true"]
        bash = argv[0]
        env = {"PATH": PATH}
        left = [n]
        lock = threading.Lock()

        def work():
            while True:
                with lock:
                    if left[0] == 0:
                        return
                    left[0] -= 1
                # posix_spawn + waitpid: the least Python between two spawns.
                pid = os.posix_spawn(bash, argv, env)
                os.waitpid(pid, 0)

        t0, c0 = time.perf_counter(), os.times()
        ts = [threading.Thread(target=work) for _ in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        rate = n / (time.perf_counter() - t0)
        c1 = os.times()
        cpu = (c1.user + c1.system + c1.children_user + c1.children_system
               - c0.user - c0.system - c0.children_user - c0.children_system)
        self.spawn_cpu.append(cpu / n * 1000)
        return rate

    def log_cost(self, n):
        """ms to create what each try's log takes on disk, a directory and a file, on the
        filesystem the homes are on, right now: n of them, one after another."""
        root = os.path.join(self.tmp, "log-cost")
        os.makedirs(root)
        t0 = time.perf_counter()
        for i in range(n):
            d = os.path.join(root, f"task_id=t{i}")
            os.mkdir(d)
            with open(os.path.join(d, "attempt=1.log"), "w") as f:
                f.write("x\n")
        return (time.perf_counter() - t0) / n * 1000

    # -- assets: producer end -> consumer's first task start; a chain of DAGs by assets

    def assets(self, n=20, links=10):
        home = self.home("assets")

        def asset_dag(dag_id, schedule, outlet):
            lines = [f"{dag_id}:", f"  schedule: {schedule}", "  catchup: false",
                     "  default_args:", "    start_date: 2024-01-01", "  tasks:",
                     "    - task_id: t", f"      operator: {BASH}", "      bash_command: \"true\""]
            if outlet:
                lines.append(f"      outlets: ['{outlet}']")
            return "\n".join(lines) + "\n"

        home.write("producer.yml", asset_dag("producer", "null", "bench://data"))
        home.write("consumer.yml", asset_dag("consumer", "['bench://data']", None))
        for i in range(links):
            schedule = "null" if i == 0 else f"['bench://link{i - 1}']"
            home.write(f"link{i}.yml", asset_dag(f"link{i}", schedule, f"bench://link{i}"))
        srv = self.standalone(home)

        def consumer_runs(dag_id):
            return home.query("SELECT run_id FROM dag_run WHERE dag_id=? ORDER BY id", (dag_id,))

        def wait_new_run(dag_id, before):
            deadline = time.monotonic() + RUN_TIMEOUT
            while time.monotonic() < deadline:
                runs = consumer_runs(dag_id)
                if len(runs) > before:
                    run_id = runs[-1][0]
                    if self.wait_run(home, dag_id, run_id, RUN_TIMEOUT, poll=0.01) != "success":
                        raise RuntimeError(f"run {run_id} of {dag_id} did not succeed")
                    return run_id
                time.sleep(0.005)
            raise RuntimeError(f"no asset-triggered run of {dag_id}")

        try:
            time.sleep(1.0)  # settle: the first scheduler pass, the probe
            deadline = time.monotonic() + RUN_TIMEOUT
            while home.query("SELECT COUNT(*) FROM dag WHERE is_stale = 0")[0][0] < links + 2:
                if time.monotonic() > deadline:
                    raise RuntimeError("the asset DAGs were not parsed")
                time.sleep(0.05)
            lat = []
            for _ in range(n):
                before = len(consumer_runs("consumer"))
                run_id = self.trigger_cli(home, "producer")
                if self.wait_run(home, "producer", run_id, RUN_TIMEOUT, poll=0.01) != "success":
                    raise RuntimeError(f"run {run_id} of producer did not succeed")
                end = parse_ts(self.tis(home, "producer", run_id)[0][3])
                consumed = wait_new_run("consumer", before)
                start = parse_ts(self.tis(home, "consumer", consumed)[0][2])
                lat.append((start - end) * 1000)
            befores = [len(consumer_runs(f"link{i}")) for i in range(links)]
            first = self.trigger_cli(home, "link0")
            self.wait_run(home, "link0", first, RUN_TIMEOUT, poll=0.01)
            t_first = parse_ts(self.tis(home, "link0", first)[0][2])
            last = first
            for i in range(1, links):
                last = wait_new_run(f"link{i}", befores[i])
            t_last = parse_ts(self.tis(home, f"link{links - 1}", last)[0][3])
            self.results["assets"] = {"ms": lat, "chain_ms": (t_last - t_first) * 1000, "links": links}
            log(f"asset latency: median {median(lat):.1f} ms; chain of {links}: {(t_last - t_first) * 1000:.0f} ms")
        finally:
            srv.stop()

    # -- engine: trigger latency, scheduling gap, throughput, memory

    def engine(self):
        a = self.args
        home = self.home("engine")
        home.write("tp.yml", independent("tp", a.tasks))
        home.write("chain.yml", chain("chain", a.chain))
        home.write("one.yml", dag_yaml("one", [("only", "true", [])]))
        srv = self.standalone(home)
        try:
            time.sleep(1.0)  # settle: the first scheduler pass, the probe
            token = srv.token()

            # Trigger latency: trigger -> the first task's start_date.
            lat, db_lat, steps, how = [], [], [], "POST /api/v2/dags/{id}/dagRuns"
            for i in range(a.triggers):
                t0 = time.time()
                run_id = self.trigger_api(srv, token, "one")
                if run_id is None:
                    how = "`updraft dags trigger` (CLI; no dagRuns route in this build)"
                    t0 = time.time()
                    run_id = self.trigger_cli(home, "one")
                state = self.wait_run(home, "one", run_id, RUN_TIMEOUT, poll=0.01)
                if state != "success":
                    raise RuntimeError(f"run {run_id} of one: {state}")
                start = parse_ts(self.tis(home, "one", run_id)[0][2])
                queued = home.query("SELECT queued_at FROM dag_run WHERE dag_id='one' AND run_id=?",
                                    (run_id,))[0][0]
                ti_queued = parse_ts(home.query(
                    "SELECT queued_dttm FROM task_instance WHERE dag_id='one' AND run_id=?",
                    (run_id,))[0][0])
                lat.append((start - t0) * 1000)
                if queued:
                    db_lat.append((start - parse_ts(queued)) * 1000)
                    steps.append(((parse_ts(queued) - t0) * 1000, (ti_queued - parse_ts(queued)) * 1000,
                                  (start - ti_queued) * 1000))
            self.results["trigger"] = {"ms": lat, "db_ms": db_lat, "how": how, "steps": steps}
            log(f"trigger latency: median {median(lat):.1f} ms ({how})")

            # Scheduling gap: chain of `chain` tasks, downstream start - upstream end.
            gaps, chain_spans, react, claim, claimed = [], [], [], [], []
            for rep in range(a.reps):
                run_id = self.trigger_cli(home, "chain")
                state = self.wait_run(home, "chain", run_id, RUN_TIMEOUT)
                if state != "success":
                    raise RuntimeError(f"chain run: {state}")
                rows = self.tis(home, "chain", run_id)
                queued = {t: (q, beat) for t, q, beat in home.query(
                    "SELECT task_id, queued_dttm, last_heartbeat_at FROM task_instance "
                    "WHERE dag_id='chain' AND run_id=?", (run_id,))}
                for up, down in zip(rows, rows[1:]):
                    gaps.append((parse_ts(down[2]) - parse_ts(up[3])) * 1000)
                    q = parse_ts(queued[down[0]][0])
                    react.append((q - parse_ts(up[3])) * 1000)
                    claim.append((parse_ts(down[2]) - q) * 1000)
                    # The claim's commit, as the server stamps it: a `true` task ends
                    # before its first heartbeat, so its last heartbeat is its claim's.
                    claimed.append((parse_ts(queued[down[0]][1]) - parse_ts(up[3])) * 1000)
                chain_spans.append(parse_ts(rows[-1][3]) - parse_ts(rows[0][2]))
            self.results["gap"] = {"ms": gaps, "runs": a.reps, "spans": chain_spans,
                                   "react": react, "claim": claim, "claimed": claimed}
            log(f"scheduling gap: median {median(gaps):.2f} ms, p99 {percentile(gaps, 99):.2f} ms")

            # Throughput, interleaved with the raw spawn-rate baseline.
            self.results["log_cost"] = self.log_cost(a.tasks)
            rates, base, spans, own_cpu, kids_cpu, req_ms = [], [], [], [], [], []
            sampler = MemorySampler(srv.pid)
            for rep in range(a.reps):
                base.append(self.spawn_rate(a.tasks))
                cpu0, req0 = cpu_seconds(srv.pid), request_time(srv.url)
                run_id = self.trigger_cli(home, "tp")
                state = self.wait_run(home, "tp", run_id, RUN_TIMEOUT, poll=0.1)
                cpu1, req1 = cpu_seconds(srv.pid), request_time(srv.url)
                own_cpu.append((cpu1[0] - cpu0[0]) / a.tasks * 1000)
                kids_cpu.append((cpu1[1] - cpu0[1]) / a.tasks * 1000)
                if req1[0] > req0[0]:
                    req_ms.append((req1[1] - req0[1]) / (req1[0] - req0[0]) * 1000)
                rate, done, span = self.throughput_of(home, "tp", run_id)
                if state != "success":
                    self.notes.append(f"throughput run {rep + 1}: {state} with {done} of {a.tasks} tasks done")
                rates.append(rate)
                spans.append(span)
                log(f"throughput {rep + 1}/{a.reps}: {rate:.0f} tasks/s vs spawn {base[-1]:.0f}/s")
            base.append(self.spawn_rate(a.tasks))
            sampler.stop()
            self.results["throughput"] = {"rate": rates, "base": base, "spans": spans,
                                          "own_cpu": own_cpu, "kids_cpu": kids_cpu,
                                          "req_ms": req_ms, "spawn_cpu": list(self.spawn_cpu)}
            self.results["mem_run"] = {
                "hwm": proc_kib(srv.pid, "VmHWM"),
                "peak_total": sampler.peak_total,
                "peak_procs": sampler.peak_procs,
                "tasks": a.tasks,
            }
        finally:
            srv.stop()

    # -- Python tasks

    def python(self):
        """Python tasks with the python3 on PATH: a 200-task fan-out of PythonOperator tasks
        returning a small value (tasks/s against the raw spawn rate of `python3 -c pass`,
        measured between its runs), and the gaps of a 20-task chain of them."""
        a = self.args
        py = shutil.which("python3", path=PATH)
        if not py:
            raise RuntimeError("python3 is not on PATH")
        n, links = a.py_tasks, a.py_chain
        op = "airflow.providers.standard.operators.python.PythonOperator"

        def py_dag(dag_id, ids, chained):
            lines = [f"{dag_id}:", "  schedule: null", "  max_active_tasks: 32",
                     "  default_args:", "    start_date: 2024-01-01", "  tasks:"]
            for i, t in enumerate(ids):
                lines += [f"    - task_id: {t}", f"      operator: {op}", "      python_callable: lib.small"]
                if chained and i:
                    lines.append(f"      dependencies: [{ids[i - 1]}]")
            return "\n".join(lines) + "\n"

        home = self.home("python")
        home.write("pyfan.yml", py_dag("pyfan", [f"p{i:04d}" for i in range(n)], False))
        home.write("pychain.yml", py_dag("pychain", [f"c{i:03d}" for i in range(links)], True))
        # The overhead per try (issue 22): a chain of tasks whose callable returns None.
        home.write("lib.py", "def small():\n    return {'n': 1}\n\n\ndef nothing():\n    return None\n")
        home.write("pynone.yml", py_dag("pynone", [f"n{i:03d}" for i in range(links)], True)
                   .replace("lib.small", "lib.nothing"))
        srv = self.standalone(home, {"UPDRAFT__CORE__PYTHON_INTERPRETER": py})
        try:
            time.sleep(1.0)
            # The interpreter's own start, one after another: what each task pays anyway.
            starts = []
            for _ in range(20):
                t0 = time.perf_counter()
                subprocess.run([py, "-c", "pass"], check=True)
                starts.append((time.perf_counter() - t0) * 1000)
            rates, base = [], []
            for rep in range(a.reps):
                base.append(self.spawn_rate(n, argv=[py, "-c", "pass"]))
                run_id = self.trigger_cli(home, "pyfan")
                state = self.wait_run(home, "pyfan", run_id, RUN_TIMEOUT, poll=0.1)
                rate, done, _ = self.throughput_of(home, "pyfan", run_id)
                if state != "success":
                    self.notes.append(f"python fan-out run {rep + 1}: {state} with {done} of {n} tasks done")
                rates.append(rate)
            gaps, durations = [], []
            for rep in range(a.reps):
                run_id = self.trigger_cli(home, "pychain")
                state = self.wait_run(home, "pychain", run_id, RUN_TIMEOUT)
                if state != "success":
                    raise RuntimeError(f"python chain run: {state}")
                rows = self.tis(home, "pychain", run_id)
                for up, down in zip(rows, rows[1:]):
                    gaps.append((parse_ts(down[2]) - parse_ts(up[3])) * 1000)
                durations += [(parse_ts(r[3]) - parse_ts(r[2])) * 1000 for r in rows]
            # Overhead per try: one link of a chain of callables returning None (the try's
            # start to the next try's start: claim, spawn, the runner, report, the gap)
            # against `python3 -c pass` started and waited on the same way as the raw spawn
            # rate's, one at a time, between the chain's runs.
            cycles, bare = [], []
            for rep in range(a.reps):
                for _ in range(10):
                    t0 = time.perf_counter()
                    os.waitpid(os.posix_spawn(py, [py, "-c", "pass"], {"PATH": PATH}), 0)
                    bare.append((time.perf_counter() - t0) * 1000)
                run_id = self.trigger_cli(home, "pynone")
                state = self.wait_run(home, "pynone", run_id, RUN_TIMEOUT)
                if state != "success":
                    raise RuntimeError(f"python chain (None) run: {state}")
                rows = self.tis(home, "pynone", run_id)
                cycles += [(parse_ts(b[2]) - parse_ts(u[2])) * 1000 for u, b in zip(rows, rows[1:])]
            self.results["python"] = {"rate": rates, "base": base, "gaps": gaps, "durations": durations,
                                      "start_ms": starts, "tasks": n, "chain": links,
                                      "cycles": cycles, "bare_ms": bare}
            log(f"python: {median(rates):.0f} tasks/s vs python3 -c pass {median(base):.0f}/s; "
                f"chain gap median {median(gaps):.2f} ms; task {median(durations):.0f} ms, "
                f"interpreter start {median(starts):.0f} ms")
            log(f"python: a try returning None {median(cycles):.1f} ms, python3 -c pass "
                f"{median(bare):.1f} ms: overhead {median(cycles) - median(bare):.1f} ms")
        finally:
            srv.stop()

    def sensors(self):
        """200 FileSensors in reschedule mode waiting for one file: the standalone's CPU
        and RSS while they wait (no thread or process is held between pokes), then the
        time from the file's creation to the last sensor's success."""
        a = self.args
        n, interval, wait_s = a.sensors, a.sensor_interval, a.sensor_wait
        home = self.home("sensors")
        target = os.path.join(home.path, "files", "ready.flag")
        lines = ["sensing:", "  schedule: null", f"  max_active_tasks: {n + 8}",
                 "  default_args:", "    start_date: 2024-01-01", "  tasks:"]
        for i in range(n):
            lines += [f"    - task_id: s{i:04d}",
                      "      operator: airflow.providers.standard.sensors.filesystem.FileSensor",
                      f"      filepath: '{target}'", "      mode: reschedule",
                      f"      poke_interval: {interval}"]
        home.write("sensing.yml", "\n".join(lines) + "\n")
        srv = self.standalone(home)
        try:
            time.sleep(1.0)
            run_id = self.trigger_cli(home, "sensing")
            # Let every sensor poke once before measuring the wait.
            deadline = time.monotonic() + RUN_TIMEOUT
            while time.monotonic() < deadline:
                rows = home.query("SELECT count(DISTINCT ti_id) FROM task_reschedule")
                if rows and rows[0][0] >= n:
                    break
                time.sleep(0.2)
            cpu0, t0 = cpu_seconds(srv.pid), time.monotonic()
            rss = []
            threads = []
            while time.monotonic() - t0 < wait_s:
                rss.append(proc_kib(srv.pid, "VmRSS") or 0)
                try:
                    threads.append(len(os.listdir(f"/proc/{srv.pid}/task")))
                except OSError:
                    pass
                time.sleep(0.5)
            cpu1, t1 = cpu_seconds(srv.pid), time.monotonic()
            pokes = home.query("SELECT count(*) FROM task_reschedule")[0][0]
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "w") as f:
                f.write("ready")
            created = time.time()
            state = self.wait_run(home, "sensing", run_id, RUN_TIMEOUT, poll=0.05)
            ends = [parse_ts(r[3]) for r in self.tis(home, "sensing", run_id) if r[1] == "success" and r[3]]
            if state != "success" or len(ends) < n:
                self.notes.append(f"sensors run: {state} with {len(ends)} of {n} sensors done")
            last = max(ends) if ends else created
            self.results["sensors"] = {
                "n": n, "interval": interval, "wait_s": t1 - t0,
                "cpu_pct": (cpu1[0] - cpu0[0] + cpu1[1] - cpu0[1]) / (t1 - t0) * 100,
                "rss_mb": mb(max(rss)) if rss else 0, "threads": max(threads) if threads else 0,
                "pokes": pokes, "to_success_ms": (last - created) * 1000, "done": len(ends),
            }
            log(f"sensors: {n} waiting {t1 - t0:.0f} s: CPU {self.results['sensors']['cpu_pct']:.1f} %, "
                f"RSS {self.results['sensors']['rss_mb']:.1f} MB, {self.results['sensors']['threads']} threads; "
                f"file to all success {(last - created) * 1000:.0f} ms")
        finally:
            srv.stop()

    def scale(self):
        a = self.args
        home = self.home("scale")
        home.write("big.yml", independent("big", a.scale_tasks))
        srv = self.standalone(home)
        try:
            time.sleep(1.0)
            sampler = MemorySampler(srv.pid)
            cpu0, req0 = cpu_seconds(srv.pid), request_time(srv.url)
            run_id = self.trigger_cli(home, "big")
            state = self.wait_run(home, "big", run_id, SCALE_TIMEOUT, poll=0.2)
            cpu1, req1 = cpu_seconds(srv.pid), request_time(srv.url)
            sampler.stop()
            rate, done, span = self.throughput_of(home, "big", run_id)
            if state != "success":
                self.notes.append(f"scale run: {state} after {SCALE_TIMEOUT:.0f} s with {done} of {a.scale_tasks} tasks done")
            self.results["scale"] = {
                "rate": rate, "done": done, "span": span, "state": state, "tasks": a.scale_tasks,
                "own_cpu": (cpu1[0] - cpu0[0]) / max(done, 1) * 1000,
                "kids_cpu": (cpu1[1] - cpu0[1]) / max(done, 1) * 1000,
                "req_ms": (req1[1] - req0[1]) / max(req1[0] - req0[0], 1) * 1000,
            }
            self.results["mem_scale"] = {
                "hwm": proc_kib(srv.pid, "VmHWM"),
                "peak_total": sampler.peak_total,
                "tasks": a.scale_tasks,
            }
            log(f"scale: {rate:.0f} tasks/s over {done} tasks ({state})")
        finally:
            srv.stop()

    # -- memory on the shipped binary

    def memory(self):
        """The memory rows on `--mem-exe` (the shipped static musl binary) when the speed
        steps ran another binary, read as those steps read them: idle VmRSS of a fresh
        standalone 2 s after its start (the api step), VmHWM over `--reps` runs of the
        `--tasks` fan-out (the engine's throughput runs) and, on another fresh standalone,
        over one `--scale-tasks` run (the scale step). Shown beside the speed binary's rows,
        each with its own verdict."""
        a = self.args
        exe = self.mem_exe
        # Idle as the api step reads it: a standalone on an empty home.
        srv = self.standalone(self.home("memory-idle"), exe=exe)
        try:
            time.sleep(2.0)  # idle: the scheduler's first passes, the probe
            shipped = self.results["shipped"] = {"idle": proc_kib(srv.pid, "VmRSS")}
        finally:
            srv.stop()
        home = self.home("memory")
        home.write("tp.yml", independent("tp", a.tasks))
        srv = self.standalone(home, exe=exe)
        try:
            sampler = MemorySampler(srv.pid)
            for rep in range(a.reps):
                run_id = self.trigger_cli(home, "tp", exe)
                state = self.wait_run(home, "tp", run_id, RUN_TIMEOUT, poll=0.1)
                if state != "success":
                    self.notes.append(f"memory: {a.tasks}-task run {rep + 1}: {state}")
            sampler.stop()
            shipped["run"] = {"hwm": proc_kib(srv.pid, "VmHWM"), "peak_total": sampler.peak_total,
                              "peak_procs": sampler.peak_procs, "tasks": a.tasks}
        finally:
            srv.stop()
        home = self.home("memory-scale")
        home.write("big.yml", independent("big", a.scale_tasks))
        srv = self.standalone(home, exe=exe)
        try:
            time.sleep(1.0)
            sampler = MemorySampler(srv.pid)
            run_id = self.trigger_cli(home, "big", exe)
            state = self.wait_run(home, "big", run_id, SCALE_TIMEOUT, poll=0.2)
            sampler.stop()
            if state != "success":
                self.notes.append(f"memory: {a.scale_tasks}-task run: {state}")
            shipped["scale"] = {"hwm": proc_kib(srv.pid, "VmHWM"), "peak_total": sampler.peak_total,
                                "tasks": a.scale_tasks}
        finally:
            srv.stop()
        log(f"memory ({os.path.basename(exe)}): idle {mb(shipped['idle']):.1f} MB, "
            f"peak {mb(shipped['run']['hwm']):.1f} MB at {a.tasks} tasks, "
            f"{mb(shipped['scale']['hwm']):.1f} MB at {a.scale_tasks}")

    # -- dynamic task mapping

    def mapping(self):
        """Dynamic task mapping (issue 16). One task mapped over `--map-tasks` `true`
        commands against the same number of independent `true` tasks, the two runs
        interleaved in one standalone: time per instance (first start to last end over
        the count) against time per task of the fan-out. And the time from an upstream's
        end to the first mapped instance's start, with the values known from the file
        (the instances exist with the run) and with them read from the upstream's
        result (a Python task returns the commands; the instances are made when it
        ends), `--map-tasks` values each."""
        a = self.args
        n = a.map_tasks
        py = shutil.which("python3", path=PATH)
        if not py:
            raise RuntimeError("python3 is not on PATH")
        def mapped(dag_id, upstream=None, source=None):
            lines = [f"{dag_id}:", "  schedule: null", "  catchup: false", "  max_active_tasks: 32",
                     "  default_args:", "    start_date: 2024-01-01", "  tasks:"]
            if upstream == "bash":
                lines += ["    - task_id: up", f"      operator: {BASH}", "      bash_command: 'true'"]
            elif upstream == "python":
                lines += ["    - task_id: up",
                          "      operator: airflow.providers.standard.operators.python.PythonOperator",
                          "      python_callable: lib.commands"]
            lines += ["    - task_id: m", f"      operator: {BASH}"]
            if upstream == "bash":
                lines.append("      dependencies: [up]")
            lines += ["      expand:", f"        bash_command: {source or json.dumps(['true'] * n)}"]
            return "\n".join(lines) + "\n"

        home = self.home("mapping")
        home.write("lib.py", f"def commands():\n    return ['true'] * {n}\n")
        home.write("fan.yml", independent("fan", n))
        home.write("mapfan.yml", mapped("mapfan"))
        home.write("mapup.yml", mapped("mapup", upstream="bash"))
        home.write("mapxcom.yml", mapped("mapxcom", upstream="python", source="up.output"))
        srv = self.standalone(home, {"UPDRAFT__CORE__PYTHON_INTERPRETER": py})

        def per_task(dag_id, run_id, task_id=None):
            rows = home.query(
                "SELECT start_date, end_date FROM task_instance WHERE dag_id=? AND run_id=? "
                "AND state='success'" + (" AND task_id=?" if task_id else ""),
                (dag_id, run_id, task_id) if task_id else (dag_id, run_id))
            if not rows:
                return float("nan"), 0
            span = max(parse_ts(r[1]) for r in rows) - min(parse_ts(r[0]) for r in rows)
            return span / len(rows) * 1000, len(rows)

        def first_start(dag_id, run_id):
            """(up end → first instance start, up end → first instance queued) in ms."""
            up_end = parse_ts(home.query(
                "SELECT end_date FROM task_instance WHERE dag_id=? AND run_id=? AND task_id='up'",
                (dag_id, run_id))[0][0])
            start, queued = home.query(
                "SELECT min(start_date), min(queued_dttm) FROM task_instance "
                "WHERE dag_id=? AND run_id=? AND task_id='m'", (dag_id, run_id))[0]
            return (parse_ts(start) - up_end) * 1000, (parse_ts(queued) - up_end) * 1000

        try:
            time.sleep(1.0)
            fan, mapd = [], []
            for rep in range(a.reps):
                for dag_id, out, task in (("fan", fan, None), ("mapfan", mapd, "m")):
                    run_id = self.trigger_cli(home, dag_id)
                    state = self.wait_run(home, dag_id, run_id, RUN_TIMEOUT, poll=0.1)
                    ms, done = per_task(dag_id, run_id, task)
                    if state != "success" or done != n:
                        self.notes.append(f"mapping: {dag_id} run {rep + 1}: {state} with {done} of {n} done")
                    out.append(ms)
                log(f"mapping {rep + 1}/{a.reps}: {mapd[-1]:.2f} ms/instance vs fan-out {fan[-1]:.2f} ms/task")
            gaps = {}
            for dag_id in ("mapup", "mapxcom"):
                gaps[dag_id] = []
                for rep in range(a.reps):
                    run_id = self.trigger_cli(home, dag_id)
                    state = self.wait_run(home, dag_id, run_id, RUN_TIMEOUT, poll=0.1)
                    if state != "success":
                        raise RuntimeError(f"{dag_id} run: {state}")
                    gaps[dag_id].append(first_start(dag_id, run_id))
                log(f"mapping: {dag_id} upstream end → first instance start "
                    f"{median([g[0] for g in gaps[dag_id]]):.1f} ms")
            self.results["mapping"] = {"n": n, "fan": fan, "mapped": mapd, "literal": gaps["mapup"],
                                       "xcom": gaps["mapxcom"]}
        finally:
            srv.stop()

    # -- API

    def wrk(self, url, token=None):
        """One measured wrk run, after a 1 s warm-up at the same concurrency.

        The warm-up is there because tiny_http 0.12's connection thread pool can leave
        part of a burst of new keep-alive connections unserved until another connection
        closes (see bench/PROFILES.md): without it, a run measures anywhere between 4
        and 50 live connections, at random, for both servers alike. Its threads then
        stay idle for 5 s, long enough for the measured run to find them."""
        a = self.args
        cmd = ["wrk", "-t2", "-c50", "--latency"]
        if token:
            cmd += ["-H", f"Authorization: Bearer {token}"]
        subprocess.run(cmd + ["-d1s", url], capture_output=True, timeout=30)
        r = subprocess.run(cmd + [f"-d{a.wrk_seconds}s", url], capture_output=True, text=True,
                           timeout=a.wrk_seconds + 30)
        return parse_wrk(r.stdout)

    def api(self):
        a = self.args
        bare = Server([self.bare, "0"], {"PATH": PATH}, self.tmp,
                      os.path.join(self.tmp, "bare.log"))
        plain_home, refresh_home = self.home("api"), self.home("refresh")
        srv = self.standalone(plain_home)
        # Refresh under load: the same run on a standalone whose pool recycles every
        # second. Both run side by side and their loads alternate, so drift in the
        # machine's load hits both alike.
        rsrv = self.standalone(refresh_home, {"UPDRAFT__API__WORKER_REFRESH_INTERVAL": "1"})
        try:
            time.sleep(2.0)  # idle: the scheduler's first passes, the probe
            self.results["mem_idle"] = proc_kib(srv.pid, "VmRSS")
            path = "api/v2/monitor/health"
            plain, base, refresh = [], [], []
            for rep in range(a.reps):
                base.append(self.wrk(bare.url + path))
                plain.append(self.wrk(srv.url + path))
                refresh.append(self.wrk(rsrv.url + path))
                log(f"health {rep + 1}/{a.reps}: " + "; ".join(
                    f"{name} {x['rps']:.0f} req/s p50 {x['p50']:.2f} p99 {x['p99']:.2f} ms errors {x['errors']}"
                    for name, x in (("bare", base[-1]), ("updraft", plain[-1]), ("refresh", refresh[-1]))))
            self.results["health"] = {"updraft": plain, "bare": base}
            _, body = http("GET", rsrv.url + path)
            refreshes = body.get("api_server", {}).get("refreshes_completed") if isinstance(body, dict) else None
            self.results["refresh"] = {"runs": refresh, "refreshes": refreshes}
        finally:
            srv.stop()
            rsrv.stop()

        # List: /api/v2/dags?limit=100 with 1,000 DAGs loaded, authenticated.
        home = self.home("list")
        for i in range(a.dag_files):
            home.write(f"factory_{i:04d}.yml", factory_file(i))
        srv = self.standalone(home)
        try:
            time.sleep(1.0)
            token = srv.token()
            url = srv.url + "api/v2/dags?limit=100"
            status, body = http("GET", url, token=token)
            if status != 200:
                self.results["list"] = {"missing": f"GET /api/v2/dags answered {status}: {body}"}
                log(f"list: not measured ({status})")
            else:
                # The baseline is the bare server's health runs above, in this same run.
                runs, base = [], self.results["health"]["bare"]
                for rep in range(a.reps):
                    runs.append(self.wrk(url, token))
                    log(f"list {rep + 1}/{a.reps}: {runs[-1]['rps']:.0f} req/s")
                total = body.get("total_entries") if isinstance(body, dict) else None
                self.results["list"] = {"updraft": runs, "bare": base, "total": total}
        finally:
            srv.stop()
            bare.stop()

    # -- cold start

    def cold_start(self):
        a = self.args
        home = self.home("cold")
        # The first start creates the database and passwords; the measured ones reuse them.
        self.standalone(home).stop()
        times = []
        for rep in range(a.cold_starts):
            port = free_port()
            url = f"http://127.0.0.1:{port}/api/v2/monitor/health"
            env = home.env({"UPDRAFT__API__PORT": str(port)})
            t0 = time.perf_counter()
            proc = subprocess.Popen([self.exe, "standalone"], env=env, cwd=home.path,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
            took = None
            while time.perf_counter() - t0 < START_TIMEOUT and proc.poll() is None:
                try:
                    with urllib.request.urlopen(url, timeout=1) as r:
                        if r.status == 200:
                            took = time.perf_counter() - t0
                            break
                except (OSError, urllib.error.URLError):
                    time.sleep(0.001)
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            if took is None:
                raise RuntimeError("standalone never answered health")
            times.append(took * 1000)
        # Context: how long this machine takes to exec the binary and exit.
        exec_ms = []
        for _ in range(a.cold_starts):
            t0 = time.perf_counter()
            subprocess.run([self.exe, "version"], stdout=subprocess.DEVNULL)
            exec_ms.append((time.perf_counter() - t0) * 1000)
        self.results["cold"] = {"ms": times, "exec_ms": exec_ms}
        log(f"cold start: median {median(times):.1f} ms (exec {median(exec_ms):.1f} ms)")

    # -- DAG parsing

    def parsing(self):
        a = self.args
        home = self.home("parse")
        for i in range(a.dag_files):
            home.write(f"factory_{i:04d}.yml", factory_file(i))
        cmd = ["dags", "list-import-errors"]

        def timed():
            t0 = time.perf_counter()
            r = home.cli(self.exe, cmd)
            took = (time.perf_counter() - t0) * 1000
            if r.returncode != 0:
                raise RuntimeError(f"list-import-errors: {r.returncode} {r.stderr[-500:]}")
            return took

        first = []
        for rep in range(a.reps):
            for f in os.listdir(home.path):
                if f.startswith("updraft.db"):
                    os.remove(os.path.join(home.path, f))
            home.cli(self.exe, ["db", "migrate"])
            first.append(timed())
        n_dags = home.query("SELECT count(*) FROM dag")[0][0]
        unchanged, rescan = [], []
        target = os.path.join(home.dags, "factory_0000.yml")
        for rep in range(a.rescans):
            unchanged.append(timed())
            with open(target, "a") as f:
                f.write(f"# edit {rep}\n")
            rescan.append(timed())
        self.results["parse"] = {"first": first, "rescan": rescan, "unchanged": unchanged,
                                 "dags": n_dags}
        log(f"parse: first {median(first):.0f} ms, re-scan {median(rescan):.1f} ms, "
            f"unchanged {median(unchanged):.1f} ms ({n_dags} DAGs)")

    # -- soak

    def soak(self):
        """RSS of a standalone over a long steady load (issue 12): a DAG of three chained
        `echo` tasks scheduled every `--soak-period` seconds (a timedelta schedule), and
        one client looping over the API pages a user and the UI read (DAG list, runs,
        task instances, a log, structure, health), each request on a new connection.
        VmRSS is read from /proc every 2 s, and every `--soak-sample` seconds the median
        of those readings is a sample; the figure is RSS at minutes 1, 10, 20 and 30 and
        its growth from minute 1, with the runs created since, so growth per run shows
        whether anything keeps a share of every run.
        The load loop and the sampling stop by themselves after `--soak-minutes`."""
        a = self.args
        period = a.soak_period
        home = self.home("soak")
        tasks = [(f"s{i}", f"echo soak {i} {{{{ run_id }}}}", [f"s{i - 1}"] if i else []) for i in range(3)]
        text = dag_yaml("soak", tasks).replace(
            "  schedule: null\n",
            f"  schedule:\n    __type__: datetime.timedelta\n    seconds: {period:g}\n")
        home.write("soak.yml", text)
        srv = self.standalone(home, exe=self.mem_exe)
        stop = threading.Event()
        counts = {"requests": 0, "errors": 0}
        try:
            token = srv.token()
            u = srv.url

            def load():
                pages = [
                    "api/v2/monitor/health",
                    "api/v2/dags?limit=100",
                    "api/v2/dags/soak/dagRuns?limit=25&order_by=-run_after",
                    "api/v2/dags/~/dagRuns/~/taskInstances?limit=50&order_by=-start_date",
                    "ui/structure/soak",
                    "ui/dags/recent_runs?dag_ids=soak",
                    "api/v2/dags/soak/details",
                ]
                i = 0
                while not stop.is_set():
                    path = pages[i % len(pages)]
                    i += 1
                    try:
                        status, body = http("GET", u + path, token=token)
                        if path.startswith("api/v2/dags/soak/dagRuns") and status == 200:
                            runs = body.get("dag_runs", []) if isinstance(body, dict) else []
                            done = [r["dag_run_id"] for r in runs if r.get("state") == "success"]
                            if done:
                                rid = urllib.request.quote(done[0], safe="")
                                status, _ = http("GET", f"{u}api/v2/dags/soak/dagRuns/{rid}"
                                                 "/taskInstances/s2/logs/1", token=token)
                        counts["requests"] += 1
                        if status >= 400:
                            counts["errors"] += 1
                    except OSError:
                        counts["errors"] += 1
                    stop.wait(a.soak_pause)

            loader = threading.Thread(target=load, daemon=True)
            loader.start()
            t0 = time.monotonic()
            end = t0 + a.soak_minutes * 60
            samples = []  # (minute, VmRSS, runs created, RssAnon, RssFile), KiB
            # RSS moves by a megabyte within seconds (a request's buffers, the trim
            # thread giving freed memory back every 10 s), so each sample is the median
            # of readings every SOAK_READ_EVERY seconds since the previous one.
            mark = t0
            while mark < end:
                mark = min(mark + a.soak_sample, end)
                window = []
                while True:
                    rss = proc_kib(srv.pid, "VmRSS")
                    if rss is None:
                        raise RuntimeError(f"the standalone exited; log: {srv.log_tail()}")
                    # Anonymous memory is the heap (SQLite's page caches included) and the
                    # stacks; file-backed is mostly the binary's own pages, faulted in as
                    # code first runs, at most its size.
                    window.append((rss, proc_kib(srv.pid, "RssAnon"), proc_kib(srv.pid, "RssFile")))
                    left = mark - time.monotonic()
                    if left <= 0:
                        break
                    stop.wait(min(SOAK_READ_EVERY, left))
                rss, anon, file = (median([w[i] for w in window]) for i in range(3))
                runs = home.query("SELECT count(*) FROM dag_run WHERE dag_id='soak'")[0][0]
                minute = (time.monotonic() - t0) / 60
                samples.append((minute, rss, runs, anon, file))
                log(f"soak: minute {minute:.1f}: VmRSS {mb(rss):.2f} MB (anon {mb(anon):.2f}, "
                    f"file {mb(file):.2f}; medians of {len(window)} readings), {runs} runs, "
                    f"{counts['requests']} requests ({counts['errors']} errors)")
            stop.set()
            loader.join(timeout=15)
            states = dict(home.query("SELECT state, count(*) FROM dag_run WHERE dag_id='soak' GROUP BY state"))
            self.results["soak"] = {"samples": samples, "minutes": a.soak_minutes, "period": period,
                                    "requests": counts["requests"], "errors": counts["errors"],
                                    "states": states}
        finally:
            stop.set()
            srv.stop()

    # -- servers: both server types over a long load with rolling refreshes

    def servers(self):
        """RSS of an api-server under mixed API load for `--servers-minutes` (10) with a
        rolling refresh every `--servers-refresh` seconds (60), once per `[api]
        server_type`: uvicorn (threads in one process) and gunicorn (an arbiter and its
        worker processes, Unix). The load: the 1,000-DAG list, a page of 100, one DAG's
        details, health and version, each request on a new connection. Every
        `--servers-sample` seconds (10) the VmRSS of every server process (the
        api-server and its descendants) is summed; the figure is the growth from minute
        1 to the end, and the failed requests (which must be none)."""
        a = self.args
        out = {}
        for server_type in ("uvicorn", "gunicorn"):
            home = self.home(f"servers-{server_type}")
            for i in range(a.dag_files):
                home.write(f"f{i:04d}.yml", factory_file(i))
            r = home.cli(self.mem_exe, ["dags", "list", "--output", "json"], timeout=300)
            if r.returncode != 0:
                raise RuntimeError(f"dags list: {r.stderr[-500:]}")
            extra = {"UPDRAFT__API__SERVER_TYPE": server_type,
                     "UPDRAFT__API__WORKER_REFRESH_INTERVAL": f"{a.servers_refresh:g}",
                     "UPDRAFT__API__WORKERS": "4"}
            srv = Server([self.mem_exe, "api-server"], home.env(extra), home.path,
                         os.path.join(home.path, "api-server.log"))
            stop = threading.Event()
            counts = {"requests": 0, "errors": 0}
            try:
                token = srv.token()
                u = srv.url
                pages = ["api/v2/dags?limit=1000", "api/v2/monitor/health", "api/v2/dags?limit=100",
                         "api/v2/dags/factory_0000/details", "api/v2/version"]

                def load():
                    i = 0
                    while not stop.is_set():
                        path = pages[i % len(pages)]
                        i += 1
                        try:
                            status, _ = http("GET", u + path, token=token, timeout=30)
                            counts["requests"] += 1
                            if status >= 400:
                                counts["errors"] += 1
                        except OSError:
                            counts["errors"] += 1

                loaders = [threading.Thread(target=load, daemon=True) for _ in range(2)]
                for t in loaders:
                    t.start()
                t0 = time.monotonic()
                end = t0 + a.servers_minutes * 60
                samples = []  # (minute, KiB summed over the server's processes, processes)
                while time.monotonic() < end:
                    stop.wait(min(a.servers_sample, max(end - time.monotonic(), 0)))
                    pids = [srv.pid]
                    k = 0
                    while k < len(pids):
                        pids.extend(children(pids[k]))
                        k += 1
                    rss = [proc_kib(p, "VmRSS") for p in pids]
                    total = sum(x for x in rss if x)
                    if proc_kib(srv.pid, "VmRSS") is None:
                        raise RuntimeError(f"the api-server exited; log: {srv.log_tail()}")
                    minute = (time.monotonic() - t0) / 60
                    samples.append((minute, total, len(pids)))
                    log(f"servers: {server_type}: minute {minute:.1f}: RSS {mb(total):.1f} MB in "
                        f"{len(pids)} process(es), {counts['requests']} requests ({counts['errors']} errors)")
                stop.set()
                for t in loaders:
                    t.join(timeout=35)
                out[server_type] = {"samples": samples, "requests": counts["requests"],
                                    "errors": counts["errors"]}
            finally:
                stop.set()
                srv.stop()
        self.results["servers"] = {"types": out, "minutes": a.servers_minutes,
                                   "refresh": a.servers_refresh}

    # -- binary

    def binary(self):
        path = os.path.join(ROOT, SHIPPED)
        if os.path.exists(path):
            self.results["binary"] = {"bytes": os.path.getsize(path), "path": path,
                                      "costs": binary_costs(path + ".syms")}
        else:
            self.results["binary"] = {"missing": f"{path} not built (run `make release`)"}


# Symbols that name no Rust crate, by prefix: the C and assembly the crates build.
C_SYMBOLS = (("sqlite3", "rusqlite (bundled SQLite)"), ("ring_core", "ring"), ("_ring", "ring"),
             ("aes_", "ring"), ("gcm_", "ring"), ("chacha", "ring"), ("x25519", "ring"),
             ("ecp_nistz", "ring"), ("p256", "ring"), ("p384", "ring"), ("bn_", "ring"),
             ("sha256_block", "ring"), ("sha512_block", "ring"), ("poly1305", "ring"),
             ("LIMBS_", "ring"), ("CRYPTO_", "ring"), ("OPENSSL_", "ring"))


STD_CRATES = ("core", "alloc", "std", "proc_macro", "compiler_builtins", "hashbrown",
              "std_detect", "rustc_demangle", "addr2line", "gimli", "miniz_oxide", "object")


# The C and assembly archives that crates' build scripts make, by the crate they are for:
# their symbol names (SQLite's static functions such as `yy_reduce` carry no prefix).
C_ARCHIVES = (("libsqlite3-sys-", "rusqlite (bundled SQLite)"), ("ring-", "ring"))


def c_archive_symbols(build_dir):
    """Name -> crate for every symbol defined in the C archives under `build_dir`
    (target/<triple>/release/build), from `nm` on each `out/*.a`."""
    names = {}
    if not os.path.isdir(build_dir):
        return names
    for d in sorted(os.listdir(build_dir)):
        crate = next((c for prefix, c in C_ARCHIVES if d.startswith(prefix)), None)
        out = os.path.join(build_dir, d, "out")
        if crate is None or not os.path.isdir(out):
            continue
        for a in os.listdir(out):
            if a.endswith(".a") and "test" not in a:
                r = subprocess.run(["nm", "--defined-only", os.path.join(out, a)],
                                   capture_output=True, text=True)
                for line in r.stdout.splitlines():
                    f = line.split()
                    if len(f) == 3:
                        names[f[2]] = crate
    return names


def symbol_crate(name):
    """The crate a demangled symbol is there for: the first crate its path names that is
    not the standard library's, so std's generic code (`drop_in_place<minijinja::..>`,
    `<serde_json::Value as Clone>::clone`) counts for the crate that instantiated it;
    std when it names no other. C symbols by their prefixes."""
    heads = re.findall(r"(?<![A-Za-z0-9_:])([a-z_][a-z0-9_]*)::", name)
    if heads:
        for head in heads:
            if head not in STD_CRATES:
                return head.replace("_", "-")
        return "std"
    for prefix, crate in C_SYMBOLS:
        if name.startswith(prefix):
            return crate
    return "[C: libc and other]"


def binary_costs(path):
    """What each large dependency costs in the static binary: symbol sizes from `nm`
    on a copy with its symbol table (`make release` keeps one beside the stripped
    binary), summed per crate, largest first; the sections that hold no symbol (unwind
    tables, string literals) as their own lines. None when there is no such copy."""
    if not os.path.exists(path) or not shutil.which("nm"):
        return None
    def nm(*flags):
        out = subprocess.run(["nm", "-S", "--size-sort", *flags, path], capture_output=True,
                             text=True).stdout
        return [parts for parts in (line.split(" ", 3) for line in out.splitlines())
                if len(parts) == 4]

    # Raw names (C symbols, to look up in the C archives) by address, size and type.
    mangled = {tuple(parts[:3]): parts[3] for parts in nm()}
    c_names = c_archive_symbols(os.path.join(os.path.dirname(path), "build"))
    per, named, named_rodata = {}, 0, 0
    for parts in nm("-C"):
        size = int(parts[1], 16)
        # A static C function may carry a `.isra.0`/`.constprop.0` suffix from gcc.
        raw = mangled.get(tuple(parts[:3]), parts[3])
        crate = c_names.get(raw.split(".")[0]) or symbol_crate(parts[3])
        per[crate] = per.get(crate, 0) + size
        named += size
        if parts[2] in "rR":
            named_rodata += size
    sections = {}
    head = subprocess.run(["size", "-A", path], capture_output=True, text=True).stdout
    for line in head.splitlines():
        f = line.split()
        if len(f) >= 2 and f[0].startswith(".") and f[1].isdigit():
            sections[f[0]] = int(f[1])
    loaded = sum(v for k, v in sections.items() if k not in (".symtab", ".strtab", ".comment")
                 and not k.startswith(".debug"))
    # Read-only data no symbol names: string literals and constant tables (chrono-tz's
    # time-zone database is such tables), the UI files rust-embed includes, TLS roots.
    static = os.path.join(ROOT, "static")
    ui = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(static) for f in fs)
    return {"crates": sorted(per.items(), key=lambda kv: -kv[1]), "named": named,
            "sections": sections, "loaded": loaded,
            "rodata_unnamed": max(sections.get(".rodata", 0) - named_rodata, 0), "ui": ui}


def parse_wrk(text):
    """req/s, p50/p99 (ms) and errors from `wrk --latency` output."""

    def ms(v):
        m = re.match(r"([\d.]+)(us|ms|s|m)$", v)
        if not m:
            return float("nan")
        x = float(m.group(1))
        return x * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[m.group(2)]

    out = {"rps": 0.0, "p50": float("nan"), "p99": float("nan"), "errors": 0, "requests": 0}
    for line in text.splitlines():
        s = line.strip()
        m = re.match(r"(50|99)(?:\.000)?%\s+(\S+)", s)
        if m:
            out["p" + m.group(1)] = ms(m.group(2))
        m = re.match(r"Requests/sec:\s+([\d.]+)", s)
        if m:
            out["rps"] = float(m.group(1))
        m = re.match(r"(\d+) requests in", s)
        if m:
            out["requests"] = int(m.group(1))
        m = re.match(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", s)
        if m:
            out["errors"] += sum(int(g) for g in m.groups())
            for kind, n in zip(("connect", "read", "write", "timeout"), m.groups()):
                if int(n):
                    out.setdefault("kinds", {})[kind] = int(n)
        m = re.match(r"Non-2xx or 3xx responses: (\d+)", s)
        if m:
            out["errors"] += int(m.group(1))
            out.setdefault("kinds", {})["non-2xx"] = int(m.group(1))
    if out["requests"] == 0:
        out["errors"] = max(out["errors"], 1)
        out["raw"] = text
    return out


# ---------------------------------------------------------------- the table


def verdict(ok):
    return "met" if ok else "**missed**"


def table(b):
    r = b.results
    rows = []
    f0 = lambda x: f"{x:.0f}"
    f1 = lambda x: f"{x:.1f}"
    f2 = lambda x: f"{x:.2f}"

    if "throughput" in r:
        t = r["throughput"]
        rate, base = median(t["rate"]), median(t["base"])
        ratio = rate / base
        rows.append(["task throughput", f"{rate:.0f} tasks/s ({spread(t['rate'], f0)})",
                     f"raw spawn {base:.0f}/s ({spread(t['base'], f0)})", f"{ratio:.2f}",
                     "≥ 0.65", verdict(ratio >= 0.65)])
    if "sensors" in r:
        se = r["sensors"]
        budget = se["interval"] * 1000 + 50
        rows.append([f"{se['n']} FileSensors, reschedule, waiting {se['wait_s']:.0f} s",
                     f"CPU {se['cpu_pct']:.1f} %, RSS {se['rss_mb']:.1f} MB, {se['threads']} threads",
                     f"{se['pokes']} pokes", "", "", ""])
        rows.append(["file created -> all sensors success", f"{se['to_success_ms']:.0f} ms",
                     f"poke_interval {se['interval']} s", "", f"≤ {budget:.0f} ms",
                     verdict(se["to_success_ms"] <= budget and se["done"] == se["n"])])
    if "python" in r:
        py = r["python"]
        rate, base = median(py["rate"]), median(py["base"])
        rows.append([f"Python tasks: {py['tasks']}-task fan-out", f"{rate:.0f} tasks/s ({spread(py['rate'], f0)})",
                     f"python3 -c pass {base:.0f}/s ({spread(py['base'], f0)})", f"{rate / base:.2f}",
                     "≥ 0.5", verdict(rate / base >= 0.5)])
        g = py["gaps"]
        rows.append([f"Python tasks: {py['chain']}-task chain gap",
                     f"median {median(g):.2f} ms, p99 {percentile(g, 99):.2f} ms; a task takes "
                     f"{median(py['durations']):.0f} ms, the interpreter's start {median(py['start_ms']):.0f} ms",
                     "—", "—", "median ≤ 2 ms", verdict(median(g) <= 2)])
        if py.get("cycles"):
            over = median(py["cycles"]) - median(py["bare_ms"])
            rows.append([f"Python tasks: overhead per try ({py['chain']}-task chain, callable returns None)",
                         f"{over:.1f} ms: a try {median(py['cycles']):.1f} ms start to next start "
                         f"({spread(py['cycles'], f1)})",
                         f"python3 -c pass {median(py['bare_ms']):.1f} ms ({spread(py['bare_ms'], f1)})", "—", "median ≤ 10 ms", verdict(over <= 10)])
    if "gap" in r:
        g = r["gap"]["ms"]
        med, p99 = median(g), percentile(g, 99)
        rows.append(["scheduling gap", f"median {med:.2f} ms, p99 {p99:.2f} ms "
                     f"({len(g)} gaps, {r['gap']['runs']} chains, {min(g):.2f}–{max(g):.2f})",
                     "—", "—", "median ≤ 0.40 ms, p99 ≤ 1.5 ms", verdict(med <= 0.40 and p99 <= 1.5)])
    if "trigger" in r:
        t = r["trigger"]
        med = median(t["ms"])
        how = "POST dagRuns" if t["how"].startswith("POST") else "CLI `dags trigger`"
        extra = f"; queued_at→start {median(t['db_ms']):.1f} ms" if t["db_ms"] else ""
        rows.append([f"trigger latency ({how})", f"{med:.1f} ms ({spread(t['ms'], f1)}){extra}",
                     "—", "—", "≤ 20 ms", verdict(med <= 20)])
    if "assets" in r:
        x = r["assets"]
        med = median(x["ms"])
        rows.append(["assets: producer end → consumer's first task start",
                     f"{med:.1f} ms ({spread(x['ms'], f1)}); {x['links']}-DAG asset chain end to end "
                     f"{x['chain_ms']:.0f} ms", "—", "—", "≤ 20 ms", verdict(med <= 20)])
    if "health" in r:
        h = r["health"]
        rows.append(api_row("API: health", h["updraft"], h["bare"], 0.5))
    if "list" in r:
        l = r["list"]
        if "missing" in l:
            rows.append(["API: list", f"not measured: {l['missing'][:80]}", "—", "—", "≥ 0.2", "n/a"])
        else:
            rows.append(api_row(f"API: list ({l['total']} DAGs)", l["updraft"], l["bare"], 0.2))
    if "refresh" in r and "health" in r:
        rf, plain = r["refresh"]["runs"], r["health"]["updraft"]
        errs = [x["errors"] for x in rf]
        p99, p99_plain = median([x["p99"] for x in rf]), median([x["p99"] for x in plain])
        ratio = p99 / p99_plain
        rows.append(["refresh under load (interval 1 s)",
                     f"errors {errors(rf)}, p99 {p99:.2f} ms, {median([x['rps'] for x in rf]):.0f} req/s "
                     f"({r['refresh']['refreshes']} refreshes; p99 {spread([x['p99'] for x in rf], f2)})",
                     f"without refresh: errors {errors(plain)}, p99 {p99_plain:.2f} ms",
                     f"p99 {ratio:.2f}×", "0 errors, p99 ≤ 2×",
                     verdict(sum(errs) == 0 and ratio <= 2)])
    if "cold" in r:
        c = r["cold"]
        med = median(c["ms"])
        rows.append(["cold start (start → health 200)", f"{med:.1f} ms ({spread(c['ms'], f1)})",
                     f"exec `updraft version` {median(c['exec_ms']):.1f} ms", "—", "≤ 20 ms",
                     verdict(med <= 20)])
    # The memory rows of the speed binary, then (when another binary is the shipped one,
    # `--mem-exe`) the same rows of the shipped binary, each with its own verdict.
    on = f" [{describe_binary(b.mem_exe).split(',')[0]}]" if b.mem_exe != b.exe else ""
    if b.mem_exe != b.exe and any(k in r for k in ("mem_idle", "mem_run")):
        tag = f" [{describe_binary(b.exe).split(',')[0].split(' (')[0]}]"
    else:
        tag = ""
    rows += memory_rows(r.get("mem_idle"), r.get("mem_run"), r.get("mem_scale"), tag)
    sh = r.get("shipped", {})
    rows += memory_rows(sh.get("idle"), sh.get("run"), sh.get("scale"), on)
    if "parse" in r:
        p = r["parse"]
        first, rescan = median(p["first"]), median(p["rescan"])
        rows.append([f"DAG parsing: first full parse ({p['dags']} DAGs × 10 tasks)",
                     f"{first:.0f} ms ({spread(p['first'], f0)})",
                     "—", "—", "≤ 1 s", verdict(first <= 1000)])
        rows.append(["DAG parsing: re-scan, one file changed",
                     f"{rescan:.1f} ms ({spread(p['rescan'], f1)})",
                     f"nothing changed {median(p['unchanged']):.1f} ms", "—", "≤ 50 ms",
                     verdict(rescan <= 50)])
    if "scale" in r and "throughput" in r:
        s, t = r["scale"], r["throughput"]
        per_big = s["span"] / max(s["done"], 1) * 1000
        small = [sp / b.args.tasks * 1000 for sp in t["spans"]]
        per_small = median(small)
        ratio = per_big / per_small
        ok = s["state"] == "success" and ratio <= 1.3
        state = s["state"] if s["state"] != "timeout" else f"stopped at the {SCALE_TIMEOUT:.0f} s bound"
        rows.append([f"scale: {s['tasks']:,}-task fan-out, time per task",
                     f"{per_big:.2f} ms/task ({s['done']:,} done, n=1, {state})",
                     f"{b.args.tasks:,}-task run {per_small:.2f} ms/task ({spread(small, f2)})",
                     f"{ratio:.2f}", "≤ 1.3", verdict(ok)])
    if "mapping" in r:
        m = r["mapping"]
        per, base = median(m["mapped"]), median(m["fan"])
        rows.append([f"mapping: one task over {m['n']:,} values, time per instance",
                     f"{per:.2f} ms/instance ({spread(m['mapped'], f2)})",
                     f"{m['n']:,}-task fan-out {base:.2f} ms/task ({spread(m['fan'], f2)})",
                     f"{per / base:.2f}", "≤ 1.2", verdict(per / base <= 1.2)])
        for key, how in (("literal", "values in the file"), ("xcom", "values from the upstream's result")):
            g = [x[0] for x in m[key]]
            rows.append([f"mapping: upstream end → first instance start ({how}, {m['n']:,} values)",
                         f"median {median(g):.1f} ms ({spread(g, f1)}); → first queued "
                         f"{median([x[1] for x in m[key]]):.1f} ms", "—", "—", "≤ 20 ms",
                         verdict(median(g) <= 20)])
    if "soak" in r:
        row = soak_row(r["soak"])
        rows.append([row[0].replace("memory:", f"memory{on}:", 1)] + row[1:])
    if "servers" in r:
        sv = r["servers"]
        for server_type, x in sv["types"].items():
            first, last = soak_at_servers(x["samples"], 1), x["samples"][-1]
            growth = mb(last[1] - first[1])
            rows.append([f"memory{on}: api-server {server_type}, {sv['minutes']:g} min of API load, "
                         f"refresh every {sv['refresh']:g} s, RSS of all its processes",
                         f"min {first[0]:.1f} {mb(first[1]):.1f} MB, min {last[0]:.1f} {mb(last[1]):.1f} MB "
                         f"({last[2]} processes); growth {growth:+.1f} MB; {x['requests']:,} requests, "
                         f"{x['errors']} failed", "—", "—", "bounded, no failed request",
                         verdict(x["errors"] == 0)])
    if "binary" in r:
        x = r["binary"]
        if "missing" in x:
            rows.append(["binary (static musl)", x["missing"], "—", "—", "≤ 10 MB", "n/a"])
        else:
            size = x["bytes"] / 1e6
            rows.append(["binary (static musl, release)", f"{size:.2f} MB ({x['bytes']:,} bytes)",
                         "—", "—", "≤ 10 MB", verdict(size <= 10)])
            costs = x.get("costs")
            if costs:
                big = [(c, n) for c, n in costs["crates"] if n >= 100_000]
                sec = costs["sections"]
                unnamed = ", ".join(f"{k} {sec[k] / 1e6:.2f}" for k in (".eh_frame", ".gcc_except_table")
                                    if k in sec)
                rows.append(["binary: what each large dependency costs (MB of symbols, `nm`)",
                             ", ".join(f"{c} {n / 1e6:.2f}" for c, n in big)
                             + f"; symbols in all {costs['named'] / 1e6:.2f} of {costs['loaded'] / 1e6:.2f} "
                             f"loaded; unwind tables {unnamed}; read-only data in no symbol "
                             f"{costs.get('rodata_unnamed', 0) / 1e6:.2f} (string literals, constant "
                             f"tables such as the time-zone database, the UI's {costs.get('ui', 0) / 1e6:.2f} "
                             f"of files, TLS roots)", "—", "—", "", ""])
    head = ["figure", "updraft", "baseline (same run)", "ratio", "target", "verdict"]
    lines = [binaries(b), ""] if rows else []
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def memory_rows(idle, run, scale, tag):
    """The idle, 1,000-task and 10,000-task memory rows of one binary (`tag` names it)."""
    rows = []
    if idle is not None:
        rows.append([f"memory{tag}: idle standalone (VmRSS)", f"{mb(idle):.1f} MB", "—", "—",
                     f"≤ {IDLE_MB} MB", verdict(mb(idle) <= IDLE_MB)])
    if run is not None:
        hwm = mb(run["hwm"])
        rows.append([f"memory{tag}: peak during {run['tasks']:,}-task run",
                     f"standalone VmHWM {hwm:.1f} MB; all updraft processes {mb(run['peak_total']):.0f} MB "
                     f"(PSS summed over ≤ {run['peak_procs']} processes)", "—", "—", f"≤ {PEAK_MB} MB",
                     verdict(hwm <= PEAK_MB)])
    if scale is not None and run is not None and idle is not None:
        grow1, grow10 = run["hwm"] - idle, scale["hwm"] - idle
        per = lambda g, n: g * 1024 / n / 1e3
        rows.append([f"memory{tag}: peak during {scale['tasks']:,}-task run",
                     f"standalone VmHWM {mb(scale['hwm']):.1f} MB; all updraft {mb(scale['peak_total']):.0f} MB",
                     f"{run['tasks']:,}-task run", f"above idle: {per(grow1, run['tasks']):.1f} → "
                     f"{per(grow10, scale['tasks']):.1f} kB/task",
                     f"≤ {PER_TASK_KB} kB/task above idle at {scale['tasks']:,} tasks",
                     verdict(per(grow10, scale['tasks']) <= PER_TASK_KB)])
    return rows


def binaries(b):
    """The line above the table: which binary each row measured."""
    rel = lambda p: os.path.relpath(p, ROOT) if p.startswith(ROOT + os.sep) else p
    r = b.results
    mem = "shipped" in r or "soak" in r or "servers" in r
    if b.mem_exe == b.exe or not mem:
        text = f"Binaries: the updraft figures ran `{rel(b.exe)}` ({describe_binary(b.exe)})"
    else:
        text = (f"Binaries: the updraft speed figures ran `{rel(b.exe)}` ({describe_binary(b.exe)}); "
                f"the memory rows tagged with it (idle, peaks, per task, soak, api-server types) ran "
                f"`{rel(b.mem_exe)}` ({describe_binary(b.mem_exe)})")
    if "health" in r or "list" in r:
        text += f"; the bare tiny_http baseline ran `{BARE}` ({describe_binary(b.bare)})"
    if "throughput" in r:
        text += "; the raw spawn baseline is `bash -c true` started by Python (no updraft binary)"
    if "binary" in r and "missing" not in r["binary"]:
        text += f"; the binary-size rows read `{SHIPPED}`"
    return text + "."


def soak_at(samples, minute):
    """The sample nearest to `minute` (the last one for the end of a shortened soak)."""
    return min(samples, key=lambda x: abs(x[0] - minute))


def soak_at_servers(samples, minute):
    """The servers sample nearest to `minute`."""
    return min(samples, key=lambda x: abs(x[0] - minute))


def soak_row(s):
    """RSS at minutes 1, 10, 20, 30 (those the soak reached, and its end), growth from
    minute 1 and per run since. The target: RSS levels off, so the last two thirds of
    the soak (minute 10 to 30) add at most SOAK_TAIL_KIB."""
    samples = s["samples"]
    end = samples[-1]
    marks = [m for m in (1, 10, 20, 30) if m <= end[0] + 0.05]
    if not marks or end[0] - marks[-1] > 0.25:
        marks.append(end[0])
    first = soak_at(samples, 1)
    at = ", ".join(f"min {round(m, 1):g} {mb(soak_at(samples, m)[1]):.1f} MB" for m in marks)
    grow, runs = end[1] - first[1], end[2] - first[2]
    per_run = f"{grow * 1024 / runs:.0f} B/run over {runs} runs" if runs > 0 else "no runs"
    third = soak_at(samples, end[0] / 3)
    tail = end[1] - third[1]
    return [f"memory: soak {s['minutes']:g} min (DAG every {s['period']:g} s + API load), VmRSS",
            f"{at}; {s['requests']:,} requests ({s['errors']} errors); runs {s['states']}",
            f"min 1: {mb(first[1]):.1f} MB", f"+{mb(grow):.2f} MB ({per_run}); "
            f"min {round(third[0], 1):g}→{round(end[0], 1):g} +{mb(tail):.2f} MB",
            f"levels off: min {round(third[0], 1):g}→{round(end[0], 1):g} ≤ +{mb(SOAK_TAIL_KIB):.2f} MB",
            verdict(tail <= SOAK_TAIL_KIB)]


def errors(runs):
    """The error count of some wrk runs, with its kinds: `3 (read 2, timeout 1)`."""
    total, kinds = 0, {}
    for r in runs:
        total += r["errors"]
        for k, n in r.get("kinds", {}).items():
            kinds[k] = kinds.get(k, 0) + n
    detail = ", ".join(f"{k} {n}" for k, n in kinds.items())
    return f"{total} ({detail})" if detail else str(total)


def api_row(name, runs, base, target):
    rps, brps = median([x["rps"] for x in runs]), median([x["rps"] for x in base])
    errs, berrs = sum(x["errors"] for x in runs), sum(x["errors"] for x in base)
    ratio = rps / brps if brps else float("nan")

    def desc(xs, e):
        return (f"{median([x['rps'] for x in xs]):.0f} req/s, p50 {median([x['p50'] for x in xs]):.2f} ms, "
                f"p99 {median([x['p99'] for x in xs]):.2f} ms, errors {errors(xs)} "
                f"(req/s {spread([x['rps'] for x in xs], lambda v: f'{v:.0f}')})")

    return [name, desc(runs, errs), "bare tiny_http: " + desc(base, berrs), f"{ratio:.2f}",
            f"≥ {target} of baseline" + (", 0 errors" if target == 0.5 else ""),
            verdict(ratio >= target and (errs == 0 or target != 0.5))]


def machine():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return os.cpu_count(), model


def git(*args):
    try:
        return subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def report(b, tbl, elapsed):
    nproc, model = machine()
    commit, dirty = b.commit
    now = git("rev-parse", "--short", "HEAD")
    if now != commit:
        dirty += f" (HEAD moved to {now} during the run; the figures are of {commit}'s binaries)"
    a = b.args
    load = os.getloadavg()
    lines = [
        "# updraft benchmark results",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- commit: {commit}{dirty}",
        f"- machine: {nproc} CPUs (`nproc`), {model}, {platform.system()} {platform.release()}; "
        f"1-minute load average {b.load_before[0]:.2f} before the run and {load[0]:.2f} after it "
        "(this run's own load included; the machine is shared with other builds)",
        f"- command: `{' '.join(['bench/bench.py', *sys.argv[1:]])}` (via `make bench`), {elapsed:.0f} s",
        f"- repetitions: {a.reps} of each run and wrk load (wrk -t2 -c50 -d{a.wrk_seconds}s --latency), "
        f"{a.triggers} triggers, {a.cold_starts} cold starts, {a.rescans} re-scans; the scale run once. "
        "Figures are medians; spread is min–max over the repetitions.",
        f"- sizes: throughput {a.tasks:,} independent `true` BashOperator tasks (max_active_tasks 32); "
        f"chain of {a.chain}; scale {a.scale_tasks:,} tasks; {a.dag_files:,} dag-factory files of 10 tasks; "
        f"soak {a.soak_minutes:g} min, a 3-task run every {a.soak_period:g} s, RSS every {a.soak_sample:g} s",
        "- settings (product settings, as environment variables): "
        + ", ".join(f"`{k}={v}`" for k, v in SETTINGS.items()),
        "",
        tbl,
        "",
        "How each figure is taken: bench/bench.py (its docstrings). Times of task instances "
        "come from the store (`task_instance.start_date`/`end_date`); the raw spawn rate is "
        "`bash -c true` via posix_spawn+waitpid from 32 Python threads. Profiles of the misses: "
        "bench/PROFILES.md.",
    ]
    diag = diagnostics(b)
    if diag:
        lines += ["", "Where the time goes (same run):", ""] + [f"- {d}" for d in diag]
    if b.notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in b.notes]
    return "\n".join(lines) + "\n"


def diagnostics(b):
    """Breakdowns measured alongside the figures, to say where the time goes."""
    r, out = b.results, []
    if "throughput" in r:
        t = r["throughput"]
        out.append(
            f"throughput: CPU per task {median(t['own_cpu']):.2f} ms in the standalone "
            f"(scheduler, API workers, task supervisors) + {median(t['kids_cpu']):.2f} ms in "
            f"its children (the tasks' bash), against {median(t['spawn_cpu']):.2f} ms per raw "
            f"`bash -c true` spawn; mean HTTP request time in the server "
            f"{median(t['req_ms']):.2f} ms (nearly all Execution API calls, two per task)")
    if "log_cost" in r:
        out.append(
            f"filesystem: creating a try's log (a directory and a file) took {r['log_cost']:.2f} ms "
            f"in this run, single-threaded, on the disk the homes are on. Each task pays it; "
            f"on a journal-less ext4 it grows with the inodes freed in the minutes before "
            f"(bench/PROFILES.md), so the throughput and gap figures move with it")
    if "gap" in r:
        g = r["gap"]
        out.append(
            f"scheduling gap: upstream end → downstream queued (the report, the scheduler's pass) "
            f"median {median(g['react']):.2f} ms, p99 {percentile(g['react'], 99):.2f} ms; queued → "
            f"start (the rest of the scheduler's pass and the hand-over to a supervisor thread, "
            f"whose clock the start is: its claim sends it, and the Execution API stores it, as "
            f"Airflow's task runner and `ti_run` do) "
            f"median {median(g['claim']):.2f} ms, p99 {percentile(g['claim'], 99):.2f} ms"
            + (f"; upstream end → the claim's commit (the server's time of the claim, its first "
               f"heartbeat; in process in a standalone) median {median(g['claimed']):.2f} ms, "
               f"p99 {percentile(g['claimed'], 99):.2f} ms" if g.get("claimed") else ""))
    if "trigger" in r and r["trigger"]["steps"]:
        st = r["trigger"]["steps"]
        out.append(
            f"trigger latency: request → run created {median([x[0] for x in st]):.2f} ms, "
            f"run created → task queued {median([x[1] for x in st]):.2f} ms, "
            f"queued → task start {median([x[2] for x in st]):.2f} ms (medians)")
    if "scale" in r and "throughput" in r:
        s, t = r["scale"], r["throughput"]
        out.append(
            f"scale: standalone CPU per task {median(t['own_cpu']):.2f} ms at {b.args.tasks:,} tasks → "
            f"{s['own_cpu']:.2f} ms at {s['tasks']:,}; children {median(t['kids_cpu']):.2f} → "
            f"{s['kids_cpu']:.2f} ms; mean HTTP request {median(t['req_ms']):.2f} → {s['req_ms']:.2f} ms")
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes, to check the harness")
    p.add_argument("--only", default="", help="comma-separated: engine,assets,python,mapping,sensors,scale,api,cold,parse,binary,memory,soak,servers")
    p.add_argument("--out", help="write RESULTS.md here")
    p.add_argument("--keep", action="store_true", help="keep the temporary homes")
    p.add_argument("--exe", help=f"the updraft binary (default {FASTEST}, for the speed figures; "
                   "alone, for every figure); a build with symbols, for profiling: see bench/PROFILES.md")
    p.add_argument("--mem-exe", help=f"the binary of the memory figures (default --exe if given, "
                   f"else {SHIPPED}, `make release`)")
    p.add_argument("--tasks", type=int, default=1000)
    p.add_argument("--scale-tasks", type=int, default=10000)
    p.add_argument("--chain", type=int, default=100)
    p.add_argument("--py-tasks", type=int, default=200)
    p.add_argument("--py-chain", type=int, default=20)
    p.add_argument("--sensors", type=int, default=200)
    p.add_argument("--sensor-interval", type=float, default=5.0)
    p.add_argument("--sensor-wait", type=float, default=30.0)
    p.add_argument("--map-tasks", type=int, default=1000)
    p.add_argument("--dag-files", type=int, default=1000)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--triggers", type=int, default=10)
    p.add_argument("--cold-starts", type=int, default=10)
    p.add_argument("--rescans", type=int, default=5)
    p.add_argument("--wrk-seconds", type=int, default=10)
    p.add_argument("--soak-minutes", type=float, default=30.0,
                   help="how long the soak runs (a shorter one checks the harness)")
    p.add_argument("--soak-period", type=float, default=5.0, help="seconds between the soak DAG's runs")
    p.add_argument("--soak-sample", type=float, default=60.0, help="seconds between RSS samples")
    p.add_argument("--servers-minutes", type=float, default=10.0,
                   help="how long each server type's soak runs")
    p.add_argument("--servers-refresh", type=float, default=60.0, help="[api] worker_refresh_interval of that soak")
    p.add_argument("--servers-sample", type=float, default=10.0, help="seconds between its RSS readings")
    p.add_argument("--soak-pause", type=float, default=0.05, help="seconds between the soak's API requests")
    a = p.parse_args()
    if a.quick:
        a.tasks, a.scale_tasks, a.chain, a.dag_files = 100, 300, 20, 100
        a.map_tasks = 100
        a.reps, a.triggers, a.cold_starts, a.rescans, a.wrk_seconds = 2, 3, 3, 2, 2
        a.soak_minutes, a.soak_sample = min(a.soak_minutes, 2.0), min(a.soak_sample, 15.0)
        a.servers_minutes, a.servers_refresh = min(a.servers_minutes, 2.0), min(a.servers_refresh, 20.0)
    b = Bench(a)
    b.load_before = os.getloadavg()
    # The commit the binaries were built from: the tree may move during a long run.
    b.commit = (git("rev-parse", "--short", "HEAD"),
                " (with uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else "")
    only = set(filter(None, a.only.split(",")))
    # Only the API figures need the bare server and wrk.
    api = not only or "api" in only
    if not os.path.exists(b.exe):
        sys.exit(f"{b.exe} is missing: run `cargo build --release` first (or pass --exe)")
    if (not only or only & {"api", "engine", "scale", "memory", "soak", "servers"}) and not os.path.exists(b.mem_exe):
        sys.exit(f"{b.mem_exe} is missing: run `make release` first (or pass --mem-exe)")
    if api and not os.path.exists(b.bare):
        sys.exit(f"{b.bare} is missing: run `cargo build --release --example bare_server` first")
    if api and not shutil.which("wrk"):
        sys.exit("wrk is missing: `apt-get install wrk` (make bench does it)")
    # The steps that time tasks a fraction of a millisecond apart come before the API's
    # (wrk at full CPU for two minutes), after which this VM runs slower for a while: on
    # 2026-12-07 the raw spawn rate measured 940, 1074 and 1316/s across the engine step
    # that followed it. The soak comes last: 30 minutes of one standalone, after the
    # speed figures.
    steps = ["binary", "cold", "engine", "assets", "python", "mapping", "sensors", "parse", "api", "scale", "memory", "soak", "servers"]
    # The memory rows come from the speed steps' runs when both measure one binary.
    if b.mem_exe == b.exe:
        steps.remove("memory")
    elif only & {"api", "engine", "scale"}:
        only.add("memory")
    t0 = time.monotonic()
    try:
        for step in steps:
            if only and step not in only:
                continue
            log(f"{step} ...")
            try:
                getattr(b, {"cold": "cold_start", "parse": "parsing"}.get(step, step))()
            except Exception as e:  # one broken benchmark must not hide the others
                b.notes.append(f"{step}: failed: {e}")
                log(f"{step} failed: {e}")
    finally:
        b.cleanup()
    tbl = table(b)
    print(tbl)
    for d in diagnostics(b):
        print("- " + d)
    if b.notes:
        print("\n".join("note: " + n for n in b.notes))
    if a.out:
        # Made before the file is opened: opening truncates it, and the report asks git
        # whether the tree is clean.
        text = report(b, tbl, time.monotonic() - t0)
        with open(a.out, "w") as f:
            f.write(text)
        log(f"wrote {a.out}")


if __name__ == "__main__":
    main()
