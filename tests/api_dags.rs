//! The Core API's DAG resources against a real `standalone`: the DAG list and its
//! filters, one DAG, details, tasks, source, stats, tags, import errors, event logs,
//! pausing and deleting, in Airflow 3.3.2's shapes and with its roles.

use std::time::Duration;

use serde_json::{Value, json};

use crate::engine::{Engine, dag, task};
use crate::util::{Method, TestServer, USERS, request, wait_until};

const WAIT: Duration = Duration::from_secs(60);

/// What every row of a filtered event log must satisfy.
type Check = fn(&Value) -> bool;

/// DAGResponse's required fields, in order, from the client's schema
/// (`client-essential-schemas.txt`, which `apache-airflow-client` 3.3.2 parses strictly).
const DAG_FIELDS: &[&str] = &[
    "dag_id",
    "dag_display_name",
    "is_paused",
    "is_stale",
    "last_parsed_time",
    "last_parse_duration",
    "last_expired",
    "bundle_name",
    "bundle_version",
    "relative_fileloc",
    "fileloc",
    "description",
    "timetable_summary",
    "timetable_description",
    "timetable_partitioned",
    "timetable_periodic",
    "tags",
    "max_active_tasks",
    "max_active_runs",
    "max_consecutive_failed_dag_runs",
    "has_task_concurrency_limits",
    "has_import_errors",
    "next_dagrun_logical_date",
    "next_dagrun_data_interval_start",
    "next_dagrun_data_interval_end",
    "next_dagrun_run_after",
    "allowed_run_types",
    "owners",
    "is_backfillable",
    "file_token",
];

/// DAGDetailsResponse after DAGResponse's own fields, as `GET_dags_dagid_details.json` orders them.
const DETAILS_FIELDS: &[&str] = &[
    "catchup",
    "dag_run_timeout",
    "asset_expression",
    "doc_md",
    "start_date",
    "end_date",
    "is_paused_upon_creation",
    "params",
    "render_template_as_native_obj",
    "template_search_path",
    "timezone",
    "last_parsed",
    "default_args",
    "rerun_with_latest_version",
    "owner_links",
    "is_favorite",
    "active_runs_count",
    "is_backfillable",
    "file_token",
    "concurrency",
    "latest_dag_version",
];

/// TaskResponse's fields, all required in the spec, in order.
const TASK_FIELDS: &[&str] = &[
    "task_id",
    "task_display_name",
    "owner",
    "start_date",
    "end_date",
    "trigger_rule",
    "depends_on_past",
    "wait_for_downstream",
    "retries",
    "queue",
    "pool",
    "pool_slots",
    "execution_timeout",
    "retry_delay",
    "retry_exponential_backoff",
    "priority_weight",
    "weight_rule",
    "ui_color",
    "ui_fgcolor",
    "template_fields",
    "downstream_task_ids",
    "doc_md",
    "operator_name",
    "params",
    "class_ref",
    "is_mapped",
    "extra_links",
];

const BASH: &str = "airflow.providers.standard.operators.bash.BashOperator";
const EMPTY: &str = "airflow.providers.standard.operators.empty.EmptyOperator";

/// Two DAGs in one file: `alpha` with a display name, params and retries; `beta` on a
/// daily schedule that starts in 2099, owned by `ops`.
fn team_yml() -> String {
    format!(
        r#"alpha:
  dag_display_name: Zed Alpha
  description: the first
  schedule: null
  tags: [red, blue]
  params:
    name: world
    count: 3
  dagrun_timeout:
    __type__: datetime.timedelta
    minutes: 90
  default_args:
    owner: airflow
    start_date: 2024-01-01
    retries: 2
    retry_delay:
      __type__: datetime.timedelta
      seconds: 90
  tasks:
    - task_id: extract
      operator: {BASH}
      bash_command: "echo extract"
    - task_id: load
      operator: {EMPTY}
      dependencies: [extract]
beta:
  schedule: "0 0 * * *"
  tags: [blue]
  default_args:
    owner: ops
    start_date: 2099-01-01
  tasks:
    - task_id: only
      operator: {EMPTY}
"#
    )
}

fn gamma_yml() -> String {
    dag(
        "gamma_etl",
        "  max_active_runs: 3\n  tags: [red]\n",
        &task("t", "echo t", ""),
    )
}

const BROKEN: &str = "broken: [\n";

/// A standalone with USERS whose DAG folder holds team.yml, gamma.yml and broken.yml,
/// DAGs paused at creation; returns once the three DAGs are listed.
fn start() -> Engine {
    let team = team_yml();
    let gamma = gamma_yml();
    let e = Engine::start(
        &[
            ("team.yml", &team),
            ("gamma.yml", &gamma),
            ("broken.yml", BROKEN),
        ],
        &[
            USERS,
            ("UPDRAFT__CORE__DAGS_ARE_PAUSED_AT_CREATION", "True"),
        ],
    );
    let viewer = e.srv.login("viewer");
    let listed = wait_until(WAIT, || {
        e.srv.call(&viewer, Method::Get, "/api/v2/dags", None).1["total_entries"] == json!(3)
    });
    assert!(listed, "DAGs never listed; log:\n{}", e.srv.log());
    e
}

/// `GET path` as `token`: (status, JSON).
fn get(srv: &TestServer, token: &str, path: &str) -> (u16, Value) {
    srv.call(token, Method::Get, path, None)
}

/// The `dag_id`s of a DAG collection.
fn ids(v: &Value) -> Vec<String> {
    listed(v, "dag_id")
        .into_iter()
        .map(|id| id.as_str().unwrap().to_string())
        .collect()
}

/// One field of every DAG in a DAG collection, in order.
fn listed<'a>(v: &'a Value, field: &str) -> Vec<&'a Value> {
    v["dags"]
        .as_array()
        .unwrap_or_else(|| panic!("not a DAG collection: {v}"))
        .iter()
        .map(|d| &d[field])
        .collect()
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect()
}

