//! `/openapi.json`, generated from the route table so it cannot drift from the routes.

use serde_json::{Map, Value, json};

use super::http::{ApiError, Reply, Req};
use super::route::{App, Ctx, Route};

/// The document for the apps this server runs, with `servers` carrying the prefix.
pub fn document<'a>(ctx: &Ctx, prefix: &str, routes: impl Iterator<Item = &'a Route>) -> Value {
    let mut paths = Map::new();
    for r in routes.filter(|r| match r.app {
        App::Core => ctx.apps.core,
        App::Execution => ctx.apps.execution,
        App::Any => true,
    }) {
        // A `{name:path}` placeholder is `{name}` in the document, as FastAPI writes it.
        let path = r.path.replace(":path}", "}");
        let params: Vec<Value> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut op = json!({
            "summary": r.summary,
            "operationId": format!("{}_{}", r.method.as_str().to_ascii_lowercase(), path.trim_matches('/').replace(['/', '{', '}'], "_")),
            "parameters": params,
            "responses": {"200": {"description": "Successful Response"}},
        });
        if let Some(role) = r.role {
            op["security"] = json!([{"OAuth2PasswordBearer": []}, {"HTTPBearer": []}]);
            op["x-updraft-role"] = json!(role.as_str());
            op["responses"]["401"] = json!({"description": "Not authenticated"});
            op["responses"]["403"] =
                json!({"description": format!("Forbidden: needs the {} role", role.as_str())});
        }
        let entry = paths.entry(path).or_insert_with(|| json!({}));
        entry[r.method.as_str().to_ascii_lowercase()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "updraft API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Airflow-compatible Core API (/api/v2) and Execution API (/execution)."},
        "servers": [{"url": if prefix.is_empty() { "/" } else { prefix }}],
        "paths": paths,
        "components": {"securitySchemes": {
            "OAuth2PasswordBearer": {"type": "oauth2", "flows": {"password": {"tokenUrl": "auth/token", "scopes": {}}}},
            "HTTPBearer": {"type": "http", "scheme": "bearer"},
        }},
    })
}

/// `GET /docs`: a plain page listing every route, linking the JSON document.
pub fn docs<'a>(
    ctx: &Ctx,
    req: &Req,
    routes: impl Iterator<Item = &'a Route>,
) -> Result<Reply, ApiError> {
    let doc = document(ctx, &req.prefix, routes);
    let mut rows = String::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, ops) in paths {
            for (method, op) in ops.as_object().into_iter().flatten() {
                rows.push_str(&format!(
                    "<tr><td><code>{}</code></td><td><code>{}</code></td><td>{}</td></tr>\n",
                    method.to_ascii_uppercase(),
                    escape(path),
                    escape(op["summary"].as_str().unwrap_or(""))
                ));
            }
        }
    }
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>updraft API</title>\
         <base href=\"{}/\"><link rel=\"stylesheet\" href=\"app.css\"></head><body><main class=\"docs\">\
         <h1>updraft API</h1><p>Machine-readable: <a href=\"openapi.json\">openapi.json</a></p>\
         <table><thead><tr><th>Method</th><th>Path</th><th>What</th></tr></thead><tbody>{rows}</tbody></table>\
         </main></body></html>",
        escape(&req.prefix)
    );
    Ok(Reply::bytes(
        200,
        "text/html; charset=utf-8",
        html.into_bytes(),
    ))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
