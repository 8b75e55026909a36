"""`airflow.models`: only Variable, as callables written for Airflow 2 import it."""

from airflow.sdk import Variable  # noqa: F401


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    import airflow

    raise airflow._refuse(f"airflow.models.{name}")
