"""What updraft_runner.py does, as a module the `airflow` compatibility package can import.

It holds the running try: its Execution API client and its context, so that
`get_current_context()`, `Variable.get()` and `ti.xcom_pull()` reach the same try.
"""

import datetime as _dt
import os
import sys

# What a try costs beyond the interpreter's own start is mostly imports, so the path every
# try takes imports nothing it can do without (measured with `python -X importtime` and
# the CPU time of 50 runs): not urllib/http.client/ssl, inspect, traceback (tens of ms);
# not `json` or `socket`, which pull in `re` and `enum` (about 7 ms of CPU together, most
# of what the runner added to a 10 ms start): JSON goes through the C scanner and encoder
# that `json` itself uses (`_json`), the socket is imported by the first API call, and the
# return value's XComs go back to the supervisor in the outcome file (as Airflow 3's task
# process hands SetXCom to its supervisor), so a plain callable never opens a connection.
try:
    import _json
except ImportError:  # an interpreter without the C accelerator: the `json` package
    _json = None
# Not `importlib` either, which imports `warnings` (about 1 ms a try): modules are loaded
# with `_import`, and the path finder comes from the import system's own module, loaded
# before any Python code runs.
try:
    from _frozen_importlib_external import PathFinder as _PathFinder
except ImportError:  # an interpreter that names it otherwise
    from importlib.machinery import PathFinder as _PathFinder


def _import(name):
    """importlib.import_module(name) for an absolute name, without importing importlib."""
    __import__(name)
    return sys.modules[name]


class _Decoding:
    """What `_json.make_scanner` reads of a decoder: json.loads's defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__


_SCAN = _json.make_scanner(_Decoding()) if _json is not None else None


def loads(text):
    """json.loads(text) for a str."""
    if _SCAN is not None:
        s = text.strip(" \t\n\r")
        try:
            value, end = _SCAN(s, 0)
            if end == len(s):
                return value
        except (StopIteration, ValueError):
            pass  # json.loads says what is wrong
    import json

    return json.loads(text)


def dumps(value, default=None, allow_nan=True):
    """json.dumps(value, default=default, allow_nan=allow_nan)."""
    if _json is not None:
        encode = _json.make_encoder(
            {}, default or _not_json, _json.encode_basestring_ascii, None, ": ", ", ", False, False, allow_nan
        )
        return "".join(encode(value, 0))
    import json

    return json.dumps(value, default=default, allow_nan=allow_nan)


def _not_json(o):
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


RETURN_KEY = "return_value"
# Set by main(): the running try's context and API client.
CONTEXT = None
CLIENT = None


class NotFound(Exception):
    """The Execution API answered 404."""


class Client:
    """The Execution API, as the try's token may call it."""

    def __init__(self, base, token):
        self.base = base.rstrip("/") + "/"
        self.token = token

    def call(self, method, path, body=None):
        data = b"" if body is None else dumps(body).encode("utf-8")
        status, headers, payload = self._send(method, path, data)
        token = headers.get("refreshed-api-token")
        if token:
            self.token = token
        text = payload.decode("utf-8", "replace")
        if status == 404:
            raise NotFound(text)
        if status >= 400:
            raise RuntimeError(f"Execution API {method} {path}: {status} {text}")
        return loads(text) if text else None

    def _send(self, method, path, data):
        """One HTTP/1.1 request on its own connection: (status, headers, body). Plain
        HTTP over a socket, as the Execution API is on this machine; https goes through
        urllib."""
        url = self.base + path
        if not url.startswith("http://"):
            return self._send_urllib(method, url, data)
        rest = url[len("http://"):]
        hostport, _, target = rest.partition("/")
        host, sep, port = hostport.rpartition(":")
        if not sep or "]" in port:
            host, port = hostport, "80"
        head = (
            f"{method} /{target} HTTP/1.1\r\nHost: {hostport}\r\n"
            f"Authorization: Bearer {self.token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
        )
        import socket

        with socket.create_connection((host.strip("[]"), int(port)), timeout=60) as sock:
            sock.sendall(head.encode("latin-1") + data)
            chunks = []
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        raw = b"".join(chunks)
        head_bytes, _, body = raw.partition(b"\r\n\r\n")
        lines = head_bytes.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = _unchunk(body)
        elif "content-length" in headers:
            body = body[: int(headers["content-length"])]
        return status, headers, body

    def _send_urllib(self, method, url, data):
        import urllib.error
        import urllib.request

        req = urllib.request.Request(url, data=data or None, method=method)
        req.add_header("Authorization", "Bearer " + self.token)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
        except urllib.error.HTTPError as e:
            return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()

    def variable(self, key):
        return self.call("GET", "variables/" + _q(key))["value"]

    def set_variable(self, key, value, description=None):
        self.call("PUT", "variables/" + _q(key), {"value": value, "description": description})

    def connection(self, conn_id):
        return self.call("GET", "connections/" + _q(conn_id))

    def xcom_get(self, dag_id, run_id, task_id, key):
        path = "/".join(_q(p) for p in (dag_id, run_id, task_id, key))
        return self.call("GET", "xcoms/" + path)["value"]

    def xcom_at(self, dag_id, run_id, task_id, key, map_index):
        path = "/".join(_q(p) for p in (dag_id, run_id, task_id, key))
        return self.call("GET", f"xcoms/{path}?map_index={int(map_index)}")["value"]

    def xcom_all(self, dag_id, run_id, task_id, key):
        """Every map index's value, in map index order (the slice route, as the SDK's
        `XCom.get_all`)."""
        path = "/".join(_q(p) for p in (dag_id, run_id, task_id, key))
        return self.call("GET", f"xcoms/{path}/slice")

    def skip(self, ti_id, task_ids):
        self.call("PATCH", f"task-instances/{_q(ti_id)}/skip-downstream", {"tasks": list(task_ids)})

    def xcom_set(self, dag_id, run_id, task_id, key, value):
        path = "/".join(_q(p) for p in (dag_id, run_id, task_id, key))
        self.call("POST", "xcoms/" + path, value)


