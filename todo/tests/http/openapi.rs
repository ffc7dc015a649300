//! `/openapi.json`: an OpenAPI 3.1 document generated from the handlers, covering
//! every API route; each documented operation, called with valid input, answers a
//! status it documents, and its JSON body has the documented properties.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use reqwest::{Client, Method};
use serde_json::{json, Value};
use sluicegate_todo::config::Config;
use sluicegate_todo::service::{self, ServeOptions};

/// Resolves a `$ref` (`#/components/schemas/X`) against the document.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap();
            &doc["components"]["schemas"][name]
        }
        None => schema,
    }
}

/// Checks `body` against the (object or array-of-object) `schema`: required
/// properties present, nothing undocumented.
fn conforms(doc: &Value, schema: &Value, body: &Value) -> Result<(), String> {
    let schema = resolve(doc, schema);
    if schema["type"] == "array" {
        let items = &schema["items"];
        for b in body.as_array().ok_or("not an array")? {
            conforms(doc, items, b)?;
        }
        return Ok(());
    }
    let obj = body.as_object().ok_or(format!("not an object: {body}"))?;
    let props = schema["properties"]
        .as_object()
        .ok_or("schema without properties")?;
    for key in obj.keys() {
        if !props.contains_key(key) {
            return Err(format!("undocumented property {key:?} in {body}"));
        }
    }
    for req in schema["required"].as_array().into_iter().flatten() {
        if !obj.contains_key(req.as_str().unwrap()) {
            return Err(format!("required {req} missing in {body}"));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_covers_every_route_and_each_operation_answers_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let r = service::start(ServeOptions {
        config: Config::builtin(),
        config_path: None,
        listen: "127.0.0.1:0".parse::<SocketAddr>().unwrap(),
        data_dir: dir.path().to_path_buf(),
    })
    .await
    .unwrap();
    let c = Client::new();
    let base = format!("http://{}", r.addr);
    let doc: Value = c
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    // /docs is an HTML page rendering this document.
    let docs = c.get(format!("{base}/docs")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(docs.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let page = docs.text().await.unwrap();
    assert!(page.contains(r#"spec-url="/openapi.json""#));
    // Offline: every script the page loads is served by the service itself.
    for src in page.split("<script src=\"").skip(1) {
        let src = &src[..src.find('"').unwrap()];
        assert!(src.starts_with('/'), "/docs loads {src} from elsewhere");
        let js = c.get(format!("{base}{src}")).send().await.unwrap();
        assert_eq!(js.status(), 200, "{src}");
        assert!(js.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript"));
        assert!(
            js.text().await.unwrap().contains("Redoc"),
            "{src} is the ReDoc bundle"
        );
    }
    assert!(page.contains("<script src=\"/docs/redoc.standalone.js\">"));
    // Every $ref points at a schema the document holds.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in &all {
        let name = r.strip_prefix("#/components/schemas/").expect(r);
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "dangling {r}"
        );
    }

    let mut operations = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "patch", "delete", "put"] {
            if item.get(method).is_some() {
                operations.insert((path.clone(), method.to_string()));
            }
        }
    }
    let want: BTreeSet<(String, String)> = [
        ("/lists", "get"),
        ("/lists/{list}", "get"),
        ("/lists/{list}", "delete"),
        ("/lists/{list}/entries", "get"),
        ("/lists/{list}/entries", "post"),
        ("/lists/{list}/entries/{id}", "get"),
        ("/lists/{list}/entries/{id}", "patch"),
        ("/lists/{list}/entries/{id}", "delete"),
    ]
    .iter()
    .map(|(p, m)| (p.to_string(), m.to_string()))
    .collect();
    assert_eq!(operations, want);
    // The PATCH body needs date and/or title; the list name has no control characters.
    assert_eq!(
        doc["components"]["schemas"]["EntryPatch"]["minProperties"],
        1
    );
    assert!(doc["components"]["schemas"]["EntryPatch"]
        .get("maxProperties")
        .is_none());
    // The done flag: in every entry, settable by PATCH, a filter of GET entries.
    assert_eq!(
        doc["components"]["schemas"]["Entry"]["properties"]["done"]["type"],
        "boolean"
    );
    assert!(doc["components"]["schemas"]["EntryPatch"]["properties"]
        .get("done")
        .is_some());
    let params = doc["paths"]["/lists/{list}/entries"]["get"]["parameters"]
        .as_array()
        .unwrap();
    assert!(params.iter().any(|p| p["name"] == "done"));
    assert_eq!(
        doc["components"]["schemas"]["Ack"]["enum"],
        json!(["none", "applied", "durable"])
    );

    // Entry 1 exists for the reads, patch and delete below (delete last).
    let order = [
        ("/lists/{list}/entries", "post"),
        ("/lists", "get"),
        ("/lists/{list}", "get"),
        ("/lists/{list}/entries", "get"),
        ("/lists/{list}/entries/{id}", "get"),
        ("/lists/{list}/entries/{id}", "patch"),
        ("/lists/{list}/entries/{id}", "delete"),
        ("/lists/{list}", "delete"),
    ];
    for (path, method) in order {
        let op = &doc["paths"][path][method];
        let responses = op["responses"].as_object().unwrap();
        // Every error status is documented with the Error body.
        for code in ["400", "404", "413", "415", "422", "500", "503", "504"] {
            let schema = &responses[code]["content"]["application/json"]["schema"];
            assert_eq!(
                schema["$ref"], "#/components/schemas/Error",
                "{method} {path} {code}"
            );
        }
        let target = path.replace("{list}", "bob").replace("{id}", "1");
        let mut req = c.request(
            Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
            format!("{base}{target}"),
        );
        req = match method {
            "post" => req.json(&json!({"date": "2026-12-02", "title": "Dentist"})),
            "patch" => req.json(&json!({"title": "Groceries", "done": true})),
            _ => req,
        };
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16().to_string();
        let documented = responses
            .get(&status)
            .unwrap_or_else(|| panic!("{method} {path} answered undocumented {status}"));
        assert!(resp.status().is_success(), "{method} {path}: {status}");
        if let Some(schema) = documented["content"]["application/json"].get("schema") {
            let body: Value = resp.json().await.unwrap();
            conforms(&doc, schema, &body).unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        }
    }
    r.shutdown().await.unwrap();
}
