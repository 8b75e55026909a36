"""`airflow.operators`: only `airflow.operators.python`, for its `get_current_context`."""