def _unchunk(body):
    out = []
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out.append(body[:size])
        body = body[size + 2:]
    return b"".join(out)


_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")


def _q(part):
    """Percent-encodes one path segment (urllib.parse.quote with safe="")."""
    return "".join(chr(b) if b in _SAFE else f"%{b:02X}" for b in str(part).encode("utf-8"))


def to_json(value, what):
    """`value` as JSON text, or a TypeError naming the type that is not JSON."""

    def refuse(o):
        raise TypeError(
            f"{what} is not JSON-serialisable: a value of type {type(o).__module__}.{type(o).__qualname__}"
            " (updraft keeps XComs as JSON: return str, int, float, bool, None, list or dict)"
        )

    return loads(dumps(value, default=refuse, allow_nan=False))


class XComForMappingNotPushed(TypeError):
    def __str__(self):
        return "did not push XCom for task mapping"


class UnmappableXComTypePushed(TypeError):
    def __str__(self):
        return f"unmappable return type {type(self.args[0]).__qualname__!r}"


class TaskInstance:
    """The `ti` / `task_instance` of the context."""

    def __init__(self, spec):
        c = spec["context"]
        self.dag_id = c["dag_id"]
        self.task_id = c["task_id"]
        self.run_id = c["run_id"]
        self.try_number = c["try_number"]
        self.map_index = c.get("map_index", -1)
        self.max_tries = c.get("max_tries", 0)
        # Known to a callback: the state the try ended in.
        self.state = c.get("state")

    def xcom_push(self, key, value):
        CLIENT.xcom_set(self.dag_id, self.run_id, self.task_id, key, to_json(value, f"XCom {key!r}"))

    def xcom_pull(self, task_ids=None, dag_id=None, key=RETURN_KEY, include_prior_dates=False,
                  map_indexes=None, default=None, run_id=None):
        dag_id = dag_id or self.dag_id
        run_id = run_id or self.run_id
        if task_ids is None:
            task_ids = self.task_id
        single = isinstance(task_ids, str)
        task_ids = [task_ids] if single else list(task_ids)
        out = []
        if map_indexes is None:
            # Every instance of a mapped task, in map index order, as Airflow's SDK.
            for task_id in task_ids:
                values = CLIENT.xcom_all(dag_id, run_id, task_id, key)
                if values:
                    out.extend(values)
                else:
                    out.append(default)
            return out[0] if single and len(out) == 1 else out
        one_index = isinstance(map_indexes, int)
        for task_id in task_ids:
            for m in [map_indexes] if one_index else list(map_indexes):
                try:
                    out.append(CLIENT.xcom_at(dag_id, run_id, task_id, key, m))
                except NotFound:
                    out.append(default)
        return out[0] if single and one_index else out

    def __repr__(self):
        return f"<TaskInstance: {self.dag_id}.{self.task_id} {self.run_id} [running]>"


class _Named:
    def __init__(self, **kw):
        self.__dict__.update(kw)

    def __repr__(self):
        return f"<{type(self).__name__} {self.__dict__}>"


class DagRun(_Named):
    pass


class _VarAccessor:
    """`var.value.name` and `var.json.name`, as in templates."""

    def __init__(self, as_json):
        self._json = as_json

    def __getattr__(self, key):
        if key.startswith("__"):
            raise AttributeError(key)
        return self.get(key)

    def get(self, key, default=None):
        try:
            value = CLIENT.variable(key)
        except NotFound:
            return default
        return loads(value) if self._json else value


class _ConnAccessor:
    def __getattr__(self, conn_id):
        if conn_id.startswith("__"):
            raise AttributeError(conn_id)
        return get_connection(conn_id)

    def get(self, conn_id, default=None):
        try:
            return get_connection(conn_id)
        except KeyError:
            return default


def get_connection(conn_id):
    from_api = None
    try:
        from_api = CLIENT.connection(conn_id)
    except NotFound:
        raise KeyError(f"The conn_id `{conn_id}` isn't defined") from None
    return ConnectionValue(from_api)


class ConnectionValue:
    """A connection as Airflow's `Connection` shows it."""

    def __init__(self, d):
        self.conn_id = d.get("conn_id")
        self.conn_type = d.get("conn_type")
        self.description = d.get("description")
        self.host = d.get("host")
        self.schema = d.get("schema")
        self.login = d.get("login")
        self.password = d.get("password")
        self.port = d.get("port")
        self.extra = d.get("extra")

    @property
    def extra_dejson(self):
        try:
            return loads(self.extra) if self.extra else {}
        except ValueError:
            return {}

    def get_uri(self):
        auth = ""
        if self.login or self.password:
            auth = _q(self.login or "") + (":" + _q(self.password) if self.password else "") + "@"
        host = (self.host or "") + (f":{self.port}" if self.port else "")
        uri = f"{(self.conn_type or '').replace('_', '-')}://{auth}{host}"
        if self.schema:
            uri += "/" + _q(self.schema)
        return uri

    def __repr__(self):
        return self.conn_id or ""


def _time(text):
    if not text:
        return None
    return _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


