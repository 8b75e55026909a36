"""Check that updraft reads dag-factory YAML files as Apache Airflow 3 does.

For every YAML file in the folders named on the command line, real Airflow loads it
through dag-factory, and updraft loads the same folder; the DAG ids, the task ids and
each task's upstream task ids must match, and neither side may report an import error.
Airflow gets one loader file per YAML file, handed to its own DagBag as the dag
processor would, so its validation (cycles, duplicate DAG ids) runs too; DagBag only
builds DAG objects, so no database is needed. updraft is asked through its CLI:
`dags list --output json`, `dags list-import-errors --output json`, `tasks list DAG_ID`
and `dags show DAG_ID --output json`.

A file that Airflow refuses passes when updraft refuses it too (the same verdict), and
fails when updraft loads it. `defaults.yml`/`defaults.yaml` are settings, not DAG files,
on both sides. Both sides get `CONFIG_ROOT_DIR` set to the folder being checked (as
dag-factory's own examples expect) and Python imports from that folder (its helpers).

Files in EXPECTED_TO_FAIL need what updraft does not have yet; each is listed with the
reason. They print `xfail` and do not fail the run, unless they pass: then the run fails
(`XPASS`), so the list is shortened as soon as a file starts to work.

Usage: check_dagfactory.py --updraft target/debug/updraft FOLDER...

It prints one line per file, then `N passed, N expected to fail, N failed`, and exits 1
on any failure. A folder with no YAML file counts as one failed file (a check that checks
nothing must not pass), and so do DAGs or import errors that updraft lists for no checked
file.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# dag-factory reads these as settings, not as DAG files.
DEFAULTS_FILES = {"defaults.yml", "defaults.yaml"}
YAML_SUFFIXES = {".yml", ".yaml"}
# Files (relative to this folder) that Airflow loads but that need what updraft does not do
# yet, with the reason. Later issues shrink this list; the check fails when a listed file
# starts to pass. Files Airflow itself refuses here (they need the http or kubernetes
# providers, or the Airflow 2 `airflow.datasets` module; or are invalid) are not listed:
# updraft must refuse them too, and does (for pandas see CALLABLES_IMPORT_MISSING_MODULES).
# Dynamic task mapping works for BashOperator tasks; `expand`/`partial` on a Python task
# is an import error until mapping over Python arguments and results lands.
EXPECTED_TO_FAIL = {
    "dagfactory-dev/airflow3/example_custom_py_object_dag.yml": "KubernetesPodOperator and Python objects",
    "dagfactory-dev/airflow3/example_customize_operator.yml": "custom operators (Python classes)",
    # updraft refuses user_defined_macros on purpose (see README): it cannot call them.
    "dagfactory-dev/airflow3/example_user_defined_macros.yml": "user_defined_macros (Python callables)",
}
# Files Airflow refuses only because a module their callables import at the top (pandas),
# or a provider's notifier they name as a callback (Slack), is not in the oracle's
# virtualenv. updraft imports a callable only when its task runs (a DAG with Python tasks
# loads even without an interpreter) and leaves out provider notifiers with a warning, so
# it loads them: the verdicts differ by design, and updraft must load them without an error.
CALLABLES_IMPORT_MISSING_MODULES = {
    "dagfactory-dev/comparison/example_hackernews_dagfactory.yml",
    "dagfactory-dev/comparison/example_pypi_stats_dagfactory.yml",
    "dagfactory-dev/example_callbacks.yml",
}
# Files naming an operator that Airflow 3's provider no longer has, which updraft keeps
# running because users' DAG files still name it (file -> the class and what removed it).
# Airflow refuses them with an ImportError naming the class; updraft must load them.
REMOVED_FROM_PROVIDERS = {
    "dagfactory-dev/example_simple_http_operator_task.yml": (
        "SimpleHttpOperator",
        "apache-airflow-providers-http 5.0 removed SimpleHttpOperator",
    ),
}
# Generous: one CLI call parses the whole folder on a shared 2-core machine.
UPDRAFT_TIMEOUT_SECS = 120

LOADER = """\
# Loads {yaml} through dag-factory, as a user's dags folder would.
import dagfactory

