#!/usr/bin/env python3
"""updraft beside its peers on this machine (issue 22): `make bench-peers`.

Runs updraft (target/release/updraft), IronFlow (the `ironflow` binary that
`cargo install ironflow-orchestrator` put under target/peers) and Apache Airflow 3.3.2
(`airflow standalone`, LocalExecutor on SQLite, from the venv `make test-compat` builds)
one after another in this one run, each on a temporary home with the same DAG shapes
(bench/peers/: a 10- and a 100-task chain of `true`, a fan-out of 1,000 `true`), each in
its own format, and prints one table of the figures and of updraft's ratio to each peer.

Airflow is set up as a user of `airflow standalone` on another port would: LocalExecutor
at [core] parallelism 32 on SQLite (3.3.2 has no SequentialExecutor any more and does not
cap LocalExecutor on SQLite: its log says LocalExecutor(parallelism=32) and it forks 32
workers), and [core] execution_api_server_url pointing at its own API server, which its
workers need (left unset it is http://localhost:8080/execution/). Everything else at its
defaults, e.g. [scheduler] scheduler_idle_sleep_time 1 s, which bounds its chain gaps.

Figures, taken the same way for every peer:
- cold start: process start -> its health endpoint answers 200 (database already created:
  the first start of each peer, which creates it, is not measured);
- idle memory: PSS summed over the peer's whole process tree, SETTLE (5) s after its DAGs
  are loaded (PSS, so pages shared between a peer's processes count once);
- chain gap: downstream task's start - upstream task's end, as each peer stores them, over
  the links whose two tasks succeeded;
- fan-out throughput: tasks done / (last end - first start), as stored; a fan-out still
  running at --run-timeout counts what finished by then, and the table says so.

Bounded in time: a peer that does not answer its health check within --start-timeout
(60 s) is skipped and the table says so; every run has --run-timeout (300 s), and a run
that hits it ends that peer's repetitions of the shape. Every process a peer starts is
stopped by process group and then by tree (this process is their subreaper, so orphans
stay findable), also on Ctrl-C, SIGTERM or SIGHUP. Standard library only.
Usage: bench/peers.py [--only updraft,ironflow,airflow] [--reps 3] [--keep]
"""

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # importing bench.py leaves no .pyc in the tree
import bench  # noqa: E402  (the helpers: DAG shapes, http, medians, PSS)

ROOT = os.path.dirname(HERE)
PEERS = os.path.join(HERE, "peers")
PATH = bench.PATH
# The shapes, by name: (kind, tasks).
SHAPES = {"chain10": ("chain", 10), "chain100": ("chain", 100), "fanout": ("fanout", 1000)}
IRONFLOW = os.path.join(ROOT, "target/peers/bin/ironflow")
AIRFLOW = os.path.join(ROOT, ".venv-compat/bin/airflow")
# Seconds every peer idles after its DAGs are loaded before its memory is read.
SETTLE = 5.0