class _Macros:
    """The context's `macros`: its modules are imported when first used (uuid alone
    imports `platform`, a few ms every try would pay for nothing)."""

    _MODULES = ("json", "random", "time", "uuid")

    datetime = _dt.datetime
    timedelta = _dt.timedelta

    def __getattr__(self, name):
        if name == "dateutil":
            # Airflow's `macros.dateutil` is the package, whose submodules Airflow's own
            # imports have loaded by the time a callable runs: so are they here.
            try:
                module = _import("dateutil")
                for sub in ("parser", "relativedelta", "rrule", "tz"):
                    _import("dateutil." + sub)
            except ImportError as e:
                raise ImportError(
                    "macros.dateutil needs the python-dateutil package in the interpreter that "
                    f"runs the task ({sys.executable}): pip install python-dateutil"
                ) from e
        elif name in self._MODULES:
            module = _import(name)
        else:
            raise AttributeError(name)
        setattr(self, name, module)
        return module

    @staticmethod
    def ds_add(ds, days):
        return (_dt.datetime.strptime(ds, "%Y-%m-%d") + _dt.timedelta(days=days)).strftime("%Y-%m-%d")

    @staticmethod
    def ds_format(ds, input_format, output_format):
        return _dt.datetime.strptime(str(ds), input_format).strftime(output_format)

    def __repr__(self):
        return "<macros>"


class Asset:
    """`airflow.sdk.Asset`: a name and a URI (one given alone stands for both)."""

    def __init__(self, name=None, uri=None, *, group="asset", extra=None, watchers=()):
        if name is None and uri is None:
            raise TypeError("Asset() requires either 'name' or 'uri'")
        self.name = name if name is not None else uri
        self.uri = uri if uri is not None else name
        self.group = group or "asset"
        self.extra = dict(extra or {})

    def __eq__(self, other):
        return isinstance(other, Asset) and (self.name, self.uri) == (other.name, other.uri)

    def __hash__(self):
        return hash((self.name, self.uri))

    def __repr__(self):
        return f"Asset(name={self.name!r}, uri={self.uri!r}, group={self.group!r}, extra={self.extra!r})"


class AssetAlias:
    """`airflow.sdk.AssetAlias`."""

    def __init__(self, name, group="asset"):
        self.name = name
        self.group = group

    def __eq__(self, other):
        return isinstance(other, AssetAlias) and self.name == other.name

    def __hash__(self):
        return hash(("alias", self.name))

    def __repr__(self):
        return f"AssetAlias(name={self.name!r}, group={self.group!r})"


class AssetEvent:
    """One event of `triggering_asset_events` (Airflow's `AssetEventDagRunReference`)."""

    def __init__(self, d):
        a = d.get("asset") or {}
        self.asset = Asset(name=a.get("name"), uri=a.get("uri"), extra=a.get("extra"))
        self.extra = d.get("extra") or {}
        self.source_task_id = d.get("source_task_id")
        self.source_dag_id = d.get("source_dag_id")
        self.source_run_id = d.get("source_run_id")
        self.source_map_index = d.get("source_map_index")
        self.source_aliases = d.get("source_aliases") or []
        self.timestamp = _time(d.get("timestamp"))
        self.partition_key = d.get("partition_key")

    def __repr__(self):
        return (f"AssetEventDagRunReference(asset={self.asset!r}, extra={self.extra!r}, "
                f"source_dag_id={self.source_dag_id!r}, source_task_id={self.source_task_id!r}, "
                f"timestamp={self.timestamp!r})")


def _asset_key(key):
    """An accessor's key: an Asset or alias, or a string naming an asset's URI or name."""
    if isinstance(key, (Asset, AssetAlias)):
        return key
    if isinstance(key, str):
        return key
    # Airflow's own classes, when the interpreter has Airflow installed.
    if type(key).__name__ == "AssetAlias" and hasattr(key, "name"):
        return AssetAlias(key.name)
    if hasattr(key, "name") and hasattr(key, "uri"):
        return Asset(name=key.name, uri=key.uri, extra=getattr(key, "extra", None))
    raise TypeError(f"Key should be either an asset or an asset alias, not {type(key)}")


class TriggeringAssetEvents(dict):
    """`triggering_asset_events`: the events that triggered the run, by asset. A string
    looks an asset up by its URI, then its name."""

    def __getitem__(self, key):
        key = _asset_key(key)
        if isinstance(key, str):
            for asset in self:
                if asset.uri == key or asset.name == key:
                    return dict.__getitem__(self, asset)
            return []
        return dict.get(self, key, [])


class _OutletEvent:
    def __init__(self, key):
        self.key = key
        self.extra = {}
        self.asset_alias_events = []

    def add(self, asset, extra=None):
        """Attaches an event of `asset` to this alias."""
        if not isinstance(self.key, AssetAlias):
            raise TypeError("add() is for asset aliases only")
        asset = _asset_key(asset)
        if isinstance(asset, str):
            asset = Asset(uri=asset)
        self.asset_alias_events.append((asset, dict(extra or {})))


class OutletEventAccessors(dict):
    """`outlet_events`: per outlet, the `extra` of its event, and for an alias the
    events attached to it."""

    def __getitem__(self, key):
        key = _asset_key(key)
        if isinstance(key, str):
            key = next((k for k in self if isinstance(k, Asset) and (k.uri == key or k.name == key)), Asset(uri=key))
        if key not in self:
            dict.__setitem__(self, key, _OutletEvent(key))
        return dict.__getitem__(self, key)

    def serialize(self):
        out = []
        for key, ev in self.items():
            if isinstance(key, AssetAlias):
                for asset, extra in ev.asset_alias_events:
                    out.append({"source_alias_name": key.name,
                                "dest_asset_key": {"name": asset.name, "uri": asset.uri},
                                "dest_asset_extra": asset.extra, "extra": extra})
            elif ev.extra:
                out.append({"dest_asset_key": {"name": key.name, "uri": key.uri}, "extra": ev.extra})
        return out


