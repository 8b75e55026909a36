"""Airflow's task exceptions: skip the task, or fail it without retrying."""


class AirflowException(Exception):
    """The base of Airflow's exceptions; raising it fails the try (retries apply)."""


class AirflowSkipException(AirflowException):
    """Raise to mark the task skipped."""


class AirflowFailException(AirflowException):
    """Raise to fail the task at once, without using its retries."""


class AirflowSensorTimeout(AirflowException):
    """Raised when a sensor's `timeout` passes; fails the task without retrying."""


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    import airflow

    raise airflow._refuse(f"airflow.exceptions.{name}")
