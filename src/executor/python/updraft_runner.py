"""updraft's Python task runner: runs one try of a PythonOperator or TaskFlow task.

The updraft binary ships this file and starts it with the interpreter the user has, as
`python updraft_runner.py SPEC`. SPEC is a JSON file the supervisor wrote: the callable,
its arguments (already rendered), the run's context and where to write the outcome. All
data goes through the Execution API with the try's token (UPDRAFT_TASK_TOKEN), never the
database. The supervisor owns the task's state; this reports only what the callable did.
"""

import sys

import _updraft_task

if __name__ == "__main__":
    sys.exit(_updraft_task.main(sys.argv[1:]))