dagfactory.load_yaml_dags(
    globals_dict=globals(),
    config_filepath={yaml!r},
    defaults_config_path={folder!r},
)
"""


class Failure(Exception):
    """A problem that stops one file or folder from being compared."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updraft", required=True, help="path to the updraft binary")
    parser.add_argument("folders", nargs="+", help="folders of dag-factory YAML files")
    args = parser.parse_args()
    # Keeps our lines in order with anything Airflow or updraft writes to stderr.
    sys.stdout.reconfigure(line_buffering=True)
    updraft = str(Path(args.updraft).resolve())

    with tempfile.TemporaryDirectory(prefix="check-dagfactory-") as tmp:
        tmp = Path(tmp)
        # Airflow reads its config when first imported, so this comes before any import.
        os.environ.update(
            AIRFLOW_HOME=str(tmp / "airflow"),
            AIRFLOW__CORE__DAGS_FOLDER=str(tmp / "airflow" / "dags"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__LOGGING__LOGGING_LEVEL="CRITICAL",  # errors are printed below instead
            AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY="False",
            DO_NOT_TRACK="1",
            SCARF_NO_ANALYTICS="1",
        )
        passed = failed = xfailed = 0
        for n, folder in enumerate(args.folders):
            folder = Path(folder).resolve()
            files = yaml_files(folder)
            if not files:
                print(f"FAIL {display(folder)}: no YAML files to check")
                failed += 1
                continue
            # dag-factory expands variables when it reads a file, so this is read per folder.
            os.environ["CONFIG_ROOT_DIR"] = str(folder)
            airflow = airflow_dags(folder, files, tmp / f"loaders-{n}")
            try:
                listed, errors = updraft_dags(updraft, folder, tmp / f"updraft-home-{n}")
            except Failure as e:
                print(f"FAIL {display(folder)}: updraft could not list its DAGs")
                print(indent(str(e)))
                for path in files:
                    print(f"FAIL {display(path)}: not compared")
                failed += len(files)
                continue
            by_file = attribute(listed, airflow)
            for path in files:
                own_errors = errors.pop(path, [])
                dags = by_file.pop(path, {})
                name = display(path)
                reason = EXPECTED_TO_FAIL.get(expected_key(path))
                if (
                    isinstance(airflow[path], Failure)
                    and expected_key(path) in CALLABLES_IMPORT_MISSING_MODULES
                    and "ModuleNotFoundError" in str(airflow[path])
                ):
                    problems = own_errors if dags else own_errors + ["updraft lists no DAG of it"]
                    verdict = "Airflow lacks a module its callables import; updraft loads it"
                elif (
                    isinstance(airflow[path], Failure)
                    and expected_key(path) in REMOVED_FROM_PROVIDERS
                    and REMOVED_FROM_PROVIDERS[expected_key(path)][0] in str(airflow[path])
                ):
                    problems = own_errors if dags else own_errors + ["updraft lists no DAG of it"]
                    verdict = REMOVED_FROM_PROVIDERS[expected_key(path)][1] + "; updraft runs it"
                elif isinstance(airflow[path], Failure):
                    # The same verdict: both refuse the file.
                    problems = [] if own_errors and not dags else [
                        f"{airflow[path]}\nbut updraft loads it: {sorted(dags)}"
                    ]
                    verdict = "both refuse it"
                else:
                    problems = own_errors + compare(airflow[path], dags)
                    verdict = ""
                if reason and problems:
                    print(f"xfail {name} ({reason})")
                    xfailed += 1
                elif reason:
                    print(f"XPASS {name}: it passes now; remove it from EXPECTED_TO_FAIL")
                    failed += 1
                elif problems:
                    print(f"FAIL {name}")
                    print(indent("\n".join(problems)))
                    failed += 1
                elif verdict:
                    print(f"ok   {name} ({verdict})")
                    passed += 1
                else:
                    tasks = sum(len(t) for t in airflow[path].values())
                    print(f"ok   {name} ({len(airflow[path])} DAGs, {tasks} tasks)")
                    passed += 1
            if stray := by_file.get(None):
                stray = sorted(stray)
                print(f"FAIL {display(folder)}: updraft lists DAGs of no checked file: {stray}")
                failed += 1
            if stray := [e for errs in errors.values() for e in errs]:
                print(f"FAIL {display(folder)}: updraft import errors in no checked file")
                print(indent("\n".join(stray)))
                failed += 1
    print(f"{passed} passed, {xfailed} expected to fail, {failed} failed")
    return 1 if failed else 0


def expected_key(path: Path) -> str:
    """How EXPECTED_TO_FAIL names `path`: relative to this script's folder."""
    try:
        return path.relative_to(Path(__file__).resolve().parent).as_posix()
    except ValueError:
        return str(path)


def yaml_files(folder: Path) -> list[Path]:
    """The DAG files under `folder`, in a stable order."""
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix in YAML_SUFFIXES and p.name not in DEFAULTS_FILES and p.is_file()
    )


