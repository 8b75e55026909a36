//! The Execution API (`/execution`): what a running task's supervisor talks to.
//!
//! Every route but health needs a task token: a JWT whose subject is a task instance id.
//! Routes under `/task-instances/{id}` also need the subject to be that id. Handlers are
//! idempotent where Airflow's are (a repeated `run` from the same process, a repeated
//! terminal state), and every state change is a compare-and-set in the store.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::api::http::{ApiError, Reply, Req};
use crate::api::route::{Ctx, Params};
use crate::auth::task as task_token;
use crate::model::{AssetCond, AssetRef, Dag, Operator, PythonKind, RunType, Task, TaskState};
use crate::store::{Event, EventSource, Store, TiRow};

pub mod hitl;

/// Tokens are re-issued when this little validity is left (Airflow: 20%, at least 30 s).
const REFRESH_FRACTION: f64 = 0.2;
const REFRESH_MIN_SECS: i64 = 30;

/// A request's task token, checked, with the task instance it names as it is now.
///
/// A token is good for its try only while that try is live. Once the task instance has a
/// final state, is up for retry, is cleared or has moved on to another try, the token
/// reaches only the routes under its own `/task-instances/{id}`, which answer by state as
/// Airflow's do (409 to a heartbeat, so the supervisor stops its task; 200 to a repeated
/// final state, so a report whose reply was lost can be sent again), and it is never
/// refreshed. Airflow 3.3.2 checks no state when it validates or re-issues a task token;
/// updraft refuses the rest, which only a leaked token would still call.
pub(crate) struct Caller {
    pub(crate) ti: TiRow,
    /// The try in the token; `None` for a token without the claim (never refused on it).
    token_try: Option<u32>,
    /// Whether the token is close enough to expiry to be re-issued.
    expiring: bool,
}

impl Caller {
    fn current_try(&self) -> bool {
        self.token_try.is_none_or(|t| t == self.ti.try_number)
    }
}

pub(crate) fn caller(
    ctx: &Ctx,
    store: &Store,
    req: &Req,
    path_ti: Option<&str>,
) -> Result<Caller, ApiError> {
    let header = req.header("authorization").unwrap_or("");
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::new(401, "Missing auth token"))?;
    let now = ctx.clock.now().timestamp();
    let claims = task_token::verify(&ctx.secret, token, now)
        .map_err(|e| ApiError::new(403, format!("Invalid auth token: {e}")))?;
    if !claims.execution {
        return Err(ApiError::new(
            403,
            "Invalid auth token: not an execution token",
        ));
    }
    let ti_id = claims.ti_id.as_str();
    if let Some(path_ti) = path_ti
        && path_ti != ti_id
    {
        return Err(ApiError::new(
            403,
            "Token subject does not match task instance ID",
        ));
    }
    let (iat, exp) = (claims.iat, claims.exp);
    let validity = (exp - iat).max(0);
    let threshold = ((validity as f64 * REFRESH_FRACTION) as i64).max(REFRESH_MIN_SECS);
    let token_try = claims.try_number;
    let ti = match store.ti(ti_id)? {
        Some(ti) => ti,
        None if path_ti.is_some() => {
            return Err(not_found(format!(
                "Task Instance with id {ti_id} not found"
            )));
        }
        None => {
            return Err(ApiError::new(
                403,
                "Invalid auth token: its task instance no longer exists",
            ));
        }
    };
    let c = Caller {
        ti,
        token_try,
        expiring: exp - now <= threshold,
    };
    if path_ti.is_some() && !c.current_try() {
        return Err(conflict(
            "not_running",
            &format!(
                "the token is for try {}; the task instance is at try {}: the task should terminate",
                token_try.unwrap_or(0),
                c.ti.try_number
            ),
            c.ti.state,
        ));
    }
    Ok(c)
}

/// The caller of a route that reads or writes data (variables, connections, XComs): its
/// try must be running.
pub(crate) fn running_caller(ctx: &Ctx, store: &Store, req: &Req) -> Result<Caller, ApiError> {
    let c = caller(ctx, store, req, None)?;
    if c.ti.state != Some(TaskState::Running) || !c.current_try() {
        let state = c.ti.state.map_or("none", TaskState::as_str);
        return Err(ApiError::new(
            403,
            format!(
                "Invalid auth token: its task instance is {state} (try {}), not running",
                c.ti.try_number
            ),
        ));
    }
    Ok(c)
}

/// The caller of a route a running DAG callback may also call (`api/dag_callbacks.rs`):
/// `None` for such a callback (its token is never re-issued), else the running try.
fn reader(ctx: &Ctx, store: &Store, req: &Req) -> Result<Option<Caller>, ApiError> {
    if super::dag_callbacks::running_callback(ctx, store, req)? {
        return Ok(None);
    }
    running_caller(ctx, store, req).map(Some)
}

/// `with_token` for a `reader`'s caller.
fn with_reader_token(ctx: &Ctx, reply: Reply, c: Option<&Caller>) -> Reply {
    match c {
        Some(c) => with_token(ctx, reply, c, c.ti.state),
        None => reply,
    }
}

/// Adds a re-issued token when the caller's is close to expiry and its try is still
/// queued or running after this request (`state_now`).
pub(crate) fn with_token(
    ctx: &Ctx,
    reply: Reply,
    c: &Caller,
    state_now: Option<TaskState>,
) -> Reply {
    let live = matches!(state_now, Some(TaskState::Queued | TaskState::Running));
    if !(c.expiring && live && c.current_try()) {
        return reply;
    }
    let t = task_token::mint(
        &ctx.secret,
        &c.ti.id,
        c.ti.try_number,
        ctx.cfg.auth.execution_jwt_expiration_time,
        ctx.clock.now(),
    );
    reply.with_header("Refreshed-API-Token", &t)
}

fn conflict(reason: &str, message: &str, state: Option<TaskState>) -> ApiError {
    ApiError::with_detail(
        409,
        json!({"reason": reason, "message": message, "previous_state": state.map(TaskState::as_str)}),
    )
}

pub(crate) fn not_found(what: String) -> ApiError {
    ApiError::with_detail(404, json!({"reason": "not_found", "message": what}))
}

pub(crate) fn body<T: for<'de> Deserialize<'de>>(req: &Req) -> Result<T, ApiError> {
    serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::new(422, format!("invalid request body: {e}")))
}

fn load_ti(store: &Store, id: &str) -> Result<TiRow, ApiError> {
    store
        .ti(id)?
        .ok_or_else(|| not_found(format!("Task Instance with id {id} not found")))
}

fn task_of<'a>(dag: &'a Dag, task_id: &str) -> Option<&'a Task> {
    dag.tasks.iter().find(|t| t.task_id == task_id)
}

#[derive(Deserialize)]
struct RunBody {
    pid: i64,
    hostname: String,
    #[serde(default)]
    unixname: String,
    /// When the try began on its worker (`TIEnterRunningPayload.start_date`): stored as
    /// the task instance's start, as Airflow's `ti_run` stores it; the server's time if
    /// the caller sends none.
    #[serde(default)]
    start_date: Option<DateTime<Utc>>,
}

/// `PATCH /execution/task-instances/{id}/run`: queued -> running; returns the run context.
pub fn run(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let id = p.get("task_instance_id");
    let c = caller(ctx, store, req, Some(id))?;
    let b: RunBody = body(req)?;
    let now = ctx.clock.now();
    // The caller's row is this task instance's (the token's subject is the path's), read
    // just now: not read again.
    let ti = c.ti.clone();
    let same_process = ti.state == Some(TaskState::Running)
        && ti.pid == Some(b.pid)
        && ti.hostname.as_deref() == Some(b.hostname.as_str());
    if !same_process {
        let started = store.write(|tx| {
            let start = b.start_date.unwrap_or(now);
            let ok = tx.start_ti(id, b.pid, &b.hostname, &b.unixname, start, now)?;
            if ok {
                tx.clear_xcoms(&ti.dag_id, &ti.run_id, &ti.task_id, ti.map_index)?;
                tx.event(
                    &Event::for_ti(&ti, "running", "airflow", json!({"host_name": b.hostname})),
                    now,
                )?;
            }
            Ok(ok)
        })?;
        if !started {
            let msg = if ti.state == Some(TaskState::Running) {
                "TI is already running in another process"
            } else {
                "TI was not in a state where it could be marked as running"
            };
            return Err(conflict("invalid_state", msg, ti.state));
        }
    }
    let ti = if same_process {
        ti
    } else {
        started(ti, b, now)
    };
    let run = store
        .run(&ti.dag_id, &ti.run_id)?
        .ok_or_else(|| not_found(format!("DAG run {} not found", ti.run_id)))?;
    let dag = ctx
        .dags
        .get(store, &ti.dag_id)?
        .ok_or_else(|| not_found(format!("DAG {} not found", ti.dag_id)))?;
    let task = task_of(&dag, &ti.task_id).ok_or_else(|| {
        not_found(format!(
            "task {} is no longer in DAG {}",
            ti.task_id, ti.dag_id
        ))
    })?;
    let reschedules = store.reschedules(id)?;
    // Only an asset-triggered run consumes events (`Tx::create_asset_run` links them as
    // it creates the run): no query for the others.
    let consumed = if run.run_type == RunType::AssetTriggered {
        consumed_asset_events(store, run.id)?
    } else {
        Vec::new()
    };
    let context = RunContext::new(&dag, task, &ti, &run, reschedules, &consumed, now);
    let mapped = task.mapped.as_ref().filter(|_| ti.map_index >= 0);
    let reply = if mapped.is_none() && task.hitl.is_none() {
        // The usual try: serialized once, straight into the reply.
        Reply::json(200, &context)
    } else {
        // A mapped instance's values and a human-in-the-loop task's request go into the
        // context as a value.
        let mut context = serde_json::to_value(&context)
            .map_err(|e| ApiError::new(500, format!("run context: {e}")))?;
        if let Some(mapped) = mapped {
            expand_mapped(store, &ti, task, mapped, &mut context["task"])?;
        }
        if task.hitl.is_some() {
            task_json_hitl(&mut context, task);
            hitl::resume_context(store, &ti, &mut context)?;
        }
        Reply::json(200, &context)
    };
    Ok(with_token(ctx, reply, &c, ti.state))
}