#[test]
fn the_dag_list_has_airflows_fields_and_one_dag_is_the_same_object() {
    let e = start();
    let srv = &e.srv;
    let t = srv.login("viewer");
    let (status, all) = get(srv, &t, "/api/v2/dags");
    assert_eq!(status, 200, "{all}");
    assert_eq!(ids(&all), ["alpha", "beta", "gamma_etl"]);
    for d in all["dags"].as_array().unwrap() {
        assert_eq!(keys(d), DAG_FIELDS, "{d}");
    }
    let alpha = &all["dags"][0];
    assert_eq!(alpha["dag_display_name"], "Zed Alpha");
    assert_eq!(alpha["is_paused"], true);
    assert_eq!(alpha["bundle_name"], "dags-folder");
    assert_eq!(alpha["relative_fileloc"], "team.yml");
    assert!(alpha["fileloc"].as_str().unwrap().ends_with("team.yml"));
    assert_eq!(alpha["timetable_summary"], Value::Null);
    assert_eq!(
        alpha["timetable_description"],
        "Never, external triggers only"
    );
    assert_eq!(alpha["owners"], json!(["airflow"]));
    assert_eq!(alpha["max_active_tasks"], 16);
    assert_eq!(alpha["has_import_errors"], false);
    assert_eq!(alpha["next_dagrun_logical_date"], Value::Null);
    // Tags are objects, sorted by name; dag-factory adds its own.
    let tag_names: Vec<&str> = alpha["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(tag_names, ["blue", "dagfactory", "red"]);
    assert_eq!(
        alpha["tags"][0],
        json!({"name": "blue", "dag_id": "alpha", "dag_display_name": "Zed Alpha"})
    );
    assert!(
        alpha["file_token"].as_str().unwrap().starts_with("eyJ"),
        "{alpha}"
    );
    let beta = &all["dags"][1];
    assert_eq!(beta["timetable_summary"], "0 0 * * *");
    assert_eq!(beta["timetable_description"], "At 00:00");
    assert_eq!(beta["timetable_periodic"], true);
    assert_eq!(beta["is_backfillable"], true);
    assert_eq!(beta["next_dagrun_logical_date"], "2099-01-01T00:00:00Z");
    assert_eq!(beta["next_dagrun_run_after"], "2099-01-01T00:00:00Z");
    assert_eq!(beta["owners"], json!(["ops"]));
    assert_eq!(all["dags"][2]["max_active_runs"], 3);

    // One DAG is the same object as in the list; an unknown one is Airflow's 404.
    let (status, one) = get(srv, &t, "/api/v2/dags/alpha");
    assert_eq!((status, &one), (200, alpha));
    let (status, v) = get(srv, &t, "/api/v2/dags/nope");
    assert_eq!(
        (status, v["detail"].as_str()),
        (404, Some("The Dag with ID: `nope` was not found"))
    );
}

#[test]
fn the_dag_list_filters_by_each_parameter_alone() {
    let e = start();
    let srv = &e.srv;
    let t = srv.login("viewer");
    // Filters, each alone.
    let cases: &[(&str, &[&str])] = &[
        ("dag_id_pattern=ALP", &["alpha"]),
        ("dag_id_pattern=beta|gamma", &["beta", "gamma_etl"]),
        ("dag_id_pattern=~", &["alpha", "beta", "gamma_etl"]),
        ("dag_id_pattern=%25_etl", &["gamma_etl"]),
        ("dag_id_prefix_pattern=gam", &["gamma_etl"]),
        ("dag_display_name_pattern=zed", &["alpha"]),
        ("tags=red", &["alpha", "gamma_etl"]),
        ("tags=red&tags=blue", &["alpha", "beta", "gamma_etl"]),
        ("tags=red&tags=blue&tags_match_mode=all", &["alpha"]),
        ("owners=OPS", &["beta"]),
        ("paused=true", &["alpha", "beta", "gamma_etl"]),
        ("paused=false", &[]),
        ("has_import_errors=false", &["alpha", "beta", "gamma_etl"]),
        ("last_dag_run_state=success", &[]),
        ("bundle_name=dags-folder", &["alpha", "beta", "gamma_etl"]),
        ("bundle_name=example_dags", &[]),
    ];
    for (query, want) in cases {
        let (status, v) = get(srv, &t, &format!("/api/v2/dags?{query}"));
        assert_eq!(status, 200, "{query}: {v}");
        assert_eq!(ids(&v), *want, "{query}");
        assert_eq!(v["total_entries"], json!(want.len()), "{query}");
    }
}

#[test]
fn the_dag_list_orders_and_pages_after_filtering() {
    let e = start();
    let srv = &e.srv;
    let t = srv.login("viewer");
    // Orders; ties go by dag_id in the direction of the first key.
    let orders: &[(&str, &[&str])] = &[
        ("-dag_id", &["gamma_etl", "beta", "alpha"]),
        // "Zed Alpha" sorts first: upper case before lower, as SQL's binary collation.
        ("dag_display_name", &["alpha", "beta", "gamma_etl"]),
        ("-dag_display_name", &["gamma_etl", "beta", "alpha"]),
        ("next_dagrun", &["alpha", "gamma_etl", "beta"]),
        ("-next_dagrun", &["beta", "gamma_etl", "alpha"]),
        ("last_run_state", &["alpha", "beta", "gamma_etl"]),
        ("-last_run_start_date", &["gamma_etl", "beta", "alpha"]),
        (
            "next_dagrun&order_by=-dag_id",
            &["gamma_etl", "alpha", "beta"],
        ),
    ];
    for (order, want) in orders {
        let (status, v) = get(srv, &t, &format!("/api/v2/dags?order_by={order}"));
        assert_eq!(status, 200, "{order}: {v}");
        assert_eq!(ids(&v), *want, "order_by={order}");
    }

    // Pages: total_entries counts every match, not the page.
    let (_, v) = get(srv, &t, "/api/v2/dags?limit=2");
    assert_eq!((ids(&v).len(), &v["total_entries"]), (2, &json!(3)));
    let (_, v) = get(srv, &t, "/api/v2/dags?limit=2&offset=2");
    assert_eq!(ids(&v), ["gamma_etl"]);
    assert_eq!(v["total_entries"], 3);
    let (_, v) = get(srv, &t, "/api/v2/dags?offset=5");
    assert_eq!((ids(&v).len(), &v["total_entries"]), (0, &json!(3)));
    // A page is cut after filtering and ordering, whatever the key; the rows of a page
    // carry their computed fields however they were ordered.
    let pages: &[(&str, &[&str], usize)] = &[
        ("order_by=next_dagrun&limit=1&offset=1", &["gamma_etl"], 3),
        (
            "order_by=-next_dagrun&limit=2&offset=1",
            &["gamma_etl", "alpha"],
            3,
        ),
        ("order_by=-dag_display_name&limit=1&offset=2", &["alpha"], 3),
        ("tags=red&limit=1&offset=1", &["gamma_etl"], 2),
        ("tags=red&order_by=-dag_id&limit=1", &["gamma_etl"], 2),
        ("dag_id_pattern=a&limit=1&offset=5", &[], 3),
    ];
    for (query, want, total) in pages {
        let (status, v) = get(srv, &t, &format!("/api/v2/dags?{query}"));
        assert_eq!(status, 200, "{query}: {v}");
        assert_eq!(ids(&v), *want, "{query}");
        assert_eq!(v["total_entries"], json!(total), "{query}");
    }
    let (_, v) = get(srv, &t, "/api/v2/dags?order_by=-next_dagrun&limit=1");
    assert_eq!(v["dags"][0]["dag_id"], "beta");
    assert_eq!(
        v["dags"][0]["next_dagrun_logical_date"],
        "2099-01-01T00:00:00Z"
    );
    let (_, v) = get(srv, &t, "/api/v2/dags?offset=1&limit=1");
    assert_eq!(
        v["dags"][0]["next_dagrun_run_after"],
        "2099-01-01T00:00:00Z"
    );
}

#[test]
fn bad_dag_list_values_are_4xx_with_a_detail() {
    let e = start();
    let srv = &e.srv;
    let t = srv.login("viewer");
    // Bad values are 4xx with a detail, never a 500.
    for (query, want) in [
        ("order_by=bogus", 400),
        ("order_by=state", 400),
        ("limit=-1", 422),
        ("offset=x", 422),
        ("paused=maybe", 422),
        ("exclude_stale=x", 422),
        ("tags_match_mode=some", 422),
        ("last_dag_run_state=done", 422),
    ] {
        let (status, v) = get(srv, &t, &format!("/api/v2/dags?{query}"));
        assert_eq!(status, want, "{query}: {v}");
        assert!(!v["detail"].is_null(), "{query}: {v}");
    }
    let (status, v) = get(srv, &t, "/api/v2/dags?order_by=bogus");
    assert_eq!(
        (status, v["detail"].as_str()),
        (
            400,
            Some(
                "Ordering with 'bogus' is disallowed or the attribute does not exist on the model"
            )
        )
    );
}

#[test]
fn a_broken_file_flags_its_dags_and_a_removed_one_leaves_them_stale() {
    let e = start();
    let srv = &e.srv;
    let t = srv.login("viewer");
    // A file that breaks keeps its DAGs' last version and flags them, in the list too.
    let (_, v) = get(srv, &t, "/api/v2/dags");
    assert_eq!(listed(&v, "has_import_errors"), [false, false, false]);
    e.home.write("dags/gamma.yml", "gamma_etl: [\n  oops\n");
    let flagged = wait_until(WAIT, || {
        get(srv, &t, "/api/v2/dags/gamma_etl").1["has_import_errors"] == json!(true)
    });
    assert!(flagged, "{}", srv.log());
    let (_, v) = get(srv, &t, "/api/v2/dags?has_import_errors=true");
    assert_eq!(ids(&v), ["gamma_etl"]);
    let (_, v) = get(srv, &t, "/api/v2/dags");
    assert_eq!(listed(&v, "has_import_errors"), [false, false, true]);

    // A file that is gone leaves stale DAGs, which the list hides unless asked.
    std::fs::remove_file(e.home.path.join("dags/gamma.yml")).unwrap();
    let stale = wait_until(WAIT, || {
        get(srv, &t, "/api/v2/dags/gamma_etl").1["is_stale"] == json!(true)
    });
    assert!(stale, "{}", srv.log());
    let (_, v) = get(srv, &t, "/api/v2/dags");
    assert_eq!(ids(&v), ["alpha", "beta"]);
    for query in ["exclude_stale=false", "only_active=false"] {
        let (_, v) = get(srv, &t, &format!("/api/v2/dags?{query}"));
        assert_eq!(ids(&v), ["alpha", "beta", "gamma_etl"], "{query}");
    }
}

#[test]
fn the_dag_list_caps_limit_at_100() {
    let many: String = (0..101)
        .map(|i| {
            format!(
                "bulk_{i:03}:\n  default_args:\n    start_date: 2024-01-01\n  tasks:\n    - task_id: t\n      operator: {EMPTY}\n"
            )
        })
        .collect();
    let e = Engine::start(&[("many.yml", &many)], &[USERS]);
    let t = e.srv.login("viewer");
    let listed = wait_until(WAIT, || {
        get(&e.srv, &t, "/api/v2/dags").1["total_entries"] == json!(101)
    });
    assert!(listed, "{}", e.srv.log());
    let (_, v) = get(&e.srv, &t, "/api/v2/dags");
    assert_eq!(ids(&v).len(), 50);
    let (_, v) = get(&e.srv, &t, "/api/v2/dags?limit=1000");
    assert_eq!((ids(&v).len(), &v["total_entries"]), (100, &json!(101)));
    assert_eq!(ids(&v)[99], "bulk_099");
    let (_, v) = get(&e.srv, &t, "/api/v2/dags?limit=1000&offset=100");
    assert_eq!(ids(&v), ["bulk_100"]);
}

#[test]
fn dag_details_answer_in_airflows_field_order() {
    let e = start();
    let srv = &e.srv;
    let t = srv.login("viewer");
    let (status, d) = get(srv, &t, "/api/v2/dags/alpha/details");
    assert_eq!(status, 200, "{d}");
    let want: Vec<&str> = DAG_FIELDS
        .iter()
        .filter(|f| !["is_backfillable", "file_token"].contains(f))
        .chain(DETAILS_FIELDS)
        .copied()
        .collect();
    assert_eq!(keys(&d), want);
    assert_eq!(d["catchup"], false);
    assert_eq!(d["dag_run_timeout"], "PT1H30M");
    assert_eq!(d["start_date"], "2024-01-01T00:00:00Z");
    assert_eq!(d["timezone"], "UTC");
    assert_eq!(d["concurrency"], d["max_active_tasks"]);
    assert_eq!(d["active_runs_count"], 0);
    assert_eq!(d["is_paused_upon_creation"], Value::Null);
    assert_eq!(d["owner_links"], json!({}));
    assert_eq!(d["is_favorite"], false);
    assert!(d["last_parsed"].is_string(), "{d}");
    assert_eq!(
        d["params"],
        json!({
            "name": {"value": "world", "schema": {}, "description": null, "source": "dag"},
            "count": {"value": 3, "schema": {}, "description": null, "source": "dag"},
        })
    );
    let (status, v) = get(srv, &t, "/api/v2/dags/nope/details");
    assert_eq!(
        (status, v["detail"].as_str()),
        (404, Some("The Dag with ID: `nope` was not found"))
    );
}

#[test]
fn tasks_have_every_spec_field_in_airflows_types() {
    let e = start();
    let srv = &e.srv;
    let t = srv.login("viewer");
    // Tasks: every spec field, counts as floats, durations as TimeDelta objects.
    let (status, v) = get(srv, &t, "/api/v2/dags/alpha/tasks");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["total_entries"], 2);
    for task in v["tasks"].as_array().unwrap() {
        assert_eq!(keys(task), TASK_FIELDS, "{task}");
    }
    let extract = &v["tasks"][0];
    assert_eq!(extract["task_id"], "extract");
    assert!(extract["retries"].is_f64(), "{extract}");
    assert_eq!(extract["retries"], json!(2.0));
    assert!(extract["pool_slots"].is_f64() && extract["priority_weight"].is_f64());
    assert_eq!(
        extract["retry_delay"],
        json!({"__type": "TimeDelta", "days": 0, "seconds": 90, "microseconds": 0})
    );
    assert_eq!(extract["retry_exponential_backoff"], json!(0.0));
    assert_eq!(
        extract["template_fields"],
        json!(["bash_command", "env", "cwd"])
    );
    assert_eq!(extract["downstream_task_ids"], json!(["load"]));
    assert_eq!(extract["operator_name"], "BashOperator");
    assert_eq!(
        extract["class_ref"],
        json!({"module_path": "airflow.providers.standard.operators.bash", "class_name": "BashOperator"})
    );
    assert_eq!(extract["ui_color"], "#f0ede4");
    assert_eq!(extract["start_date"], "2024-01-01T00:00:00Z");
    assert_eq!(extract["params"]["name"]["value"], "world");
    let load = &v["tasks"][1];
    assert_eq!(load["template_fields"], json!([]));
    assert_eq!(load["downstream_task_ids"], json!([]));
    assert_eq!(load["operator_name"], "EmptyOperator");
    let (_, v) = get(srv, &t, "/api/v2/dags/alpha/tasks?order_by=-task_id");
    assert_eq!(v["tasks"][0]["task_id"], "load");
    let (status, v) = get(srv, &t, "/api/v2/dags/alpha/tasks?order_by=nope");
    assert_eq!(status, 400, "{v}");
    let (status, one) = get(srv, &t, "/api/v2/dags/alpha/tasks/load");
    assert_eq!((status, &one), (200, load));
    let (status, v) = get(srv, &t, "/api/v2/dags/alpha/tasks/nope");
    assert_eq!(
        (status, v["detail"].as_str()),
        (404, Some("Task with id nope was not found"))
    );
}