def log(msg):
    print(f"[peers {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def tree(pid):
    """pid and all its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(bench.children(p))
    return out


def tree_pss_kib(pid):
    return sum(bench.pss_kib(p) or 0 for p in tree(pid))


def naive_utc(text):
    """A stored time as epoch seconds: RFC 3339, or SQLAlchemy's naive UTC text."""
    if text is None:
        return None
    t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return t.timestamp()


def query(db, sql, args=()):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def wait_http(url, proc, timeout):
    """Seconds until GET url answers 200, or None (timeout, or the process ended)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if proc.poll() is not None:
            return None
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return time.perf_counter() - t0
        except (OSError, urllib.error.URLError):
            time.sleep(0.002)
    return None


def become_subreaper():
    """Makes this process the reaper of every orphan below it (Linux prctl
    PR_SET_CHILD_SUBREAPER), so a peer's process that double-forks or whose parent dies
    first is re-parented here rather than to init, and stays findable by tree(getpid())
    until it is stopped. Elsewhere a no-op: the process group and the tree still apply."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def reap():
    """Collects every exited child (orphans re-parented here included), so none stays a zombie."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def stop_group(proc, grace=20):
    """Stops the peer: SIGTERM to its process group, SIGKILL to the group after `grace`
    seconds, then SIGKILL to every process still below this one (descendants that left
    the group, as Airflow's task supervisors do, and orphans re-parented here), until
    none is left. Ctrl-C is ignored meanwhile, so a second one cannot cut the cleanup short."""
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        family = tree(proc.pid)
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=grace)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        for _ in range(100):
            left = [p for p in set(family[1:] + tree(os.getpid())[1:]) if alive(p)]
            if not left:
                break
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            family = []
            time.sleep(0.05)
            reap()
        reap()
    finally:
        signal.signal(signal.SIGINT, old)


def alive(pid):
    """pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def sweep():
    """Last safety net: SIGKILL to whatever still runs below this process."""
    for _ in range(100):
        left = [p for p in tree(os.getpid())[1:] if alive(p)]
        if not left:
            break
        log(f"killing {len(left)} processes left running: {left}")
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
        reap()
    reap()


class Stop(BaseException):
    """SIGTERM or SIGHUP (`timeout`, a closed terminal): unwinds like Ctrl-C, so every
    peer is stopped by the finally blocks on the way out."""


def on_stop_signal(signum, frame):
    raise Stop(signal.Signals(signum).name)


# ---------------------------------------------------------------- DAG files


def write_dags():
    """Writes bench/peers/: the same shapes in each peer's own DAG format."""
    os.makedirs(os.path.join(PEERS, "updraft"), exist_ok=True)
    os.makedirs(os.path.join(PEERS, "ironflow"), exist_ok=True)
    for name, (kind, n) in SHAPES.items():
        text = bench.chain(name, n) if kind == "chain" else bench.independent(name, n)
        with open(os.path.join(PEERS, "updraft", f"{name}.yml"), "w") as f:
            f.write(text)
        lines = ["[dag]", f'id = "{name}"', f'description = "{kind} of {n} true tasks (updraft bench-peers)"', ""]
        for i in range(n):
            tid = f"c{i:04d}" if kind == "chain" else f"t{i:05d}"
            # 0.3.0 flattens a task's operator settings into the task (as its own
            # dags/*.toml do; its README's `[dag.tasks.config]` table is not read).
            lines += ["[[dag.tasks]]", f'id = "{tid}"', 'operator = "bash"', 'command = "true"']
            if kind == "chain" and i:
                lines.append(f'depends_on = ["c{i - 1:04d}"]')
            lines.append("")
        with open(os.path.join(PEERS, "ironflow", f"{name}.toml"), "w") as f:
            f.write("\n".join(lines))


# ---------------------------------------------------------------- peers


class Peer:
    """One orchestrator on a temporary home: start, trigger, wait, read its store."""

    name = "?"

    def __init__(self, root, args):
        self.home = os.path.join(root, self.name)
        os.makedirs(self.home)
        self.args = args
        self.proc = None

    def popen(self, argv, env):
        return subprocess.Popen(argv, env=env, cwd=self.home, stdin=subprocess.DEVNULL,
                                stdout=open(os.path.join(self.home, "stdout.log"), "ab"),
                                stderr=subprocess.STDOUT, start_new_session=True)

    def cold_start(self):
        """Starts the peer, bounded; seconds to health 200, or None."""
        self.port = bench.free_port()
        self.proc = self.popen(self.argv(), self.env())
        return wait_http(self.health_url(), self.proc, self.args.start_timeout)

    def stop(self):
        if self.proc is not None:
            stop_group(self.proc)
            self.proc = None

    def base(self):
        return f"http://127.0.0.1:{self.port}/"

    def wait_run(self, key, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.run_state(key)
            if state in ("success", "failed"):
                return state
            time.sleep(0.05)
        return "timeout"


class AirflowApi(Peer):
    """A peer with Airflow's REST API and task_instance/dag_run tables: updraft and Airflow."""

    trigger_timeout = 10

    def trigger(self, dag_id):
        status, body = bench.http("POST", f"{self.base()}api/v2/dags/{dag_id}/dagRuns",
                                  {"logical_date": None}, self.token, timeout=self.trigger_timeout)
        if status not in (200, 201):
            raise RuntimeError(f"trigger {dag_id}: {status} {body}")
        return (dag_id, body["dag_run_id"])

    def run_state(self, key):
        rows = query(self.db, "SELECT state FROM dag_run WHERE dag_id=? AND run_id=?", key)
        return rows[0][0] if rows else None

    def times(self, key):
        rows = query(self.db, "SELECT task_id, start_date, end_date, state FROM task_instance "
                     "WHERE dag_id=? AND run_id=? ORDER BY task_id", key)
        return [(r[0], naive_utc(r[1]), naive_utc(r[2]), r[3]) for r in rows]


class Updraft(AirflowApi):
    name = "updraft"

    def setup(self):
        self.exe = os.path.join(ROOT, "target/release/updraft")
        self.dags = os.path.join(self.home, "dags")
        os.makedirs(self.dags)
        for name in SHAPES:
            shutil.copy(os.path.join(PEERS, "updraft", f"{name}.yml"), self.dags)
        self.db = os.path.join(self.home, "updraft.db")
        # The first start creates the database and passwords.
        if self.cold_start() is None:
            raise RuntimeError("updraft did not start")
        self.stop()

    def env(self):
        env = {"PATH": PATH, "UPDRAFT_HOME": self.home}
        env.update(bench.SETTINGS)
        env["UPDRAFT__API__PORT"] = str(self.port)
        return env

    def argv(self):
        return [self.exe, "standalone"]

    def health_url(self):
        return self.base() + "api/v2/monitor/health"

    def ready(self):
        with open(os.path.join(self.home, "simple_auth_manager_passwords.json.generated")) as f:
            pw = json.load(f)["admin"]
        _, body = bench.http("POST", self.base() + "auth/token", {"username": "admin", "password": pw})
        self.token = body["access_token"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if len(query(self.db, "SELECT dag_id FROM dag WHERE dag_id IN (?,?,?)", tuple(SHAPES))) == 3:
                return True
            time.sleep(0.1)
        return False



class IronFlow(Peer):
    name = "ironflow"

    def setup(self):
        if not os.path.exists(IRONFLOW):
            raise RuntimeError(f"{IRONFLOW} is missing (make bench-peers installs it)")
        self.dags = os.path.join(self.home, "dags")
        os.makedirs(self.dags)
        for name in SHAPES:
            shutil.copy(os.path.join(PEERS, "ironflow", f"{name}.toml"), self.dags)
        self.db = os.path.join(self.home, "ironflow.db")
        open(self.db, "a").close()  # sqlx opens, it does not create
        if self.cold_start() is None:
            raise RuntimeError("ironflow did not start")
        self.stop()

    def env(self):
        return {"PATH": PATH, "RUST_LOG": "warn"}

    def argv(self):
        return [IRONFLOW, "start", "--dags-dir", self.dags, "--db-path", self.db,
                "--with-api", "--port", str(self.port)]

    def health_url(self):
        return self.base() + "health"

    def ready(self):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if len(query(self.db, "SELECT id FROM dags")) >= 3:
                return True
            time.sleep(0.1)
        return False

    def trigger(self, dag_id):
        status, body = bench.http("POST", f"{self.base()}api/dags/{dag_id}/trigger", {})
        if status != 200:
            raise RuntimeError(f"trigger {dag_id}: {status} {body}")
        return body["data"]["run_id"]

    def run_state(self, key):
        rows = query(self.db, "SELECT status FROM dag_runs WHERE id=?", (key,))
        return rows[0][0] if rows else None

    def times(self, key):
        rows = query(self.db, "SELECT task_id, started_at, ended_at, status FROM task_runs "
                     "WHERE dag_run_id=? ORDER BY task_id", (key,))
        return [(r[0], naive_utc(r[1]), naive_utc(r[2]), r[3]) for r in rows]


class Airflow(AirflowApi):
    name = "airflow"
    trigger_timeout = 60

    def setup(self):
        if not os.path.exists(AIRFLOW):
            raise RuntimeError(f"{AIRFLOW} is missing (make bench-peers builds .venv-compat)")
        self.dags = os.path.join(self.home, "dags")
        os.makedirs(self.dags)
        shutil.copy(os.path.join(PEERS, "airflow", "peers_dags.py"), self.dags)
        self.db = os.path.join(self.home, "airflow.db")
        self.port = bench.free_port()
        # Creating the database is setup, as for the others; it is not the measured start.
        r = subprocess.run([AIRFLOW, "db", "migrate"], env=self.env(), cwd=self.home,
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise RuntimeError(f"airflow db migrate: {r.stdout[-500:]} {r.stderr[-500:]}")

    def env(self):
        env = {
            "PATH": os.path.dirname(AIRFLOW) + ":" + PATH,
            "HOME": self.home,
            "AIRFLOW_HOME": self.home,
            "AIRFLOW__CORE__DAGS_FOLDER": self.dags,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "32",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            # The Execution API its workers report to. Unset, 3.3.2 derives it from
            # [api] base_url and falls back to http://localhost:8080/execution/, so on any
            # other port every task failed before it ran (httpx ConnectError in the
            # scheduler's log, the task's own log stopped at "Pre Execute").
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.port}/execution/",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        }
        return env

    def argv(self):
        return [AIRFLOW, "standalone"]

    def health_url(self):
        return self.base() + "api/v2/monitor/health"

    def ready(self):
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                path = os.path.join(self.home, "simple_auth_manager_passwords.json.generated")
                with open(path) as f:
                    pw = json.load(f)["admin"]
                status, body = bench.http("POST", self.base() + "auth/token",
                                          {"username": "admin", "password": pw})
                if status in (200, 201):
                    self.token = body["access_token"]
                    found = [bench.http("GET", f"{self.base()}api/v2/dags/{d}", token=self.token)[0]
                             for d in SHAPES]
                    if all(s == 200 for s in found):
                        return True
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(1)
        return False



# ---------------------------------------------------------------- measuring


def chain_gaps(rows):
    """Downstream start - upstream end (ms) for each link of a chain whose two tasks both
    succeeded: a task marked upstream_failed or skipped has times of its own that say
    nothing about scheduling, so it is left out (and the run's state goes in the notes)."""
    rows = sorted(rows, key=lambda r: r[0])
    return [(d[1] - u[2]) * 1000 for u, d in zip(rows, rows[1:])
            if u[3] == d[3] == "success" and u[2] and d[1]]


def measure(peer, args, out):
    """Fills `out` with the figures of one peer, or {'skipped': why}; what was measured
    stays in `out` if a run is interrupted."""
    note = out.setdefault("notes", []).append
    try:
        peer.setup()
    except Exception as e:  # a peer that cannot be set up is skipped, with the reason
        peer.stop()
        out["skipped"] = f"setup failed: {e}"
        return
    except BaseException:  # Ctrl-C or SIGTERM while setup had the peer running
        peer.stop()
        raise
    try:
        took = peer.cold_start()
        if took is None:
            out["skipped"] = f"did not answer its health check within {args.start_timeout:.0f} s"
            return
        out["cold_ms"] = took * 1000
        if not peer.ready():
            out["skipped"] = "its DAGs were not loaded within the bound"
            return
        time.sleep(SETTLE)
        out["idle_kib"] = tree_pss_kib(peer.proc.pid)
        out["procs"] = len(tree(peer.proc.pid))
        log(f"{peer.name}: cold start {out['cold_ms']:.0f} ms, idle {bench.mb(out['idle_kib']):.1f} MB "
            f"over {out['procs']} processes")
        reps = args.reps if peer.name != "airflow" else 1
        for shape in ("chain10", "chain100"):
            out[shape] = gaps = []
            n = SHAPES[shape][1]
            for rep in range(reps):
                key = peer.trigger(shape)
                t0 = time.monotonic()
                state = peer.wait_run(key, args.run_timeout)
                rows = peer.times(key)
                gaps += chain_gaps(rows)
                ok = sum(1 for r in rows if r[3] == "success")
                log(f"{peer.name}: {shape} run {rep + 1}: {state}, {ok} of {n} succeeded "
                    f"in {time.monotonic() - t0:.0f} s")
                if state != "success":
                    note(f"{shape} run {rep + 1}: {state}, {ok} of {n} tasks succeeded")
                    if state == "timeout":
                        break  # a run still going would share the machine with the next
            if gaps:
                log(f"{peer.name}: {shape} gap median {bench.median(gaps):.2f} ms over {len(gaps)} gaps")
        out["fanout"] = rates = []
        n = SHAPES["fanout"][1]
        for rep in range(reps):
            key = peer.trigger("fanout")
            state = peer.wait_run(key, args.run_timeout)
            done = [r for r in peer.times(key) if r[3] == "success" and r[1] and r[2]]
            if done:
                span = max(r[2] for r in done) - min(r[1] for r in done)
                rates.append(len(done) / max(span, 1e-9))
            log(f"{peer.name}: fan-out run {rep + 1}: {rates[-1] if done else 0:.1f} tasks/s, "
                f"{len(done)} of {n} done ({state})")
            if state != "success":
                note(f"fan-out run {rep + 1}: {state} with {len(done)} of {n} tasks done; "
                     f"its throughput is over those, first start to last end")
                out["fanout_partial"] = (len(done), n, args.run_timeout)
                if state == "timeout":
                    break
    except Exception as e:
        note(f"failed: {e}")
    finally:
        peer.stop()


def table(res):
    names = [n for n in ("updraft", "ironflow", "airflow") if n in res]
    label = {"updraft": "updraft", "ironflow": "IronFlow 0.3.0", "airflow": "Airflow 3.3.2"}
    figures = [
        ("chain of 10: median gap", "chain10", lambda g: bench.median(g), "ms", False),
        ("chain of 10: p90 gap", "chain10", lambda g: bench.percentile(g, 90), "ms", False),
        ("chain of 100: median gap", "chain100", lambda g: bench.median(g), "ms", False),
        ("chain of 100: p99 gap", "chain100", lambda g: bench.percentile(g, 99), "ms", False),
        ("fan-out of 1,000: throughput", "fanout", lambda r: bench.median(r), "tasks/s", True),
        ("cold start (→ health 200)", "cold_ms", lambda x: x, "ms", False),
        ("idle memory (PSS, whole tree)", "idle_kib", lambda k: bench.mb(k), "MB", False),
    ]
    head = ["figure"] + [label[n] for n in names] + \
        [f"updraft vs {label[n]}" for n in names if n != "updraft"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for title, key, f, unit, higher in figures:
        vals = {}
        for n in names:
            r = res[n]
            x = r.get(key)
            if "skipped" in r or x is None or x == []:
                vals[n] = None
            else:
                vals[n] = f(x)
        row = [title]
        for n in names:
            v = vals[n]
            cell = "skipped" if "skipped" in res[n] else "—" if v is None else \
                f"{v:.2f} {unit}" if v < 10 else f"{v:.0f} {unit}"
            if key == "fanout" and "fanout_partial" in res[n]:
                done, total, bound = res[n]["fanout_partial"]
                cell += f" ({done} of {total} done in the {bound:.0f} s bound)"
            row.append(cell)
        for n in names:
            if n == "updraft":
                continue
            u, p = vals.get("updraft"), vals[n]
            if u is None or p is None or u == 0 or p == 0:
                row.append("—")
                continue
            ratio = u / p if higher else p / u
            row.append(f"{ratio:.2f}× " + ("ahead" if ratio > 1 else "behind"))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default="updraft,ironflow,airflow")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--start-timeout", type=float, default=60.0)
    p.add_argument("--run-timeout", type=float, default=300.0)
    p.add_argument("--write-dags", action="store_true", help="regenerate bench/peers/ and exit")
    p.add_argument("--keep", action="store_true")
    a = p.parse_args()
    if a.write_dags:
        write_dags()
        return
    become_subreaper()
    signal.signal(signal.SIGTERM, on_stop_signal)
    signal.signal(signal.SIGHUP, on_stop_signal)
    root = tempfile.mkdtemp(prefix="updraft-peers-")
    res = {}
    load0 = os.getloadavg()
    t0 = time.monotonic()
    interrupted = None
    try:
        for cls in (Updraft, IronFlow, Airflow):
            if cls.name not in a.only.split(","):
                continue
            log(f"{cls.name} ...")
            res[cls.name] = {}
            measure(cls(root, a), a, res[cls.name])
            if "skipped" in res[cls.name]:
                log(f"{cls.name}: skipped: {res[cls.name]['skipped']}")
    except (KeyboardInterrupt, Stop) as e:
        interrupted = type(e).__name__ if isinstance(e, KeyboardInterrupt) else str(e)
        log(f"interrupted ({interrupted}): every peer stopped; the table holds what was measured")
    finally:
        sweep()
        if a.keep:
            log(f"homes kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(f"updraft beside its peers, {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, "
          f"{os.cpu_count()} CPUs, load {load0[0]:.2f} before and {os.getloadavg()[0]:.2f} after; "
          f"{a.reps} run{'s' if a.reps != 1 else ''} of each chain and fan-out (Airflow's once); "
          f"{time.monotonic() - t0:.0f} s in all")
    print(table(res))
    if interrupted:
        last = list(res)[-1] if res else "the first peer"
        print(f"- interrupted by {interrupted} while measuring {last}: its figures are partial")
    for n, r in res.items():
        if "skipped" in r:
            print(f"- {n}: skipped: {r['skipped']}")
        for note in r.get("notes", []):
            print(f"- {n}: {note}")
    print("- ratios: how many times better updraft's figure is (peer/updraft for times and "
          "memory, updraft/peer for throughput); IronFlow runs a fan-out with no parallelism "
          "bound, updraft and Airflow at parallelism 32")
    if interrupted:
        sys.exit(130 if interrupted == "KeyboardInterrupt" else 143)


if __name__ == "__main__":
    main()