/// The row `Tx::start_ti` leaves when its compare-and-set takes `ti`: the columns it
/// writes set as it sets them (times as the store keeps them, to the microsecond), so the
/// claim need not read the row again.
fn started(ti: TiRow, b: RunBody, now: DateTime<Utc>) -> TiRow {
    let stored = |t: DateTime<Utc>| crate::store::parse_ts(&crate::store::ts(t)).unwrap_or(t);
    let at = stored(now);
    TiRow {
        state: Some(TaskState::Running),
        start_date: Some(stored(b.start_date.unwrap_or(now))),
        pid: Some(b.pid),
        hostname: Some(b.hostname),
        unixname: Some(b.unixname),
        last_heartbeat_at: Some(at),
        updated_at: at,
        ..ti
    }
}

/// A mapped instance's own values of the expanded arguments, into its `task` context.
fn expand_mapped(
    store: &Store,
    ti: &TiRow,
    task: &Task,
    mapped: &crate::model::Mapped,
    task_json: &mut Value,
) -> Result<(), ApiError> {
    let Ok(i) = usize::try_from(ti.map_index) else {
        return Ok(());
    };
    // Airflow renders no template in a value read from an XCom (`resolved_oids`):
    // the supervisor is told which arguments those are.
    let from_xcom: Vec<&str> = mapped
        .args
        .iter()
        .filter(|(_, src)| matches!(src, crate::model::MapSource::Upstream { .. }))
        .map(|(name, _)| name.as_str())
        .collect();
    if !from_xcom.is_empty() {
        match task.python {
            Some(_) => task_json["python"]["from_xcom"] = json!(from_xcom),
            None => task_json["from_xcom"] = json!(from_xcom),
        }
    }
    // Values from an upstream's result are read now, from its XComs in this run.
    let mapped = &mapped
        .resolved(|upstream| {
            let pushed = store
                .xcom_values(&ti.dag_id, &ti.run_id, upstream, "return_value")
                .ok()?;
            crate::model::mappable_values(&pushed)
        })
        .ok_or_else(|| {
            not_found(format!(
                "task {} is expanded over a result its upstream did not push",
                ti.task_id
            ))
        })?;
    let values = mapped.values_at(i).ok_or_else(|| {
        not_found(format!(
            "map index {i} of task {} is beyond its {} expanded values",
            ti.task_id,
            mapped.length().unwrap_or(0)
        ))
    })?;
    for (name, value) in values {
        if task.python.is_some() {
            // A Python task's expanded arguments are its callable's: `op_args`,
            // `op_kwargs`, or (TaskFlow) one keyword argument. A value of the wrong
            // type goes as it is, for the runner's call to fail on as Airflow's.
            let call = &mut task_json["python"];
            match name {
                "op_args" | "op_kwargs" => call[name] = value.clone(),
                _ => call["op_kwargs"][name] = value.clone(),
            }
        } else {
            task_json[name] = value.clone();
        }
    }
    Ok(())
}

/// The run context the claim (`run`) answers with: the Task SDK's `TIRunContext` and
/// updraft's additions, borrowed from the rows and the DAG, serialized once.
#[derive(Serialize)]
struct RunContext<'a> {
    dag_run: crate::api::execution_sdk::DagRunRef<'a>,
    /// The try's own start (the Task SDK's `TIRunContext.start_date`).
    start_date: Option<String>,
    task_reschedule_count: i64,
    /// updraft's: where a sensor in reschedule mode counts its timeout from (the first
    /// reschedule of this try), so the supervisor needs no second call.
    first_reschedule_date: Option<String>,
    dag_timezone: &'a crate::model::Zone,
    max_tries: u32,
    should_retry: bool,
    variables: [(); 0],
    connections: [(); 0],
    xcom_keys_to_clear: [(); 0],
    // updraft's additions: what a supervisor needs to run the task without the DAG file.
    try_number: u32,
    params: &'a Value,
    map_index: i64,
    task: TaskContext<'a>,
    fileloc: &'a str,
}

/// The run context's `task`: what the supervisor runs.
#[derive(Serialize)]
struct TaskContext<'a> {
    task_id: &'a str,
    operator: &'static str,
    owner: &'a str,
    bash_command: &'a Option<String>,
    env: Option<Env<'a>>,
    append_env: bool,
    cwd: &'a Option<String>,
    execution_timeout: Option<f64>,
    retries: u32,
    map_index_template: &'a Option<String>,
    python: &'a Option<Box<crate::model::PythonCall>>,
    python_kind: Option<&'static str>,
    sensor: &'a Option<Box<crate::model::NativeSensor>>,
    sensor_kind: Option<crate::model::SensorKind>,
    /// A built-in operator's arguments (executor::operators) and its template fields.
    builtin: Option<crate::model::Builtin>,
    args: &'a Option<Box<serde_json::Map<String, Value>>>,
    template_fields: Option<&'static [&'static str]>,
    /// The DAG's zone: the branch operators read wall-clock times in it.
    dag_timezone: Option<String>,
    /// LatestOnlyOperator's right edge: the end of the next scheduled interval after
    /// this run's, by the DAG's timetable (null when there is none).
    latest_only_next_end: Option<Option<String>>,
    callbacks: &'a [crate::model::Callback],
    outlets: Conds<'a>,
    inlets: Conds<'a>,
    /// A task another expands over pushes its result's length (Airflow's
    /// `iter_mapped_dependants`).
    mapped_dependants: bool,
    // What only a branch or short-circuit needs: not worked out for other tasks.
    downstream: Option<Vec<String>>,
    all_downstream: Option<Vec<String>>,
    group_roots: Option<serde_json::Map<String, Value>>,
}

impl<'a> RunContext<'a> {
    fn new(
        dag: &'a Dag,
        task: &'a Task,
        ti: &TiRow,
        run: &'a crate::store::RunRow,
        reschedules: (i64, Option<DateTime<Utc>>),
        consumed: &'a [Value],
        now: DateTime<Utc>,
    ) -> Self {
        let branching = matches!(
            task.operator,
            Operator::Python(PythonKind::Branch | PythonKind::ShortCircuit)
                | Operator::TaskFlow(PythonKind::Branch | PythonKind::ShortCircuit)
                | Operator::Hitl(_)
        ) || matches!(task.operator, Operator::Builtin(b) if b.branches());
        let builtin = match task.operator {
            Operator::Builtin(b) => Some(b),
            _ => None,
        };
        let task_ctx = TaskContext {
            task_id: &task.task_id,
            operator: task.operator.class_name(),
            owner: &task.owner,
            bash_command: &task.bash_command,
            env: task.env.as_deref().map(Env),
            append_env: task.append_env,
            cwd: &task.cwd,
            execution_timeout: task.execution_timeout_secs,
            retries: task.retries,
            map_index_template: &task.map_index_template,
            python: &task.python,
            python_kind: python_kind(task.operator),
            sensor: &task.sensor,
            sensor_kind: match task.operator {
                Operator::Sensor(kind) => Some(kind),
                _ => None,
            },
            builtin,
            args: &task.args,
            template_fields: builtin.map(|b| b.spec().template_fields),
            dag_timezone: builtin.map(|_| dag.timezone.name()),
            latest_only_next_end: (task.operator
                == Operator::Builtin(crate::model::Builtin::LatestOnly))
            .then(|| latest_only_next_end(dag, run, now)),
            callbacks: &task.callbacks,
            outlets: Conds(&task.outlets),
            inlets: Conds(&task.inlets),
            mapped_dependants: dag.tasks.iter().any(|t| {
                t.mapped
                    .as_ref()
                    .is_some_and(|m| m.upstreams().any(|u| u == task.task_id))
            }),
            downstream: branching.then(|| downstream(dag, &task.task_id, false)),
            all_downstream: branching.then(|| downstream(dag, &task.task_id, true)),
            group_roots: branching.then(|| group_roots(dag)),
        };
        RunContext {
            dag_run: crate::api::execution_sdk::DagRunRef::new(run, consumed),
            start_date: ti.start_date.map(crate::store::ts),
            task_reschedule_count: reschedules.0,
            first_reschedule_date: reschedules.1.map(crate::store::ts),
            dag_timezone: &dag.timezone,
            max_tries: ti.max_tries,
            should_retry: ti.try_number <= ti.max_tries,
            variables: [],
            connections: [],
            xcom_keys_to_clear: [],
            try_number: ti.try_number,
            params: &dag.params,
            map_index: ti.map_index,
            task: task_ctx,
            fileloc: &dag.fileloc,
        }
    }
}

