//! `Idempotency-Key` against a real `serve`: a repeat gets the first result and
//! writes nothing, the key with another request is 422, concurrent repeats write
//! once, keys are per list, and every answer of the API says what a failed
//! request did (`outcome`).

use std::collections::HashSet;

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use sluicegate_todo::config::Config;

use crate::support::serve::{error_of, get_json, Serve};

const KEY: &str = "Idempotency-Key";
const REPLAYED: &str = "Idempotent-Replayed";

fn replayed(resp: &reqwest::Response) -> bool {
    resp.headers()
        .get(REPLAYED)
        .is_some_and(|v| v.as_bytes() == b"true")
}

async fn entries(c: &Client, r: &Serve, list: &str) -> Vec<Value> {
    let (status, v) = get_json(c, &r.url(&format!("/lists/{list}/entries"))).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v.as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_post_with_its_key_gets_the_first_result_and_writes_once() {
    let dir = tempfile::tempdir().unwrap();
    let r = Serve::with_config(&Config::builtin(), dir.path());
    let c = Client::new();
    let post = |body: Value, key: &str, ack: &str| {
        c.post(r.url(&format!("/lists/k/entries?ack={ack}")))
            .header(KEY, key)
            .json(&body)
            .send()
    };
    let body = json!({"date": "2026-12-03", "title": "Dentist"});
    let first = post(body.clone(), "k-1", "durable").await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    assert!(!replayed(&first));
    let location = first.headers()["location"].clone();
    let first: Value = first.json().await.unwrap();
    for ack in ["applied", "durable", "none"] {
        let again = post(body.clone(), "k-1", ack).await.unwrap();
        if ack == "none" {
            // Accepted, not answered: the list applies it as a repeat (nothing).
            assert_eq!(again.status(), StatusCode::ACCEPTED);
            continue;
        }
        assert_eq!(again.status(), StatusCode::CREATED, "ack {ack}");
        assert!(replayed(&again), "ack {ack}: marked as a replay");
        assert_eq!(again.headers()["location"], location);
        assert_eq!(again.json::<Value>().await.unwrap(), first, "ack {ack}");
    }
    // The quoted form of the draft names the same key.
    let quoted = post(body.clone(), "\"k-1\"", "applied").await.unwrap();
    assert!(replayed(&quoted));
    assert_eq!(entries(&c, &r, "k").await, vec![first.clone()]);

    // The same key with another request: 422, naming the key; nothing written.
    let other = post(
        json!({"date": "2026-12-03", "title": "Other"}),
        "k-1",
        "applied",
    )
    .await
    .unwrap();
    let (status, message) = error_of(other).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        message.contains("\"k-1\"") && message.contains("different request"),
        "{message}"
    );
    // A new key is a new write; the same key on another list is another write too.
    let second: Value = post(body.clone(), "k-2", "applied")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(second["id"], 2);
    let elsewhere = c
        .post(r.url("/lists/other/entries"))
        .header(KEY, "k-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), StatusCode::CREATED);
    assert!(!replayed(&elsewhere));
    assert_eq!(entries(&c, &r, "k").await.len(), 2);

    // PATCH and DELETE: the repeat answers as the first did.
    let patch = |key: &str, title: &str| {
        c.patch(r.url("/lists/k/entries/1"))
            .header(KEY, key)
            .json(&json!({"title": title}))
            .send()
    };
    let p1 = patch("p-1", "Dentist at 9").await.unwrap();
    assert_eq!(p1.status(), StatusCode::OK);
    let p1: Value = p1.json().await.unwrap();
    // Changed since by another write: the repeat still answers the first result.
    assert_eq!(
        patch("p-2", "Dentist at 10").await.unwrap().status(),
        StatusCode::OK
    );
    let p1_again = patch("p-1", "Dentist at 9").await.unwrap();
    assert!(replayed(&p1_again));
    assert_eq!(p1_again.json::<Value>().await.unwrap(), p1);
    assert_eq!(
        entries(&c, &r, "k").await[0]["title"],
        "Dentist at 10",
        "the repeat wrote nothing"
    );
    let delete = || {
        c.delete(r.url("/lists/k/entries/2"))
            .header(KEY, "d-1")
            .send()
    };
    assert_eq!(delete().await.unwrap().status(), StatusCode::NO_CONTENT);
    let again = delete().await.unwrap();
    assert_eq!(again.status(), StatusCode::NO_CONTENT);
    assert!(replayed(&again));
    // Without a key, a second delete is what it is: 404.
    let plain = c.delete(r.url("/lists/k/entries/2")).send().await.unwrap();
    assert_eq!(plain.status(), StatusCode::NOT_FOUND);

    // Receipts are stored with their writes: after a restart the repeat still replays.
    r.shutdown();
    let r = Serve::with_config(&Config::builtin(), dir.path());
    let again = c
        .post(r.url("/lists/k/entries"))
        .header(KEY, "k-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(replayed(&again), "the receipt survives a restart");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    assert_eq!(entries(&c, &r, "k").await.len(), 1);
    r.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_repeats_of_one_keyed_write_store_one_entry() {
    let dir = tempfile::tempdir().unwrap();
    let r = Serve::with_config(&Config::builtin(), dir.path());
    let c = Client::new();
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (c, url) = (c.clone(), r.url("/lists/race/entries?ack=durable"));
        tasks.push(tokio::spawn(async move {
            let resp = c
                .post(url)
                .header(KEY, "once")
                .json(&json!({"date": "2026-12-03", "title": "once"}))
                .send()
                .await
                .unwrap();
            let status = resp.status();
            (status, replayed(&resp), resp.json::<Value>().await.unwrap())
        }));
    }
    let mut fresh = 0;
    let mut ids = HashSet::new();
    for t in tasks {
        let (status, was_replayed, body) = t.await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{body}");
        fresh += usize::from(!was_replayed);
        ids.insert(body["id"].as_u64().unwrap());
    }
    assert_eq!(fresh, 1, "exactly one answer is the write itself");
    assert_eq!(ids, HashSet::from([1]));
    assert_eq!(entries(&c, &r, "race").await.len(), 1);
    r.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_keys_are_400_naming_the_header_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let r = Serve::with_config(&Config::builtin(), dir.path());
    let c = Client::new();
    let long = "x".repeat(256);
    for bad in ["", "a b", long.as_str()] {
        let resp = c
            .post(r.url("/lists/bad/entries"))
            .header(KEY, bad)
            .json(&json!({"date": "2026-12-03", "title": "t"}))
            .send()
            .await
            .unwrap();
        let (status, message) = error_of(resp).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}");
        assert!(
            message.starts_with("Idempotency-Key: "),
            "{bad:?}: {message}"
        );
    }
    let (status, _) = get_json(&c, &r.url("/lists/bad/entries")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was written");
    r.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_exists_from_its_first_entry_until_it_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let r = Serve::with_config(&Config::builtin(), dir.path());
    let c = Client::new();
    for path in ["/lists/l", "/lists/l/entries", "/lists/l/entries/1"] {
        let (status, _) = get_json(&c, &r.url(path)).await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "{path} before the first entry"
        );
    }
    assert_eq!(
        c.delete(r.url("/lists/l")).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    let resp = c
        .post(r.url("/lists/l/entries"))
        .json(&json!({"date": "2026-12-03", "title": "t"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    // Emptied, it still exists.
    let resp = c.delete(r.url("/lists/l/entries/1")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let (status, one) = get_json(&c, &r.url("/lists/l")).await;
    assert_eq!(
        (status, one),
        (StatusCode::OK, json!({"name": "l", "entries": 0}))
    );
    assert_eq!(entries(&c, &r, "l").await, Vec::<Value>::new());
    // Deleted, it is gone from every read, and from GET /lists.
    let resp = c.delete(r.url("/lists/l")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    for path in ["/lists/l", "/lists/l/entries", "/lists/l/entries/1"] {
        let (status, _) = get_json(&c, &r.url(path)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path} after the delete");
    }
    let (_, all) = get_json(&c, &r.url("/lists")).await;
    assert_eq!(all, json!([]));
    // A second delete: 404 without a key; with one, 204 (the list is gone either way).
    assert_eq!(
        c.delete(r.url("/lists/l")).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    let keyed = c
        .delete(r.url("/lists/l"))
        .header(KEY, "gone")
        .send()
        .await
        .unwrap();
    assert_eq!(keyed.status(), StatusCode::NO_CONTENT);
    r.shutdown();
}