def airflow_dags(folder: Path, files: list[Path], loader_dir: Path) -> dict:
    """Maps each YAML file to `{dag_id: {task_id: upstreams}}`, or to a Failure."""
    from airflow.dag_processing.dagbag import DagBag

    # The folder's Python helpers (callables, custom operators) import as top-level modules,
    # as in dag-factory's own development setup.
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    loader_dir.mkdir(parents=True)
    loaders = {}
    for i, path in enumerate(files):
        loader = loader_dir / f"dagfactory_{i:03}.py"
        loader.write_text(LOADER.format(yaml=str(path), folder=str(folder)))
        loaders[str(loader)] = path
    # One bag per folder, as Airflow would parse it: a DAG id used twice is an error.
    bag = DagBag(dag_folder=str(loader_dir), safe_mode=False)
    result = {path: {} for path in files}
    for loader, error in bag.import_errors.items():
        for other, path in loaders.items():
            error = error.replace(other, str(path))
        result[loaders[loader]] = Failure(f"Airflow import error: {last_exception(error)}")
    for dag in bag.dags.values():
        dags = result[loaders[dag.fileloc]]
        if not isinstance(dags, Failure):
            dags[dag.dag_id] = {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks}
    return result


def updraft_dags(updraft: str, folder: Path, home: Path) -> tuple[dict, dict]:
    """What updraft reads in `folder`: each DAG id mapped to `(fileloc, {task_id:
    upstreams})`, or to a Failure; and each file it could not load mapped to its errors."""
    # Only our settings: updraft also reads AIRFLOW__* variables, like the ones set above.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        UPDRAFT_HOME=str(home),
        UPDRAFT__CORE__DAGS_FOLDER=str(folder),
        UPDRAFT__CORE__LOAD_EXAMPLES="False",
    )

    def cli(*args: str, ok: tuple = (0,)) -> subprocess.CompletedProcess:
        command = "updraft " + " ".join(args)
        try:
            done = subprocess.run(
                [updraft, *args],
                env=env,
                capture_output=True,
                text=True,
                timeout=UPDRAFT_TIMEOUT_SECS,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise Failure(f"`{command}`: {e}") from None
        if done.returncode not in ok:
            raise Failure(f"`{command}` exited {done.returncode}:\n{done.stderr.rstrip()}")
        return done

    def rows(*args: str, keys: tuple, ok: tuple = (0,)) -> list[tuple]:
        """The `keys` of each object in the JSON list that `updraft ARGS` prints."""
        done = cli(*args, ok=ok)
        try:
            return [tuple(row.get(k) for k in keys) for row in json.loads(done.stdout)]
        except (json.JSONDecodeError, AttributeError, TypeError) as e:
            printed = "\n".join(t.rstrip() for t in (done.stdout[:500], done.stderr) if t.strip())
            raise Failure(
                f"`updraft {' '.join(args)}` printed no JSON list ({e!r}):\n{printed}"
            ) from None

    dag_ids = rows("dags", "list", "--output", "json", keys=("dag_id", "fileloc"))
    # Like Airflow's, this exits 1 when it lists any error.
    import_errors = ("dags", "list-import-errors", "--output", "json")
    errors = {}
    for filepath, line, error in rows(
        *import_errors, keys=("filepath", "line", "error"), ok=(0, 1)
    ):
        path = Path(folder, filepath or "").resolve()
        error = str(error).rstrip()
        if path.name not in error:  # updraft's errors usually say where already
            error = f"{display(path)}:{line}: {error}" if line else f"{display(path)}: {error}"
        errors.setdefault(path, []).append(f"updraft import error: {error}")
    result = {}
    for dag_id, fileloc in dag_ids:
        try:
            tasks = cli("tasks", "list", dag_id).stdout.split()
            shown = json.loads(cli("dags", "show", dag_id, "--output", "json").stdout)
            dag = {t["task_id"]: sorted(t["upstream_task_ids"]) for t in shown["tasks"]}
            if tasks != sorted(dag):
                raise Failure(f"`tasks list` printed {tasks}, `dags show` has {sorted(dag)}")
        except (Failure, json.JSONDecodeError, KeyError, TypeError) as e:
            detail = e if isinstance(e, Failure) else repr(e)
            dag = Failure(f"updraft DAG {dag_id}: {detail}")
        result[dag_id] = (Path(folder, fileloc).resolve() if fileloc else None, dag)
    return result, errors


def attribute(updraft: dict, airflow: dict) -> dict:
    """Groups updraft's DAGs by file: the one its fileloc names, else the one Airflow
    found that DAG id in, else None."""
    by_file: dict = {}
    for dag_id, (fileloc, dag) in updraft.items():
        if fileloc not in airflow:
            found = (p for p, dags in airflow.items() if isinstance(dags, dict) and dag_id in dags)
            fileloc = next(found, None)
        by_file.setdefault(fileloc, {})[dag_id] = dag
    return by_file


def compare(airflow: dict | Failure, updraft: dict) -> list[str]:
    """Differences between two `{dag_id: {task_id: upstreams}}`, as readable lines."""
    if isinstance(airflow, Failure):
        return [str(airflow)]
    problems = []
    for dag_id in sorted(airflow.keys() | updraft.keys()):
        ours, theirs = airflow.get(dag_id), updraft.get(dag_id)
        if theirs is None:
            problems.append(f"DAG {dag_id}: Airflow has it, updraft does not")
        elif ours is None:
            problems.append(f"DAG {dag_id}: updraft has it, Airflow does not")
        elif isinstance(theirs, Failure):
            problems.append(str(theirs))
        else:
            for task_id in sorted(ours.keys() | theirs.keys()):
                a, u = ours.get(task_id), theirs.get(task_id)
                task = f"DAG {dag_id} task {task_id}"
                if u is None:
                    problems.append(f"{task}: Airflow has it, updraft does not")
                elif a is None:
                    problems.append(f"{task}: updraft has it, Airflow does not")
                elif a != u:
                    problems.append(f"{task} upstream: Airflow {a}, updraft {u}")
    return problems


def last_exception(error: str) -> str:
    """The exception a traceback ends with, or the whole text if it is none."""
    lines = error.rstrip().splitlines()
    frames = [i for i, line in enumerate(lines) if line.startswith(" ")]
    return "\n".join(lines[frames[-1] + 1 :] if frames else lines)


def display(path: Path) -> str:
    """`path` relative to the working directory when it is inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


if __name__ == "__main__":
    sys.exit(main())
