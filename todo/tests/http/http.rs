//! End to end over loopback with a real HTTP client against a real `serve`
//! process: every route, every error status, restart and read back, and graceful
//! shutdown draining applied writes.

use std::path::Path;

use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use sluicegate_todo::config::Config;

use crate::support::serve::{error_of, Serve};

async fn serve(config: Config, data_dir: &Path) -> Serve {
    Serve::with_config(&config, data_dir)
}

fn url(r: &Serve, path: &str) -> String {
    r.url(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_works_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let r = serve(Config::builtin(), dir.path()).await;
    let c = Client::new();

    let resp = c
        .post(url(&r, "/lists/bob/entries"))
        .json(&json!({"date": "2026-11-23", "title": "Dentist"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({"id": 1, "date": "2026-11-23", "title": "Dentist", "done": false})
    );

    // The list assigns ids: a body carrying one is refused, naming the field.
    let resp = c
        .post(url(&r, "/lists/bob/entries?ack=durable"))
        .json(&json!({"date": "2026-11-24", "title": "Shopping", "id": 77}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let err = resp.json::<Value>().await.unwrap()["error"].to_string();
    assert!(err.contains("unknown field `id`"), "{err}");
    let resp = c
        .post(url(&r, "/lists/bob/entries?ack=durable"))
        .json(&json!({"date": "2026-11-24", "title": "Shopping"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(resp.json::<Value>().await.unwrap()["id"], 2);

    let resp = c
        .post(url(&r, "/lists/bob/entries?ack=none"))
        .json(&json!({"date": "2026-11-23", "title": "Movies"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    // It says what was accepted (the id is assigned when the list applies it).
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"status": "accepted", "list": "bob", "date": "2026-11-23", "title": "Movies"})
    );

    // Accepted writes are applied in order; reads see them once applied.
    let mut titles = Vec::new();
    for _ in 0..1000 {
        let day: Value = c
            .get(url(&r, "/lists/bob/entries?date=2026-11-23"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        titles = day
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["title"].as_str().unwrap().to_string())
            .collect();
        if titles.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(titles, vec!["Dentist", "Movies"]);

    let resp = c
        .patch(url(&r, "/lists/bob/entries/2?ack=durable"))
        .json(&json!({"title": "Groceries"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"id": 2, "date": "2026-11-24", "title": "Groceries", "done": false})
    );
    let resp = c
        .delete(url(&r, "/lists/bob/entries/1?ack=durable"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp = c
        .delete(url(&r, "/lists/bob/entries/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    let all: Value = c
        .get(url(&r, "/lists/bob/entries"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all.as_array().unwrap().len(), 2);
    // A list exists from its first entry until it is deleted: any other name is 404.
    let (status, message) = error_of(
        c.get(url(&r, "/lists/nobody/entries"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(message.contains("no list named \"nobody\""), "{message}");

    let health = c.get(url(&r, "/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let metrics = c
        .get(url(&r, "/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("sluicegate_mailbox_messages_total"));
    assert!(metrics.contains("sluicegate_http_requests_total"));

    r.shutdown();

    // Restart on the same data dir: everything acknowledged is back.
    let r = serve(Config::builtin(), dir.path()).await;
    let all: Value = c
        .get(url(&r, "/lists/bob/entries"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        all,
        json!([
            {"id": 2, "date": "2026-11-24", "title": "Groceries", "done": false},
            {"id": 3, "date": "2026-11-23", "title": "Movies", "done": false}
        ])
    );
    r.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_status_is_json_and_names_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let r = serve(Config::builtin(), dir.path()).await;
    let c = Client::new();
    let post = |path: &str, body: &str| {
        c.post(url(&r, path))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };

    let long_title = json!({"date": "2026-02-03", "title": "x".repeat(1025)}).to_string();
    let long_name = format!("/lists/{}/entries", "n".repeat(300));
    let huge = format!(
        r#"{{"date":"2026-02-03","title":"{}"}}"#,
        "x".repeat(70 * 1024)
    );
    let title_x = r#"{"title":"x"}"#;
    let entry = r#"{"date":"2026-02-03","title":"x"}"#;
    // (method, path, JSON body, status, words the message must hold: any of the
    // alternatives separated by '|', each of the entries).
    type Case<'a> = (Method, &'a str, Option<&'a str>, StatusCode, &'a [&'a str]);
    let cases: &[Case] = &[
        (
            Method::POST,
            "/lists/a/entries",
            Some("{not json"),
            StatusCode::BAD_REQUEST,
            &["body:"],
        ),
        (
            Method::POST,
            "/lists/a/entries",
            Some(r#"{"date":"2026-02-30","title":"x"}"#),
            StatusCode::BAD_REQUEST,
            &["date", "2026-02-30"],
        ),
        (
            Method::POST,
            "/lists/a/entries",
            Some(r#"{"date":"2026-02-03","title":""}"#),
            StatusCode::BAD_REQUEST,
            &["title"],
        ),
        (
            Method::POST,
            "/lists/a/entries",
            Some(&long_title),
            StatusCode::BAD_REQUEST,
            &["title"],
        ),
        (
            Method::POST,
            "/lists/a/entries?ack=maybe",
            Some(entry),
            StatusCode::BAD_REQUEST,
            &["ack", "maybe"],
        ),
        (
            Method::GET,
            &long_name,
            None,
            StatusCode::BAD_REQUEST,
            &["list"],
        ),
        (
            Method::GET,
            "/lists/bad%01name/entries",
            None,
            StatusCode::BAD_REQUEST,
            &["list"],
        ),
        (
            Method::PATCH,
            "/lists/a/entries/-1",
            Some(title_x),
            StatusCode::BAD_REQUEST,
            &["id"],
        ),
        (
            Method::PATCH,
            "/lists/a/entries/99",
            Some(title_x),
            StatusCode::NOT_FOUND,
            &[],
        ),
        (Method::GET, "/nowhere", None, StatusCode::NOT_FOUND, &[]),
        (
            Method::PUT,
            "/lists/a/entries",
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            &[],
        ),
        (
            Method::POST,
            "/lists/a/entries",
            Some(&huge),
            StatusCode::PAYLOAD_TOO_LARGE,
            &["64 KiB|length limit"],
        ),
    ];
    for (method, path, body, status, words) in cases {
        let mut req = c.request(method.clone(), url(&r, path));
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let (s, e) = error_of(req.send().await.unwrap()).await;
        assert_eq!(s, *status, "{method} {path}: {e}");
        for word in *words {
            assert!(
                word.split('|').any(|w| e.contains(w)),
                "{method} {path}: {e:?} lacks {word:?}"
            );
        }
    }

    // Percent-decoded names: any valid name works, including hostile ones.
    for name in ["bad%2Fname", "..%2Fx", "CON", "%E6%97%A5%E6%9C%AC%E8%AA%9E"] {
        let resp = post(
            &format!("/lists/{name}/entries?ack=durable"),
            r#"{"date":"2026-02-03","title":"x"}"#,
        )
        .await
        .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED, "{name}");
    }
    r.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_applied_writes_to_disk() {
    let dir = tempfile::tempdir().unwrap();
    let r = serve(Config::builtin(), dir.path()).await;
    let c = Client::new();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let c = c.clone();
        let u = url(&r, &format!("/lists/l{}/entries?ack=applied", i % 10));
        tasks.push(tokio::spawn(async move {
            c.post(u)
                .json(&json!({"date": "2026-01-01", "title": format!("t{i}")}))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::CREATED);
    }
    r.shutdown();
    let r = serve(Config::builtin(), dir.path()).await;
    let mut total = 0;
    for l in 0..10 {
        let all: Value = c
            .get(url(&r, &format!("/lists/l{l}/entries")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        total += all.as_array().unwrap().len();
    }
    assert_eq!(total, 200);
    r.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_methods_share_one_metrics_label() {
    let dir = tempfile::tempdir().unwrap();
    let r = serve(Config::builtin(), dir.path()).await;
    let c = Client::new();
    for i in 0..50 {
        let method = reqwest::Method::from_bytes(format!("MADEUP{i}").as_bytes()).unwrap();
        let resp = c
            .request(method, url(&r, "/lists/a/entries"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
    let text = c
        .get(url(&r, "/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains("MADEUP"), "a raw method became a label");
    let other = text
        .lines()
        .find(|l| {
            l.starts_with("sluicegate_http_requests_total{")
                && l.contains("method=\"OTHER\"")
                && l.contains("status=\"405\"")
        })
        .unwrap_or_else(|| panic!("no OTHER/405 series in:\n{text}"));
    let n: f64 = other.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 50.0, "{other}");
    r.shutdown();
}

async fn get_json(c: &Client, r: &Serve, path: &str) -> (StatusCode, Value) {
    crate::support::serve::get_json(c, &r.url(path)).await
}

fn ids(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_entries_by_id_location_date_ranges_and_pages() {
    let dir = tempfile::tempdir().unwrap();
    let r = serve(Config::builtin(), dir.path()).await;
    let c = Client::new();
    // Entries 1..=5 of "a b/c" on 2026-12-01..=05; one entry in "z".
    for day in 1..=5 {
        let resp = c
            .post(url(&r, "/lists/a%20b%2Fc/entries"))
            .json(&json!({"date": format!("2026-12-0{day}"), "title": format!("d{day}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        let location = resp.headers()["location"].to_str().unwrap().to_string();
        assert_eq!(location, format!("/lists/a%20b%2Fc/entries/{day}"));
        // The Location is where the entry is.
        let (status, entry) = get_json(&c, &r, &location).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            entry,
            json!({"id": day, "date": format!("2026-12-0{day}"), "title": format!("d{day}"), "done": false})
        );
    }
    let resp = c
        .post(url(&r, "/lists/z/entries?ack=durable"))
        .json(&json!({"date": "2026-12-01", "title": "z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);

    let (status, err) = get_json(&c, &r, "/lists/z/entries/2").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{err}");

    // GET /lists: every list with its count, by name; GET /lists/{list}: one.
    let (status, lists) = get_json(&c, &r, "/lists").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        lists,
        json!([{"name": "a b/c", "entries": 5}, {"name": "z", "entries": 1}])
    );
    let (_, one) = get_json(&c, &r, "/lists/a%20b%2Fc").await;
    assert_eq!(one, json!({"name": "a b/c", "entries": 5}));
    let (status, unknown) = get_json(&c, &r, "/lists/nobody").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        unknown["error"].as_str().unwrap().contains("no list named"),
        "{unknown}"
    );
    // Reading a name does not make it a list: GET /lists still shows two.
    let (_, lists) = get_json(&c, &r, "/lists").await;
    assert_eq!(lists.as_array().unwrap().len(), 2, "{lists}");
    // A page of one list, and the Link to the next.
    let resp = c.get(url(&r, "/lists?limit=1")).send().await.unwrap();
    let link = resp.headers()["link"].to_str().unwrap().to_string();
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!([{"name": "a b/c", "entries": 5}])
    );
    assert_eq!(link, "</lists?limit=1&after=a%20b%2Fc>; rel=\"next\"");
    let (_, page2) = get_json(&c, &r, "/lists?limit=1&after=a%20b%2Fc").await;
    assert_eq!(page2, json!([{"name": "z", "entries": 1}]));

    // from/to, inclusive, alone or together.
    let e = "/lists/a%20b%2Fc/entries";
    let (_, v) = get_json(&c, &r, &format!("{e}?from=2026-12-02&to=2026-12-04")).await;
    assert_eq!(ids(&v), [2, 3, 4]);
    let (_, v) = get_json(&c, &r, &format!("{e}?from=2026-12-04")).await;
    assert_eq!(ids(&v), [4, 5]);
    let (_, v) = get_json(&c, &r, &format!("{e}?to=2026-12-01")).await;
    assert_eq!(ids(&v), [1]);
    // The filters combine; a range from after to is empty.
    let (_, v) = get_json(&c, &r, &format!("{e}?date=2026-12-03&from=2026-12-01")).await;
    assert_eq!(ids(&v), [3]);
    let (_, v) = get_json(&c, &r, &format!("{e}?date=2026-12-03&to=2026-12-02")).await;
    assert_eq!(ids(&v), Vec::<u64>::new());
    let (status, v) = get_json(&c, &r, &format!("{e}?from=2026-12-05&to=2026-12-01")).await;
    assert_eq!((status, ids(&v)), (StatusCode::OK, vec![]));

    // Pages of 2 by following Link rel="next" until there is none.
    let mut next = Some(format!("{e}?from=2026-12-02&limit=2"));
    let mut pages = Vec::new();
    while let Some(path) = next.take() {
        let resp = c.get(url(&r, &path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        next = resp.headers().get("link").map(|l| {
            let l = l.to_str().unwrap();
            assert!(l.ends_with(r#">; rel="next""#), "{l}");
            l[1..l.find('>').unwrap()].to_string()
        });
        pages.push(ids(&resp.json::<Value>().await.unwrap()));
        assert!(pages.len() < 10, "pagination does not end: {pages:?}");
    }
    assert_eq!(pages, vec![vec![2, 3], vec![4, 5]]);
    let (_, v) = get_json(&c, &r, &format!("{e}?after=3")).await;
    assert_eq!(ids(&v), [4, 5]);
    r.shutdown();
}

/// Issue 14, problem 3: the done flag (PATCH, `?done=`) and `DELETE /lists/{list}`
/// (204, gone from `GET /lists` and from disk, a fresh list after; 404 with a JSON
/// body for an unknown list).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn done_flag_and_deleting_a_whole_list() {
    let dir = tempfile::tempdir().unwrap();
    let r = serve(Config::builtin(), dir.path()).await;
    let c = Client::new();
    for t in ["a", "b", "c"] {
        let resp = c
            .post(url(&r, "/lists/chores/entries"))
            .json(&json!({"date": "2026-12-02", "title": t}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
    }
    let resp = c
        .patch(url(&r, "/lists/chores/entries/2"))
        .json(&json!({"done": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"id": 2, "date": "2026-12-02", "title": "b", "done": true})
    );
    let (_, v) = get_json(&c, &r, "/lists/chores/entries?done=true").await;
    assert_eq!(ids(&v), [2]);
    let (_, v) = get_json(&c, &r, "/lists/chores/entries?done=false").await;
    assert_eq!(ids(&v), [1, 3]);
    let resp = c
        .get(url(&r, "/lists/chores/entries?done=yes"))
        .send()
        .await
        .unwrap();
    let (status, msg) = error_of(resp).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(msg.contains("done") && msg.contains("\"yes\""), "{msg}");
    let resp = c
        .patch(url(&r, "/lists/chores/entries/2"))
        .json(&json!({"done": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    // Another list stays.
    let resp = c
        .post(url(&r, "/lists/kept/entries"))
        .json(&json!({"date": "2026-12-02", "title": "k"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let resp = c.delete(url(&r, "/lists/chores")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let (_, lists) = get_json(&c, &r, "/lists").await;
    assert_eq!(lists, json!([{"name": "kept", "entries": 1}]));
    let resp = c.delete(url(&r, "/lists/chores")).send().await.unwrap();
    let (status, msg) = error_of(resp).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(msg.contains("chores"), "{msg}");
    let resp = c.delete(url(&r, "/lists/chores?x=1")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    // The name's next write starts a fresh list.
    let resp = c
        .post(url(&r, "/lists/chores/entries"))
        .json(&json!({"date": "2026-12-03", "title": "again"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap()["id"], 1);
    r.shutdown();
    // After a restart: the fresh list only.
    let r = serve(Config::builtin(), dir.path()).await;
    let (_, v) = get_json(&c, &r, "/lists/chores/entries").await;
    assert_eq!(ids(&v), [1]);
    assert_eq!(v[0]["title"], "again");
    r.shutdown();
}

/// `GET /lists/{list}/entries` answers a live list with its JSON made once per
/// version: after every acknowledged write (add, change, delete, each with the
/// default ack) the next GET shows it, as JSON, while the GETs before it (which
/// made and shared the previous version's body) showed the state before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_after_each_acknowledged_write_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let r = serve(Config::builtin(), dir.path()).await;
    let c = Client::new();
    let path = "/lists/cached/entries";
    let mut expected: Vec<Value> = Vec::new();
    for i in 1..=12u64 {
        let resp = c
            .post(url(&r, path))
            .json(&json!({"date": "2026-12-04", "title": format!("t{i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        expected.push(resp.json().await.unwrap());
        if i % 3 == 0 {
            let id = expected[0]["id"].as_u64().unwrap();
            let resp = c
                .patch(url(&r, &format!("{path}/{id}")))
                .json(&json!({"done": true, "title": format!("done {i}")}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            expected[0] = resp.json().await.unwrap();
        }
        if i % 4 == 0 {
            let id = expected[1]["id"].as_u64().unwrap();
            let resp = c
                .delete(url(&r, &format!("{path}/{id}")))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::NO_CONTENT);
            expected.remove(1);
        }
        for _ in 0..3 {
            let resp = c.get(url(&r, path)).send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            assert_eq!(resp.headers()["content-type"], "application/json");
            assert_eq!(
                resp.json::<Value>().await.unwrap(),
                json!(expected),
                "after write {i}"
            );
        }
    }
    r.shutdown();
}
