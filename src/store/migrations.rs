//! The schema, as numbered migrations applied in order up to `PRAGMA user_version`.
//!
//! Append only: a released migration is never edited, a change is a new entry. States
//! are Airflow's strings (NULL is Airflow's "no status"); times are RFC 3339 UTC text
//! with microseconds, so they sort as text and read back exactly.

/// Each entry moves the schema from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // 1: the whole first schema.
    r#"
CREATE TABLE dag_file (
    bundle_name    TEXT NOT NULL,
    relative_path  TEXT NOT NULL,
    mtime_ns       INTEGER NOT NULL,
    size           INTEGER NOT NULL,
    source         TEXT NOT NULL,
    last_parsed    TEXT NOT NULL,
    PRIMARY KEY (bundle_name, relative_path)
);

CREATE TABLE dag (
    dag_id            TEXT PRIMARY KEY,
    bundle_name       TEXT NOT NULL,
    relative_fileloc  TEXT NOT NULL,
    fileloc           TEXT NOT NULL,
    is_paused         INTEGER NOT NULL,
    is_stale          INTEGER NOT NULL DEFAULT 0,
    last_parsed_time  TEXT NOT NULL,
    serialized        TEXT NOT NULL,          -- model::Dag as JSON
    next_dagrun                TEXT,
    next_dagrun_data_interval_start TEXT,
    next_dagrun_data_interval_end   TEXT,
    next_dagrun_create_after   TEXT
);
CREATE INDEX dag_file_idx ON dag (bundle_name, relative_fileloc);

CREATE TABLE dag_tag (
    dag_id  TEXT NOT NULL REFERENCES dag (dag_id) ON DELETE CASCADE,
    name    TEXT NOT NULL,
    PRIMARY KEY (dag_id, name)
);

CREATE TABLE dag_run (
    id                  INTEGER PRIMARY KEY,
    dag_id              TEXT NOT NULL,
    run_id              TEXT NOT NULL,
    run_type            TEXT NOT NULL,
    state               TEXT NOT NULL,
    logical_date        TEXT,
    data_interval_start TEXT,
    data_interval_end   TEXT,
    run_after           TEXT NOT NULL,
    queued_at           TEXT,
    start_date          TEXT,
    end_date            TEXT,
    conf                TEXT NOT NULL DEFAULT '{}',
    note                TEXT,
    triggered_by        TEXT,
    triggering_user_name TEXT,
    clear_number        INTEGER NOT NULL DEFAULT 0,
    last_scheduling_decision TEXT,
    updated_at          TEXT NOT NULL,
    UNIQUE (dag_id, run_id)
);
CREATE UNIQUE INDEX dag_run_logical_date ON dag_run (dag_id, logical_date) WHERE logical_date IS NOT NULL;
CREATE INDEX dag_run_active ON dag_run (state) WHERE state IN ('queued', 'running');

CREATE TABLE task_instance (
    id              TEXT PRIMARY KEY,         -- a UUID, the Execution API's task_instance_id
    dag_id          TEXT NOT NULL,
    run_id          TEXT NOT NULL,
    task_id         TEXT NOT NULL,
    map_index       INTEGER NOT NULL DEFAULT -1,
    try_number      INTEGER NOT NULL DEFAULT 0,
    max_tries       INTEGER NOT NULL DEFAULT 0,
    state           TEXT,
    operator        TEXT,
    pool            TEXT NOT NULL DEFAULT 'default_pool',
    pool_slots      INTEGER NOT NULL DEFAULT 1,
    priority_weight INTEGER NOT NULL DEFAULT 1,
    queued_dttm     TEXT,
    scheduled_dttm  TEXT,
    start_date      TEXT,
    end_date        TEXT,
    duration        REAL,
    hostname        TEXT,
    unixname        TEXT,
    pid             INTEGER,
    last_heartbeat_at TEXT,
    next_retry_at   TEXT,
    rendered_command TEXT,
    note            TEXT,
    queued_by_job_id INTEGER,                 -- the scheduler whose executor runs it
    updated_at      TEXT NOT NULL,
    UNIQUE (dag_id, run_id, task_id, map_index),
    FOREIGN KEY (dag_id, run_id) REFERENCES dag_run (dag_id, run_id) ON DELETE CASCADE
);
CREATE INDEX ti_active ON task_instance (state) WHERE state IN ('scheduled', 'queued', 'running', 'up_for_retry', 'restarting');

