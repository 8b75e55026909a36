//! Variables, connections, pools, config, plugins, providers and jobs through the real
//! `api-server` (and `standalone` for pool usage): Airflow 3.3.2's shapes and status
//! codes, secrets masked in replies and in the audit log, bulk changes, roles, and
//! hostile input that must end in a 4xx with a `detail`, never a 500.

use std::time::Duration;

use serde_json::{Value, json};
use updraft::store::Store;

use crate::engine::Engine;
#[cfg(unix)]
use crate::engine::{dag, task};
use crate::util::{Method, TempHome, TestServer, USERS, wait_until};

const LONG: Duration = Duration::from_secs(90);

/// An api-server with users of every role, and the op's and admin's tokens.
struct Api {
    home: TempHome,
    srv: TestServer,
    op: String,
    admin: String,
}

impl Api {
    fn start(env: &[(&str, &str)]) -> Api {
        let home = TempHome::new();
        let mut all = vec![USERS];
        all.extend_from_slice(env);
        let srv = TestServer::start(&home, &["api-server"], &all);
        let op = srv.login("op");
        let admin = srv.login("admin");
        Api {
            home,
            srv,
            op,
            admin,
        }
    }

    /// A call as the op user.
    fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.srv.call(&self.op, method, path, body)
    }

    /// Asserts status and whole body.
    #[track_caller]
    fn check(&self, method: Method, path: &str, body: Option<Value>, status: u16, want: Value) {
        let (got_status, got) = self.call(method, path, body);
        assert_eq!((got_status, &got), (status, &want), "{method} {path}");
    }

    fn store(&self) -> Store {
        Store::open_existing(&self.home.path.join("updraft.db")).unwrap()
    }

    /// The `extra` of every audit entry of one event, through `GET /api/v2/eventLogs`.
    #[track_caller]
    fn audit(&self, event: &str) -> Vec<String> {
        let (status, body) = self.srv.call(
            &self.admin,
            Method::Get,
            &format!("/api/v2/eventLogs?event={event}&limit=100"),
            None,
        );
        assert_eq!(status, 200, "eventLogs?event={event}: {body}");
        body["event_logs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["extra"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

/// GET with an `Accept` header: (status, content type, body text).
fn get_accept(srv: &TestServer, token: &str, path: &str, accept: &str) -> (u16, String, String) {
    let reply = srv
        .request(Method::Get, path)
        .token(token)
        .header("Accept", accept)
        .send();
    let ct = reply.header("content-type").unwrap_or_default().to_string();
    (reply.status, ct, reply.text)
}

#[test]
fn variables_crud_with_secret_values_masked() {
    let api = Api::start(&[]);
    let sample = json!({"key": "sample_var", "value": "v1", "description": "sample variable", "is_encrypted": false, "team_name": null});
    api.check(
        Method::Post,
        "/api/v2/variables",
        Some(json!({"key": "sample_var", "value": "v1", "description": "sample variable"})),
        201,
        sample.clone(),
    );
    api.check(
        Method::Post,
        "/api/v2/variables",
        Some(json!({"key": "sample_var", "value": "v2"})),
        409,
        json!({"detail": "The Variable with key: `sample_var` already exists"}),
    );
    api.check(
        Method::Get,
        "/api/v2/variables/sample_var",
        None,
        200,
        sample.clone(),
    );

    // A secret-looking key: masked in every reply, kept in clear in the store.
    let (status, v) = api.call(
        Method::Post,
        "/api/v2/variables",
        Some(json!({"key": "db_password", "value": "hunter2"})),
    );
    assert_eq!((status, &v["value"]), (201, &json!("***")), "{v}");
    assert_eq!(
        api.call(Method::Get, "/api/v2/variables/db_password", None)
            .1["value"],
        "***"
    );
    assert_eq!(
        api.store().variable("db_password").unwrap().unwrap().val,
        "hunter2"
    );
    // JSON values are stored as Python's json.dumps(indent=2) and shown compact, with
    // secret keys inside masked.
    api.call(
        Method::Post,
        "/api/v2/variables",
        Some(json!({"key": "cfg", "value": {"n": 1, "api_key": "k"}})),
    );
    assert_eq!(
        api.store().variable("cfg").unwrap().unwrap().val,
        "{\n  \"n\": 1,\n  \"api_key\": \"k\"\n}"
    );
    assert_eq!(
        api.call(Method::Get, "/api/v2/variables/cfg", None).1["value"],
        "{\"n\": 1, \"api_key\": \"***\"}"
    );

    let (status, list) = api.call(Method::Get, "/api/v2/variables", None);
    assert_eq!(status, 200);
    assert_eq!(list["total_entries"], 3);
    assert_eq!(list["variables"][0], sample);
    assert_eq!(list["variables"][1]["value"], "***");
    let keys = |q: &str| -> Vec<Value> {
        let (s, l) = api.call(Method::Get, &format!("/api/v2/variables?{q}"), None);
        assert_eq!(s, 200, "{q}: {l}");
        l["variables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["key"].clone())
            .collect()
    };
    assert_eq!(
        keys("order_by=-key"),
        [json!("sample_var"), json!("db_password"), json!("cfg")]
    );
    assert_eq!(keys("variable_key_pattern=PASS"), [json!("db_password")]);
    assert_eq!(
        keys("variable_key_pattern=cfg|sample"),
        [json!("sample_var"), json!("cfg")]
    );
    assert_eq!(
        keys("variable_key_prefix_pattern=db_"),
        [json!("db_password")]
    );
    assert_eq!(keys("limit=1&offset=1"), [json!("db_password")]);

    // PATCH: everything given, or only the update_mask; the key is the id.
    api.check(
        Method::Patch,
        "/api/v2/variables/sample_var?update_mask=description",
        Some(json!({"key": "sample_var", "value": "ignored", "description": "new"})),
        200,
        json!({"key": "sample_var", "value": "v1", "description": "new", "is_encrypted": false, "team_name": null}),
    );
    api.check(
        Method::Patch,
        "/api/v2/variables/sample_var",
        Some(json!({"key": "sample_var", "value": "v3"})),
        200,
        json!({"key": "sample_var", "value": "v3", "description": "new", "is_encrypted": false, "team_name": null}),
    );
    api.check(
        Method::Patch,
        "/api/v2/variables/sample_var?update_mask=key",
        Some(json!({"key": "sample_var", "value": "v3"})),
        400,
        json!({"detail": "Update not allowed: the following fields are immutable and cannot be modified: {'key'}"}),
    );
    api.check(
        Method::Patch,
        "/api/v2/variables/sample_var",
        Some(json!({"key": "other", "value": "v"})),
        400,
        json!({"detail": "Invalid body, key from request body doesn't match uri parameter"}),
    );
    api.check(
        Method::Patch,
        "/api/v2/variables/nope",
        Some(json!({"key": "nope", "value": "v"})),
        404,
        json!({"detail": "The Variable with key: `nope` was not found"}),
    );
    let (status, e) = api.call(
        Method::Patch,
        "/api/v2/variables/sample_var",
        Some(json!({"key": "sample_var"})),
    );
    assert_eq!((status, &e["detail"][0]["type"]), (422, &json!("missing")));
    api.check(
        Method::Patch,
        "/api/v2/variables/db_password",
        Some(json!({"key": "db_password", "value": "s3cret"})),
        200,
        json!({"key": "db_password", "value": "***", "description": null, "is_encrypted": false, "team_name": null}),
    );

    api.check(
        Method::Delete,
        "/api/v2/variables/sample_var",
        None,
        204,
        Value::Null,
    );
    api.check(
        Method::Delete,
        "/api/v2/variables/sample_var",
        None,
        404,
        json!({"detail": "The Variable with key: `sample_var` was not found"}),
    );

    // The audit log never holds a variable's value.
    let posts = api.audit("post_variable");
    assert_eq!(posts.len(), 3, "{posts:?}");
    let patches = api.audit("patch_variable");
    assert_eq!(patches.len(), 3, "only successful calls: {patches:?}");
    for e in posts.iter().chain(&patches) {
        assert!(!e.contains("hunter2") && !e.contains("s3cret") && !e.contains("\"v1\""));
        assert!(e.contains("***"), "{e}");
    }
    assert_eq!(api.audit("delete_variable").len(), 1);
}

#[test]
fn connections_crud_with_passwords_masked() {
    let api = Api::start(&[]);
    let body = json!({"connection_id": "sample_conn", "conn_type": "http", "description": "sample connection",
                      "host": "example.com", "login": "user1", "password": "conn-secret-123",
                      "schema": "https", "port": 443, "extra": "{\"timeout\": 5}"});
    // Airflow 3.3.2's reply, field for field (samples/POST_connections.json).
    let sample = json!({"connection_id": "sample_conn", "conn_type": "http", "description": "sample connection",
                        "host": "example.com", "login": "user1", "schema": "https", "port": 443,
                        "password": "***", "extra": "{\"timeout\": 5}", "team_name": null});
    let (status, got) = api.call(Method::Post, "/api/v2/connections", Some(body.clone()));
    assert_eq!((status, &got), (201, &sample));
    assert_eq!(
        serde_json::to_string(&got).unwrap(),
        serde_json::to_string(&sample).unwrap(),
        "key order"
    );
    api.check(
        Method::Get,
        "/api/v2/connections/sample_conn",
        None,
        200,
        sample.clone(),
    );
    let (status, dup) = api.call(Method::Post, "/api/v2/connections", Some(body));
    assert_eq!(status, 409);
    assert_eq!(dup["detail"]["reason"], "Unique constraint violation");
    assert_eq!(dup["detail"]["statement"], "hidden");

    // Secret keys in extra are masked; the password is *** whenever one is set.
    api.call(
        Method::Post,
        "/api/v2/connections",
        Some(json!({"connection_id": "vault", "conn_type": "vault",
                    "extra": "{\"token\": \"tk\", \"nested\": {\"client_secret\": \"cs\"}, \"n\": 1}"})),
    );
    let (_, vault) = api.call(Method::Get, "/api/v2/connections/vault", None);
    assert_eq!(vault["password"], Value::Null);
    assert_eq!(
        vault["extra"],
        "{\"token\": \"***\", \"nested\": {\"client_secret\": \"***\"}, \"n\": 1}"
    );

    // PATCH: a *** sent back keeps the stored secret; update_mask limits the fields.
    let mut patch = sample.clone();
    patch["host"] = json!("example.org");
    patch.as_object_mut().unwrap().remove("team_name");
    let (status, got) = api.call(
        Method::Patch,
        "/api/v2/connections/sample_conn",
        Some(patch.clone()),
    );
    assert_eq!(
        (status, &got["host"]),
        (200, &json!("example.org")),
        "{got}"
    );
    let stored = api.store().connection("sample_conn").unwrap().unwrap();
    assert_eq!(stored.password.as_deref(), Some("conn-secret-123"));
    let (status, got) = api.call(
        Method::Patch,
        "/api/v2/connections/vault?update_mask=extra",
        Some(json!({"connection_id": "vault", "conn_type": "ignored",
                    "extra": "{\"token\": \"***\", \"nested\": {\"client_secret\": \"***\"}, \"n\": 2}"})),
    );
    assert_eq!((status, &got["conn_type"]), (200, &json!("vault")), "{got}");
    let stored = api.store().connection("vault").unwrap().unwrap();
    assert_eq!(
        stored.extra.as_deref(),
        Some("{\"token\": \"tk\", \"nested\": {\"client_secret\": \"cs\"}, \"n\": 2}")
    );
    api.check(
        Method::Patch,
        "/api/v2/connections/sample_conn",
        Some(json!({"connection_id": "other", "conn_type": "http"})),
        400,
        json!({"detail": "The connection_id in the request body does not match the URL parameter"}),
    );
    api.check(
        Method::Patch,
        "/api/v2/connections/nope",
        Some(json!({"connection_id": "nope", "conn_type": "http"})),
        404,
        json!({"detail": "The Connection with connection_id: `nope` was not found"}),
    );

    let ids = |q: &str| -> Vec<Value> {
        let (s, l) = api.call(Method::Get, &format!("/api/v2/connections?{q}"), None);
        assert_eq!(s, 200, "{q}: {l}");
        assert!(
            l["connections"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["password"] != "conn-secret-123")
        );
        l["connections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["connection_id"].clone())
            .collect()
    };
    assert_eq!(ids(""), [json!("sample_conn"), json!("vault")]);
    assert_eq!(
        ids("order_by=-connection_id"),
        [json!("vault"), json!("sample_conn")]
    );
    assert_eq!(ids("connection_id_pattern=VAU"), [json!("vault")]);

    // Testing is off by default, with Airflow's words.
    api.check(
        Method::Post,
        "/api/v2/connections/test",
        Some(json!({"connection_id": "sample_conn", "conn_type": "http"})),
        403,
        json!({"detail": "Testing connections is disabled in Airflow configuration. Contact your deployment admin to enable it."}),
    );

    api.check(
        Method::Delete,
        "/api/v2/connections/vault",
        None,
        204,
        Value::Null,
    );
    api.check(
        Method::Get,
        "/api/v2/connections/vault",
        None,
        404,
        json!({"detail": "The Connection with connection_id: `vault` was not found"}),
    );

    // The audit log has the password masked and only extra's key names.
    let posts = api.audit("post_connection");
    assert_eq!(posts.len(), 2, "{posts:?}");
    for e in posts.iter().chain(&api.audit("patch_connection")) {
        for secret in ["conn-secret-123", "\"tk\"", "\"cs\""] {
            assert!(!e.contains(secret), "{secret} in {e}");
        }
    }
    assert!(posts[0].contains("\"timeout\":\"***\"") || posts[0].contains("\"timeout\": \"***\""));
}

#[test]
fn test_connection_when_enabled_says_no_hook() {
    let api = Api::start(&[("UPDRAFT__CORE__TEST_CONNECTION", "Enabled")]);
    api.check(
        Method::Post,
        "/api/v2/connections/test",
        Some(json!({"connection_id": "c", "conn_type": "postgres"})),
        200,
        json!({"status": false, "message": "Unknown hook type \"postgres\""}),
    );
    // It tests, it does not save.
    assert!(api.store().connection("c").unwrap().is_none());
}

#[test]
fn pools_crud_and_default_pool_rules() {
    let api = Api::start(&[]);
    let default = json!({"name": "default_pool", "slots": 128, "description": "Default pool", "include_deferred": false,
                         "occupied_slots": 0, "running_slots": 0, "queued_slots": 0, "scheduled_slots": 0,
                         "open_slots": 128, "deferred_slots": 0, "team_name": null});
    api.check(
        Method::Get,
        "/api/v2/pools",
        None,
        200,
        json!({"pools": [default], "total_entries": 1}),
    );
    let p = |name: &str, slots: i64, open: i64, desc: Value, deferred: bool| {
        json!({"name": name, "slots": slots, "description": desc, "include_deferred": deferred,
               "occupied_slots": 0, "running_slots": 0, "queued_slots": 0, "scheduled_slots": 0,
               "open_slots": open, "deferred_slots": 0, "team_name": null})
    };
    api.check(
        Method::Post,
        "/api/v2/pools",
        Some(json!({"name": "etl", "slots": 4, "description": "ETL"})),
        201,
        p("etl", 4, 4, json!("ETL"), false),
    );
    api.check(
        Method::Post,
        "/api/v2/pools",
        Some(json!({"name": "free", "slots": -1, "include_deferred": true})),
        201,
        p("free", -1, -1, Value::Null, true),
    );
    let (status, dup) = api.call(
        Method::Post,
        "/api/v2/pools",
        Some(json!({"name": "etl", "slots": 1})),
    );
    assert_eq!(
        (status, &dup["detail"]["reason"]),
        (409, &json!("Unique constraint violation"))
    );
    api.check(
        Method::Patch,
        "/api/v2/pools/etl",
        Some(json!({"slots": 6})),
        200,
        p("etl", 6, 6, json!("ETL"), false),
    );
    api.check(
        Method::Patch,
        "/api/v2/pools/etl?update_mask=description",
        Some(json!({"name": "etl", "slots": 1, "description": "new"})),
        200,
        p("etl", 6, 6, json!("new"), false),
    );
    api.check(
        Method::Patch,
        "/api/v2/pools/etl",
        Some(json!({"name": "other", "slots": 1})),
        400,
        json!({"detail": "Invalid body, pool name from request body doesn't match uri parameter"}),
    );
    api.check(
        Method::Patch,
        "/api/v2/pools/nope",
        Some(json!({"slots": 1})),
        404,
        json!({"detail": "The Pool with name: `nope` was not found"}),
    );
    api.check(
        Method::Patch,
        "/api/v2/pools/default_pool",
        Some(json!({"slots": 5})),
        400,
        json!({"detail": "Only slots and included_deferred can be modified on Default Pool"}),
    );
    let (status, got) = api.call(
        Method::Patch,
        "/api/v2/pools/default_pool?update_mask=slots",
        Some(json!({"slots": 5, "description": "ignored"})),
    );
    assert_eq!(
        (status, &got["slots"], &got["description"]),
        (200, &json!(5), &json!("Default pool"))
    );
    api.check(
        Method::Delete,
        "/api/v2/pools/default_pool",
        None,
        400,
        json!({"detail": "Default Pool can't be deleted"}),
    );
    api.check(Method::Delete, "/api/v2/pools/etl", None, 204, Value::Null);
    api.check(
        Method::Delete,
        "/api/v2/pools/etl",
        None,
        404,
        json!({"detail": "The Pool with name: `etl` was not found"}),
    );
    let (_, list) = api.call(Method::Get, "/api/v2/pools?order_by=-name", None);
    let names: Vec<&Value> = list["pools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["name"])
        .collect();
    assert_eq!(names, [&json!("free"), &json!("default_pool")]);
    let (_, list) = api.call(Method::Get, "/api/v2/pools?pool_name_pattern=fre", None);
    assert_eq!(list["total_entries"], 1);
    assert_eq!(api.audit("post_pool").len(), 2);
    assert_eq!(api.audit("patch_pool").len(), 3);
    assert_eq!(api.audit("delete_pool").len(), 1);
}

#[test]
fn bulk_variables_with_every_existence_rule() {
    let api = Api::start(&[]);
    let bulk = |actions: Value, want: Value| {
        api.check(
            Method::Patch,
            "/api/v2/variables",
            Some(json!({ "actions": actions })),
            200,
            want,
        )
    };
    let value = |key: &str| {
        api.call(Method::Get, &format!("/api/v2/variables/{key}"), None)
            .1
    };
    bulk(
        json!([{"action": "create", "entities": [{"key": "a", "value": "1"}, {"key": "b", "value": {"x": 1}, "description": "B"}]}]),
        json!({"create": {"success": ["a", "b"], "errors": []}, "update": null, "delete": null}),
    );
    assert_eq!(value("b")["value"], "{\"x\": 1}");
    let create = |on: &str| json!([{"action": "create", "action_on_existence": on, "entities": [{"key": "a", "value": "2"}, {"key": "c", "value": "3"}]}]);
    bulk(
        create("fail"),
        json!({"create": {"success": [], "errors": [{"error": "The variables with these keys: {'a'} already exist.", "status_code": 409}]}, "update": null, "delete": null}),
    );
    assert_eq!(
        value("c")["detail"],
        "The Variable with key: `c` was not found"
    );
    bulk(
        create("skip"),
        json!({"create": {"success": ["c"], "errors": []}, "update": null, "delete": null}),
    );
    assert_eq!(value("a")["value"], "1");
    bulk(
        create("overwrite"),
        json!({"create": {"success": ["a", "c"], "errors": []}, "update": null, "delete": null}),
    );
    assert_eq!(value("a")["value"], "2");

    let update =
        json!([{"key": "a", "value": "9", "description": "new"}, {"key": "zz", "value": "0"}]);
    bulk(
        json!([{"action": "update", "entities": update}]),
        json!({"create": null, "update": {"success": [], "errors": [{"error": "The variables with these keys: {'zz'} were not found.", "status_code": 404}]}, "delete": null}),
    );
    assert_eq!(value("a")["value"], "2");
    bulk(
        json!([{"action": "update", "entities": update, "action_on_non_existence": "skip", "update_mask": ["description"]}]),
        json!({"create": null, "update": {"success": ["a"], "errors": []}, "delete": null}),
    );
    assert_eq!(
        (&value("a")["value"], &value("a")["description"]),
        (&json!("2"), &json!("new"))
    );
    bulk(
        json!([{"action": "update", "entities": update, "action_on_non_existence": "skip", "update_mask": ["key"]}]),
        json!({"create": null, "update": {"success": [], "errors": [{"error": "Update not allowed: the following fields are immutable and cannot be modified: {'key'}", "status_code": 400}]}, "delete": null}),
    );

    bulk(
        json!([{"action": "delete", "entities": ["a", "zz", "yy"]}]),
        json!({"create": null, "update": null, "delete": {"success": [], "errors": [{"error": "The variables with these keys: {'yy', 'zz'} were not found.", "status_code": 404}]}}),
    );
    bulk(
        json!([{"action": "delete", "entities": ["a", "zz"], "action_on_non_existence": "skip"},
               {"action": "create", "entities": [{"key": "d", "value": "4"}]},
               {"action": "delete", "entities": ["b"]}]),
        json!({"create": {"success": ["d"], "errors": []}, "update": null, "delete": {"success": ["a", "b"], "errors": []}}),
    );
    let (_, list) = api.call(Method::Get, "/api/v2/variables", None);
    let keys: Vec<&Value> = list["variables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| &v["key"])
        .collect();
    assert_eq!(keys, [&json!("c"), &json!("d")]);

    // A malformed body is one 422 listing every problem where pydantic puts it.
    let (status, e) = api.call(
        Method::Patch,
        "/api/v2/variables",
        Some(json!({"actions": [{"action": "upsert", "entities": []},
                                {"action": "create", "entities": [{"key": 1, "value": "x"}], "action_on_existence": "maybe"}]})),
    );
    assert_eq!(status, 422, "{e}");
    let locs: Vec<&Value> = e["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["loc"])
        .collect();
    assert_eq!(
        locs,
        [
            &json!(["body", "actions", 0]),
            &json!(["body", "actions", 1, "create", "action_on_existence"]),
            &json!(["body", "actions", 1, "create", "entities", 0, "key"]),
        ]
    );
    // The audit entry of a bulk call masks every entity's value.
    api.call(
        Method::Patch,
        "/api/v2/variables",
        Some(json!({"actions": [{"action": "create", "entities": [{"key": "api_token", "value": "tok-123"}]}]})),
    );
    let audits = api.audit("bulk_variables");
    assert!(audits.iter().all(|e| !e.contains("tok-123")), "{audits:?}");
}

#[test]
fn bulk_connections_and_pools() {
    let api = Api::start(&[]);
    let bulk = |path: &str, actions: Value, want: Value| {
        api.check(
            Method::Patch,
            path,
            Some(json!({ "actions": actions })),
            200,
            want,
        )
    };
    let conns = "/api/v2/connections";
    bulk(
        conns,
        json!([{"action": "create", "entities": [
            {"connection_id": "c1", "conn_type": "http", "password": "pw1", "host": "h1"},
            {"connection_id": "c2", "conn_type": "http"}]}]),
        json!({"create": {"success": ["c1", "c2"], "errors": []}, "update": null, "delete": null}),
    );
    bulk(
        conns,
        json!([{"action": "create", "entities": [{"connection_id": "c1", "conn_type": "ftp"}, {"connection_id": "c2", "conn_type": "ftp"}]}]),
        json!({"create": {"success": [], "errors": [{"error": "The connections with these connection_ids: {'c1', 'c2'} already exist.", "status_code": 409}]}, "update": null, "delete": null}),
    );
    // Overwrite sets only the fields given: c1 keeps its password and host.
    bulk(
        conns,
        json!([{"action": "create", "action_on_existence": "overwrite", "entities": [{"connection_id": "c1", "conn_type": "ftp"}]}]),
        json!({"create": {"success": ["c1"], "errors": []}, "update": null, "delete": null}),
    );
    let c1 = api.store().connection("c1").unwrap().unwrap();
    assert_eq!(
        (
            c1.conn_type.as_str(),
            c1.password.as_deref(),
            c1.host.as_deref()
        ),
        ("ftp", Some("pw1"), Some("h1"))
    );
    bulk(
        conns,
        json!([{"action": "update", "entities": [{"connection_id": "c1", "conn_type": "ftp", "password": "***", "host": "h2"}]}]),
        json!({"create": null, "update": {"success": ["c1"], "errors": []}, "delete": null}),
    );
    let c1 = api.store().connection("c1").unwrap().unwrap();
    assert_eq!(
        (c1.password.as_deref(), c1.host.as_deref()),
        (Some("pw1"), Some("h2"))
    );
    bulk(
        conns,
        json!([{"action": "delete", "entities": ["c2", "c3"], "action_on_non_existence": "skip"}]),
        json!({"create": null, "update": null, "delete": {"success": ["c2"], "errors": []}}),
    );
    // Entities are checked like single bodies.
    let (status, e) = api.call(
        Method::Patch,
        conns,
        Some(json!({"actions": [{"action": "create", "entities": [{"connection_id": "a/b", "conn_type": "x"}]}]})),
    );
    assert_eq!(
        (status, &e["detail"][0]["type"]),
        (422, &json!("string_pattern_mismatch"))
    );
    assert!(
        api.audit("bulk_connections")
            .iter()
            .all(|e| !e.contains("pw1"))
    );

    let pools = "/api/v2/pools";
    bulk(
        pools,
        json!([{"action": "create", "entities": [{"name": "p1", "slots": -1}, {"name": "p2", "slots": 2, "description": "two"}]}]),
        json!({"create": {"success": ["p1", "p2"], "errors": []}, "update": null, "delete": null}),
    );
    bulk(
        pools,
        json!([{"action": "create", "action_on_existence": "overwrite", "entities": [{"name": "p2", "slots": 3}]},
               {"action": "update", "entities": [{"name": "default_pool", "slots": 7}]}]),
        json!({"create": {"success": ["p2"], "errors": []}, "update": {"success": [], "errors": [{"error": "Only slots and included_deferred can be modified on Default Pool", "status_code": 400}]}, "delete": null}),
    );
    let (_, p2) = api.call(Method::Get, "/api/v2/pools/p2", None);
    assert_eq!(
        (&p2["slots"], &p2["description"]),
        (&json!(3), &json!("two"))
    );
    bulk(
        pools,
        json!([{"action": "update", "update_mask": ["slots"], "entities": [{"name": "default_pool", "slots": 7}]},
               {"action": "delete", "entities": ["default_pool", "p1"]}]),
        json!({"create": null, "update": {"success": ["default_pool"], "errors": []}, "delete": {"success": ["p1"], "errors": [{"error": "Default Pool can't be deleted", "status_code": 400}]}}),
    );
    let (_, d) = api.call(Method::Get, "/api/v2/pools/default_pool", None);
    assert_eq!((&d["slots"], &d["open_slots"]), (&json!(7), &json!(7)));
}

#[test]
fn roles_decide_who_reads_and_changes() {
    let api = Api::start(&[("UPDRAFT__API__EXPOSE_CONFIG", "True")]);
    let viewer = api.srv.login("viewer");
    let user = api.srv.login("user");
    let forbidden = json!({"detail": "Forbidden"});
    let pool = |token: &str, name: &str| {
        api.srv.call(
            token,
            Method::Post,
            "/api/v2/pools",
            Some(json!({"name": name, "slots": 1})),
        )
    };
    // Variables and connections need op even to read; pools and config only a viewer.
    for path in ["/api/v2/variables", "/api/v2/connections"] {
        for token in [&viewer, &user] {
            assert_eq!(
                api.srv.call(token, Method::Get, path, None),
                (403, forbidden.clone())
            );
        }
        assert_eq!(api.call(Method::Get, path, None).0, 200);
    }
    for path in [
        "/api/v2/pools",
        "/api/v2/config",
        "/api/v2/plugins",
        "/api/v2/providers",
        "/api/v2/jobs",
    ] {
        assert_eq!(
            api.srv.call(&viewer, Method::Get, path, None).0,
            200,
            "{path}"
        );
    }
    assert_eq!(pool(&viewer, "v"), (403, forbidden.clone()));
    assert_eq!(pool(&user, "u"), (403, forbidden.clone()));
    assert_eq!(pool(&api.op, "o").0, 201);
    assert_eq!(pool(&api.admin, "a").0, 201);
    assert_eq!(
        api.srv.call("", Method::Get, "/api/v2/pools", None),
        (401, json!({"detail": "Not authenticated"}))
    );
    let posts = api.audit("post_pool");
    assert_eq!(posts.len(), 2, "refused calls leave no entry: {posts:?}");
}

#[test]
fn config_is_gated_by_expose_config() {
    let secret = ("UPDRAFT__API_AUTH__JWT_SECRET", "very-secret-key");
    let off = Api::start(&[secret]);
    let refused = json!({"detail": "Your Airflow administrator chose not to expose the configuration, most likely for security reasons."});
    off.check(Method::Get, "/api/v2/config", None, 403, refused.clone());
    off.check(
        Method::Get,
        "/api/v2/config/section/core/option/parallelism",
        None,
        403,
        refused,
    );

    // True and non-sensitive-only both hide sensitive values: Airflow 3.3.2 never shows them.
    for mode in ["non-sensitive-only", "True"] {
        let api = Api::start(&[secret, ("UPDRAFT__API__EXPOSE_CONFIG", mode)]);
        let viewer = api.srv.login("viewer");
        let (status, cfg) = api.srv.call(&viewer, Method::Get, "/api/v2/config", None);
        assert_eq!(status, 200, "{cfg}");
        let option = |section: &str, key: &str| -> Value {
            cfg["sections"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["name"] == section)
                .and_then(|s| {
                    s["options"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|o| o["key"] == key)
                })
                .map(|o| o["value"].clone())
                .unwrap_or(Value::Null)
        };
        assert_eq!(option("api", "expose_config"), mode, "{mode}");
        assert_eq!(option("api_auth", "jwt_secret"), "< hidden >");
        assert_eq!(option("database", "sql_alchemy_conn"), "< hidden >");
        assert_eq!(option("core", "parallelism"), "32");
        assert!(!cfg.to_string().contains("very-secret-key"));

        api.check(
            Method::Get,
            "/api/v2/config?section=scheduler",
            None,
            200,
            json!({"sections": [{"name": "scheduler", "options": [
                {"key": "scheduler_heartbeat_sec", "value": "5"},
                {"key": "scheduler_health_check_threshold", "value": "30"},
                {"key": "dag_dir_list_interval", "value": "30"},
                {"key": "task_instance_heartbeat_timeout", "value": "300"}]}]}),
        );
        api.check(
            Method::Get,
            "/api/v2/config?section=nope",
            None,
            404,
            json!({"detail": "Section nope not found."}),
        );
        api.check(
            Method::Get,
            "/api/v2/config/section/core/option/PARALLELISM",
            None,
            200,
            json!({"sections": [{"name": "core", "options": [{"key": "PARALLELISM", "value": "32"}]}]}),
        );
        api.check(
            Method::Get,
            "/api/v2/config/section/api_auth/option/jwt_secret",
            None,
            200,
            json!({"sections": [{"name": "api_auth", "options": [{"key": "jwt_secret", "value": "< hidden >"}]}]}),
        );
        api.check(
            Method::Get,
            "/api/v2/config/section/core/option/nope",
            None,
            404,
            json!({"detail": "Option [core/nope] not found."}),
        );
        let (status, ct, text) = get_accept(
            &api.srv,
            &viewer,
            "/api/v2/config?section=logging",
            "text/plain",
        );
        assert_eq!(status, 200);
        assert!(ct.starts_with("text/plain"), "{ct}");
        assert!(text.starts_with("[logging]\nbase_log_folder = "), "{text}");
        assert!(text.ends_with("logging_level = INFO\n"), "{text}");
        let (status, _, text) = get_accept(&api.srv, &viewer, "/api/v2/config", "text/plain");
        assert_eq!(status, 200);
        assert!(text.contains("\n\n[api]\n") && !text.contains("very-secret-key"));
        let (status, _, text) = get_accept(&api.srv, &viewer, "/api/v2/config", "text/html");
        assert_eq!(
            (status, text.as_str()),
            (
                406,
                r#"{"detail":"Only application/json or text/plain is supported"}"#
            )
        );
    }
}

#[test]
fn plugins_providers_and_jobs() {
    let api = Api::start(&[]);
    api.check(
        Method::Get,
        "/api/v2/plugins",
        None,
        200,
        json!({"plugins": [], "total_entries": 0}),
    );
    api.check(
        Method::Get,
        "/api/v2/plugins/importErrors",
        None,
        200,
        json!({"import_errors": [], "total_entries": 0}),
    );
    api.check(
        Method::Get,
        "/api/v2/providers",
        None,
        200,
        json!({"providers": [], "total_entries": 0}),
    );
    // An api-server alone runs no jobs.
    api.check(
        Method::Get,
        "/api/v2/jobs",
        None,
        200,
        json!({"jobs": [], "total_entries": 0}),
    );
}

#[test]
fn jobs_list_the_running_scheduler() {
    let e = Engine::start(&[], &[USERS]);
    let token = e.srv.login("viewer");
    let jobs = |q: &str| -> Value {
        let (status, body) = e
            .srv
            .call(&token, Method::Get, &format!("/api/v2/jobs{q}"), None);
        assert_eq!(status, 200, "{q}: {body}");
        body
    };
    assert!(wait_until(LONG, || jobs("?is_alive=true")["total_entries"] == 1));
    let job = &jobs("?job_type=SchedulerJob&job_state=running")["jobs"][0];
    let keys: Vec<&str> = job
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "id",
            "dag_id",
            "state",
            "job_type",
            "start_date",
            "end_date",
            "latest_heartbeat",
            "executor_class",
            "hostname",
            "unixname",
            "dag_display_name"
        ]
    );
    assert_eq!(
        (&job["state"], &job["end_date"]),
        (&json!("running"), &Value::Null)
    );
    assert!(job["latest_heartbeat"].as_str().unwrap().ends_with('Z'));
    assert_eq!(jobs("?is_alive=false")["total_entries"], 0);
    assert_eq!(jobs("?job_type=TriggererJob")["total_entries"], 0);
    assert_eq!(jobs("?start_date_gte=2999-01-01")["total_entries"], 0);
    assert_eq!(jobs("?start_date_lte=2999-01-01")["total_entries"], 1);
}

/// Pool usage comes from the task instances in it, each weighted by its `pool_slots`;
/// an unlimited pool (-1) lets everything run.
#[cfg(unix)]
#[test]
fn pool_slots_follow_running_tasks() {
    let more = "pool: etl\npool_slots: 2";
    let tasks = [task("a", "sleep 300", more), task("b", "sleep 300", more)].concat();
    let mut e = Engine::start(&[("pooled.yml", &dag("pooled", "", &tasks))], &[USERS]);
    let op = e.srv.login("op");
    let (status, _) = e.srv.call(
        &op,
        Method::Post,
        "/api/v2/pools",
        Some(json!({"name": "etl", "slots": 3})),
    );
    assert_eq!(status, 201);
    let run = e.trigger("pooled", None);
    let pool = || e.srv.call(&op, Method::Get, "/api/v2/pools/etl", None).1;
    let mut last = Value::Null;
    // One task fits (2 of 3 slots); the other waits, scheduled.
    let one_runs = wait_until(LONG, || {
        last = pool();
        last["running_slots"] == 2 && last["scheduled_slots"] == 2
    });
    assert!(one_runs, "{last}\n{}", e.srv.log());
    assert_eq!(
        (
            &last["occupied_slots"],
            &last["open_slots"],
            &last["queued_slots"]
        ),
        (&json!(2), &json!(1), &json!(0))
    );
    let states = e.states("pooled", &run);
    let mut seen: Vec<&str> = states.values().map(|(s, _)| s.as_str()).collect();
    seen.sort();
    assert_eq!(seen, ["running", "scheduled"]);
    // Unlimited: the second task starts too.
    let (status, got) = e.srv.call(
        &op,
        Method::Patch,
        "/api/v2/pools/etl",
        Some(json!({"slots": -1})),
    );
    assert_eq!((status, &got["open_slots"]), (200, &json!(-1)), "{got}");
    let both_run = wait_until(LONG, || {
        last = pool();
        last["running_slots"] == 4
    });
    assert!(both_run, "{last}\n{}", e.srv.log());
    assert_eq!(
        (
            &last["occupied_slots"],
            &last["open_slots"],
            &last["scheduled_slots"]
        ),
        (&json!(4), &json!(-1), &json!(0))
    );
    // The default pool saw none of it.
    let (_, d) = e
        .srv
        .call(&op, Method::Get, "/api/v2/pools/default_pool", None);
    assert_eq!(d["occupied_slots"], 0);
    e.srv.signal("INT");
    assert_eq!(e.srv.wait_exit(LONG), Some(0), "{}", e.srv.log());
}

/// Hostile and malformed requests: each is a 4xx with a `detail`, never a 500.
#[test]
fn hostile_input_is_refused_cleanly() {
    let api = Api::start(&[]);
    let long = "x".repeat(300);
    let cases: Vec<(Method, String, Option<Value>, u16)> = vec![
        (
            Method::Post,
            "/api/v2/pools".into(),
            Some(json!({"name": "huge", "slots": u64::MAX})),
            422,
        ),
        (
            Method::Post,
            "/api/v2/pools".into(),
            Some(json!({"name": "huge", "slots": 1e300})),
            422,
        ),
        (
            Method::Post,
            "/api/v2/pools".into(),
            Some(json!({"name": "max", "slots": i64::MAX})),
            201,
        ),
        (
            Method::Post,
            "/api/v2/pools".into(),
            Some(json!({"name": "neg", "slots": -2})),
            422,
        ),
        (
            Method::Post,
            "/api/v2/pools".into(),
            Some(json!({"name": "str", "slots": "ten"})),
            422,
        ),
        (
            Method::Post,
            "/api/v2/pools".into(),
            Some(json!({"name": "flt", "slots": 1.5})),
            422,
        ),
        (
            Method::Post,
            "/api/v2/pools".into(),
            Some(json!({"name": long, "slots": 1})),
            422,
        ),
        (
            Method::Post,
            "/api/v2/pools".into(),
            Some(json!({"name": "x", "slots": 1, "bogus": true})),
            422,
        ),
        (
            Method::Post,
            "/api/v2/pools".into(),
            Some(json!({"name": "x", "slots": 1, "team_name": "t"})),
            422,
        ),
        (
            Method::Post,
            "/api/v2/pools".into(),
            Some(json!([1, 2])),
            422,
        ),
        (
            Method::Post,
            "/api/v2/pools".into(),
            Some(json!("just a string")),
            422,
        ),
        (
            Method::Post,
            "/api/v2/pools".into(),
            Some(json!({"name": "ünïcødé 池", "slots": 1})),
            201,
        ),
        (
            Method::Get,
            "/api/v2/pools/%C3%BCn%C3%AFc%C3%B8d%C3%A9%20%E6%B1%A0".into(),
            None,
            200,
        ),
        (
            Method::Get,
            "/api/v2/pools/..%2F..%2Fetc%2Fpasswd".into(),
            None,
            404,
        ),
        (
            Method::Patch,
            "/api/v2/pools/default_pool?update_mask=slots".into(),
            Some(json!({"slots": null})),
            422,
        ),
        (
            Method::Patch,
            "/api/v2/pools".into(),
            Some(json!({"actions": "all"})),
            422,
        ),
        (
            Method::Patch,
            "/api/v2/pools".into(),
            Some(json!({"actions": [{"entities": []}]})),
            422,
        ),
        (
            Method::Patch,
            "/api/v2/pools".into(),
            Some(json!({"actions": [{"action": "delete", "entities": [5]}]})),
            422,
        ),
        (
            Method::Post,
            "/api/v2/connections".into(),
            Some(json!({"connection_id": "../etc", "conn_type": "x"})),
            422,
        ),
        (
            Method::Post,
            "/api/v2/connections".into(),
            Some(json!({"connection_id": "", "conn_type": "x"})),
            422,
        ),
        (
            Method::Post,
            "/api/v2/connections".into(),
            Some(json!({"connection_id": long, "conn_type": "x"})),
            422,
        ),
        (
            Method::Post,
            "/api/v2/connections".into(),
            Some(json!({"connection_id": "p", "conn_type": "x", "port": "80"})),
            422,
        ),
        (
            Method::Post,
            "/api/v2/connections".into(),
            Some(json!({"connection_id": "e", "conn_type": "x", "extra": "not json"})),
            422,
        ),
        (
            Method::Post,
            "/api/v2/connections".into(),
            Some(json!({"connection_id": "e", "conn_type": "x", "extra": {"a": 1}})),
            422,
        ),
        (
            Method::Post,
            "/api/v2/connections".into(),
            Some(json!({"connection_id": "ünï.cødé-1", "conn_type": "x"})),
            201,
        ),
        (
            Method::Get,
            "/api/v2/connections/%C3%BCn%C3%AF.c%C3%B8d%C3%A9-1".into(),
            None,
            200,
        ),
        (
            Method::Get,
            "/api/v2/connections/..%2F..%2Fetc".into(),
            None,
            404,
        ),
        (
            Method::Post,
            "/api/v2/variables".into(),
            Some(json!({"key": 5, "value": "x"})),
            422,
        ),
        (
            Method::Post,
            "/api/v2/variables".into(),
            Some(json!({"key": long, "value": "x"})),
            422,
        ),
        (
            Method::Post,
            "/api/v2/variables".into(),
            Some(json!({"value": "x"})),
            422,
        ),
        (
            Method::Post,
            "/api/v2/variables".into(),
            Some(json!({"key": "../../etc/hosts", "value": null})),
            201,
        ),
        (
            Method::Get,
            "/api/v2/variables/..%2F..%2Fetc%2Fhosts".into(),
            None,
            200,
        ),
        (Method::Get, "/api/v2/variables/%00".into(), None, 400),
        (Method::Get, "/api/v2/variables?limit=-1".into(), None, 422),
        (Method::Get, "/api/v2/variables?limit=abc".into(), None, 422),
        (
            Method::Get,
            "/api/v2/variables?order_by=val".into(),
            None,
            400,
        ),
        (
            Method::Get,
            format!(
                "/api/v2/variables?variable_key_pattern={}b",
                "%25a".repeat(60)
            ),
            None,
            200,
        ),
        (
            Method::Get,
            "/api/v2/pools?order_by=slots".into(),
            None,
            400,
        ),
        (
            Method::Get,
            "/api/v2/jobs?start_date_gte=yesterday".into(),
            None,
            422,
        ),
        (Method::Get, "/api/v2/jobs?is_alive=maybe".into(), None, 422),
        (Method::Get, "/api/v2/config".into(), None, 403),
        (
            Method::Post,
            "/api/v2/variables/x".into(),
            Some(json!({})),
            405,
        ),
    ];
    for (method, path, body, want) in cases {
        let (status, reply) = api.call(method, &path, body.clone());
        assert_eq!(status, want, "{method} {path} {body:?}: {reply}");
        if status >= 400 {
            assert!(!reply["detail"].is_null(), "{method} {path}: {reply}");
        }
    }
    // What was stored reads back as sent.
    let (_, max) = api.call(Method::Get, "/api/v2/pools/max", None);
    assert_eq!(
        (&max["slots"], &max["open_slots"]),
        (&json!(i64::MAX), &json!(i64::MAX))
    );
    let (_, v) = api.call(Method::Get, "/api/v2/variables/..%2F..%2Fetc%2Fhosts", None);
    assert_eq!(
        (&v["key"], &v["value"]),
        (&json!("../../etc/hosts"), &json!("null"))
    );
    // Invalid JSON text, not just wrong values.
    let reply = api
        .srv
        .request(Method::Post, "/api/v2/variables")
        .token(&api.op)
        .content_type("application/json")
        .raw("{\"key\": \"k\", \"value\": ")
        .send();
    assert_eq!(reply.status, 422);
}

/// Issue 13: a write that finds another process holding the database's write lock
/// for longer than the store's busy timeout (30 s, so this test waits that long) is a
/// 503 with `Retry-After` and a `detail`, not a 500, and loses nothing: the same
/// request succeeds once the lock is gone.
#[test]
fn a_write_blocked_by_another_writer_is_a_503_to_retry() {
    let api = Api::start(&[]);
    let holder = rusqlite::Connection::open(api.home.path.join("updraft.db")).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let body = json!({"key": "locked_out", "value": "v"});
    // Longer than the server's busy timeout, which the helper's default is not.
    let res = api
        .srv
        .request(Method::Post, "/api/v2/variables")
        .token(&api.op)
        .json(&body)
        .timeout(Duration::from_secs(180))
        .send();
    holder.execute_batch("ROLLBACK").unwrap();
    let retry_after = res.header("retry-after").map(str::to_string);
    let reply = res.json();
    assert_eq!(res.status, 503, "{reply}");
    assert!(
        retry_after
            .as_deref()
            .is_some_and(|s| s.parse::<u32>().is_ok()),
        "{retry_after:?}"
    );
    assert!(
        reply["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{reply}"
    );
    let (status, _) = api.call(Method::Get, "/api/v2/variables/locked_out", None);
    assert_eq!(status, 404, "the refused write left nothing behind");
    let (status, created) = api.call(Method::Post, "/api/v2/variables", Some(body));
    assert_eq!((status, &created["value"]), (201, &json!("v")));
}
