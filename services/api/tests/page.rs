//! The NOC screen and GraphiQL as the binary serves them: every embedded file answers with its
//! type, an ETag and a same-origin policy, and none refers to an address outside the server.

mod common;

use argus_api::page::PageAssets;
use common::Api;

/// The references a browser follows by itself: attributes of HTML, `url()` and `@import` of CSS,
/// static and dynamic imports of scripts.
fn references(path: &str, text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut collect = |opening: &str, closing: &[char]| {
        for (start, _) in text.match_indices(opening) {
            let rest = &text[start + opening.len()..];
            let rest = rest.trim_start_matches(['"', '\'', ' ']);
            let end = rest.find(closing).unwrap_or(rest.len());
            found.push(rest[..end].to_owned());
        }
    };
    if path.ends_with(".html") {
        collect("src=", &['"', '\'', ' ', '>']);
        collect("href=", &['"', '\'', ' ', '>']);
    } else if path.ends_with(".css") {
        collect("url(", &['"', '\'', ')']);
        collect("@import", &['"', '\'', ';', ')']);
    } else if path.ends_with(".js") {
        collect("import(", &['"', '\'', ')']);
        collect("from\"", &['"']);
        collect("from \"", &['"']);
        collect("importScripts(", &['"', '\'', ')']);
    }
    found
}

/// Outside the server: a scheme other than `data:`, or a protocol-relative `//host`.
fn external(reference: &str) -> bool {
    let lower = reference.to_ascii_lowercase();
    lower.starts_with("//") || (lower.contains("://") && !lower.starts_with("data:")) || lower.starts_with("http:")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_and_asset_is_served_from_the_binary_and_refers_to_nothing_outside_it() {
    let api = Api::start().await;
    let mut paths: Vec<String> = PageAssets::iter().map(|path| format!("/{path}")).collect();
    paths.extend(["/".to_owned(), "/graphql".to_owned()]);
    assert!(paths.len() >= 6, "the screen, GraphiQL and their assets: {paths:?}");
    for path in &paths {
        let response = api.http.get(api.url(path)).send().await.expect("request");
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers().clone();
        let policy = headers.get("content-security-policy").and_then(|value| value.to_str().ok()).unwrap_or("");
        assert!(policy.contains("default-src 'self'") && policy.contains("connect-src 'self'"), "{path}: {policy}");
        let etag = headers.get("etag").expect("an ETag").clone();
        let kind = headers.get("content-type").and_then(|value| value.to_str().ok()).unwrap_or("").to_owned();
        let text = response.text().await.expect("text");
        let file = if path == "/" {
            "index.html"
        } else if path == "/graphql" {
            "graphiql.html"
        } else {
            path
        };
        let expected = match file.rsplit('.').next() {
            Some("html") => "text/html",
            Some("js") => "javascript",
            Some("css") => "text/css",
            _ => "",
        };
        assert!(kind.contains(expected), "{path}: {kind}");
        let outside: Vec<String> = references(file, &text).into_iter().filter(|r| external(r)).collect();
        assert!(outside.is_empty(), "{path} refers outside the server: {outside:?}");
        let again = api.http.get(api.url(path)).header("if-none-match", etag).send().await.expect("request");
        assert_eq!(again.status(), 304, "{path}: unchanged is not sent again");
    }
    let screen = api.http.get(api.url("/")).send().await.expect("screen").text().await.expect("text");
    assert!(screen.contains("screen.js") && screen.contains("Argus WireGuard"), "{screen}");
    let graphiql = api.http.get(api.url("/graphql")).send().await.expect("graphiql").text().await.expect("text");
    assert!(graphiql.contains("vendor/graphiql.js"), "{graphiql}");
    assert_eq!(api.http.get(api.url("/no-such-page")).send().await.expect("request").status(), 404);
}

#[test]
fn the_reference_check_finds_what_a_browser_would_load() {
    let html = r#"<link href="https://cdn.example/x.css"><script src='//unpkg.com/react'></script><img src="a.png">"#;
    assert_eq!(references("x.html", html).into_iter().filter(|r| external(r)).count(), 2);
    let css = "@import \"http://fonts.example/f.css\"; a { background: url(data:image/png;base64,AA) } b { src: url('x.woff') }";
    assert_eq!(references("x.css", css).into_iter().filter(|r| external(r)).count(), 1);
    let js = r#"import x from "https://esm.sh/x";import("./local.js")"#;
    assert_eq!(references("x.js", js).into_iter().filter(|r| external(r)).count(), 1);
}