#[test]
fn a_dags_source_comes_as_json_or_plain_text() {
    let e = start();
    let srv = &e.srv;
    let t = srv.login("viewer");
    // Source: the file's text, as JSON or as plain text.
    let (status, v) = get(srv, &t, "/api/v2/dagSources/beta");
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        keys(&v),
        ["content", "dag_id", "version_number", "dag_display_name"]
    );
    assert_eq!(v["content"], json!(team_yml()));
    assert_eq!(v["dag_id"], "beta");
    let url = format!("{}/api/v2/dagSources/beta", srv.base);
    let fetch = |accept: &str| {
        let reply = request(Method::Get, &url)
            .token(&t)
            .header("Accept", accept)
            .send();
        (reply.status, reply.text)
    };
    assert_eq!(fetch("text/plain"), (200, team_yml()));
    let (status, body) = fetch("text/html");
    assert_eq!(status, 406, "{body}");
    let (status, v) = get(srv, &t, "/api/v2/dagSources/nope");
    assert_eq!(status, 404, "{v}");
    let (status, v) = get(srv, &t, "/api/v2/dagSources/beta?version_number=x");
    assert_eq!(status, 422, "{v}");
}

#[test]
fn tags_are_listed_once_each_ordered_filtered_and_paged() {
    let e = start();
    let srv = &e.srv;
    let t = srv.login("viewer");
    // Tags: names once each, ordered, filtered, paged.
    let (status, v) = get(srv, &t, "/api/v2/dagTags");
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v,
        json!({"tags": ["blue", "dagfactory", "red"], "total_entries": 3})
    );
    let (_, v) = get(srv, &t, "/api/v2/dagTags?order_by=-name");
    assert_eq!(v["tags"], json!(["red", "dagfactory", "blue"]));
    let (_, v) = get(srv, &t, "/api/v2/dagTags?tag_name_pattern=RE");
    assert_eq!(v, json!({"tags": ["red"], "total_entries": 1}));
    let (_, v) = get(srv, &t, "/api/v2/dagTags?limit=1&offset=1");
    assert_eq!(v, json!({"tags": ["dagfactory"], "total_entries": 3}));
    let (status, _) = get(srv, &t, "/api/v2/dagTags?order_by=dag_id");
    assert_eq!(status, 400);
}