class AssetEventResult(AssetEvent):
    """One event of `inlet_events[...]` (the Task SDK's `AssetEventResult`)."""

    def __init__(self, d):
        AssetEvent.__init__(self, d)
        self.id = d.get("id")
        self.created_dagruns = d.get("created_dagruns") or []

    def __repr__(self):
        return (f"AssetEventResult(id={self.id!r}, asset={self.asset!r}, extra={self.extra!r}, "
                f"source_dag_id={self.source_dag_id!r}, timestamp={self.timestamp!r})")


class InletEventsAccessor:
    """`inlet_events[key]`: a sequence of the events of an asset (or attached through an
    alias), read from the Execution API when first used, oldest first; `after`,
    `before`, `ascending` and `limit` narrow it (as the Task SDK's)."""

    def __init__(self, asset_name=None, asset_uri=None, alias_name=None):
        self._name, self._uri, self._alias = asset_name, asset_uri, alias_name
        self._after = self._before = self._limit = None
        self._ascending = True
        self._cache = None

    def _set(self, attr, value):
        setattr(self, attr, value)
        self._cache = None
        return self

    def after(self, after):
        return self._set("_after", after)

    def before(self, before):
        return self._set("_before", before)

    def ascending(self, ascending=True):
        return self._set("_ascending", bool(ascending))

    def limit(self, limit):
        return self._set("_limit", limit)

    def _events(self):
        if self._cache is None:
            query = []
            for key, value in (("after", self._after), ("before", self._before)):
                if value:
                    query.append((key, value.isoformat() if hasattr(value, "isoformat") else str(value)))
            query.append(("ascending", "true" if self._ascending else "false"))
            if self._limit:
                query.append(("limit", str(int(self._limit))))
            if self._alias is not None:
                path = "asset-events/by-asset-alias"
                query.insert(0, ("name", self._alias))
            else:
                path = "asset-events/by-asset"
                if self._uri is not None:
                    query.insert(0, ("uri", self._uri))
                if self._name is not None:
                    query.insert(0, ("name", self._name))
            resp = CLIENT.call("GET", path + "?" + "&".join(f"{k}={_q(v)}" for k, v in query))
            self._cache = [AssetEventResult(d) for d in resp.get("asset_events") or []]
        return self._cache

    def __iter__(self):
        return iter(self._events())

    def __len__(self):
        return len(self._events())

    def __getitem__(self, key):
        return self._events()[key]

    def __bool__(self):
        return bool(self._events())

    def __repr__(self):
        return f"InletEventsAccessor({self._events()!r})"


class InletEventsAccessors:
    """`inlet_events`: for each of the task's inlets (an Asset, an AssetAlias, or its
    position among the inlets), the accessor of its events. A string names an inlet by
    URI or name. A key that is not an inlet is a KeyError, as in the Task SDK."""

    def __init__(self, inlets):
        self._inlets = list(inlets)

    def __iter__(self):
        return iter(self._inlets)

    def __len__(self):
        return len(self._inlets)

    def __contains__(self, key):
        try:
            self[key]
        except (KeyError, IndexError, TypeError):
            return False
        return True

    def keys(self):
        return list(self._inlets)

    def __getitem__(self, key):
        if isinstance(key, int) and not isinstance(key, bool):
            obj = self._inlets[key]
        else:
            obj = _asset_key(key)
            if isinstance(obj, str):
                obj = next((i for i in self._inlets if isinstance(i, Asset) and obj in (i.uri, i.name)), None)
                if obj is None:
                    raise KeyError(key)
            elif obj not in self._inlets:
                raise KeyError(key)
        if isinstance(obj, AssetAlias):
            return InletEventsAccessor(alias_name=obj.name)
        return InletEventsAccessor(asset_name=obj.name, asset_uri=obj.uri)


def _assets(items):
    out = []
    for d in items or []:
        if not isinstance(d, dict):
            continue
        if "alias" in d:
            out.append(AssetAlias(d["alias"]))
        else:
            out.append(Asset(name=d.get("name"), uri=d.get("uri"), group=d.get("group"), extra=d.get("extra")))
    return out


def build_context(spec):
    """Airflow 3's context for a Python callable, from what the supervisor sent."""
    c = spec["context"]
    logical_date = _time(c.get("logical_date"))
    ti = TaskInstance(spec)
    triggering = TriggeringAssetEvents()
    for d in c.get("triggering_asset_events") or []:
        ev = AssetEvent(d)
        triggering.setdefault(ev.asset, []).append(ev)
        for alias in ev.source_aliases:
            triggering.setdefault(AssetAlias(alias.get("name"), alias.get("group") or "asset"), []).append(ev)
    # The keys Airflow 3.3's task runner puts in every context (`get_template_context`).
    ctx = {
        "dag": _Named(dag_id=c["dag_id"]),
        "task": _Named(task_id=c["task_id"], dag_id=c["dag_id"], owner=c.get("owner")),
        "dag_run": DagRun(dag_id=c["dag_id"], run_id=c["run_id"], logical_date=logical_date,
                          data_interval_start=_time(c.get("data_interval_start")),
                          data_interval_end=_time(c.get("data_interval_end")),
                          run_after=_time(c.get("run_after")), run_type=c.get("run_type"),
                          start_date=_time(c.get("start_date")), conf=c.get("conf") or {},
                          state=c.get("run_state"), end_date=_time(c.get("end_date"))),
        "run_id": c["run_id"],
        "params": c.get("params") or {},
        "ti": ti,
        "task_instance": ti,
        "task_instance_key_str": f"{c['dag_id']}__{c['task_id']}__{c['run_id']}",
        "var": {"value": _VarAccessor(False), "json": _VarAccessor(True)},
        "conn": _ConnAccessor(),
        "macros": _Macros(),
        "map_index_template": None,
        "inlets": _assets(c.get("inlets")),
        "outlets": _assets(c.get("outlets")),
        "triggering_asset_events": triggering,
        "outlet_events": OutletEventAccessors(),
        "inlet_events": InletEventsAccessors(_assets(c.get("inlets"))),
        "task_reschedule_count": 0,
        # PythonOperator merges it in (`context_merge`).
        "templates_dict": spec.get("templates_dict"),
    }
    if logical_date is not None:
        ctx.update({
            "logical_date": logical_date,
            "ds": logical_date.strftime("%Y-%m-%d"),
            "ds_nodash": logical_date.strftime("%Y%m%d"),
            "ts": logical_date.isoformat(),
            "ts_nodash": logical_date.strftime("%Y%m%dT%H%M%S"),
            "ts_nodash_with_tz": logical_date.isoformat().replace("-", "").replace(":", ""),
            "task_instance_key_str": f"{c['dag_id']}__{c['task_id']}__{logical_date.strftime('%Y%m%d')}",
            "data_interval_start": _time(c.get("data_interval_start")),
            "data_interval_end": _time(c.get("data_interval_end")),
        })
    return ctx