/// A task's `env` as a JSON object: a name given twice keeps its first place and its
/// last value, as an object built from the pairs would.
struct Env<'a>(&'a [(String, String)]);

impl Serialize for Env<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let pairs = self.0;
        let mut m = s.serialize_map(None)?;
        for (i, (k, _)) in pairs.iter().enumerate() {
            if pairs[..i].iter().any(|(seen, _)| seen == k) {
                continue;
            }
            let last = pairs[i..]
                .iter()
                .rev()
                .find(|(name, _)| name == k)
                .map_or("", |(_, v)| v.as_str());
            m.serialize_entry(k, last)?;
        }
        m.end()
    }
}

/// Outlets or inlets as the run context carries them (see [`asset_cond_json`]).
struct Conds<'a>(&'a [AssetCond]);

impl Serialize for Conds<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(asset_cond_json))
    }
}

#[derive(Deserialize)]
struct HeartbeatBody {
    pid: i64,
    hostname: String,
}

/// `PUT /execution/task-instances/{id}/heartbeat`: 204 while the caller still owns the
/// task instance; 409 when it was cleared or changed elsewhere (the task must stop).
pub fn heartbeat(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let id = p.get("task_instance_id");
    let c = caller(ctx, store, req, Some(id))?;
    let b: HeartbeatBody = body(req)?;
    if store.write(|tx| tx.heartbeat_ti(id, b.pid, &b.hostname, ctx.clock.now()))? {
        return Ok(with_token(
            ctx,
            Reply::bytes(204, "application/json", Vec::new()),
            &c,
            Some(TaskState::Running),
        ));
    }
    let ti = load_ti(store, id)?;
    if ti.state == Some(TaskState::Running) {
        return Err(conflict(
            "running_elsewhere",
            "TI is running in another process",
            ti.state,
        ));
    }
    Err(conflict(
        "not_running",
        "TI is no longer in the running state; the task should terminate",
        ti.state,
    ))
}

#[derive(Deserialize)]
struct StateBody {
    state: String,
    end_date: Option<DateTime<Utc>>,
    /// With `up_for_reschedule`: when the sensor pokes next.
    reschedule_date: Option<DateTime<Utc>>,
    rendered_command: Option<String>,
    /// The Task SDK's events of a success (`outlet_events`): extras set by the task, and
    /// events attached to aliases.
    #[serde(default)]
    outlet_events: Vec<Value>,
}

/// `PATCH /execution/task-instances/{id}/state`: running -> a terminal state or
/// up_for_retry. 204; 200 when it is already in that state; 409 when not running.
pub fn state(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    use TaskState::*;
    let id = p.get("task_instance_id");
    let c = caller(ctx, store, req, Some(id))?;
    let b: StateBody = body(req)?;
    if b.state == "awaiting_input" {
        return hitl::park(ctx, store, req, p);
    }
    let to = match TaskState::parse(&b.state) {
        Some(s @ (Success | Failed | Skipped | UpForRetry | UpForReschedule | Removed)) => s,
        _ => {
            return Err(ApiError::new(
                422,
                format!(
                    "state {:?} cannot be set through the Execution API",
                    b.state
                ),
            ));
        }
    };
    if to == UpForReschedule && b.reschedule_date.is_none() {
        return Err(ApiError::new(
            422,
            "up_for_reschedule needs a reschedule_date".to_string(),
        ));
    }
    // The caller's row is this task instance's, read just now (every change below is a
    // compare-and-set on it anyway).
    let ti = c.ti.clone();
    if ti.state == Some(to) {
        return Ok(with_token(
            ctx,
            Reply::bytes(200, "application/json", Vec::new()),
            &c,
            ti.state,
        ));
    }
    let now = b.end_date.unwrap_or_else(|| ctx.clock.now());
    let next_retry_at = if to == UpForRetry {
        let task = ctx
            .dags
            .get(store, &ti.dag_id)?
            .and_then(|d| task_of(&d, &ti.task_id).cloned());
        task.map(|t| {
            now + chrono::Duration::from_std(retry_delay(&t, ti.try_number)).unwrap_or_default()
        })
    } else if to == UpForReschedule {
        // The scheduler moves it back to scheduled when this is due.
        b.reschedule_date
    } else {
        None
    };
    let reported = ctx.clock.now();
    let outlets = match to {
        Success => success_outlets(ctx, store, &ti, &b.outlet_events)?,
        _ => Vec::new(),
    };
    let changed = store.write(|tx| {
        // The rendered command goes with the state, in one statement: not onto a row
        // the compare-and-set refuses (another try's, or a finished one's).
        let ok = tx.set_ti_state_rendered(
            id,
            Some(Running),
            Some(to),
            now,
            next_retry_at,
            b.rendered_command.as_deref(),
        )?;
        if ok && let (UpForReschedule, Some(at)) = (to, b.reschedule_date) {
            tx.add_reschedule(id, reported, now, at)?;
        }
        if ok {
            let source = EventSource {
                dag_id: &ti.dag_id,
                task_id: &ti.task_id,
                run_id: &ti.run_id,
                map_index: ti.map_index,
            };
            for (asset, extra, alias) in &outlets {
                match alias {
                    Some(alias) => tx.alias_event(alias, asset, extra, Some(source), now)?,
                    None => tx.asset_event(asset, extra, Some(source), now)?,
                };
            }
        }
        if ok && matches!(to, Success | Failed) {
            tx.event(
                &Event::for_ti(
                    &ti,
                    to.as_str(),
                    "airflow",
                    json!({"host_name": ti.hostname}),
                ),
                now,
            )?;
        }
        Ok(ok)
    })?;
    if !changed {
        return Err(conflict(
            "invalid_state",
            "TI was not in the running state",
            ti.state,
        ));
    }
    ctx.wake_scheduler();
    Ok(with_token(
        ctx,
        Reply::bytes(204, "application/json", Vec::new()),
        &c,
        Some(to),
    ))
}

/// `GET /execution/task-reschedules/{id}/start_date`: the start of the first reschedule
/// of the task instance's current try, or null.
pub fn reschedule_start_date(
    ctx: &Ctx,
    store: &mut Store,
    req: &Req,
    p: &Params,
) -> Result<Reply, ApiError> {
    let id = p.get("task_instance_id");
    let c = caller(ctx, store, req, Some(id))?;
    let (_, first) = store.reschedules(id)?;
    Ok(with_token(
        ctx,
        Reply::json(200, &json!(first.map(crate::store::ts))),
        &c,
        c.ti.state,
    ))
}

/// Every value of a repeated query parameter (`states=a&states=b`).
fn query_all<'a>(req: &'a Req, name: &str) -> Vec<&'a str> {
    req.query
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The `logical_dates` query values of the counting routes (ExternalTaskSensor's).
fn logical_dates(req: &Req) -> Result<Vec<DateTime<Utc>>, ApiError> {
    query_all(req, "logical_dates")
        .into_iter()
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|d| d.with_timezone(&Utc))
                .map_err(|_| ApiError::new(422, format!("logical_dates: {v:?} is not a date-time")))
        })
        .collect()
}

/// The `dag_id` query value the counting routes require.
fn dag_id_query(req: &Req) -> Result<&str, ApiError> {
    req.query("dag_id")
        .ok_or_else(|| ApiError::new(422, "dag_id is required"))
}

/// `GET /execution/task-instances/count`: how many task instances of `dag_id` (of
/// `task_ids`, in runs at `logical_dates`) are in one of `states`.
pub fn ti_count(ctx: &Ctx, store: &mut Store, req: &Req, _p: &Params) -> Result<Reply, ApiError> {
    let c = running_caller(ctx, store, req)?;
    let dag_id = dag_id_query(req)?;
    let task_ids: Vec<String> = query_all(req, "task_ids")
        .into_iter()
        .map(str::to_string)
        .collect();
    let states = query_all(req, "states");
    let map_index = req.query("map_index").and_then(|m| m.parse::<i64>().ok());
    let rows = store.ti_states_at(
        dag_id,
        (!task_ids.is_empty()).then_some(&task_ids[..]),
        &logical_dates(req)?,
    )?;
    let n = rows
        .iter()
        .filter(|(_, _, i, _)| map_index.is_none_or(|m| m == *i))
        .filter(|(_, _, _, st)| {
            states.is_empty() || st.as_deref().is_some_and(|s| states.contains(&s))
        })
        .count();
    Ok(with_token(ctx, Reply::json(200, &json!(n)), &c, c.ti.state))
}