#[test]
fn import_errors_name_the_broken_file_and_its_position() {
    let e = start();
    let srv = &e.srv;
    let t = srv.login("viewer");
    // Import errors: the broken file, bundle-relative, with its position.
    let (status, v) = get(srv, &t, "/api/v2/importErrors");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["total_entries"], 1);
    let err = &v["import_errors"][0];
    assert_eq!(
        keys(err),
        [
            "import_error_id",
            "timestamp",
            "filename",
            "bundle_name",
            "stack_trace"
        ]
    );
    assert_eq!(err["filename"], "broken.yml");
    assert_eq!(err["bundle_name"], "dags-folder");
    assert!(
        err["stack_trace"]
            .as_str()
            .unwrap()
            .starts_with("broken.yml:"),
        "{err}"
    );
    let id = err["import_error_id"].as_i64().unwrap();
    let (status, one) = get(srv, &t, &format!("/api/v2/importErrors/{id}"));
    assert_eq!((status, &one), (200, err));
    let (_, v) = get(srv, &t, "/api/v2/importErrors?filename_pattern=team");
    assert_eq!(v["total_entries"], 0);
    let (_, v) = get(srv, &t, "/api/v2/importErrors?order_by=-timestamp");
    assert_eq!(v["total_entries"], 1);
    let (status, v) = get(srv, &t, "/api/v2/importErrors/999");
    assert_eq!(
        (status, v["detail"].as_str()),
        (
            404,
            Some("The ImportError with import_error_id: `999` was not found")
        )
    );
    let (status, v) = get(srv, &t, "/api/v2/importErrors/x");
    assert_eq!(
        (status, &v["detail"][0]["type"]),
        (422, &json!("int_parsing"))
    );
}

