//! The embedded UI: files from `static/`, rewritten at serve time for the `base_url` prefix.
//!
//! `index.html` gets `<base href="{prefix}/">` and a small config object, so relative
//! asset URLs and the UI's XHRs resolve under the prefix; absolute `/...` URLs in HTML and
//! CSS get the prefix put in front. Deep links (no file extension) serve `index.html`;
//! a missing file with an extension is a 404, never the page. Debug builds read
//! `static/` from disk, so an edit shows on reload.

use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};

use rust_embed::Embed;

use crate::api::http::{ApiError, Reply, Req};

#[derive(Embed)]
#[folder = "static/"]
struct Static;

/// Serves `req.path` from the embedded files.
pub fn serve(req: &Req) -> Reply {
    let rel = req.path.trim_start_matches('/');
    // A deep link may hold a run id (`...T00:00:00+00:00`), refused as a file name for its
    // colons (drive letters, NTFS streams): it names no file, so it gets the page, and no
    // file is looked up under its name.
    let deep_link_with_colon = !safe(rel) && !has_extension(rel) && safe(&rel.replace(':', "_"));
    if !safe(rel) && !deep_link_with_colon {
        return ApiError::not_found("Not Found").into_reply();
    }
    let name = if rel.is_empty() || deep_link_with_colon {
        "index.html"
    } else {
        rel
    };
    let (name, file) = match Static::get(name) {
        Some(f) => (name, f),
        None if has_extension(name) => return ApiError::not_found("Not Found").into_reply(),
        None => match Static::get("index.html") {
            Some(f) => ("index.html", f),
            None => return ApiError::not_found("Not Found").into_reply(),
        },
    };
    let mime = mime(name);
    let body = match mime {
        "text/html; charset=utf-8" => rewrite_html(&file.data, &req.prefix).into_bytes(),
        "text/css; charset=utf-8" => {
            rewrite_css(&String::from_utf8_lossy(&file.data), &req.prefix).into_bytes()
        }
        _ => file.data.into_owned(),
    };
    let etag = format!(
        "\"{:016x}\"",
        BuildHasherDefault::<DefaultHasher>::default().hash_one(&body)
    );
    if req.header("if-none-match") == Some(etag.as_str()) {
        return Reply::bytes(304, mime, Vec::new()).with_header("ETag", &etag);
    }
    Reply::bytes(200, mime, body)
        .with_header("ETag", &etag)
        .with_header("Cache-Control", "no-cache")
}

/// A relative path that stays inside the embedded folder: no `..`, no backslash, no
/// drive letters or NULs, no hidden files. The path is already percent-decoded, so
/// `%2e%2e` arrives here as `..`.
fn safe(rel: &str) -> bool {
    !rel.contains('\\')
        && !rel.contains('\0')
        && !rel.contains(':')
        && rel
            .split('/')
            .all(|seg| seg != ".." && !seg.starts_with('.'))
}

fn has_extension(path: &str) -> bool {
    path.rsplit('/')
        .next()
        .is_some_and(|last| last.contains('.'))
}

fn mime(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Puts the prefix into an HTML page: a `<base>` and the config object after `<head>`,
/// and the prefix before every absolute `href="/`, `src="/` and `action="/`.
pub fn rewrite_html(data: &[u8], prefix: &str) -> String {
    let html = String::from_utf8_lossy(data);
    let mut out = String::with_capacity(html.len() + 200);
    let mut rest = html.as_ref();
    'outer: while !rest.is_empty() {
        for attr in ["href=\"/", "src=\"/", "action=\"/"] {
            if let Some(r) = rest.strip_prefix(attr) {
                // `//host` is protocol-relative: not ours to touch.
                if !r.starts_with('/') {
                    out.push_str(&attr[..attr.len() - 1]);
                    out.push_str(prefix);
                    out.push('/');
                    rest = r;
                    continue 'outer;
                }
            }
        }
        let ch = rest.chars().next().expect("rest is not empty");
        out.push(ch);
        rest = &rest[ch.len_utf8()..];
    }
    // Last, so that the base itself is not rewritten.
    let head = format!(
        "<head>\n<base href=\"{prefix}/\">\n<script>window.UPDRAFT = {{\"base\": {}}};</script>",
        serde_json::Value::String(format!("{prefix}/"))
    );
    out.replacen("<head>", &head, 1)
}

/// Puts the prefix before absolute `url(/...)` references in CSS.
pub fn rewrite_css(css: &str, prefix: &str) -> String {
    if prefix.is_empty() {
        return css.to_string();
    }
    let mut out = css.to_string();
    for quote in ["", "\"", "'"] {
        out = out.replace(&format!("url({quote}/"), &format!("url({quote}{prefix}/"));
        // Undo the protocol-relative case the line above just broke.
        out = out.replace(&format!("url({quote}{prefix}//"), &format!("url({quote}//"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_gets_base_and_prefixed_absolute_urls() {
        let html = br#"<html><head><link href="/app.css"><script src="app.js"></script></head><a href="//x.org/y">x</a><img src="/i.png"></html>"#;
        let out = rewrite_html(html, "/a/b");
        assert!(out.contains(r#"<base href="/a/b/">"#), "{out}");
        assert!(
            out.contains(r#"window.UPDRAFT = {"base": "/a/b/"}"#),
            "{out}"
        );
        assert!(out.contains(r#"href="/a/b/app.css""#), "{out}");
        assert!(out.contains(r#"src="app.js""#), "{out}");
        assert!(out.contains(r#"href="//x.org/y""#), "{out}");
        assert!(out.contains(r#"src="/a/b/i.png""#), "{out}");
        let plain = rewrite_html(html, "");
        assert!(plain.contains(r#"<base href="/">"#) && plain.contains(r#"href="/app.css""#));
    }

    #[test]
    fn css_urls_get_the_prefix() {
        let css =
            "a{background:url(/x.png)} b{background:url('/y.svg')} c{background:url(//cdn/z)}";
        let out = rewrite_css(css, "/p");
        assert_eq!(
            out,
            "a{background:url(/p/x.png)} b{background:url('/p/y.svg')} c{background:url(//cdn/z)}"
        );
    }

    #[test]
    fn traversal_is_refused() {
        for bad in [
            "../Cargo.toml",
            "a/../../x",
            "..\\x",
            "C:/x",
            ".git/config",
            "a\0b",
        ] {
            assert!(!safe(bad), "{bad}");
        }
        assert!(safe("app.js") && safe("img/logo.svg") && safe(""));
    }

    #[test]
    fn a_deep_link_with_a_run_id_gets_the_page_and_a_file_with_a_colon_does_not() {
        let req = |path: &str| Req::internal(crate::api::http::Method::Get, path);
        let link = serve(&req(
            "/dags/d/runs/manual__2024-01-01T00:00:00+00:00/tasks/t/required_actions",
        ));
        assert_eq!(link.status, 200);
        assert_eq!(serve(&req("/C:/x.txt")).status, 404);
        assert_eq!(serve(&req("/a/../x")).status, 404);
    }
}
