//! The admin API's OpenAPI document: served by the server, and in line with the routes the
//! server really has, both ways.

mod support;

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use support::TestServer;

/// Every (path, method) the document describes.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if ["get", "put", "post", "delete", "patch", "head", "options", "trace"].contains(&method.as_str()) {
                out.insert((path.clone(), method.clone()));
            }
        }
    }
    out
}

/// Resolves a local `$ref` (`#/components/schemas/X`).
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_openapi_document_describes_exactly_the_routes_served() {
    let server = TestServer::start().await;
    let r = server.http.get(server.url(portcullis::admin::OPENAPI_PATH)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "served without a token");
    assert_eq!(r.headers()["content-type"], "application/json");
    let doc: Value = r.json().await.unwrap();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "OpenAPI 3.1: {}", doc["openapi"]);

    // The router's table and the document name the same operations.
    let mut routes: BTreeSet<(String, String)> = portcullis::admin::ROUTES
        .iter()
        .flat_map(|(path, methods)| methods.iter().map(|m| ((*path).to_owned(), (*m).to_owned())))
        .collect();
    routes.insert((portcullis::admin::OPENAPI_PATH.to_owned(), "get".to_owned()));
    let described = documented(&doc);
    let missing: Vec<_> = routes.difference(&described).collect();
    let extra: Vec<_> = described.difference(&routes).collect();
    assert!(missing.is_empty(), "routes the document does not describe: {missing:?}");
    assert!(extra.is_empty(), "operations the server does not have: {extra:?}");

    // Operation ids are unique and every reference resolves.
    let mut ids = BTreeSet::new();
    for (path, method) in &described {
        let op = &doc["paths"][path][method];
        let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has an operationId"));
        assert!(ids.insert(id.to_owned()), "operationId {id} is used twice");
        assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()), "{method} {path} has responses");
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        assert!(resolve(&doc, &r).is_some(), "unresolved $ref {r}");
    }

    // Every documented operation is served, and asks for a caller as the document says:
    // without a token each gets RFC 6750's 401, never 404 or 405.
    for (path, method) in &described {
        let url = server.url(&path.replace("{id}", "x").replace("{user_id}", "y").replace("{kid}", "k"));
        let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
        let r = server.http.request(method.clone(), &url).send().await.unwrap();
        let public = doc["paths"][path][method.as_str().to_ascii_lowercase()]["security"] == serde_json::json!([]);
        if public {
            assert_eq!(r.status(), StatusCode::OK, "{method} {path}");
        } else {
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
            assert!(r.headers().contains_key("www-authenticate"), "{method} {path}");
        }
    }
}