/// Pauses and unpauses alpha alone, as a viewer (refused) and as a user, with every
/// kind of bad request; asserts each reply.
fn pause_one_dag(srv: &TestServer, viewer: &str, user: &str) {
    let unpause = json!({"is_paused": false});
    let (status, v) = srv.call(
        viewer,
        Method::Patch,
        "/api/v2/dags/alpha",
        Some(unpause.clone()),
    );
    assert_eq!((status, v["detail"].as_str()), (403, Some("Forbidden")));
    let (status, v) = srv.call(
        user,
        Method::Patch,
        "/api/v2/dags/alpha",
        Some(unpause.clone()),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(keys(&v), DAG_FIELDS);
    assert_eq!(v["is_paused"], false);
    assert_eq!(get(srv, viewer, "/api/v2/dags/alpha").1["is_paused"], false);
    let (status, v) = srv.call(
        user,
        Method::Patch,
        "/api/v2/dags/alpha?update_mask=is_paused",
        Some(json!({"is_paused": true})),
    );
    assert_eq!((status, &v["is_paused"]), (200, &json!(true)));
    for (path, body, want) in [
        (
            "/api/v2/dags/alpha?update_mask=description",
            json!({"is_paused": true}),
            400,
        ),
        ("/api/v2/dags/alpha", json!({"is_paused": "soon"}), 422),
        ("/api/v2/dags/alpha", json!({}), 422),
        (
            "/api/v2/dags/alpha",
            json!({"is_paused": true, "owner": "x"}),
            422,
        ),
        ("/api/v2/dags/nope", unpause.clone(), 404),
    ] {
        let (status, v) = srv.call(user, Method::Patch, path, Some(body.clone()));
        assert_eq!(status, want, "{path} {body}: {v}");
        assert!(!v["detail"].is_null(), "{v}");
    }
    let (_, v) = srv.call(
        user,
        Method::Patch,
        "/api/v2/dags/nope",
        Some(unpause.clone()),
    );
    assert_eq!(v["detail"], "Dag with id: nope was not found");
}

/// Unpauses every DAG by id pattern a page at a time, then pauses beta and gamma_etl;
/// asserts each reply.
fn pause_many_dags(srv: &TestServer, viewer: &str, user: &str) {
    let unpause = json!({"is_paused": false});
    // Many DAGs: only those the id pattern matches; none without one.
    let (status, v) = srv.call(
        viewer,
        Method::Patch,
        "/api/v2/dags?dag_id_pattern=~",
        Some(unpause.clone()),
    );
    assert_eq!(status, 403, "{v}");
    let (status, v) = srv.call(user, Method::Patch, "/api/v2/dags", Some(unpause.clone()));
    assert_eq!(
        (status, &v),
        (200, &json!({"dags": [], "total_entries": 0}))
    );
    let (status, v) = srv.call(
        user,
        Method::Patch,
        "/api/v2/dags?dag_id_pattern=a&limit=1",
        Some(unpause.clone()),
    );
    assert_eq!(status, 200, "{v}");
    // alpha, beta and gamma_etl all contain an "a"; one page, all changed.
    assert_eq!(
        (ids(&v), &v["total_entries"]),
        (vec!["alpha".to_string()], &json!(3))
    );
    assert_eq!(v["dags"][0]["is_paused"], false);
    let (_, v) = srv.call(
        user,
        Method::Patch,
        "/api/v2/dags?dag_id_pattern=a&limit=1&offset=2",
        Some(unpause.clone()),
    );
    assert_eq!(
        (ids(&v), &v["total_entries"]),
        (vec!["gamma_etl".to_string()], &json!(3))
    );
    let (_, v) = get(srv, viewer, "/api/v2/dags?paused=false");
    assert_eq!(ids(&v), ["alpha", "beta", "gamma_etl"]);
    let (_, v) = srv.call(
        user,
        Method::Patch,
        "/api/v2/dags?dag_id_pattern=beta|gamma",
        Some(json!({"is_paused": true})),
    );
    assert_eq!(ids(&v), ["beta", "gamma_etl"]);
    let (_, v) = get(srv, viewer, "/api/v2/dags?paused=true");
    assert_eq!(ids(&v), ["beta", "gamma_etl"]);
    let (_, v) = get(srv, viewer, "/api/v2/dags");
    assert_eq!(listed(&v, "is_paused"), [false, true, true]);
}

#[test]
fn pausing_one_dag_needs_the_user_role() {
    let e = start();
    let srv = &e.srv;
    let (viewer, user) = (srv.login("viewer"), srv.login("user"));
    pause_one_dag(srv, &viewer, &user);
}

#[test]
fn pausing_many_dags_changes_only_those_the_pattern_matches() {
    let e = start();
    let srv = &e.srv;
    let (viewer, user) = (srv.login("viewer"), srv.login("user"));
    pause_many_dags(srv, &viewer, &user);
}

#[test]
fn pausing_leaves_an_event_log_that_filters_orders_and_pages() {
    let e = start();
    let srv = &e.srv;
    let (viewer, user) = (srv.login("viewer"), srv.login("user"));
    pause_one_dag(srv, &viewer, &user);
    pause_many_dags(srv, &viewer, &user);
    // The audit trail: who paused what, oldest first unless asked otherwise.
    let (status, v) = get(srv, &viewer, "/api/v2/eventLogs?event=patch_dag");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["total_entries"], 2, "{v}");
    let first = &v["event_logs"][0];
    assert_eq!(
        keys(first),
        [
            "event_log_id",
            "when",
            "dag_id",
            "task_id",
            "run_id",
            "map_index",
            "try_number",
            "event",
            "logical_date",
            "owner",
            "extra",
            "dag_display_name",
            "task_display_name"
        ]
    );
    assert_eq!(first["dag_id"], "alpha");
    assert_eq!(first["owner"], "user");
    assert_eq!(first["dag_display_name"], "Zed Alpha");
    let extra: Value = serde_json::from_str(first["extra"].as_str().unwrap()).unwrap();
    assert_eq!(extra["method"], "PATCH");
    let newest = get(
        srv,
        &viewer,
        "/api/v2/eventLogs?order_by=-event_log_id&limit=1",
    )
    .1;
    assert_eq!(newest["event_logs"][0]["event"], "patch_dags");
    let id = first["event_log_id"].as_i64().unwrap();
    let (status, one) = get(srv, &viewer, &format!("/api/v2/eventLogs/{id}"));
    assert_eq!((status, &one), (200, first));
    let all = get(srv, &viewer, "/api/v2/eventLogs").1;
    let total = all["total_entries"].as_i64().unwrap();
    let ids_of = |v: &Value| -> Vec<i64> {
        v["event_logs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event_log_id"].as_i64().unwrap())
            .collect()
    };
    let asc = ids_of(&all);
    assert!(asc.windows(2).all(|w| w[0] < w[1]), "{asc:?}");
    let cases: &[(&str, Check)] = &[
        ("owner=user", |e| e["owner"] == "user"),
        ("dag_id=beta", |e| e["dag_id"] == "beta"),
        (
            "excluded_events=patch_dag&excluded_events=patch_dags",
            |e| !e["event"].as_str().unwrap().starts_with("patch_dag"),
        ),
        ("included_events=patch_dags", |e| e["event"] == "patch_dags"),
        ("event_pattern=PATCH", |e| {
            e["event"].as_str().unwrap().contains("patch")
        }),
        ("after=2000-01-01T00:00:00Z&before=2999-01-01", |_| true),
    ];
    for (query, holds) in cases {
        let (status, v) = get(srv, &viewer, &format!("/api/v2/eventLogs?{query}"));
        assert_eq!(status, 200, "{query}: {v}");
        let rows = v["event_logs"].as_array().unwrap();
        assert!(!rows.is_empty(), "{query}: {v}");
        assert!(rows.iter().all(holds), "{query}: {v}");
        assert_eq!(v["total_entries"], json!(rows.len()), "{query}");
    }
    let (_, v) = get(
        srv,
        &viewer,
        "/api/v2/eventLogs?before=2000-01-01T00:00:00Z",
    );
    assert_eq!(v["total_entries"], 0);
    let (_, v) = get(srv, &viewer, "/api/v2/eventLogs?limit=1&offset=1");
    assert_eq!(
        (ids_of(&v), &v["total_entries"]),
        (vec![asc[1]], &json!(total))
    );
    for (query, want) in [
        ("order_by=nope", 400),
        ("map_index=x", 422),
        ("try_number=1.5", 422),
        ("before=yesterday", 422),
    ] {
        let (status, v) = get(srv, &viewer, &format!("/api/v2/eventLogs?{query}"));
        assert_eq!(status, want, "{query}: {v}");
        assert!(!v["detail"].is_null(), "{v}");
    }
    let (status, v) = get(srv, &viewer, "/api/v2/eventLogs/999999");
    assert_eq!(
        (status, v["detail"].as_str()),
        (404, Some("The Event Log with id: `999999` not found"))
    );
}