def _parameters(func):
    """The callable's parameters as (name, kind) in order, kind one of "positional",
    "keyword_only", "var_positional", "var_keyword". Read from a plain function's code
    object (inspect costs ~10 ms to import); anything else goes through inspect."""
    code = getattr(func, "__code__", None)
    plain = code is not None and not hasattr(func, "__self__") and not hasattr(func, "__wrapped__")
    if not plain:
        import inspect

        kinds = {
            inspect.Parameter.KEYWORD_ONLY: "keyword_only",
            inspect.Parameter.VAR_POSITIONAL: "var_positional",
            inspect.Parameter.VAR_KEYWORD: "var_keyword",
        }
        return [(n, kinds.get(p.kind, "positional")) for n, p in inspect.signature(func).parameters.items()]
    names = code.co_varnames
    n_pos, n_kw = code.co_argcount, code.co_kwonlyargcount
    out = [(n, "positional") for n in names[:n_pos]]
    i = n_pos + n_kw
    if code.co_flags & 0x04:  # CO_VARARGS
        out.append((names[i], "var_positional"))
        i += 1
    out += [(n, "keyword_only") for n in names[n_pos:n_pos + n_kw]]
    if code.co_flags & 0x08:  # CO_VARKEYWORDS
        out.append((names[i], "var_keyword"))
    return out


def determine_kwargs(func, args, kwargs):
    """Airflow's `determine_kwargs`: what of `kwargs` the callable's signature takes."""
    params = _parameters(func)
    wildcard = any(kind == "var_keyword" for _, kind in params)
    for i, (name, kind) in enumerate(params):
        if i >= len(args):
            break
        if kind in ("keyword_only", "var_keyword"):
            continue
        if name in kwargs:
            raise ValueError(f"The key {name!r} in args is a part of kwargs and therefore reserved.")
    if wildcard:
        return dict(kwargs)
    names = [n for n, kind in params if kind not in ("var_positional", "var_keyword")]
    return {k: kwargs[k] for k in names if k in kwargs}


def load_callable(spec):
    """The callable: `module.func` from sys.path, or a function of a file (dag-factory's way)."""
    name = spec["callable"]
    path = spec.get("file")
    if path:
        from importlib import util as import_util

        module_name = os.path.splitext(os.path.basename(path))[0]
        folder = os.path.dirname(path)
        if folder not in sys.path:
            sys.path.append(folder)
        loader_spec = import_util.spec_from_file_location(module_name, path)
        if loader_spec is None:
            raise ImportError(f"cannot load python_callable_file {path!r}")
        module = import_util.module_from_spec(loader_spec)
        loader_spec.loader.exec_module(module)
        sys.modules[module_name] = module
        return getattr(module, name)
    module_name, _, attr = name.rpartition(".")
    return getattr(_import(module_name), attr)


def native(value):
    """Airflow's NativeEnvironment on a rendered value: a string that reads as a Python
    literal becomes that value (`ast.literal_eval`), in lists and dicts too."""
    import ast

    if isinstance(value, str):
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return value
    if isinstance(value, list):
        return [native(v) for v in value]
    if isinstance(value, dict):
        return {k: native(v) for k, v in value.items()}
    return value


def _is(exc, name):
    return any(k.__name__ == name for k in type(exc).__mro__)


def _multiple_outputs(spec, func):
    if spec.get("multiple_outputs") is not None:
        return spec["multiple_outputs"]
    if not spec.get("operator", "").startswith("_"):
        return False
    # TaskFlow infers it from a dict return annotation, as Airflow does.
    ret = getattr(func, "__annotations__", {}).get("return")
    if ret is None:
        return False
    if isinstance(ret, str):
        return ret.startswith(("dict", "Dict", "typing.Dict"))
    origin = getattr(ret, "__origin__", ret)
    return origin is dict


def _setup_paths(spec):
    """The DAG folder on sys.path (appended, as Airflow's settings do, so a DAG-folder
    module never shadows the standard library), and the compatibility package when the
    interpreter has no Airflow of its own."""
    for folder in (spec.get("dags_folder"), spec.get("dag_file_folder")):
        if folder and folder not in sys.path:
            sys.path.append(folder)
    if _PathFinder.find_spec("airflow", sys.path) is None:
        sys.path.insert(1, spec["compat_folder"])


class SensorTimeout(Exception):
    """Airflow's AirflowSensorTimeout: fails the task without retrying."""


class NotYet(Exception):
    """A sensor in reschedule mode whose one poke of this try was not done: the
    supervisor decides the timeout and the next poke's date."""


