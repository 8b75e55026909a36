//! Declarative plugins (issue 21): the Core API's list and import errors, static files,
//! macros and filters in a running task's template, and `reload_on_plugin_change`.

use std::time::Duration;

use serde_json::Value;

use crate::engine::{Engine, dag, task};
use crate::util::{Method, TempHome, TestServer, get, wait_until};

const WAIT: Duration = Duration::from_secs(60);

const PLUGIN: &str = "name: company
external_views:
  - name: Runbook
    href: https://wiki.example.com/{dag_id}/{run_id}/{task_id}
    destination: task_instance
    url_route: runbook
macros:
  greet: {args: [who], template: 'Hello {{ who }}'}
user_defined_filters:
  shout: '{{ value | upper }}!'
static_folder: static
";

/// A broken file: a bad destination on line 5.
const BROKEN: &str = "name: broken
external_views:
  - name: X
    href: y
    destination: moon
";

fn plugins(srv: &TestServer, token: &str) -> Value {
    let (status, body) = srv.call(token, Method::Get, "/api/v2/plugins", None);
    assert_eq!(status, 200, "{body}");
    body
}

fn plugins_and_reload(server_type: &str) {
    let home = TempHome::new();
    home.write("plugins/company.yml", PLUGIN);
    home.write("plugins/static/hello.txt", "hi from a plugin");
    home.write("plugins/broken.yml", BROKEN);
    let srv = TestServer::start(
        &home,
        &["api-server", "--workers", "2"],
        &[
            ("UPDRAFT__API__SERVER_TYPE", server_type),
            ("UPDRAFT__API__RELOAD_ON_PLUGIN_CHANGE", "True"),
        ],
    );
    let token = srv.login("admin");
    let body = plugins(&srv, &token);
    assert_eq!(body["total_entries"], 1, "{body}");
    let p = &body["plugins"][0];
    assert_eq!(p["name"], "company", "{body}");
    assert_eq!(p["macros"], serde_json::json!(["greet"]), "{body}");
    assert_eq!(p["external_views"][0]["destination"], "task_instance");
    assert_eq!(p["react_apps"], serde_json::json!([]));
    // The broken file is reported with its line, and hid nothing.
    let (status, errors) = srv.call(&token, Method::Get, "/api/v2/plugins/importErrors", None);
    assert_eq!(status, 200, "{errors}");
    assert_eq!(errors["total_entries"], 1, "{errors}");
    let e = &errors["import_errors"][0];
    assert!(
        e["source"].as_str().unwrap().ends_with("broken.yml"),
        "{errors}"
    );
    assert!(
        e["error"].as_str().unwrap().starts_with("line 5:"),
        "{errors}"
    );
    assert!(srv.log().contains("broken.yml:5"), "{}", srv.log());
    // The schema editors fetch.
    let (status, schema) = crate::util::get_json(&format!("{}/plugin-schema.json", srv.base));
    assert_eq!(status, 200);
    assert_eq!(schema["required"], serde_json::json!(["name"]), "{schema}");
    // Static files under the prefix.
    let (status, text) = get(&format!("{}/plugins/company/hello.txt", srv.base));
    assert_eq!((status, text.as_str()), (200, "hi from a plugin"));
    assert_eq!(
        get(&format!("{}/plugins/company/../company.yml", srv.base)).0,
        404
    );

    // An edit shows without restarting the server.
    let refreshes = |srv: &TestServer| {
        crate::util::get_json(&format!("{}/api/v2/monitor/health", srv.base)).1["api_server"]
            ["refreshes_completed"]
            .as_u64()
            .unwrap_or(0)
    };
    let before = refreshes(&srv);
    home.write(
        "plugins/company.yml",
        &PLUGIN.replace("Runbook", "Playbook"),
    );
    assert!(
        wait_until(
            WAIT,
            || plugins(&srv, &token)["plugins"][0]["external_views"][0]["name"] == "Playbook"
                && refreshes(&srv) > before
        ),
        "{}",
        srv.log()
    );
    assert!(srv.log().contains("company.yml"), "{}", srv.log());
    assert!(srv.log().contains("plugins changed"), "{}", srv.log());
    // Every worker serves the new plugin, not only one.
    for _ in 0..10 {
        assert_eq!(
            plugins(&srv, &token)["plugins"][0]["external_views"][0]["name"],
            "Playbook"
        );
    }
}

#[test]
fn plugins_are_listed_served_and_reloaded_on_change() {
    plugins_and_reload("uvicorn");
}

#[cfg(unix)]
#[test]
fn plugins_are_reloaded_on_change_with_worker_processes() {
    plugins_and_reload("gunicorn");
}

#[test]
fn a_running_task_uses_a_plugin_macro_and_filter() {
    let cmd = "echo {{ macros.company.greet('world') }} {{ 'loud' | shout }}";
    let e = Engine::start(&[("m.yml", &dag("m", "", &task("t", cmd, "")))], &[]);
    // The plugins folder is read when a task renders: no restart needed.
    e.home.write("plugins/company.yml", PLUGIN);
    e.home.write("plugins/static/hello.txt", "x");
    let run = e.trigger("m", None);
    assert_eq!(
        e.wait_run("m", &run),
        "success",
        "{}",
        e.log("m", &run, "t", 1)
    );
    let log = e.log("m", &run, "t", 1);
    assert!(log.contains("Hello world LOUD!"), "{log}");
}