#[test]
fn deleting_a_dag_needs_the_user_role_and_its_file_brings_it_back_paused() {
    let e = start();
    let srv = &e.srv;
    let (viewer, user) = (srv.login("viewer"), srv.login("user"));
    // Unpaused first, so coming back paused shows it came back new.
    let (status, v) = srv.call(
        &user,
        Method::Patch,
        "/api/v2/dags/gamma_etl",
        Some(json!({"is_paused": false})),
    );
    assert_eq!((status, &v["is_paused"]), (200, &json!(false)), "{v}");
    // Delete: 204, then gone; the file still defines it, so the processor brings it back.
    let (status, _) = srv.call(&viewer, Method::Delete, "/api/v2/dags/gamma_etl", None);
    assert_eq!(status, 403);
    let (status, body) = srv.call(&user, Method::Delete, "/api/v2/dags/gamma_etl", None);
    assert_eq!((status, body), (204, Value::Null));
    let (status, v) = srv.call(&user, Method::Delete, "/api/v2/dags/gamma_etl", None);
    if status == 404 {
        assert_eq!(v["detail"], "Dag with id: gamma_etl was not found");
    }
    let (status, v) = srv.call(&user, Method::Delete, "/api/v2/dags/nope", None);
    assert_eq!(
        (status, v["detail"].as_str()),
        (404, Some("Dag with id: nope was not found"))
    );
    let (_, v) = get(srv, &viewer, "/api/v2/eventLogs?event=delete_dag");
    assert_eq!(v["event_logs"][0]["owner"], "user", "{v}");
    let back = wait_until(WAIT, || {
        get(srv, &viewer, "/api/v2/dags/gamma_etl").0 == 200
    });
    assert!(back, "{}", srv.log());
    // Back as new: paused at creation again.
    assert_eq!(
        get(srv, &viewer, "/api/v2/dags/gamma_etl").1["is_paused"],
        true
    );
}

