"""`airflow.operators.python.get_current_context`, the Airflow 2 path (still importable in
Airflow 3.3) that many callables use."""

from airflow.sdk import get_current_context  # noqa: F401


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    import airflow

    raise airflow._refuse(f"airflow.operators.python.{name}")