-- Every finished try, kept when a task is retried or cleared (Airflow's task_instance_history).
CREATE TABLE task_instance_history (
    id              INTEGER PRIMARY KEY,
    task_instance_id TEXT NOT NULL,
    dag_id          TEXT NOT NULL,
    run_id          TEXT NOT NULL,
    task_id         TEXT NOT NULL,
    map_index       INTEGER NOT NULL DEFAULT -1,
    try_number      INTEGER NOT NULL,
    max_tries       INTEGER NOT NULL,
    state           TEXT,
    operator        TEXT,
    pool            TEXT NOT NULL,
    pool_slots      INTEGER NOT NULL,
    priority_weight INTEGER NOT NULL,
    queued_dttm     TEXT,
    start_date      TEXT,
    end_date        TEXT,
    duration        REAL,
    hostname        TEXT,
    unixname        TEXT,
    pid             INTEGER,
    rendered_command TEXT,
    UNIQUE (dag_id, run_id, task_id, map_index, try_number),
    FOREIGN KEY (dag_id, run_id) REFERENCES dag_run (dag_id, run_id) ON DELETE CASCADE
);

CREATE TABLE xcom (
    dag_id     TEXT NOT NULL,
    run_id     TEXT NOT NULL,
    task_id    TEXT NOT NULL,
    map_index  INTEGER NOT NULL DEFAULT -1,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,                 -- JSON
    timestamp  TEXT NOT NULL,
    PRIMARY KEY (dag_id, run_id, task_id, map_index, key),
    FOREIGN KEY (dag_id, run_id) REFERENCES dag_run (dag_id, run_id) ON DELETE CASCADE
);

CREATE TABLE variable (
    key          TEXT PRIMARY KEY,
    val          TEXT NOT NULL,
    description  TEXT
);

CREATE TABLE connection (
    conn_id      TEXT PRIMARY KEY,
    conn_type    TEXT NOT NULL,
    description  TEXT,
    host         TEXT,
    schema       TEXT,
    login        TEXT,
    password     TEXT,
    port         INTEGER,
    extra        TEXT
);

CREATE TABLE slot_pool (
    pool             TEXT PRIMARY KEY,
    slots            INTEGER NOT NULL,
    description      TEXT,
    include_deferred INTEGER NOT NULL DEFAULT 0
);
INSERT INTO slot_pool (pool, slots, description) VALUES ('default_pool', 128, 'Default pool');

CREATE TABLE import_error (
    id          INTEGER PRIMARY KEY,
    bundle_name TEXT NOT NULL,
    filename    TEXT NOT NULL,
    line        INTEGER NOT NULL,
    col         INTEGER NOT NULL,
    stack_trace TEXT NOT NULL,
    timestamp   TEXT NOT NULL,
    UNIQUE (bundle_name, filename)
);

CREATE TABLE job (
    id               INTEGER PRIMARY KEY,
    job_type         TEXT NOT NULL,            -- SchedulerJob, ...
    state            TEXT NOT NULL,            -- running, success, failed
    hostname         TEXT NOT NULL,
    pid              INTEGER NOT NULL,
    unixname         TEXT,
    start_date       TEXT NOT NULL,
    end_date         TEXT,
    latest_heartbeat TEXT NOT NULL
);
CREATE INDEX job_alive ON job (job_type, state, latest_heartbeat);

-- The active scheduler's lease: one row, taken over when its heartbeat is stale.
CREATE TABLE scheduler_lease (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    job_id     INTEGER NOT NULL,
    hostname   TEXT NOT NULL,
    pid        INTEGER NOT NULL,
    heartbeat  TEXT NOT NULL
);

-- The audit trail (Airflow's `log` table, the API's eventLogs).
CREATE TABLE log (
    id           INTEGER PRIMARY KEY,
    dttm         TEXT NOT NULL,
    dag_id       TEXT,
    task_id      TEXT,
    run_id       TEXT,
    map_index    INTEGER,
    try_number   INTEGER,
    event        TEXT NOT NULL,
    owner        TEXT,
    owner_display_name TEXT,
    logical_date TEXT,
    extra        TEXT
);
CREATE INDEX log_dttm ON log (dttm);
"#,
    // 2: task instance changes numbered in commit order, so the scheduler rereads only
    // what changed (scheduler/tis.rs). Recursive triggers are off, so the inner UPDATE
    // does not fire `ti_updated` again; the WHEN clause says so anyway.
    r#"
CREATE TABLE ti_change (seq INTEGER NOT NULL);
INSERT INTO ti_change (seq) VALUES (0);
ALTER TABLE task_instance ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;
CREATE INDEX ti_change_seq ON task_instance (change_seq);
CREATE TRIGGER ti_inserted AFTER INSERT ON task_instance BEGIN
    UPDATE ti_change SET seq = seq + 1;
    UPDATE task_instance SET change_seq = (SELECT seq FROM ti_change) WHERE rowid = NEW.rowid;
END;
CREATE TRIGGER ti_updated AFTER UPDATE ON task_instance
WHEN NEW.change_seq = OLD.change_seq BEGIN
    UPDATE ti_change SET seq = seq + 1;
    UPDATE task_instance SET change_seq = (SELECT seq FROM ti_change) WHERE rowid = NEW.rowid;
END;
"#,
    // 3: what the API reads of every DAG per request (its DAG list), without the rows'
    // serialized DAGs: scanning this index instead of the table skips a page or more of
    // JSON per DAG.
    r#"
CREATE INDEX dag_head ON dag (dag_id, last_parsed_time, is_paused, is_stale);
"#,
    // 4: a count of the changes to `dag`, bumped by triggers in the writing transaction,
    // so a reader that keeps every DAG's row checks one row per request, not every DAG.
    r#"
CREATE TABLE dag_changes (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    n   INTEGER NOT NULL
);
INSERT INTO dag_changes (id, n) VALUES (1, 0);
CREATE TRIGGER dag_inserted AFTER INSERT ON dag BEGIN UPDATE dag_changes SET n = n + 1; END;
CREATE TRIGGER dag_updated AFTER UPDATE ON dag BEGIN UPDATE dag_changes SET n = n + 1; END;
CREATE TRIGGER dag_deleted AFTER DELETE ON dag BEGIN UPDATE dag_changes SET n = n + 1; END;
"#,
    // 5: Airflow 3's backfills. `backfill_dag_run` maps each logical date a backfill
    // covers to the run it made or reprocessed, or, without a run, to the reason it
    // skipped the date (`exception_reason`, Airflow's "already exists" / "in flight").
    // A run a backfill drives names it in `dag_run.backfill_id`.
    r#"
CREATE TABLE backfill (
    id                   INTEGER PRIMARY KEY,
    dag_id               TEXT NOT NULL,
    from_date            TEXT NOT NULL,
    to_date              TEXT NOT NULL,
    dag_run_conf         TEXT NOT NULL DEFAULT '{}',
    is_paused            INTEGER NOT NULL DEFAULT 0,
    reprocess_behavior   TEXT NOT NULL DEFAULT 'none',
    max_active_runs      INTEGER NOT NULL DEFAULT 10,
    created_at           TEXT NOT NULL,
    completed_at         TEXT,
    updated_at           TEXT NOT NULL,
    triggering_user_name TEXT
);
CREATE INDEX backfill_dag ON backfill (dag_id, id);
CREATE INDEX backfill_open ON backfill (id) WHERE completed_at IS NULL;

CREATE TABLE backfill_dag_run (
    id               INTEGER PRIMARY KEY,
    backfill_id      INTEGER NOT NULL REFERENCES backfill (id) ON DELETE CASCADE,
    dag_run_id       INTEGER REFERENCES dag_run (id) ON DELETE SET NULL,
    exception_reason TEXT,
    logical_date     TEXT,
    sort_ordinal     INTEGER NOT NULL CHECK (sort_ordinal >= 1),
    UNIQUE (backfill_id, dag_run_id)
);
CREATE INDEX backfill_dag_run_run ON backfill_dag_run (dag_run_id);

ALTER TABLE dag_run ADD COLUMN backfill_id INTEGER REFERENCES backfill (id);
CREATE INDEX dag_run_backfill ON dag_run (backfill_id) WHERE backfill_id IS NOT NULL;
"#,
    // Dynamic task mapping: the render of a task's `map_index_template` (Airflow's
    // `rendered_map_index`), per try.
    r#"
ALTER TABLE task_instance ADD COLUMN rendered_map_index TEXT;
ALTER TABLE task_instance_history ADD COLUMN rendered_map_index TEXT;
"#,
    // Human in the loop: Airflow's `hitl_detail` (the request, its answer), with the wait
    // of the task instance that asked (`timeout_at`, Airflow's `trigger_timeout`) and the
    // event its resumed try reads (`resume_event` for try `resume_try`, Airflow's
    // `next_kwargs`). The partial indexes serve the timeout sweep and the UI's badge.
    r#"
CREATE TABLE hitl_detail (
    ti_id          TEXT PRIMARY KEY REFERENCES task_instance (id) ON DELETE CASCADE,
    options        TEXT NOT NULL,
    subject        TEXT NOT NULL,
    body           TEXT,
    defaults       TEXT,
    multiple       INTEGER NOT NULL DEFAULT 0,
    params         TEXT NOT NULL DEFAULT '{}',
    assignees      TEXT,
    created_at     TEXT NOT NULL,
    responded_at   TEXT,
    responded_by   TEXT,
    chosen_options TEXT,
    params_input   TEXT NOT NULL DEFAULT '{}',
    timeout_at     TEXT,
    resume_try     INTEGER,
    resume_event   TEXT
);
CREATE INDEX hitl_timeout ON hitl_detail (timeout_at) WHERE timeout_at IS NOT NULL;
CREATE INDEX hitl_open ON hitl_detail (ti_id) WHERE responded_at IS NULL;
"#,
    // Sensors in reschedule mode: Airflow's `task_reschedule` rows (one per poke that was
    // not done), with the try they belong to (a task instance keeps its id across tries
    // here), and `up_for_reschedule` among the active states.
    r#"
CREATE TABLE task_reschedule (
    id              INTEGER PRIMARY KEY,
    ti_id           TEXT NOT NULL REFERENCES task_instance (id) ON DELETE CASCADE,
    try_number      INTEGER NOT NULL,
    start_date      TEXT NOT NULL,
    end_date        TEXT NOT NULL,
    duration        REAL NOT NULL,
    reschedule_date TEXT NOT NULL
);
CREATE INDEX task_reschedule_ti ON task_reschedule (ti_id, try_number, id);
DROP INDEX ti_active;
CREATE INDEX ti_active ON task_instance (state) WHERE state IN ('scheduled', 'queued', 'running', 'up_for_retry', 'up_for_reschedule', 'restarting');
"#,
    // DAG-level callbacks: one request per run end that has callbacks to run (Airflow's
    // `DagCallbackRequest`), recorded by the scheduler, claimed and finished by the
    // executor's callback runner through the Execution API.
    r#"
CREATE TABLE dag_callback (
    id           INTEGER PRIMARY KEY,
    dag_id       TEXT NOT NULL,
    run_id       TEXT NOT NULL,
    is_failure   INTEGER NOT NULL,
    reason       TEXT NOT NULL,
    ti_id        TEXT,
    state        TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    end_date     TEXT
);
CREATE INDEX dag_callback_queued ON dag_callback (id) WHERE state = 'queued';
"#,
    // Assets (Airflow 3's data-aware scheduling). `asset` and `asset_alias` as the DAGs
    // name them; `dag_asset_ref` which DAG schedules on an asset (task_id '') or which
    // task produces or reads it, from each DAG's latest parse; `asset_event` each update;
    // `asset_dag_run_queue` the events queued per consumer (Airflow's ADRQ), until a run
    // consumes them; `dag_run_asset_event` the events a run consumed; `asset_state_store`
    // Airflow 3.3's key-value state per asset.
    r#"
CREATE TABLE asset (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    uri         TEXT NOT NULL,
    grp         TEXT NOT NULL DEFAULT 'asset',
    extra       TEXT NOT NULL DEFAULT '{}',
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    UNIQUE (name, uri)
);
CREATE INDEX asset_uri ON asset (uri);

CREATE TABLE asset_alias (
    id    INTEGER PRIMARY KEY,
    name  TEXT NOT NULL UNIQUE,
    grp   TEXT NOT NULL DEFAULT 'asset'
);

CREATE TABLE dag_asset_ref (
    dag_id      TEXT NOT NULL,
    asset_id    INTEGER NOT NULL REFERENCES asset (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('schedule', 'outlet', 'inlet')),
    task_id     TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (dag_id, kind, asset_id, task_id)
);
CREATE INDEX dag_asset_ref_asset ON dag_asset_ref (asset_id, kind);

CREATE TABLE asset_event (
    id                INTEGER PRIMARY KEY,
    asset_id          INTEGER NOT NULL REFERENCES asset (id) ON DELETE CASCADE,
    extra             TEXT NOT NULL DEFAULT '{}',
    source_dag_id     TEXT,
    source_task_id    TEXT,
    source_run_id     TEXT,
    source_map_index  INTEGER NOT NULL DEFAULT -1,
    timestamp         TEXT NOT NULL
);
CREATE INDEX asset_event_asset ON asset_event (asset_id, timestamp);

CREATE TABLE asset_dag_run_queue (
    asset_id       INTEGER NOT NULL REFERENCES asset (id) ON DELETE CASCADE,
    target_dag_id  TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    PRIMARY KEY (asset_id, target_dag_id)
);
CREATE INDEX asset_dag_run_queue_dag ON asset_dag_run_queue (target_dag_id);

CREATE TABLE dag_run_asset_event (
    dag_run_id  INTEGER NOT NULL REFERENCES dag_run (id) ON DELETE CASCADE,
    event_id    INTEGER NOT NULL REFERENCES asset_event (id) ON DELETE CASCADE,
    PRIMARY KEY (dag_run_id, event_id)
);
CREATE INDEX dag_run_asset_event_event ON dag_run_asset_event (event_id);

CREATE TABLE asset_state_store (
    asset_id            INTEGER NOT NULL REFERENCES asset (id) ON DELETE CASCADE,
    key                 TEXT NOT NULL,
    value               TEXT NOT NULL,                -- JSON
    updated_at          TEXT NOT NULL,
    last_updated_by_kind TEXT,                        -- task, watcher, api
    last_updated_by_dag_id TEXT,
    last_updated_by_run_id TEXT,
    last_updated_by_task_id TEXT,
    last_updated_by_map_index INTEGER,
    PRIMARY KEY (asset_id, key)
);
"#,
    // The rendered template fields a worker sends (the Execution API's `rtif`), the latest try's.
    r#"
ALTER TABLE task_instance ADD COLUMN rendered_fields TEXT;
"#,
    // DAGs a user marked favorite (Airflow's `dag_favorite`).
    r#"
CREATE TABLE dag_favorite (
    dag_id  TEXT NOT NULL REFERENCES dag (dag_id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    PRIMARY KEY (dag_id, user_id)
);
"#,
    // DAG versions (Airflow's `dag_version`): a new one each time a DAG's parsed structure
    // or its file's text changes, with that text; each run records the version it ran with.
    r#"
CREATE TABLE dag_version (
    id             INTEGER PRIMARY KEY,
    uuid           TEXT NOT NULL UNIQUE,
    dag_id         TEXT NOT NULL REFERENCES dag (dag_id) ON DELETE CASCADE,
    version_number INTEGER NOT NULL,
    bundle_name    TEXT NOT NULL,
    serialized     TEXT NOT NULL,
    source         TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    UNIQUE (dag_id, version_number)
);
ALTER TABLE dag_run ADD COLUMN dag_version_id INTEGER REFERENCES dag_version (id) ON DELETE SET NULL;
"#,
    // The task state store (Airflow's `task_state_store`): JSON values a task instance
    // keeps under keys, across its tries, each with an optional expiry.
    r#"
CREATE TABLE task_state_store (
    dag_id     TEXT NOT NULL,
    run_id     TEXT NOT NULL,
    task_id    TEXT NOT NULL,
    map_index  INTEGER NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    expires_at TEXT,
    PRIMARY KEY (dag_id, run_id, task_id, map_index, key),
    FOREIGN KEY (dag_id, run_id) REFERENCES dag_run (dag_id, run_id) ON DELETE CASCADE
);
"#,
    // Asset aliases as Airflow 3.3.2 resolves them: `asset_alias_asset` which assets an
    // alias has named (an event attached through it links them), `asset_alias_asset_event`
    // the events attached through each alias (their `source_aliases`), `dag_alias_ref`
    // which DAG schedules on an alias (from its latest parse; `created_at` kept).
    r#"
CREATE TABLE asset_alias_asset (
    alias_id INTEGER NOT NULL REFERENCES asset_alias (id) ON DELETE CASCADE,
    asset_id INTEGER NOT NULL REFERENCES asset (id) ON DELETE CASCADE,
    PRIMARY KEY (alias_id, asset_id)
);
CREATE TABLE asset_alias_asset_event (
    alias_id INTEGER NOT NULL REFERENCES asset_alias (id) ON DELETE CASCADE,
    event_id INTEGER NOT NULL REFERENCES asset_event (id) ON DELETE CASCADE,
    PRIMARY KEY (alias_id, event_id)
);
CREATE INDEX asset_alias_asset_event_event ON asset_alias_asset_event (event_id);
CREATE TABLE dag_alias_ref (
    dag_id     TEXT NOT NULL,
    alias_id   INTEGER NOT NULL REFERENCES asset_alias (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (dag_id, alias_id)
);
CREATE INDEX dag_alias_ref_alias ON dag_alias_ref (alias_id);
"#,
    // A count of the changes to runs (added, written, deleted) and of task instances
    // deleted, bumped by triggers in the writing transaction whichever process writes, so
    // an open page asks one row whether anything it shows may have moved (`/ui/changes`;
    // task instances added or written already move `ti_change`).
    r#"
CREATE TABLE run_changes (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    n   INTEGER NOT NULL
);
INSERT INTO run_changes (id, n) VALUES (1, 0);
CREATE TRIGGER dag_run_inserted AFTER INSERT ON dag_run BEGIN UPDATE run_changes SET n = n + 1; END;
CREATE TRIGGER dag_run_updated AFTER UPDATE ON dag_run BEGIN UPDATE run_changes SET n = n + 1; END;
CREATE TRIGGER dag_run_deleted AFTER DELETE ON dag_run BEGIN UPDATE run_changes SET n = n + 1; END;
CREATE TRIGGER ti_deleted AFTER DELETE ON task_instance BEGIN UPDATE run_changes SET n = n + 1; END;
"#,
    // Statements that number their rows themselves (a mapped task's expansion inserts its
    // instances with one change number, see `Tx::expand_ti`) skip the per-row insert
    // trigger: it numbers only rows inserted without a number (0, the column's default).
    r#"
DROP TRIGGER ti_inserted;
CREATE TRIGGER ti_inserted AFTER INSERT ON task_instance WHEN NEW.change_seq = 0 BEGIN
    UPDATE ti_change SET seq = seq + 1;
    UPDATE task_instance SET change_seq = (SELECT seq FROM ti_change) WHERE rowid = NEW.rowid;
END;
"#,
    // `ti_active`'s condition as comparisons (`runs::ACTIVE_TI`): SQLite evaluates an IN
    // list of more than two constants by building a temporary b-tree of them each time a
    // statement runs, and every write of a task instance's state evaluated the condition
    // twice (for the old row and the new), so each built two.
    r#"
DROP INDEX ti_active;
CREATE INDEX ti_active ON task_instance (state) WHERE (state = 'scheduled' OR state = 'queued' OR state = 'running' OR state = 'up_for_retry' OR state = 'up_for_reschedule' OR state = 'restarting');
"#,
];