#[test]
fn stats_and_last_run_follow_real_runs() {
    let quick = dag("quick", "", &task("hello", "echo hello", ""));
    let slow = dag("slow", "", &task("nap", "sleep 20", ""));
    let e = Engine::start(&[("quick.yml", &quick), ("slow.yml", &slow)], &[USERS]);
    let t = e.srv.login("viewer");
    let user = e.srv.login("user");
    let listed = wait_until(WAIT, || {
        get(&e.srv, &t, "/api/v2/dags").1["total_entries"] == json!(2)
    });
    assert!(listed, "{}", e.srv.log());
    // No runs yet: Airflow lists only DAGs that have runs.
    let (status, v) = get(&e.srv, &t, "/api/v2/dagStats");
    assert_eq!((status, v), (200, json!({"dags": [], "total_entries": 0})));

    let run = e.trigger("quick", None);
    assert_eq!(e.wait_run("quick", &run), "success");
    let run = e.trigger("quick", None);
    assert_eq!(e.wait_run("quick", &run), "success");
    let (status, v) = get(&e.srv, &t, "/api/v2/dagStats?dag_ids=quick&dag_ids=slow");
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v,
        json!({"dags": [{"dag_id": "quick", "dag_display_name": "quick", "stats": [
            {"state": "queued", "count": 0},
            {"state": "running", "count": 0},
            {"state": "success", "count": 2},
            {"state": "failed", "count": 0},
        ]}], "total_entries": 1})
    );

    // A running task: the DAG cannot be deleted, and it counts as active.
    let nap = e.trigger("slow", None);
    let running = wait_until(WAIT, || e.state("slow", &nap, "nap") == "running");
    assert!(running, "{}", e.srv.log());
    let (_, v) = get(&e.srv, &t, "/api/v2/dagStats");
    assert_eq!(ids(&v), ["quick", "slow"]);
    assert_eq!(
        v["dags"][1]["stats"][1],
        json!({"state": "running", "count": 1})
    );
    let (_, v) = get(&e.srv, &t, "/api/v2/dagStats?dag_ids=slow");
    assert_eq!(ids(&v), ["slow"]);
    assert_eq!(
        get(&e.srv, &t, "/api/v2/dags/slow/details").1["active_runs_count"],
        1
    );
    let (_, v) = get(&e.srv, &t, "/api/v2/dags?last_dag_run_state=success");
    assert_eq!(ids(&v), ["quick"]);
    let (_, v) = get(&e.srv, &t, "/api/v2/dags?last_dag_run_state=running");
    assert_eq!(ids(&v), ["slow"]);
    let (_, v) = get(&e.srv, &t, "/api/v2/dags?order_by=-last_run_start_date");
    assert_eq!(ids(&v), ["slow", "quick"]);
    // Pages over the latest runs: cut after ordering, counted before.
    for (query, want) in [
        ("order_by=-last_run_start_date&limit=1", "slow"),
        ("order_by=-last_run_start_date&limit=1&offset=1", "quick"),
        ("order_by=last_run_state&limit=1", "slow"),
        ("order_by=last_run_state&limit=1&offset=1", "quick"),
        ("order_by=-last_run_state&limit=1", "quick"),
    ] {
        let (_, v) = get(&e.srv, &t, &format!("/api/v2/dags?{query}"));
        assert_eq!(
            (ids(&v), &v["total_entries"]),
            (vec![want.to_string()], &json!(2)),
            "{query}"
        );
    }
    let (_, v) = get(
        &e.srv,
        &t,
        "/api/v2/dags?last_dag_run_state=success&limit=1&offset=1",
    );
    assert_eq!((ids(&v).len(), &v["total_entries"]), (0, &json!(1)));
    let (status, v) = e.srv.call(&user, Method::Delete, "/api/v2/dags/slow", None);
    assert_eq!(
        (status, v["detail"].as_str()),
        (
            409,
            Some("Task instances of dag with id: 'slow' are still running")
        )
    );
    // The CLI's trigger and the tasks' transitions are in the event log too.
    let (_, v) = get(
        &e.srv,
        &t,
        "/api/v2/eventLogs?dag_id=quick&event=trigger_dag_run",
    );
    assert_eq!(v["total_entries"], 2, "{v}");
}

