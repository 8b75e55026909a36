#!/usr/bin/env python3
"""Lists the official client's operations that a running updraft does not route.

The client's generated API modules name every operation's method and path; the server's
`{base}/openapi.json` is generated from its route table. An operation missing from the
server answers 404 "API route not found" (or 405 where another method shares the path)
to a script that calls it. This is a report, not a check: it always exits 0.
"""

import argparse
import json
import pathlib
import re
import urllib.request

import airflow_client.client.api as client_api

OP = re.compile(
    r"def _(\w+)_serialize\(.*?method='(\w+)',\s*resource_path='([^']+)'", re.S)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base", required=True, help="the server's URL with its prefix")
    args = p.parse_args()
    with urllib.request.urlopen(f"{args.base.rstrip('/')}/openapi.json", timeout=30) as res:
        doc = json.loads(res.read())
    # Parameter names differ at times ({run_id} vs {dag_run_id}); only the shape counts.
    shape = lambda path: re.sub(r"\{[^}]+\}", "{}", path)
    served = {(m.upper(), shape(path)) for path, ops in doc["paths"].items() for m in ops}
    ops = []
    for module in sorted(pathlib.Path(client_api.__file__).parent.glob("*_api.py")):
        for name, method, path in OP.findall(module.read_text()):
            ops.append((path, method, f"{module.stem}.{name}"))
    absent = [o for o in sorted(ops) if (o[1], shape(o[0])) not in served]
    for path, method, name in absent:
        print(f"absent {method:6} {path}  ({name})")
    print(f"{len(ops) - len(absent)} of {len(ops)} client operations routed, {len(absent)} absent")


if __name__ == "__main__":
    main()