def _next_poke_interval(cfg, ids, started, elapsed, poke_count):
    """BaseSensorOperator._get_next_poke_interval in poke mode: the interval, or with
    exponential_backoff a doubling wait with Airflow's SHA-1 jitter, never past the
    timeout nor max_wait (the supervisor does the same for reschedule mode)."""
    interval = cfg["poke_interval_secs"]
    if not cfg.get("exponential_backoff"):
        return interval
    import hashlib

    min_backoff = max(int(interval * (2 ** (poke_count - 2))), 1)
    key = f"{ids[0]}#{ids[1]}#{started}#{poke_count}".encode()
    run_hash = int(hashlib.sha1(key).hexdigest(), 16)
    delay = min(min_backoff + run_hash % min_backoff, 86_399_999_999_999)
    wait = min(cfg["timeout_secs"] - int(elapsed), delay)
    if cfg.get("max_wait_secs"):
        wait = min(cfg["max_wait_secs"], wait)
    return wait


def sense(cfg, poke, ids=("", "")):
    """BaseSensorOperator.execute in poke mode: poke until truthy, then the value of a
    PokeReturnValue (or None); past `timeout` fail, or skip with soft_fail."""
    import time

    started = time.monotonic()
    poke_count = 1
    once = bool(cfg.get("reschedule"))
    while True:
        try:
            got = poke()
        except BaseException as e:  # noqa: B036 - sorted as Airflow sorts them
            if _is(e, "AirflowSkipException"):
                raise
            failing = _is(e, "AirflowSensorTimeout") or _is(e, "AirflowFailException") or isinstance(e, SensorTimeout)
            if failing and (cfg.get("soft_fail") or cfg.get("never_fail")):
                raise _skip("Skipping due to soft_fail or never_fail") from e
            if failing or not isinstance(e, Exception):
                raise
            if cfg.get("silent_fail"):
                import traceback

                print("Sensor poke failed:\n" + traceback.format_exc(), flush=True)
                got = False
            elif cfg.get("never_fail"):
                raise _skip("Skipping due to never_fail is set to True.") from e
            else:
                raise
        if got:
            print("Success criteria met. Exiting.", flush=True)
            return getattr(got, "xcom_value", None) if hasattr(got, "is_done") else None
        if once:
            print(f"Poke returned {got!r}; the sensor is rescheduled", flush=True)
            raise NotYet()
        elapsed = time.monotonic() - started
        if elapsed > cfg["timeout_secs"]:
            message = (
                f"Sensor has timed out; run duration of {elapsed} seconds exceeds "
                f"the specified timeout of {cfg['timeout_secs']}."
            )
            if cfg.get("soft_fail"):
                raise _skip(message)
            raise SensorTimeout(message)
        wait = _next_poke_interval(cfg, ids, started, elapsed, poke_count)
        print(f"Poke returned {got!r}; next poke in {wait} s", flush=True)
        time.sleep(max(wait, 0))
        poke_count += 1


def _skip(message):
    try:
        from airflow.exceptions import AirflowSkipException
    except ImportError:
        AirflowSkipException = type("AirflowSkipException", (Exception,), {})
    return AirflowSkipException(message)


def follow(spec, result):
    """What a branch or a short-circuit does with the result: skip tasks downstream."""
    kind = spec.get("kind")
    downstream = spec.get("downstream") or []
    if kind == "branch":
        # Airflow's BranchMixIn: a task id, a list of them, or None (follow none); a
        # task group's id stands for its roots.
        if result is None:
            chosen = []
        elif isinstance(result, str):
            chosen = [result]
        else:
            chosen = list(result)
        groups = spec.get("group_roots") or {}
        follow_ids = set()
        for t in chosen:
            if not isinstance(t, str):
                raise TypeError(f"a branch must return task ids (str), not {type(t).__name__}")
            follow_ids.add(t)
            follow_ids.update(groups.get(t, []))
        invalid = sorted(t for t in chosen if t not in downstream and t not in groups)
        known = set(spec.get("all_downstream") or [])
        invalid = [t for t in invalid if t not in known]
        if invalid:
            raise ValueError(
                f"'branch_task_ids' must contain only valid task_ids. Invalid tasks found: {invalid}"
            )
        skip = [t for t in downstream if t not in follow_ids]
        print(f"Branch into {sorted(follow_ids)}; skipping {skip}", flush=True)
        if skip:
            CLIENT.skip(os.environ["UPDRAFT_TI_ID"], skip)
    elif kind == "short_circuit":
        if result:
            print("Proceeding with downstream tasks...", flush=True)
            return
        if spec.get("ignore_downstream_trigger_rules", True):
            skip = spec.get("all_downstream") or []
        else:
            skip = downstream
        print(f"Condition result is {result!r}: skipping downstream tasks {skip}", flush=True)
        if skip:
            CLIENT.skip(os.environ["UPDRAFT_TI_ID"], skip)


def run_callbacks(spec):
    """Calls each callback with the context (and its keyword arguments); a failure is
    printed with its traceback and does not stop the others. A DAG's callbacks (a spec
    with a `reason`) get the context Airflow 3's DAG processor builds: the task instance's
    with `reason`, or only `dag`, `run_id` and `reason` when there is no task instance.
    Ends with 1 when one failed."""
    global CONTEXT
    reason = spec.get("reason")
    if reason is not None and spec.get("minimal"):
        c = spec["context"]
        CONTEXT = {"dag": _Named(dag_id=c["dag_id"]), "run_id": c["run_id"]}
    else:
        CONTEXT = build_context(spec)
    if reason is not None:
        CONTEXT["reason"] = reason
    if "exception" in spec:
        CONTEXT["exception"] = _rebuild(spec["exception"])
    failed = 0
    for cb in spec["callbacks"]:
        name = cb["callable"]
        if reason is not None:
            print(f"Executing {cb['on']} dag callback {name}", flush=True)
        try:
            func = load_callable({"callable": name, "file": cb.get("file")})
            func(CONTEXT, **(cb.get("kwargs") or {}))
        except BaseException:  # noqa: B036 - a callback never changes the task's state
            import traceback

            failed = 1
            print(f"{cb['on']} {name} failed:", file=sys.stderr, flush=True)
            traceback.print_exc()
            sys.stderr.flush()
    return failed