/// `GET /execution/task-instances/states`: `{"task_states": {run_id: {task_id: state}}}`
/// of `dag_id`'s task instances at `logical_dates` (of `task_ids`, or of the tasks of
/// `task_group_id` and the groups within it).
pub fn ti_states(ctx: &Ctx, store: &mut Store, req: &Req, _p: &Params) -> Result<Reply, ApiError> {
    let c = running_caller(ctx, store, req)?;
    let dag_id = dag_id_query(req)?;
    let mut task_ids: Vec<String> = query_all(req, "task_ids")
        .into_iter()
        .map(str::to_string)
        .collect();
    if let Some(group) = req.query("task_group_id") {
        let dag = ctx.dags.get(store, dag_id)?;
        let prefix = format!("{group}.");
        task_ids.extend(
            dag.iter()
                .flat_map(|d| &d.tasks)
                .filter(|t| {
                    t.task_group
                        .as_deref()
                        .is_some_and(|g| g == group || g.starts_with(&prefix))
                })
                .map(|t| t.task_id.clone()),
        );
        if task_ids.is_empty() {
            task_ids.push(group.to_string());
        }
    }
    let rows = store.ti_states_at(
        dag_id,
        (!task_ids.is_empty()).then_some(&task_ids[..]),
        &logical_dates(req)?,
    )?;
    let mut out = serde_json::Map::new();
    for (run_id, task_id, map_index, state) in rows {
        let key = match map_index {
            i if i < 0 => task_id,
            i => format!("{task_id}_{i}"),
        };
        if let Value::Object(m) = out.entry(run_id).or_insert_with(|| json!({})) {
            m.insert(key, json!(state));
        }
    }
    Ok(with_token(
        ctx,
        Reply::json(200, &json!({"task_states": out})),
        &c,
        c.ti.state,
    ))
}

/// `GET /execution/dag-runs/count`: how many runs of `dag_id` at `logical_dates` are in
/// one of `states`.
pub fn dr_count(ctx: &Ctx, store: &mut Store, req: &Req, _p: &Params) -> Result<Reply, ApiError> {
    let c = running_caller(ctx, store, req)?;
    let dag_id = dag_id_query(req)?;
    let states = query_all(req, "states");
    let n = store
        .run_states_at(dag_id, &logical_dates(req)?)?
        .iter()
        .filter(|s| states.is_empty() || states.contains(&s.as_str()))
        .count();
    Ok(with_token(ctx, Reply::json(200, &json!(n)), &c, c.ti.state))
}

/// `GET /execution/variables/{variable_key}`.
pub fn variable(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let c = reader(ctx, store, req)?;
    let key = p.get("variable_key");
    let v = store
        .variable(key)?
        .ok_or_else(|| not_found(format!("Variable with key '{key}' not found")))?;
    Ok(with_reader_token(
        ctx,
        Reply::json(200, &json!({"key": v.key, "value": v.val})),
        c.as_ref(),
    ))
}

#[derive(Deserialize)]
struct VariableBody {
    /// The Task SDK sends `val` (Airflow's alias); updraft's own supervisor `value`.
    #[serde(alias = "val")]
    value: String,
    #[serde(default)]
    description: Option<String>,
}

/// `PUT /execution/variables/{variable_key}`: creates or sets a variable (a callable's
/// `Variable.set`). 201.
pub fn put_variable(
    ctx: &Ctx,
    store: &mut Store,
    req: &Req,
    p: &Params,
) -> Result<Reply, ApiError> {
    let c = reader(ctx, store, req)?;
    let key = p.get("variable_key");
    if key.is_empty() || key.chars().count() > crate::model::ID_LEN {
        return Err(ApiError::new(
            422,
            format!(
                "a variable key must be 1 to {} characters",
                crate::model::ID_LEN
            ),
        ));
    }
    let b: VariableBody = body(req)?;
    store.set_variable(key, &b.value, b.description.as_deref())?;
    Ok(with_reader_token(
        ctx,
        Reply::json(201, &json!({"message": "Variable successfully set"})),
        c.as_ref(),
    ))
}

/// `GET /execution/connections/{connection_id}`.
pub fn connection(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let c = reader(ctx, store, req)?;
    let id = p.get("connection_id");
    let conn = store
        .connection(id)?
        .ok_or_else(|| not_found(format!("Connection with ID {id} not found")))?;
    Ok(with_reader_token(
        ctx,
        Reply::json(200, &conn.to_json()),
        c.as_ref(),
    ))
}

/// The `{dag_id}/{run_id}/{task_id}/{key}` of an XCom route.
fn xcom_path(p: &Params) -> (&str, &str, &str, &str) {
    (
        p.get("dag_id"),
        p.get("run_id"),
        p.get("task_id"),
        p.get("key"),
    )
}

/// `GET /execution/xcoms/{dag_id}/{run_id}/{task_id}/{key}`.
pub fn get_xcom(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let c = reader(ctx, store, req)?;
    let (dag_id, run_id, task_id, key) = xcom_path(p);
    // HEAD: how many instances pushed it, in `Content-Range` (Airflow's own range unit).
    if req.method == crate::api::http::Method::Head {
        if req.query("map_index").is_some() {
            return Err(ApiError::with_detail(
                400,
                json!({"reason": "invalid_request", "message": "Cannot specify map_index in a HEAD request"}),
            ));
        }
        let count = store.xcom_values(dag_id, run_id, task_id, key)?.len();
        let reply = Reply::bytes(200, "application/json", Vec::new())
            .with_header("Content-Range", &format!("map_indexes {count}"));
        return Ok(with_reader_token(ctx, reply, c.as_ref()));
    }
    let map_index = xcom_map_index(req)?.unwrap_or(-1);
    let value = store.xcom_at(dag_id, run_id, task_id, map_index, key)?.ok_or_else(|| {
        not_found(format!("XCom with key='{key}' map_index={map_index} not found for task '{task_id}' in DAG run '{run_id}' of '{dag_id}'"))
    })?;
    Ok(with_reader_token(
        ctx,
        Reply::json(200, &json!({"key": key, "value": value})),
        c.as_ref(),
    ))
}

/// `POST /execution/xcoms/{dag_id}/{run_id}/{task_id}/{key}`: body is the JSON value.
/// Only the task instance itself may push its XComs.
pub fn set_xcom(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let c = running_caller(ctx, store, req)?;
    let (dag_id, run_id, task_id, key) = xcom_path(p);
    let ti = &c.ti;
    // The map index defaults to the caller's own: a task only pushes its own XComs.
    let map_index = xcom_map_index(req)?.unwrap_or(ti.map_index);
    if (
        ti.dag_id.as_str(),
        ti.run_id.as_str(),
        ti.task_id.as_str(),
        ti.map_index,
    ) != (dag_id, run_id, task_id, map_index)
    {
        return Err(ApiError::new(403, "a task may only push its own XComs"));
    }
    // `mapped_length`: the Task SDK's length of a value a mapped task will expand over;
    // past `[core] max_map_length` the push is refused, which fails the pushing task.
    if let Some(v) = req.query("mapped_length") {
        let n: u64 = v
            .parse()
            .map_err(|_| ApiError::new(422, format!("mapped_length must be a count, not {v:?}")))?;
        if n > u64::from(ctx.cfg.core.max_map_length) {
            return Err(ApiError::with_detail(
                400,
                json!({"reason": "unmappable_return_value_length",
                       "message": "pushed value is too large to map as a downstream's dependency"}),
            ));
        }
    }
    let value: Value = body(req)?;
    store.write(|tx| {
        tx.set_xcom(
            dag_id,
            run_id,
            task_id,
            map_index,
            key,
            &value,
            ctx.clock.now(),
        )
    })?;
    Ok(with_token(
        ctx,
        Reply::json(201, &json!({"message": "XCom successfully set"})),
        &c,
        c.ti.state,
    ))
}

/// A human-in-the-loop task's request in its run context (`task.hitl`).
fn task_json_hitl(context: &mut Value, task: &Task) {
    context["task"]["hitl"] = serde_json::to_value(&task.hitl).unwrap_or(Value::Null);
}

/// `call`, `branch` or `short_circuit` for a Python task; null for others.
fn python_kind(op: Operator) -> Option<&'static str> {
    match op {
        Operator::Python(kind) | Operator::TaskFlow(kind) => Some(match kind {
            PythonKind::Call => "call",
            PythonKind::Branch => "branch",
            PythonKind::ShortCircuit => "short_circuit",
            PythonKind::Sensor => "sensor",
        }),
        Operator::Bash
        | Operator::Empty
        | Operator::Hitl(_)
        | Operator::Sensor(_)
        | Operator::Builtin(_) => None,
    }
}