#[test]
fn versions_warnings_and_dependencies_answer_in_airflows_shape() {
    use crate::engine::{Engine, dag, task};
    let tasks = [
        task("first", "sleep 30", ""),
        task("second", "echo 2", "dependencies: [first]"),
    ]
    .concat();
    let e = Engine::start(
        &[("deps.yml", &dag("deps", "", &tasks))],
        &[crate::util::USERS],
    );
    let token = e.srv.login("viewer");
    let (status, v) = e
        .srv
        .call(&token, Method::Get, "/api/v2/dags/deps/dagVersions", None);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["total_entries"], 1, "{v}");
    assert_eq!(v["dag_versions"][0]["version_number"], 1, "{v}");
    assert_eq!(v["dag_versions"][0]["dag_id"], "deps", "{v}");
    assert_eq!(
        e.srv
            .call(&token, Method::Get, "/api/v2/dags/nope/dagVersions", None)
            .0,
        404
    );
    let (status, w) = e.srv.call(&token, Method::Get, "/api/v2/dagWarnings", None);
    assert_eq!(
        (status, w),
        (
            200,
            serde_json::json!({"dag_warnings": [], "total_entries": 0})
        )
    );
    let run = e.trigger("deps", None);
    assert!(crate::util::wait_until(
        std::time::Duration::from_secs(90),
        || e.state("deps", &run, "first") == "running"
    ));
    let path = |t: &str| {
        format!(
            "/api/v2/dags/deps/dagRuns/{}/taskInstances/{t}/dependencies",
            updraft::percent::encode_segment(&run)
        )
    };
    let (status, d) = e.srv.call(&token, Method::Get, &path("second"), None);
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["dependencies"][0]["name"], "Trigger Rule", "{d}");
    let (status, d) = e.srv.call(&token, Method::Get, &path("first"), None);
    assert_eq!((status, d), (200, serde_json::json!({"dependencies": []})));
}

/// The list keeps whole pages; each thing a page shows must still show the moment it
/// changes, the same query asked again: a pause (a DAG row), a favorite (the caller's,
/// with `is_favorite`), a new scheduled run (the next run, which no row holds) and an
/// import error (nor does that).
#[test]
fn a_kept_dag_list_page_shows_each_change_at_once() {
    let nightly = "nightly:\n  schedule: \"0 0 * * *\"\n  catchup: true\n  default_args:\n    start_date: 2024-01-01\n  tasks:\n    - task_id: t\n      operator: airflow.providers.standard.operators.empty.EmptyOperator\n";
    let plain = dag("plain", "", &task("t", "echo t", ""));
    let e = Engine::start(
        &[("nightly.yml", nightly), ("plain.yml", &plain)],
        &[
            USERS,
            ("UPDRAFT__CORE__DAGS_ARE_PAUSED_AT_CREATION", "True"),
        ],
    );
    let srv = &e.srv;
    let (viewer, user) = (srv.login("viewer"), srv.login("user"));
    let listed_both = wait_until(WAIT, || {
        get(srv, &viewer, "/api/v2/dags").1["total_entries"] == json!(2)
    });
    assert!(listed_both, "{}", srv.log());
    let query = "/api/v2/dags?order_by=dag_id&limit=10";
    let field = |name: &str, id: &str| -> Value {
        let (status, v) = get(srv, &viewer, query);
        assert_eq!(status, 200, "{v}");
        let dag = v["dags"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["dag_id"] == id);
        dag.unwrap()[name].clone()
    };
    assert_eq!(field("is_paused", "plain"), json!(true));

    // A pause.
    let (status, v) = srv.call(
        &user,
        Method::Patch,
        "/api/v2/dags/plain",
        Some(json!({"is_paused": false})),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(field("is_paused", "plain"), json!(false));

    // A favorite.
    let favorites = "/api/v2/dags?is_favorite=true";
    for _ in 0..2 {
        assert_eq!(ids(&get(srv, &viewer, favorites).1), Vec::<String>::new());
    }
    let (status, v) = srv.call(&viewer, Method::Post, "/api/v2/dags/nightly/favorite", None);
    assert_eq!(status, 204, "{v}");
    assert_eq!(ids(&get(srv, &viewer, favorites).1), ["nightly"]);

    // A new scheduled run: the next run follows it.
    let first = json!("2024-01-01T00:00:00Z");
    assert_eq!(field("next_dagrun_logical_date", "nightly"), first);
    let body = json!({"dag_id": "nightly", "from_date": "2024-01-01T00:00:00Z", "to_date": "2024-01-03T00:00:00Z"});
    let (status, v) = srv.call(&user, Method::Post, "/api/v2/backfills", Some(body));
    assert_eq!(status, 200, "{v}");
    let one = get(srv, &viewer, "/api/v2/dags/nightly").1["next_dagrun_logical_date"].clone();
    assert_ne!(one, first);
    assert_eq!(field("next_dagrun_logical_date", "nightly"), one);

    // An import error in plain's file: it keeps its DAG, flagged.
    assert_eq!(field("has_import_errors", "plain"), json!(false));
    e.home.write("dags/plain.yml", "plain: [\n  oops\n");
    let flagged = wait_until(WAIT, || {
        get(srv, &viewer, "/api/v2/dags/plain").1["has_import_errors"] == json!(true)
    });
    assert!(flagged, "{}", srv.log());
    assert_eq!(field("has_import_errors", "plain"), json!(true));
}