class _Headers(dict):
    """requests' CaseInsensitiveDict, as far as a check reads it: `[]`, `get`, `in`."""

    def __init__(self, pairs):
        super().__init__(pairs)
        self._lower = {k.lower(): k for k in self}

    def __getitem__(self, key):
        return super().__getitem__(self._lower.get(str(key).lower(), key))

    def __contains__(self, key):
        return str(key).lower() in self._lower

    def get(self, key, default=None):
        return self[key] if key in self else default


class Response:
    """What a `response_check`/`response_filter` gets for the response updraft's HTTP
    client received: the `requests.Response` fields such callables read."""

    def __init__(self, r):
        self.status_code = r["status_code"]
        self.reason = r["reason"]
        self.url = r["url"]
        self.text = r["text"]
        self.headers = _Headers(r["headers"])
        self.encoding = "utf-8"

    @property
    def content(self):
        return self.text.encode("utf-8")

    @property
    def ok(self):
        return self.status_code < 400

    def json(self, **kwargs):
        if not kwargs:
            return loads(self.text)
        import json

        return json.loads(self.text, **kwargs)

    def raise_for_status(self):
        if self.status_code >= 400:
            kind = "Client" if self.status_code < 500 else "Server"
            raise RuntimeError(f"{self.status_code} {kind} Error: {self.reason} for url: {self.url}")

    def iter_lines(self, *args, **kwargs):
        return iter(self.content.splitlines())

    def __bool__(self):
        return self.ok

    def __repr__(self):
        return f"<Response [{self.status_code}]>"


def _load(ref):
    """A callable as the DAG file named it: `module.func`, a function of a file, or
    dag-factory's `*_lambda` source."""
    if ref.get("lambda") is not None:
        return eval(ref["lambda"])  # noqa: S307 - the DAG file's own code, as dag-factory runs it
    return load_callable(ref)


def _invoke_http(inv):
    """HttpOperator.process_response / HttpSensor.poke on the response: `response_check`
    (with the context arguments its signature names), then `response_filter`."""
    response = Response(inv["response"])
    if inv.get("check"):
        func = _load(inv["check"])
        kwargs = determine_kwargs(func, [response], CONTEXT)
        answer = func(response, **kwargs)
        if hasattr(answer, "is_done") and hasattr(answer, "xcom_value"):
            # A sensor's PokeReturnValue: done or not, and the XCom when done.
            return {"check": bool(answer.is_done), "value": to_json(answer.xcom_value, "the XCom value")}
        if not answer:
            return {"check": False}
    out = {"check": True}
    if inv.get("filter"):
        func = _load(inv["filter"])
        kwargs = determine_kwargs(func, [response], CONTEXT)
        out["value"] = to_json(func(response, **kwargs), "the response_filter's value")
    return out


def _invoke_sql(inv):
    """SqlSensor.poke on the first row: `selector` (the first cell by default), then
    `failure` (true fails the task), then `success` (else the selection's truth)."""
    row = tuple(inv["row"])
    selector = _load(inv["selector"]) if inv.get("selector") else (lambda r: r[0])
    condition = selector(row)
    if inv.get("failure") and _load(inv["failure"])(condition):
        raise _airflow_exception(f"Failure criteria met. self.failure({condition}) returned True")
    if inv.get("success"):
        return {"check": bool(_load(inv["success"])(condition))}
    return {"check": bool(condition)}


def _airflow_exception(message):
    try:
        from airflow.exceptions import AirflowException
    except ImportError:
        AirflowException = Exception  # noqa: N806
    return AirflowException(message)


def invoke(spec):
    """Calls a built-in operator's or sensor's callables (the supervisor did the HTTP
    request or the query) and writes what they answered, or the exception's message."""
    global CONTEXT
    inv = spec["invoke"]
    try:
        CONTEXT = build_context(spec)
        out = _invoke_http(inv) if inv["kind"] == "http" else _invoke_sql(inv)
        out["state"] = "success"
    except BaseException as e:  # noqa: B036 - every end is reported
        import traceback

        traceback.print_exc()
        sys.stderr.flush()
        out = {"state": "failed", "error": str(e) if _is(e, "AirflowException") else f"{type(e).__name__}: {e}"}
    with open(spec["outcome"], "w", encoding="utf-8") as f:
        f.write(dumps(out))
    return 0


_CONTEXT_KEYS = frozenset()


def _context_extra():
    """What the callable added to its context (`context["key"] = value`) with a JSON
    value, for the supervisor's render of `map_index_template` after the call."""
    extra = {}
    for key, value in (CONTEXT or {}).items():
        if key in _CONTEXT_KEYS or not isinstance(key, str):
            continue
        try:
            extra[key] = loads(dumps(value, allow_nan=False))
        except (TypeError, ValueError):
            pass
    return extra


def _describe(e):
    """An exception as the supervisor hands it to failure callbacks (which run in another
    process): its class by module and name, and its arguments when they are JSON."""
    cls = type(e)
    try:
        args = loads(dumps(list(e.args), allow_nan=False))
    except (TypeError, ValueError):
        args = [str(e)]
    return {"module": cls.__module__, "qualname": cls.__qualname__, "args": args}