/// The ids of the tasks directly downstream of `task_id`, or with `all` every task
/// downstream of it (Airflow's `get_flat_relatives(upstream=False)`), in DAG order.
fn downstream(dag: &Dag, task_id: &str, all: bool) -> Vec<String> {
    let mut found: std::collections::HashSet<&str> = std::collections::HashSet::new();
    found.insert(task_id);
    let mut out = Vec::new();
    // Tasks are in a topological order, so one pass sees every upstream first.
    for t in &dag.tasks {
        let hit = if all {
            t.upstream.iter().any(|u| found.contains(u.as_str()))
        } else {
            t.upstream.iter().any(|u| u == task_id)
        };
        if hit && t.task_id != task_id {
            found.insert(&t.task_id);
            out.push(t.task_id.clone());
        }
    }
    out
}

/// Each task group's roots (its tasks with no upstream inside it): what a branch that
/// names the group follows.
fn group_roots(dag: &Dag) -> serde_json::Map<String, Value> {
    let inside = |t: &Task, g: &str| {
        t.task_group
            .as_deref()
            .is_some_and(|tg| tg == g || tg.starts_with(&format!("{g}.")))
    };
    dag.task_groups
        .iter()
        .map(|g| {
            let g = g.group_id.as_str();
            let roots: Vec<Value> = dag
                .tasks
                .iter()
                .filter(|t| inside(t, g))
                .filter(|t| {
                    !t.upstream
                        .iter()
                        .any(|u| task_of(dag, u).is_some_and(|ut| inside(ut, g)))
                })
                .map(|t| Value::String(t.task_id.clone()))
                .collect();
            (g.to_string(), Value::Array(roots))
        })
        .collect()
}

#[derive(Deserialize)]
struct SkipBody {
    tasks: Vec<String>,
}

/// `PATCH /execution/task-instances/{id}/skip-downstream`: a branch or short-circuit
/// task marks tasks of its own run skipped before they start (those not yet started:
/// no state or scheduled). 204.
pub fn skip_downstream(
    ctx: &Ctx,
    store: &mut Store,
    req: &Req,
    p: &Params,
) -> Result<Reply, ApiError> {
    let id = p.get("task_instance_id");
    let c = caller(ctx, store, req, Some(id))?;
    if c.ti.state != Some(TaskState::Running) || !c.current_try() {
        return Err(conflict("invalid_state", "TI is not running", c.ti.state));
    }
    let b: SkipBody = body(req)?;
    let mut targets = Vec::new();
    for task_id in &b.tasks {
        if let Some(ti) = store.ti_by_key(&c.ti.dag_id, &c.ti.run_id, task_id)?
            && matches!(ti.state, None | Some(TaskState::Scheduled))
        {
            targets.push(ti);
        }
    }
    let now = ctx.clock.now();
    store.write(|tx| {
        for ti in &targets {
            tx.set_ti_state(&ti.id, ti.state, Some(TaskState::Skipped), now, None)?;
        }
        Ok(())
    })?;
    ctx.wake_scheduler();
    Ok(with_token(
        ctx,
        Reply::bytes(204, "application/json", Vec::new()),
        &c,
        c.ti.state,
    ))
}

/// `GET /execution/xcoms/{dag_id}/{run_id}/{task_id}/{key}/item/{offset}`: the value at
/// position `offset` of the task's XComs in map index order; a negative offset counts
/// from the end, as Python's.
pub fn xcom_item(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let c = reader(ctx, store, req)?;
    let (dag_id, run_id, task_id, key) = xcom_path(p);
    let offset_text = p.get("offset");
    let offset: i64 = offset_text.parse().map_err(|_| {
        ApiError::new(
            422,
            format!("offset must be an integer, not {offset_text:?}"),
        )
    })?;
    let values = store.xcom_values(dag_id, run_id, task_id, key)?;
    let at = if offset >= 0 {
        usize::try_from(offset).ok()
    } else {
        usize::try_from(offset.unsigned_abs())
            .ok()
            .and_then(|back| values.len().checked_sub(back))
    };
    let Some((_, value)) = at.and_then(|i| values.get(i)) else {
        return Err(not_found(format!(
            "XCom with key='{key}' offset={offset} not found for task '{task_id}' in DAG run '{run_id}' of '{dag_id}'"
        )));
    };
    Ok(with_reader_token(ctx, Reply::json(200, value), c.as_ref()))
}

/// `GET /execution/xcoms/{dag_id}/{run_id}/{task_id}/{key}/slice?start=&stop=&step=`: the
/// task's XComs in map index order, sliced as Python slices a list (a step of 0 is 1, as
/// in Airflow).
pub fn xcom_slice(ctx: &Ctx, store: &mut Store, req: &Req, p: &Params) -> Result<Reply, ApiError> {
    let c = reader(ctx, store, req)?;
    let (dag_id, run_id, task_id, key) = xcom_path(p);
    let int = |name: &str| -> Result<Option<i64>, ApiError> {
        match req.query(name).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ApiError::new(422, format!("{name} must be an integer, not {v:?}"))),
        }
    };
    let (start, stop) = (int("start")?, int("stop")?);
    let step = int("step")?.filter(|&s| s != 0).unwrap_or(1);
    let values = store.xcom_values(dag_id, run_id, task_id, key)?;
    let picked: Vec<&Value> = py_slice(values.len(), start, stop, step)
        .into_iter()
        .map(|i| &values[i].1)
        .collect();
    Ok(with_reader_token(
        ctx,
        Reply::json(200, &picked),
        c.as_ref(),
    ))
}

/// The indexes `list[start:stop:step]` takes of a list of `len` items in Python (`step`
/// not 0).
fn py_slice(len: usize, start: Option<i64>, stop: Option<i64>, step: i64) -> Vec<usize> {
    let n = i64::try_from(len).unwrap_or(i64::MAX);
    let clamp = |v: i64, lo: i64, hi: i64| v.max(lo).min(hi);
    let adjust = |v: Option<i64>, default: i64, lo: i64, hi: i64| match v {
        None => default,
        Some(v) if v < 0 => clamp(v + n, lo, hi),
        Some(v) => clamp(v, lo, hi),
    };
    let mut out = Vec::new();
    if step > 0 {
        let (mut i, end) = (adjust(start, 0, 0, n), adjust(stop, n, 0, n));
        while i < end {
            out.push(i as usize);
            i += step;
        }
    } else {
        let (mut i, end) = (adjust(start, n - 1, -1, n - 1), adjust(stop, -1, -1, n - 1));
        while i > end {
            out.push(i as usize);
            i += step;
        }
    }
    out
}

/// `map_index` of an XCom route's query, if given: an integer of at least -1, or a 422.
fn xcom_map_index(req: &Req) -> Result<Option<i64>, ApiError> {
    let Some(v) = req.query("map_index") else {
        return Ok(None);
    };
    match v.parse::<i64>() {
        Ok(n) if n >= -1 => Ok(Some(n)),
        _ => Err(ApiError::new(
            422,
            format!("map_index must be an integer of at least -1, not {v:?}"),
        )),
    }
}

/// `PATCH /execution/task-instances/{id}/rendered-map-index`: the body is the render of
/// the task's `map_index_template`, a JSON string, as Airflow's Task SDK sends it.
pub fn rendered_map_index(
    ctx: &Ctx,
    store: &mut Store,
    req: &Req,
    p: &Params,
) -> Result<Reply, ApiError> {
    let id = p.get("task_instance_id");
    let c = caller(ctx, store, req, Some(id))?;
    let text: String = body(req)?;
    if text.is_empty() {
        return Err(ApiError::new(422, "rendered_map_index cannot be empty"));
    }
    if !store.write(|tx| tx.set_rendered_map_index(id, &text))? {
        return Err(ApiError::new(404, "Task Instance not found"));
    }
    Ok(with_token(
        ctx,
        Reply::bytes(204, "application/json", Vec::new()),
        &c,
        c.ti.state,
    ))
}

/// How long a failed try waits before the next: `retry_delay`, doubled per try with
/// `retry_exponential_backoff`, never above `max_retry_delay`.
fn retry_delay(task: &Task, try_number: u32) -> std::time::Duration {
    let base = task.retry_delay_secs.max(0.0);
    let mut secs = if task.retry_exponential_backoff {
        base * 2f64.powi(try_number.saturating_sub(1).min(30) as i32)
    } else {
        base
    };
    if let Some(max) = task.max_retry_delay_secs {
        secs = secs.min(max);
    }
    std::time::Duration::from_secs_f64(secs.min(86_400.0 * 365.0))
}

