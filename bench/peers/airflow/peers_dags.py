"""The bench-peers shapes for Apache Airflow: a 10- and a 100-task chain of `true`, and
a fan-out of 1,000 `true` tasks at max_active_tasks 32 (bench/peers.py runs them)."""

import datetime

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, chain

START = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)

for n in (10, 100):
    with DAG(f"chain{n}", schedule=None, start_date=START, catchup=False) as dag:
        chain(*[BashOperator(task_id=f"c{i:04d}", bash_command="true") for i in range(n)])
    globals()[f"chain{n}"] = dag

with DAG("fanout", schedule=None, start_date=START, catchup=False, max_active_tasks=32) as fanout:
    for i in range(1000):
        BashOperator(task_id=f"t{i:05d}", bash_command="true")