def _rebuild(desc):
    """The exception `_describe` (or the supervisor) described: of its own class when that
    imports, else of a stand-in class with its name (an Airflow one derives from
    AirflowException, AirflowTaskTimeout from BaseException, as in Airflow)."""
    if not desc:
        return None
    args = desc.get("args") or []
    name = desc.get("qualname") or "Exception"
    cls = None
    try:
        cls = _import(desc.get("module") or "builtins")
        for part in name.split("."):
            cls = getattr(cls, part)
    except Exception:  # noqa: BLE001 - the stand-in below
        cls = None
    if isinstance(cls, type) and issubclass(cls, BaseException):
        try:
            return cls(*args)
        except Exception:  # noqa: BLE001 - a class whose arguments differ
            pass
    base = Exception
    if name == "AirflowTaskTimeout":
        base = BaseException
    elif name.startswith("Airflow"):
        try:
            from airflow.exceptions import AirflowException as base
        except ImportError:
            pass
    stand_in = type(name.rsplit(".", 1)[-1], (base,), {"__module__": desc.get("module") or __name__})
    return stand_in(*args)


def _write_outcome(spec, state, retry=True, xcoms=(), exception=None):
    """How the callable ended, and the XComs of its return value ([key, value] pairs in
    the order to push them), which the supervisor pushes before it reports the state."""
    out = {"state": state, "retry": retry, "xcoms": list(xcoms)}
    if exception is not None:
        out["exception"] = exception
    if state == "success" and CONTEXT is not None and isinstance(CONTEXT.get("outlet_events"), OutletEventAccessors):
        out["outlet_events"] = CONTEXT["outlet_events"].serialize()
    if spec.get("map_index_template"):
        out["context_extra"] = _context_extra()
    with open(spec["outcome"], "w", encoding="utf-8") as f:
        f.write(dumps(out))


def _keep_bytecode():
    """Writes this module's .pyc once when the environment has PYTHONDONTWRITEBYTECODE:
    Python still reads a .pyc then but never writes one, so every try would compile this
    module again (5-15 ms of CPU a try)."""
    cached = globals().get("__cached__")
    if sys.dont_write_bytecode and cached and not os.path.exists(cached):
        try:
            import py_compile

            py_compile.compile(__file__, cfile=cached, doraise=True)
        except Exception:  # noqa: BLE001 - only a cache: the try goes on without it
            pass


def main(argv):
    global CONTEXT, CLIENT
    _keep_bytecode()
    with open(argv[0], encoding="utf-8") as f:
        spec = loads(f.read())
    CLIENT = Client(os.environ["UPDRAFT_EXECUTION_API_URL"], os.environ["UPDRAFT_TASK_TOKEN"])
    _setup_paths(spec)
    if spec.get("native"):
        for key in ("op_args", "op_kwargs", "templates_dict"):
            spec[key] = native(spec.get(key))
    if spec.get("callbacks") is not None:
        return run_callbacks(spec)
    if spec.get("invoke") is not None:
        return invoke(spec)
    try:
        func = load_callable(spec)
        CONTEXT = build_context(spec)
        global _CONTEXT_KEYS
        _CONTEXT_KEYS = frozenset(CONTEXT)
        op_kwargs = dict(spec.get("op_kwargs") or {})
        ti = CONTEXT["ti"]
        for arg in spec.get("xcom_args") or []:
            try:
                op_kwargs[arg["name"]] = CLIENT.xcom_get(ti.dag_id, ti.run_id, arg["task_id"], arg["key"])
            except NotFound:
                raise KeyError(
                    f"argument {arg['name']!r}: task {arg['task_id']!r} pushed no XCom {arg['key']!r} in this run"
                ) from None
        op_args = list(spec.get("op_args") or [])
        merged = dict(CONTEXT)
        merged.update(op_kwargs)
        kwargs = determine_kwargs(func, op_args, merged)
        if spec.get("sensor"):
            result = sense(spec["sensor"], lambda: func(*op_args, **kwargs), (ti.dag_id, ti.task_id))
        else:
            result = func(*op_args, **kwargs)
        if spec.get("show_return_value_in_logs", True):
            print(f"Done. Returned value was: {result}", flush=True)
        xcoms = []
        mapped_length = None
        if spec.get("mapped_dependants") and ti.map_index < 0:
            # A downstream expands over this result: Airflow's task runner checks it (none
            # is pushed without do_xcom_push) and sends its length with the push.
            pushed = result if spec.get("do_xcom_push", True) else None
            if pushed is None:
                raise XComForMappingNotPushed()
            if not isinstance(pushed, (list, tuple, dict)):
                raise UnmappableXComTypePushed(pushed)
            mapped_length = len(pushed)
        if spec.get("do_xcom_push", True) and result is not None:
            if _multiple_outputs(spec, func):
                if not isinstance(result, dict):
                    raise TypeError(f"Returned output was type {type(result)} expected dictionary for multiple_outputs")
                for k in result:
                    if not isinstance(k, str):
                        raise TypeError(
                            "Returned dictionary keys must be strings when using "
                            f"multiple_outputs, found {k} ({type(k)}) instead"
                        )
                xcoms += [[k, to_json(v, f"XCom {k!r}")] for k, v in result.items()]
            xcoms.append([RETURN_KEY, to_json(result, "the return value"), mapped_length])
        follow(spec, result)
    except BaseException as e:  # noqa: B036 - the outcome of every end is reported
        if isinstance(e, NotYet):
            _write_outcome(spec, "up_for_reschedule")
            return 0
        if _is(e, "AirflowSkipException"):
            print(f"Skipping: {e}", flush=True)
            _write_outcome(spec, "skipped")
            return 0
        import traceback

        traceback.print_exc()
        sys.stderr.flush()
        retry = not (_is(e, "AirflowFailException") or _is(e, "AirflowSensorTimeout") or isinstance(e, SensorTimeout))
        _write_outcome(spec, "failed", retry=retry, exception=_describe(e))
        return 1
    _write_outcome(spec, "success", xcoms=xcoms)
    return 0