/// The end of the data interval of the scheduled run that follows `run`'s, as Airflow's
/// LatestOnlyOperator asks the timetable (`next_dagrun_info` with catchup on); `None`
/// when the run has no interval or the timetable has no next run.
fn latest_only_next_end(
    dag: &Dag,
    run: &crate::store::RunRow,
    now: DateTime<Utc>,
) -> Option<String> {
    let at = run.logical_date.unwrap_or(run.run_after);
    let current = crate::scheduler::timetable::RunInfo {
        logical_date: at,
        data_interval_start: run.data_interval_start.unwrap_or(at),
        data_interval_end: run.data_interval_end.unwrap_or(at),
        run_after: run.run_after,
    };
    let mut d = dag.clone();
    d.catchup = true;
    crate::scheduler::timetable::next_run(&d, Some(&current), now)
        .map(|next| crate::store::ts(next.data_interval_end))
}

/// The body of `POST /execution/dag-runs/{dag_id}/{run_id}` (Airflow's
/// `TriggerDAGRunPayload`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TriggerRunBody {
    #[serde(default)]
    logical_date: Option<DateTime<Utc>>,
    #[serde(default)]
    run_after: Option<DateTime<Utc>>,
    #[serde(default)]
    conf: Option<Value>,
    #[serde(default)]
    #[allow(dead_code)]
    reset_dag_run: bool,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    partition_key: Option<String>,
}

/// The DAG a dag-runs route names, or Airflow's 404.
fn dag_for_trigger(store: &Store, dag_id: &str) -> Result<(), ApiError> {
    crate::ops::dag(store, dag_id).map(|_| ()).map_err(|_| {
        ApiError::with_detail(
            404,
            json!({"reason": "not_found", "message": format!("Dag with dag_id: '{dag_id}' not found")}),
        )
    })
}

