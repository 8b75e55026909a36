//! Every guarded route against every role, read from the route table itself, so a new
//! route is covered the moment it exists: lower roles get 403, the route's own role and
//! above get past the check, and no token at all is a 401.

use updraft::api::{Method, routes};
use updraft::auth::Role;

use crate::util::{self, TempHome, TestServer, USERS};

const ROLES: [(Role, &str); 4] = [
    (Role::Viewer, "viewer"),
    (Role::User, "user"),
    (Role::Op, "op"),
    (Role::Admin, "admin"),
];

#[test]
fn every_guarded_route_checks_its_role() {
    let home = TempHome::new();
    let srv = TestServer::start(
        &home,
        &["api-server"],
        &[USERS, ("UPDRAFT__API__EXPOSE_CONFIG", "True")],
    );
    let tokens: Vec<(Role, String)> = ROLES
        .iter()
        .map(|(r, name)| (*r, srv.login(name)))
        .collect();
    let mut checked = 0;
    for route in routes().filter(|r| r.role.is_some()) {
        let need = route.role.unwrap();
        // Path parameters get harmless values; `~` is Airflow's "all" for DAG and run ids.
        let path: String = route
            .path
            .split('/')
            .map(|seg| {
                if seg.starts_with('{') {
                    "nothing-here"
                } else {
                    seg
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let method = match route.method {
            Method::Get => util::Method::Get,
            Method::Post => util::Method::Post,
            Method::Put => util::Method::Put,
            Method::Patch => util::Method::Patch,
            Method::Delete => util::Method::Delete,
            other => panic!("the tests send no {other:?}"),
        };
        let body = (route.method != Method::Get && route.method != Method::Delete)
            .then(|| serde_json::json!({}));
        let (status, _) = srv.call("", method, &path, body.clone());
        assert_eq!(status, 401, "{method} {path} without a token");
        for (role, token) in &tokens {
            let (status, reply) = srv.call(token, method, &path, body.clone());
            let refused = status == 403 && reply["detail"] == "Forbidden";
            if *role < need {
                assert!(
                    refused,
                    "{method} {path} as {role:?} (needs {need:?}): {status} {reply}"
                );
            } else {
                assert!(
                    !refused && status != 401 && status < 500,
                    "{method} {path} as {role:?}: {status} {reply}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 4, "no guarded routes were checked");
}
