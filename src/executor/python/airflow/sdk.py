"""The part of Airflow's Task SDK (`airflow.sdk`) that task callables use."""

import json

import _updraft_task as _rt

_NOTSET = object()


Asset = _rt.Asset
AssetAlias = _rt.AssetAlias


def get_current_context():
    """The running try's context, as Airflow hands it to callables."""
    if _rt.CONTEXT is None:
        raise RuntimeError("Current context was requested but no context was found! Are you running within an Airflow task?")
    return _rt.CONTEXT


class Variable:
    """Variables, read through the Execution API with the try's token."""

    @staticmethod
    def get(key, default=_NOTSET, deserialize_json=False):
        try:
            value = _rt.CLIENT.variable(key)
        except _rt.NotFound:
            if default is _NOTSET:
                raise KeyError(f"Variable {key} does not exist") from None
            return default
        return json.loads(value) if deserialize_json else value

    @staticmethod
    def set(key, value, description=None, serialize_json=False):
        text = json.dumps(value) if serialize_json else str(value)
        _rt.CLIENT.set_variable(key, text, description)


class Connection(_rt.ConnectionValue):
    """Connections, read through the Execution API with the try's token."""

    @classmethod
    def get(cls, conn_id):
        return _rt.get_connection(conn_id)


class Param:
    """A DAG param's default and schema; callables see params as plain values."""

    def __init__(self, default=None, description=None, **schema):
        self.value = default
        self.description = description
        self.schema = schema

    def resolve(self, value=_NOTSET, suppress_exception=False):
        return self.value if value is _NOTSET else value


class _Task:
    """`@task` and its forms: the function itself, as updraft runs it directly."""

    def __call__(self, python_callable=None, **kwargs):
        if callable(python_callable):
            return python_callable
        return lambda f: f

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return self


task = _Task()


class PokeReturnValue:
    """What a sensor's callable may return: done or not, and the XCom value when done."""

    def __init__(self, is_done, xcom_value=None):
        self.is_done = is_done
        self.xcom_value = xcom_value

    def __bool__(self):
        return self.is_done


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    import airflow

    raise airflow._refuse(f"airflow.sdk.{name}")