/// `POST /execution/dag-runs/{dag_id}/{run_id}`: a task (TriggerDagRunOperator)
/// triggers a run of another DAG; 204, 404 without the DAG, 409 when the run (or one at
/// that logical date) exists. The run is manual, triggered by `operator`, for the user
/// who triggered the caller's run.
pub fn trigger_dag_run(
    ctx: &Ctx,
    store: &mut Store,
    req: &Req,
    p: &Params,
) -> Result<Reply, ApiError> {
    let c = running_caller(ctx, store, req)?;
    let (dag_id, run_id) = (p.get("dag_id"), p.get("run_id"));
    let b: TriggerRunBody = body(req)?;
    dag_for_trigger(store, dag_id)?;
    let user = store
        .run(&c.ti.dag_id, &c.ti.run_id)?
        .and_then(|r| r.triggering_user_name);
    let trigger = crate::ops::Trigger {
        run_id: Some(run_id.to_string()),
        logical_date: b.logical_date,
        data_interval: None,
        run_after: b.run_after.or(b.logical_date),
        conf: b.conf,
        note: b.note,
        triggered_by: "operator",
        user,
        audited_by_caller: false,
    };
    match crate::ops::trigger(store, dag_id, trigger, ctx.clock.now()) {
        Ok(_) => {}
        Err(crate::error::Error::Conflict(_)) => {
            return Err(ApiError::with_detail(
                409,
                json!({"reason": "already_exists", "message": format!("A run already exists for Dag '{dag_id}' with run_id '{run_id}'")}),
            ));
        }
        Err(crate::error::Error::Usage(m)) => {
            return Err(ApiError::with_detail(
                400,
                json!({"reason": "value_error", "message": m}),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    ctx.wake_scheduler();
    Ok(with_token(
        ctx,
        Reply::bytes(204, "application/json", Vec::new()),
        &c,
        c.ti.state,
    ))
}

/// `POST /execution/dag-runs/{dag_id}/{run_id}/clear`: every task instance of the run
/// is cleared and the run queued again (`reset_dag_run`).
pub fn clear_dag_run(
    ctx: &Ctx,
    store: &mut Store,
    req: &Req,
    p: &Params,
) -> Result<Reply, ApiError> {
    let c = running_caller(ctx, store, req)?;
    let (dag_id, run_id) = (p.get("dag_id"), p.get("run_id"));
    dag_for_trigger(store, dag_id)?;
    crate::ops::clear(store, dag_id, Some(run_id), None, false, ctx.clock.now())?;
    ctx.wake_scheduler();
    Ok(with_token(
        ctx,
        Reply::bytes(204, "application/json", Vec::new()),
        &c,
        c.ti.state,
    ))
}

/// `GET /execution/dag-runs/{dag_id}/{run_id}/state`: `{"state": ...}`.
pub fn dag_run_state(
    ctx: &Ctx,
    store: &mut Store,
    req: &Req,
    p: &Params,
) -> Result<Reply, ApiError> {
    let c = running_caller(ctx, store, req)?;
    let (dag_id, run_id) = (p.get("dag_id"), p.get("run_id"));
    let run = store.run(dag_id, run_id)?.ok_or_else(|| {
        not_found(format!(
            "Dag run with dag_id '{dag_id}' and run_id '{run_id}' was not found"
        ))
    })?;
    Ok(with_token(
        ctx,
        Reply::json(200, &json!({"state": run.state.as_str()})),
        &c,
        c.ti.state,
    ))
}

/// An outlet or inlet as the run context carries it: an asset, or `{"alias": name}`.
fn asset_cond_json(c: &AssetCond) -> Value {
    match c {
        AssetCond::Asset(a) => {
            json!({"name": a.name, "uri": a.uri, "group": a.group, "extra": a.extra})
        }
        AssetCond::Alias(name) => json!({"alias": name}),
        AssetCond::All(_) | AssetCond::Any(_) => Value::Null,
    }
}

/// The run's `consumed_asset_events` as Airflow's `AssetEventDagRunReference`s.
fn consumed_asset_events(store: &Store, run_pk: i64) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::new();
    for e in store.consumed_events(run_pk)? {
        let aliases: Vec<Value> = store
            .event_aliases(e.id)?
            .into_iter()
            .map(|(name, group)| json!({"name": name, "group": group}))
            .collect();
        out.push(json!({
                "asset": {"name": e.name, "uri": e.uri, "extra": {}},
                "extra": e.extra,
                "source_task_id": e.source_task_id,
                "source_dag_id": e.source_dag_id,
                "source_run_id": e.source_run_id,
                "source_map_index": e.source_map_index,
                "source_aliases": aliases,
                "timestamp": when(Some(e.timestamp)),
                "partition_key": null,
        }));
    }
    Ok(out)
}

/// The asset events a successful try makes: one per asset outlet of its task, with the
/// `extra` the task set on it (`outlet_events[asset].extra`), and one per event the task
/// attached to one of its alias outlets (`outlet_events[alias].add(asset, extra)`).
fn success_outlets(
    ctx: &Ctx,
    store: &Store,
    ti: &TiRow,
    reported: &[Value],
) -> Result<Vec<(AssetRef, Value, Option<String>)>, ApiError> {
    let Some(dag) = ctx.dags.get(store, &ti.dag_id)? else {
        return Ok(Vec::new());
    };
    let Some(task) = task_of(&dag, &ti.task_id) else {
        return Ok(Vec::new());
    };
    let key_of = |e: &Value| {
        let k = e.get("dest_asset_key")?;
        Some((
            k.get("name")?.as_str()?.to_string(),
            k.get("uri")?.as_str()?.to_string(),
        ))
    };
    let extra_of = |e: &Value| match e.get("extra") {
        Some(v @ Value::Object(_)) => v.clone(),
        _ => json!({}),
    };
    let mut out = Vec::new();
    for outlet in &task.outlets {
        match outlet {
            AssetCond::Asset(a) => {
                let extra = reported
                    .iter()
                    .find(|e| {
                        e.get("source_alias_name").is_none()
                            && key_of(e).is_some_and(|(n, u)| n == a.name && u == a.uri)
                    })
                    .map_or_else(|| json!({}), extra_of);
                out.push((a.clone(), extra, None));
            }
            AssetCond::Alias(alias) => {
                for e in reported.iter().filter(|e| {
                    e.get("source_alias_name").and_then(Value::as_str) == Some(alias.as_str())
                }) {
                    let Some((name, uri)) = key_of(e) else {
                        continue;
                    };
                    let asset = match store.asset_by(Some(&name), Some(&uri))? {
                        Some(row) => AssetRef {
                            name: row.name,
                            uri: row.uri,
                            group: row.group,
                            extra: row.extra,
                        },
                        None => AssetRef {
                            name,
                            uri,
                            group: "asset".to_string(),
                            extra: e
                                .get("dest_asset_extra")
                                .cloned()
                                .unwrap_or_else(|| json!({})),
                        },
                    };
                    out.push((asset, extra_of(e), Some(alias.clone())));
                }
            }
            AssetCond::All(_) | AssetCond::Any(_) => {}
        }
    }
    Ok(out)
}

/// A time as pydantic writes one: `...Z`, microseconds only when there are some.
fn when(t: Option<DateTime<Utc>>) -> Value {
    use chrono::SecondsFormat;
    match t {
        None => Value::Null,
        Some(t) if t.timestamp_subsec_micros() == 0 => {
            Value::String(t.to_rfc3339_opts(SecondsFormat::Secs, true))
        }
        Some(t) => Value::String(t.to_rfc3339_opts(SecondsFormat::Micros, true)),
    }
}

fn asset_json(a: &crate::store::AssetRow) -> Value {
    json!({"name": a.name, "uri": a.uri, "group": a.group, "extra": a.extra})
}

fn asset_not_found(msg: String) -> ApiError {
    ApiError::with_detail(404, json!({"reason": "not_found", "message": msg}))
}

/// `GET /execution/assets/by-name?name=` and `/by-uri?uri=`.
pub fn asset_by_name(
    ctx: &Ctx,
    store: &mut Store,
    req: &Req,
    _: &Params,
) -> Result<Reply, ApiError> {
    running_caller(ctx, store, req)?;
    let name = req.query("name").unwrap_or_default().to_string();
    match store.asset_by(Some(&name), None)? {
        Some(a) => Ok(Reply::json(200, &asset_json(&a))),
        None => Err(asset_not_found(format!("Asset with name {name} not found"))),
    }
}

pub fn asset_by_uri(
    ctx: &Ctx,
    store: &mut Store,
    req: &Req,
    _: &Params,
) -> Result<Reply, ApiError> {
    running_caller(ctx, store, req)?;
    let uri = req.query("uri").unwrap_or_default().to_string();
    match store.asset_by(None, Some(&uri))? {
        Some(a) => Ok(Reply::json(200, &asset_json(&a))),
        None => Err(asset_not_found(format!("Asset with uri {uri} not found"))),
    }
}

/// `GET /execution/assets/by-alias?alias_name=`: the assets the alias resolves to (those
/// events attached through it named), a list, empty for an alias unknown or unresolved.
pub fn assets_by_alias(
    ctx: &Ctx,
    store: &mut Store,
    req: &Req,
    _: &Params,
) -> Result<Reply, ApiError> {
    running_caller(ctx, store, req)?;
    let Some(alias) = req.query("alias_name") else {
        return Err(ApiError::new(422, "`alias_name` is required"));
    };
    let assets: Vec<Value> = store.alias_assets(alias)?.iter().map(asset_json).collect();
    Ok(Reply::json(200, &Value::Array(assets)))
}

/// `GET /execution/asset-events/by-asset?name=&uri=&after=&before=&ascending=&limit=`.
pub fn asset_events_by_asset(
    ctx: &Ctx,
    store: &mut Store,
    req: &Req,
    _: &Params,
) -> Result<Reply, ApiError> {
    running_caller(ctx, store, req)?;
    let name = req.query("name").filter(|s| !s.is_empty());
    let uri = req.query("uri").filter(|s| !s.is_empty());
    if name.is_none() && uri.is_none() {
        return Err(ApiError::with_detail(
            400,
            json!({"reason": "Missing parameter", "message": "name and uri cannot both be None"}),
        ));
    }
    let events = store
        .asset_events()?
        .into_iter()
        .filter(|e| name.is_none_or(|n| e.name == n))
        .filter(|e| uri.is_none_or(|u| e.uri == u))
        .collect();
    asset_events_reply(store, req, events)
}

/// `GET /execution/asset-events/by-asset-alias?name=&after=&before=&ascending=&limit=`:
/// the events attached through the alias (Airflow's `source_aliases`).
pub fn asset_events_by_alias(
    ctx: &Ctx,
    store: &mut Store,
    req: &Req,
    _: &Params,
) -> Result<Reply, ApiError> {
    running_caller(ctx, store, req)?;
    let Some(name) = req.query("name") else {
        return Err(ApiError::new(422, "`name` is required"));
    };
    let events = store.alias_events(name)?;
    asset_events_reply(store, req, events)
}

/// The `AssetEventsResponse` of `events` within the request's `after`/`before`, in its
/// order (`ascending`, by timestamp) and up to its `limit`.
fn asset_events_reply(
    store: &Store,
    req: &Req,
    events: Vec<crate::store::AssetEventRow>,
) -> Result<Reply, ApiError> {
    let time = |key: &str| -> Result<Option<DateTime<Utc>>, ApiError> {
        req.query(key)
            .map(|v| {
                DateTime::parse_from_rfc3339(v)
                    .map(|t| t.to_utc())
                    .map_err(|_| ApiError::new(422, format!("`{key}` must be a date-time")))
            })
            .transpose()
    };
    let (after, before) = (time("after")?, time("before")?);
    let ascending = match req
        .query("ascending")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("true" | "1" | "yes" | "on") => true,
        Some("false" | "0" | "no" | "off") => false,
        Some(_) => return Err(ApiError::new(422, "`ascending` must be a boolean")),
    };
    let limit = match req.query("limit") {
        Some(v) => Some(
            v.parse::<usize>()
                .map_err(|_| ApiError::new(422, "`limit` must be a whole number"))?,
        ),
        None => None,
    };
    let mut events: Vec<_> = events
        .into_iter()
        .filter(|e| after.is_none_or(|t| e.timestamp >= t))
        .filter(|e| before.is_none_or(|t| e.timestamp <= t))
        .collect();
    events.sort_by_key(|e| (e.timestamp, e.id));
    if !ascending {
        events.reverse();
    }
    if let Some(n) = limit.filter(|n| *n > 0) {
        events.truncate(n);
    }
    let mut out = Vec::new();
    for e in &events {
        let asset = store.asset(e.asset_id)?;
        let runs = store.runs_of_event(e.id)?;
        out.push(json!({
            "id": e.id,
            "timestamp": when(Some(e.timestamp)),
            "extra": e.extra,
            "asset": asset.as_ref().map(asset_json),
            "created_dagruns": runs.iter().map(|r| json!({
                "run_id": r.run_id,
                "dag_id": r.dag_id,
                "logical_date": when(r.logical_date),
                "start_date": when(r.start_date),
                "end_date": when(r.end_date),
                "state": r.state.as_str(),
                "data_interval_start": when(r.data_interval_start),
                "data_interval_end": when(r.data_interval_end),
                "partition_key": null,
            })).collect::<Vec<_>>(),
            "source_task_id": e.source_task_id,
            "source_dag_id": e.source_dag_id,
            "source_run_id": e.source_run_id,
            "source_map_index": e.source_map_index,
            "partition_key": null,
        }));
    }
    Ok(Reply::json(200, &json!({"asset_events": out})))
}

#[cfg(test)]
mod tests {
    use super::py_slice;

    use chrono::{DateTime, Utc};
    use serde_json::{Value, json};

    use super::{
        Dag, Operator, PythonKind, RunContext, Task, TaskState, asset_cond_json, downstream,
        group_roots, latest_only_next_end, python_kind,
    };
    use crate::store::{NewRun, RunRow, TiRow, temp_store};

    /// The run context as the claim built it before it was typed: a `json!` tree.
    fn context_as_value(
        dag: &Dag,
        task: &Task,
        ti: &TiRow,
        run: &RunRow,
        reschedules: (i64, Option<DateTime<Utc>>),
        consumed: &[Value],
        now: DateTime<Utc>,
    ) -> Value {
        let t = |d: Option<DateTime<Utc>>| d.map(crate::store::ts);
        let branching = matches!(
            task.operator,
            Operator::Python(PythonKind::Branch | PythonKind::ShortCircuit)
                | Operator::TaskFlow(PythonKind::Branch | PythonKind::ShortCircuit)
                | Operator::Hitl(_)
        ) || matches!(task.operator, Operator::Builtin(b) if b.branches());
        let task_json = json!({
            "task_id": task.task_id, "operator": task.operator.class_name(), "owner": task.owner,
            "bash_command": task.bash_command, "env": task.env.as_ref().map(|e| e.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<serde_json::Map<_, _>>()),
            "append_env": task.append_env, "cwd": task.cwd,
            "execution_timeout": task.execution_timeout_secs, "retries": task.retries,
            "map_index_template": task.map_index_template,
            "python": task.python,
            "python_kind": python_kind(task.operator),
            "sensor": task.sensor,
            "sensor_kind": match task.operator {
                Operator::Sensor(kind) => Some(kind),
                _ => None,
            },
            "builtin": match task.operator { Operator::Builtin(b) => Some(b), _ => None },
            "args": task.args,
            "template_fields": match task.operator { Operator::Builtin(b) => Some(b.spec().template_fields), _ => None },
            "dag_timezone": matches!(task.operator, Operator::Builtin(_)).then(|| dag.timezone.name()),
            "latest_only_next_end": (task.operator == Operator::Builtin(crate::model::Builtin::LatestOnly))
                .then(|| latest_only_next_end(dag, run, now)),
            "callbacks": task.callbacks,
            "outlets": task.outlets.iter().map(asset_cond_json).collect::<Vec<_>>(),
            "inlets": task.inlets.iter().map(asset_cond_json).collect::<Vec<_>>(),
            "mapped_dependants": dag.tasks.iter().any(|t| t
                .mapped
                .as_ref()
                .is_some_and(|m| m.upstreams().any(|u| u == task.task_id))),
            "downstream": branching.then(|| downstream(dag, &task.task_id, false)),
            "all_downstream": branching.then(|| downstream(dag, &task.task_id, true)),
            "group_roots": branching.then(|| group_roots(dag)),
        });
        let dag_run = json!({
            "dag_id": run.dag_id, "run_id": run.run_id, "logical_date": t(run.logical_date),
            "data_interval_start": t(run.data_interval_start), "data_interval_end": t(run.data_interval_end),
            "run_after": crate::store::ts(run.run_after), "start_date": t(run.start_date),
            "end_date": t(run.end_date), "run_type": run.run_type.as_str(), "state": run.state.as_str(),
            "conf": run.conf, "clear_number": run.clear_number,
            "triggering_user_name": run.triggering_user_name,
            "consumed_asset_events": consumed, "partition_key": null, "partition_date": null,
            "note": run.note, "team_name": null,
        });
        json!({
            "dag_run": dag_run,
            "start_date": t(ti.start_date),
            "task_reschedule_count": reschedules.0,
            "first_reschedule_date": reschedules.1.map(crate::store::ts),
            "dag_timezone": dag.timezone,
            "max_tries": ti.max_tries,
            "should_retry": ti.try_number <= ti.max_tries,
            "variables": [],
            "connections": [],
            "xcom_keys_to_clear": [],
            "try_number": ti.try_number,
            "params": dag.params,
            "map_index": ti.map_index,
            "task": task_json,
            "fileloc": dag.fileloc,
        })
    }

    /// The typed run context writes, byte for byte, the JSON the `json!` tree did, for
    /// every kind of task the supervisor and the Task SDK read one for; and a run as
    /// `dag_run_json` gives it (the `DagRun` routes) is the same too.
    #[test]
    fn the_typed_run_context_is_the_json_it_was() {
        let (dir, mut store) = temp_store("ctx");
        let now: DateTime<Utc> = "2025-01-01T00:00:00.123456789Z".parse().unwrap();
        let yaml = r#"
d:
  schedule: "0 3 * * *"
  start_date: 2024-01-01
  timezone: Europe/Paris
  params: {who: {type: string, default: me}, n: 3}
  task_groups:
    - group_name: g
  tasks:
    - task_id: plain
      operator: airflow.providers.standard.operators.bash.BashOperator
      bash_command: "true"
    - task_id: full
      operator: airflow.providers.standard.operators.bash.BashOperator
      bash_command: "echo $A $B"
      env: {A: "1", B: "two", C: ""}
      append_env: true
      cwd: /tmp
      execution_timeout: 90
      retries: 2
      owner: someone
      outlets: ['s3://b/x', {__type__: airflow.sdk.AssetAlias, name: al}]
      inlets: ['s3://b/in']
    - task_id: py
      operator: airflow.providers.standard.operators.python.PythonOperator
      python_callable: fns.call
      op_kwargs: {x: 1}
    - task_id: pick
      operator: airflow.providers.standard.operators.python.BranchPythonOperator
      python_callable: fns.pick
      dependencies: [plain]
    - task_id: in_g
      operator: airflow.providers.standard.operators.empty.EmptyOperator
      task_group_name: g
      dependencies: [pick]
    - task_id: latest
      operator: airflow.providers.standard.operators.latest_only.LatestOnlyOperator
    - task_id: wait
      operator: airflow.providers.standard.sensors.filesystem.FileSensor
      filepath: /tmp/none
    - task_id: m
      operator: airflow.providers.standard.operators.bash.BashOperator
      dependencies: [plain]
      partial:
        bash_command: 'echo $V'
      expand:
        env: [{V: red}, {V: green}]
"#;
        let parsed = crate::dagfile::parse("dags/d.yml", yaml, now);
        assert_eq!(parsed.errors, []);
        let dag = &parsed.dags[0];
        let run = store
            .write(|tx| {
                tx.create_run(
                    &NewRun {
                        dag,
                        run_id: "r".into(),
                        run_type: crate::model::RunType::Manual,
                        logical_date: Some(now),
                        data_interval: Some((now, now)),
                        run_after: now,
                        conf: json!({"k": [1, "v"]}),
                        note: Some("a note".into()),
                        triggered_by: "test",
                        user: Some("someone"),
                        backfill_id: None,
                    },
                    now,
                )
            })
            .unwrap();
        let tis = store.tis_of_run("d", "r").unwrap();
        let consumed =
            [json!({"asset": {"name": "a", "uri": "a", "extra": {}}, "extra": {"e": 1}})];
        let mut kinds = std::collections::HashSet::new();
        for (i, ti) in tis.iter().enumerate() {
            let task = dag.task(&ti.task_id).unwrap();
            kinds.insert(task.operator.class_name());
            let mut ti = ti.clone();
            ti.start_date = (i % 2 == 0).then_some(now);
            let reschedules = if i % 2 == 0 {
                (0, None)
            } else {
                (2, Some(now))
            };
            let events: &[Value] = if i % 3 == 0 { &[] } else { &consumed };
            let typed = serde_json::to_string(&RunContext::new(
                dag,
                task,
                &ti,
                &run,
                reschedules,
                events,
                now,
            ))
            .unwrap();
            let tree = serde_json::to_string(&context_as_value(
                dag,
                task,
                &ti,
                &run,
                reschedules,
                events,
                now,
            ))
            .unwrap();
            assert_eq!(typed, tree, "task {}", ti.task_id);
        }
        assert_eq!(kinds.len(), 6, "{kinds:?}");
        let as_value = crate::api::execution_sdk::dag_run_json(&run);
        let tree = context_as_value(dag, &dag.tasks[0], &tis[0], &run, (0, None), &[], now);
        assert_eq!(
            serde_json::to_string(&as_value).unwrap(),
            serde_json::to_string(&tree["dag_run"]).unwrap()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The row the claim answers from after its compare-and-set is the row the store
    /// holds then, though the claim no longer reads it back.
    #[test]
    fn a_claimed_row_is_the_stored_row() {
        let (dir, mut store) = temp_store("claim");
        let t0: DateTime<Utc> = "2025-01-01T00:00:00Z".parse().unwrap();
        let now: DateTime<Utc> = "2025-01-01T00:00:07.123456789Z".parse().unwrap();
        let yaml = "d:\n  schedule: null\n  start_date: 2024-01-01\n  tasks:\n    - task_id: a\n      \
                    operator: airflow.providers.standard.operators.bash.BashOperator\n      \
                    bash_command: 'true'\n";
        let parsed = crate::dagfile::parse("d.yml", yaml, t0);
        assert_eq!(parsed.errors, []);
        store
            .write(|tx| {
                tx.create_run(
                    &NewRun {
                        dag: &parsed.dags[0],
                        run_id: "r".into(),
                        run_type: crate::model::RunType::Manual,
                        logical_date: None,
                        data_interval: None,
                        run_after: t0,
                        conf: json!({}),
                        note: None,
                        triggered_by: "test",
                        user: None,
                        backfill_id: None,
                    },
                    t0,
                )
            })
            .unwrap();
        let id = store.tis_of_run("d", "r").unwrap()[0].id.clone();
        let queued = store
            .write(|tx| {
                tx.set_ti_state(&id, None, Some(TaskState::Scheduled), t0, None)?;
                tx.queue_ti(&id, 1, t0)
            })
            .unwrap();
        assert!(queued);
        let before = store.ti(&id).unwrap().unwrap();
        // The worker's start, a little before the server's time (another clock).
        let start: DateTime<Utc> = "2025-01-01T00:00:06.5Z".parse().unwrap();
        let body = super::RunBody {
            pid: 4242,
            hostname: "h".into(),
            unixname: "u".into(),
            start_date: Some(start),
        };
        assert!(
            store
                .write(|tx| tx.start_ti(&id, body.pid, &body.hostname, &body.unixname, start, now))
                .unwrap()
        );
        let stored = store.ti(&id).unwrap().unwrap();
        assert_eq!(super::started(before, body, now), stored);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn slices_like_python() {
        // (start, stop, step) -> list(range(5))[start:stop:step]
        type Case = (Option<i64>, Option<i64>, i64, &'static [usize]);
        let cases: &[Case] = &[
            (None, None, 1, &[0, 1, 2, 3, 4]),
            (Some(1), Some(3), 1, &[1, 2]),
            (Some(-2), None, 1, &[3, 4]),
            (None, Some(-1), 1, &[0, 1, 2, 3]),
            (None, None, 2, &[0, 2, 4]),
            (None, None, -1, &[4, 3, 2, 1, 0]),
            (Some(3), Some(0), -1, &[3, 2, 1]),
            (Some(-1), Some(-4), -2, &[4, 2]),
            (Some(10), None, 1, &[]),
            (Some(-10), Some(2), 1, &[0, 1]),
            (None, Some(-10), -1, &[4, 3, 2, 1, 0]),
        ];
        for (start, stop, step, want) in cases {
            assert_eq!(
                py_slice(5, *start, *stop, *step),
                *want,
                "[{start:?}:{stop:?}:{step}]"
            );
        }
        assert_eq!(py_slice(0, None, None, -1), Vec::<usize>::new());
    }
}
