"""Ask Apache Airflow 3.3.2 + dag-factory 1.1.0 which DAG-file keys they accept.

Each case is a small dag-factory file (and, for some, a `defaults.yml` beside it). It is
loaded as a user's loader file would load it (`load_yaml_dags` with the file's folder as
`defaults_config_path`), and the verdict printed: `ok` when the DAG builds, else `error`
and the exception. `src/dagfile.rs`'s test `key_verdicts_match_airflow` holds the same
cases and the verdicts this printed; run this again when the pinned versions change.

Usage: .venv-compat/bin/python tests/compat/key_verdicts.py
"""

import os
import sys
import tempfile
import textwrap
from pathlib import Path

TASK = """
  tasks:
    - task_id: t
      operator: airflow.providers.standard.operators.bash.BashOperator
      bash_command: echo hi
"""

# Three levels of defaults: the DAG file is in a/b/, each level sets what is named after it.
LEVELS = {
    "defaults.yml": "description: root\nschedule: '@daily'\ncatchup: true\ntags: [zeta, root]\n"
    "default_args: {owner: root, retries: 1, pool: root_pool, env: {ROOT: '1'}, start_date: 2024-01-01}\n",
    "a/defaults.yaml": "description: a\ntags: [alpha]\ndefault_args: {owner: a, env: {A: '1'}}\n",
    "a/b/defaults.yml": "tags: [beta, root]\ndefault_args: {retries: 3}\n",
    "a/b/defaults.yaml": "description: ignored, defaults.yml wins\n",
}

# name -> (DAG file text, defaults.yml text, or {path: text} for files at several levels)
CASES = {
    "plain": ("d:\n  schedule: '@daily'\n" + TASK, None),
    "schedule_interval": ("d:\n  schedule_interval: '@daily'\n" + TASK, None),
    "schedule_interval_null": ("d:\n  schedule_interval: null\n" + TASK, None),
    "schedule_interval_in_default": ("default:\n  schedule_interval: '@daily'\nd:\n" + TASK, None),
    "schedule_interval_in_defaults_yml": ("d:\n" + TASK, "schedule_interval: '@daily'\n"),
    "default_view": ("d:\n  default_view: grid\n" + TASK, None),
    "orientation": ("d:\n  orientation: LR\n" + TASK, None),
    "unknown_dag_key": ("d:\n  no_such_key: 1\n" + TASK, None),
    "concurrency": ("d:\n  concurrency: 2\n" + TASK, None),
    "sla_miss_callback": ("d:\n  sla_miss_callback: x.y\n" + TASK, None),
    "is_paused_upon_creation": ("d:\n  is_paused_upon_creation: true\n" + TASK, None),
    "access_control": ("d:\n  access_control: {}\n" + TASK, None),
    "timetable": ("d:\n  timetable: x\n" + TASK, None),
    "render_template_as_native_obj_bool": ("d:\n  render_template_as_native_obj: true\n" + TASK, None),
    "render_template_as_native_obj_str": ("d:\n  render_template_as_native_obj: 'yes'\n" + TASK, None),
    "template_searchpath_relative": ("d:\n  template_searchpath: sql\n" + TASK, None),
    "doc_md_file_path_relative": ("d:\n  doc_md_file_path: README.md\n" + TASK, None),
    "doc_md_file_path_missing": ("d:\n  doc_md_file_path: /no/such/file.md\n" + TASK, None),
    "unknown_default_arg": ("d:\n  default_args: {no_such_arg: 1}\n" + TASK, None),
    "unknown_task_key": ("d:\n" + TASK + "      no_such_key: 1\n", None),
    "task_sla": ("d:\n" + TASK + "      sla: 60\n", None),
    "task_provide_context": ("d:\n" + TASK + "      provide_context: true\n", None),
    "task_task_concurrency": ("d:\n" + TASK + "      task_concurrency: 1\n", None),
    "task_max_active_tis_per_dag": ("d:\n" + TASK + "      max_active_tis_per_dag: 1\n", None),
    "task_doc_md": ("d:\n" + TASK + "      doc_md: hi\n", None),
    "task_group_unknown_key": (
        "d:\n  task_groups: [{group_name: g, no_such_key: 1}]\n" + TASK + "      task_group_name: g\n",
        None,
    ),
    "empty_defaults_yml": ("d:\n" + TASK, ""),
    "defaults_yml_list": ("d:\n" + TASK, "- a\n"),
    "defaults_yml_default_args_list": ("d:\n" + TASK, "default_args: [a]\n"),
    "defaults_yml_tags_string": ("d:\n" + TASK, "tags: x\n"),
    "defaults_yml_unknown_key": ("d:\n" + TASK, "no_such_key: 1\n"),
    "three_levels": ("d:\n" + TASK, LEVELS),
    "three_levels_own_keys_win": (
        "d:\n  description: own\n  tags: [own]\n  default_args: {owner: own}\n" + TASK,
        LEVELS,
    ),
    "three_levels_under_default_block": (
        "default:\n  description: block\n  schedule: '@hourly'\n"
        "  default_args: {owner: block, env: {BLOCK: '1'}}\nd:\n" + TASK,
        LEVELS,
    ),
    "unset_variable": ("d:\n  description: $NO_SUCH_VARIABLE_HERE\n" + TASK, None),
}


def main() -> int:
    sys.stdout.reconfigure(line_buffering=True)
    tmp = Path(tempfile.mkdtemp(prefix="key-verdicts-"))
    os.environ.update(
        AIRFLOW_HOME=str(tmp / "airflow"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__LOGGING__LOGGING_LEVEL="CRITICAL",
        AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY="False",
        DO_NOT_TRACK="1",
        SCARF_NO_ANALYTICS="1",
    )
    import warnings

    warnings.simplefilter("ignore")
    import dagfactory

    for name, (text, defaults) in CASES.items():
        folder = tmp / name
        if isinstance(defaults, dict):
            for path, content in defaults.items():
                (folder / path).parent.mkdir(parents=True, exist_ok=True)
                (folder / path).write_text(content)
            dag_file = folder / "a" / "b" / "dag.yml"
        else:
            folder.mkdir()
            if defaults is not None:
                (folder / "defaults.yml").write_text(defaults)
            dag_file = folder / "dag.yml"
        dag_file.write_text(textwrap.dedent(text))
        found = {}
        try:
            dagfactory.load_yaml_dags(
                globals_dict=found,
                config_filepath=str(dag_file),
                defaults_config_path=str(folder),
            )
            dag = found["d"]
            t = dag.get_task("t")
            print(
                f"{name}: ok description={dag.description!r} schedule={getattr(dag.timetable, 'expression', None)!r}"
                f" catchup={dag.catchup} tags={sorted(dag.tags)} owner={t.owner!r}"
                f" retries={t.retries} pool={t.pool!r} env={t.env}"
            )
        except Exception as e:  # noqa: BLE001 - every failure is a verdict
            message = str(e).strip().splitlines()[0] if str(e).strip() else ""
            print(f"{name}: error {type(e).__name__}: {message[:160]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
