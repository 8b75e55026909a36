"""`airflow.utils.context.Context`: the type of the context a callable gets (a dict)."""

from typing import Any, Dict

Context = Dict[str, Any]
