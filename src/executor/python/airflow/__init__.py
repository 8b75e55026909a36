"""updraft's stand-in for the names of Apache Airflow that task callables import.

updraft puts this package on sys.path only when the interpreter has no `airflow` of its
own. It provides exactly the names listed in PROVIDED, with Airflow's behaviour, on top
of the running try (see _updraft_task); importing anything else from `airflow` fails
with an ImportError that says what is provided.
"""

import importlib.abc
import sys

PROVIDED = (
    "airflow.sdk: get_current_context, Variable, Connection, Param, PokeReturnValue, task; "
    "airflow.exceptions: AirflowException, AirflowSkipException, AirflowFailException, "
    "AirflowSensorTimeout; "
    "airflow.models: Variable; airflow.utils.context: Context; "
    "airflow.operators.python: get_current_context"
)
_MODULES = {
    "airflow.sdk",
    "airflow.exceptions",
    "airflow.models",
    "airflow.utils",
    "airflow.utils.context",
    "airflow.operators",
    "airflow.operators.python",
}


def _refuse(name):
    return ImportError(
        f"updraft runs this task without Apache Airflow installed, and `{name}` is not among "
        f"the Airflow names updraft provides ({PROVIDED}). Install apache-airflow into the "
        "interpreter updraft uses ([core] python_interpreter) to use the rest."
    )


class _Refuser(importlib.abc.MetaPathFinder):
    """Turns `import airflow.anything_else` into the ImportError above."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname.startswith("airflow.") and fullname not in _MODULES:
            raise _refuse(fullname)
        return None


sys.meta_path.append(_Refuser())


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    raise _refuse(f"airflow.{name}")
