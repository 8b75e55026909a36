"""`airflow.utils`: only `airflow.utils.context`."""
