//! The actor runtime: call/cast and their typed errors, crash handling, supervision
//! limits, the registry and keyed pools. Timeouts, expiry and idle stops use paused time.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluicegate::mailbox::Policy;
use sluicegate::runtime::{
    start, BoxError, CallError, CastError, Intensity, KeyedPool, PoolSpec, Registry,
    RegistryCallError, RegistryConfig, ReplyTo, Restart, Routing, Server, Spec, StartError,
    Supervisor, SupervisorEvent,
};
use tokio::time::Instant;

mod support;
use support::prometheus_sample;

/// A test server: counts inits and handled messages; calls can sleep or panic.
#[derive(Default, Clone)]
struct Probe {
    inits: Arc<AtomicUsize>,
    handled: Arc<Mutex<Vec<u32>>>,
    casts: Arc<AtomicUsize>,
    fail_init: bool,
    init_delay: Duration,
}

enum Req {
    Echo(u32, ReplyTo<u32>),
    Sleep(u32, Duration, ReplyTo<u32>),
    Panic(ReplyTo<u32>),
}

/// `echo(n)` as a call's request builder.
fn echo(n: u32) -> impl FnOnce(ReplyTo<u32>) -> Req {
    move |r| Req::Echo(n, r)
}

/// `sleep(n, d)` as a call's request builder.
fn sleep(n: u32, d: Duration) -> impl FnOnce(ReplyTo<u32>) -> Req {
    move |r| Req::Sleep(n, d, r)
}

impl Server for Probe {
    type Call = Req;
    type Cast = u32;

    async fn init(&mut self) -> Result<(), BoxError> {
        tokio::time::sleep(self.init_delay).await;
        self.inits.fetch_add(1, Ordering::SeqCst);
        if self.fail_init {
            return Err("disk on fire".into());
        }
        Ok(())
    }

    async fn handle_call(&mut self, request: Req) {
        match request {
            Req::Echo(n, reply) => {
                self.handled.lock().unwrap().push(n);
                reply.send(n)
            }
            Req::Sleep(n, d, reply) => {
                self.handled.lock().unwrap().push(n);
                tokio::time::sleep(d).await;
                reply.send(n)
            }
            Req::Panic(_reply) => panic!("injected panic"),
        }
    }

    async fn handle_cast(&mut self, n: u32) {
        if n == 666 {
            panic!("injected cast panic");
        }
        self.casts.fetch_add(1, Ordering::SeqCst);
        self.handled.lock().unwrap().push(n);
    }
}

const T: Duration = Duration::from_secs(1);

fn spec(probe: &Probe, policy: Policy) -> Spec<Probe> {
    let p = probe.clone();
    Spec::new("probe", policy, move || p.clone())
}

#[tokio::test(start_paused = true)]
async fn call_and_cast_reach_the_server_in_order() {
    let probe = Probe::default();
    let server = start(spec(&probe, Policy::Unbounded)).await.unwrap();
    server.cast(1).await.unwrap();
    assert_eq!(server.call(echo(2), T).await, Ok(2));
    server.cast(3).await.unwrap();
    assert_eq!(server.call(echo(4), T).await, Ok(4));
    assert_eq!(*probe.handled.lock().unwrap(), vec![1, 2, 3, 4]);
}

#[tokio::test(start_paused = true)]
async fn init_error_reaches_the_starter() {
    let probe = Probe {
        fail_init: true,
        ..Probe::default()
    };
    let err = start(spec(&probe, Policy::Unbounded)).await.unwrap_err();
    match &err {
        StartError::Init(e) => {
            assert_eq!(e.to_string(), "disk on fire");
            assert!(!e.is_panic());
        }
        other => panic!("expected an init error, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_call_times_out_and_the_caller_never_waits_longer() {
    let probe = Probe::default();
    let server = start(spec(&probe, Policy::Unbounded)).await.unwrap();
    let started = Instant::now();
    let r = server
        .call(
            sleep(1, Duration::from_secs(10)),
            Duration::from_millis(100),
        )
        .await;
    assert_eq!(r, Err(CallError::Timeout));
    assert_eq!(started.elapsed(), Duration::from_millis(100));
}

#[tokio::test(start_paused = true)]
async fn a_call_whose_caller_gave_up_is_never_processed() {
    let probe = Probe::default();
    let server = start(spec(&probe, Policy::Unbounded)).await.unwrap();
    let busy = {
        let s = server.clone();
        tokio::spawn(async move { s.call(sleep(1, Duration::from_secs(1)), T * 5).await })
    };
    tokio::task::yield_now().await;
    // Queued behind a 1 s call with a 100 ms timeout: it expires in the queue.
    let r = server.call(echo(2), Duration::from_millis(100)).await;
    assert_eq!(r, Err(CallError::Timeout));
    assert_eq!(busy.await.unwrap(), Ok(1));
    assert_eq!(server.call(echo(3), T).await, Ok(3));
    assert_eq!(*probe.handled.lock().unwrap(), vec![1, 3]);
    let s = server.stats();
    assert_eq!(s.expired, 1);
    assert!(s.is_balanced());
}

#[tokio::test(start_paused = true)]
async fn a_full_drop_newest_mailbox_rejects_calls_and_casts() {
    let probe = Probe::default();
    let server = start(spec(&probe, Policy::DropNewest { capacity: 1 }))
        .await
        .unwrap();
    let s1 = server.clone();
    let busy = tokio::spawn(async move { s1.call(sleep(1, T), T * 5).await });
    tokio::task::yield_now().await;
    server.cast(2).await.unwrap(); // fills the one slot
    assert_eq!(server.call(echo(3), T).await, Err(CallError::Rejected));
    assert_eq!(server.cast(4).await, Err(CastError::Rejected));
    assert_eq!(busy.await.unwrap(), Ok(1));
}

#[tokio::test(start_paused = true)]
async fn a_dropped_call_fails_its_caller_at_once() {
    let probe = Probe::default();
    let server = start(spec(&probe, Policy::DropOldest { capacity: 1 }))
        .await
        .unwrap();
    let s1 = server.clone();
    let busy = tokio::spawn(async move { s1.call(sleep(1, T), T * 5).await });
    tokio::task::yield_now().await;
    let s2 = server.clone();
    let victim = tokio::spawn(async move {
        let started = Instant::now();
        (s2.call(echo(2), T * 10).await, started.elapsed())
    });
    tokio::task::yield_now().await;
    server.cast(3).await.unwrap(); // evicts the queued call
    let (r, waited) = victim.await.unwrap();
    assert_eq!(r, Err(CallError::Dropped));
    assert_eq!(
        waited,
        Duration::ZERO,
        "a dropped call must not wait for its timeout"
    );
    assert_eq!(busy.await.unwrap(), Ok(1));
}

#[tokio::test(start_paused = true)]
async fn a_panic_answers_the_caller_and_every_queued_call_then_restarts() {
    let probe = Probe::default();
    let server = start(spec(&probe, Policy::Unbounded).restart(Restart::Transient))
        .await
        .unwrap();
    let s1 = server.clone();
    let busy = tokio::spawn(async move { s1.call(sleep(1, T), T * 5).await });
    tokio::task::yield_now().await;
    let s2 = server.clone();
    let panicking = tokio::spawn(async move { s2.call(Req::Panic, T * 5).await });
    tokio::task::yield_now().await;
    server.cast(10).await.unwrap();
    server.cast(11).await.unwrap();
    let s3 = server.clone();
    let queued = tokio::spawn(async move { s3.call(echo(3), T * 5).await });
    tokio::task::yield_now().await;
    assert_eq!(busy.await.unwrap(), Ok(1));
    assert_eq!(panicking.await.unwrap(), Err(CallError::Panicked));
    assert_eq!(queued.await.unwrap(), Err(CallError::Stopped));
    // Restarted behind the same handle, init run again.
    assert_eq!(server.call(echo(4), T).await, Ok(4));
    assert_eq!(probe.inits.load(Ordering::SeqCst), 2);
    assert_eq!(probe.casts.load(Ordering::SeqCst), 0);
    let s = server.stats();
    assert_eq!(s.discarded, 3, "two casts and one call thrown away");
    assert!(s.is_balanced());
}

/// A server whose handlers are hand-written `fn`s that panic before they return
/// their future (for `0`), or answer in it.
struct EagerPanic;

/// A number to answer with, and where.
struct Num(u32, ReplyTo<u32>);

impl Server for EagerPanic {
    type Call = Num;
    type Cast = u32;

    #[allow(clippy::manual_async_fn)]
    fn handle_call(&mut self, Num(n, reply): Num) -> impl std::future::Future<Output = ()> + Send {
        assert_ne!(n, 0, "injected panic before the future");
        async move { reply.send(n) }
    }

    #[allow(clippy::manual_async_fn)]
    fn handle_cast(&mut self, n: u32) -> impl std::future::Future<Output = ()> + Send {
        assert_ne!(n, 0, "injected panic before the future");
        async {}
    }
}

#[tokio::test(start_paused = true)]
async fn a_panic_before_a_handler_returns_its_future_is_caught_like_any_other() {
    let server =
        start(Spec::new("eager", Policy::Unbounded, || EagerPanic).restart(Restart::Permanent))
            .await
            .unwrap();
    assert_eq!(
        server.call(|r| Num(0, r), T).await,
        Err(CallError::Panicked)
    );
    assert_eq!(
        server.call(|r| Num(1, r), T).await,
        Ok(1),
        "restarted behind the same handle"
    );
    server.cast(0).await.unwrap();
    // Let the cast crash the instance and the supervisor restart it (a call queued
    // behind the cast would be answered `Stopped` by the crash).
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        server.call(|r| Num(2, r), T).await,
        Ok(2),
        "restarted after the cast's panic too"
    );
    assert!(!server.is_stopped());
}

#[tokio::test(start_paused = true)]
async fn too_many_restarts_escalate_and_stop_the_child_for_good() {
    let probe = Probe::default();
    let sup = Supervisor::new(Intensity {
        max_restarts: 3,
        period: Duration::from_secs(5),
    });
    let mut events = sup.subscribe();
    let server = sup
        .start(spec(&probe, Policy::Unbounded).restart(Restart::Permanent))
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(server.call(Req::Panic, T).await, Err(CallError::Panicked));
        tokio::time::advance(Duration::from_millis(10)).await;
    }
    assert_eq!(server.call(echo(1), T).await, Ok(1));
    assert_eq!(server.call(Req::Panic, T).await, Err(CallError::Panicked));
    server.stopped().await;
    assert!(server.is_stopped());
    assert_eq!(server.call(echo(2), T).await, Err(CallError::Stopped));
    let mut restarted = 0;
    let mut escalated = 0;
    while let Ok(e) = events.try_recv() {
        match e {
            SupervisorEvent::Restarted { .. } => restarted += 1,
            SupervisorEvent::Escalated { .. } => escalated += 1,
            other => panic!("unexpected event {other:?}"),
        }
    }
    assert_eq!((restarted, escalated), (3, 1));
    assert_eq!(probe.inits.load(Ordering::SeqCst), 4);
}

#[tokio::test(start_paused = true)]
async fn restarts_spread_beyond_the_period_never_escalate() {
    let probe = Probe::default();
    let sup = Supervisor::new(Intensity {
        max_restarts: 2,
        period: Duration::from_secs(5),
    });
    let server = sup
        .start(spec(&probe, Policy::Unbounded).restart(Restart::Permanent))
        .await
        .unwrap();
    for _ in 0..10 {
        assert_eq!(server.call(Req::Panic, T).await, Err(CallError::Panicked));
        tokio::time::advance(Duration::from_secs(3)).await;
    }
    assert_eq!(server.call(echo(1), T).await, Ok(1));
    assert_eq!(probe.inits.load(Ordering::SeqCst), 11);
}

#[tokio::test(start_paused = true)]
async fn a_temporary_child_is_not_restarted() {
    let probe = Probe::default();
    let server = start(spec(&probe, Policy::Unbounded).restart(Restart::Temporary))
        .await
        .unwrap();
    assert_eq!(server.call(Req::Panic, T).await, Err(CallError::Panicked));
    server.stopped().await;
    assert_eq!(server.call(echo(1), T).await, Err(CallError::Stopped));
    assert_eq!(probe.inits.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_full_mailbox_can_still_be_stopped() {
    let probe = Probe::default();
    let server = start(spec(
        &probe,
        Policy::Block {
            capacity: 1,
            send_timeout: None,
        },
    ))
    .await
    .unwrap();
    let s1 = server.clone();
    let busy = tokio::spawn(async move { s1.call(sleep(1, T), T * 5).await });
    tokio::task::yield_now().await;
    server.cast(2).await.unwrap();
    let s2 = server.clone();
    let blocked = tokio::spawn(async move { s2.cast(3).await });
    tokio::task::yield_now().await;
    server.stop(false).await;
    assert_eq!(busy.await.unwrap(), Ok(1));
    assert_eq!(blocked.await.unwrap(), Err(CastError::Stopped));
    assert!(server.is_stopped());
    assert!(server.stats().is_balanced());
}

#[tokio::test(start_paused = true)]
async fn a_draining_stop_handles_everything_queued() {
    let probe = Probe::default();
    let server = start(spec(&probe, Policy::Unbounded)).await.unwrap();
    for i in 0..100 {
        server.cast(i).await.unwrap();
    }
    server.stop(true).await;
    assert_eq!(probe.casts.load(Ordering::SeqCst), 100);
}

fn registry(probe: &Probe, config: RegistryConfig) -> Registry<String, Probe> {
    let p = probe.clone();
    Registry::new(
        "probe",
        Supervisor::default(),
        config,
        move |name: &String| {
            let p = p.clone();
            Spec::new("probe", Policy::Unbounded, move || p.clone()).name(name.clone())
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_use_of_a_name_starts_exactly_one_server() {
    let probe = Probe {
        init_delay: Duration::from_millis(20),
        ..Probe::default()
    };
    let reg = registry(&probe, RegistryConfig::default());
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let reg = reg.clone();
        tasks.push(tokio::spawn(async move {
            reg.get_or_start(&"groceries".to_string())
                .await
                .unwrap()
                .id()
        }));
    }
    let mut ids = HashSet::new();
    for t in tasks {
        ids.insert(t.await.unwrap());
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(probe.inits.load(Ordering::SeqCst), 1);
    assert_eq!(reg.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_slow_start_never_blocks_lookups_of_other_names() {
    let slow = Probe {
        init_delay: Duration::from_secs(30),
        ..Probe::default()
    };
    let fast = Probe::default();
    let (s, f) = (slow.clone(), fast.clone());
    let reg: Registry<String, Probe> = Registry::new(
        "probe",
        Supervisor::default(),
        RegistryConfig::default(),
        move |name: &String| {
            let p = if name == "slow" { s.clone() } else { f.clone() };
            Spec::new("probe", Policy::Unbounded, move || p.clone())
        },
    );
    let r2 = reg.clone();
    let slow_start = tokio::spawn(async move { r2.get_or_start(&"slow".to_string()).await });
    tokio::task::yield_now().await;
    let started = Instant::now();
    let fast_server = reg.get_or_start(&"fast".to_string()).await.unwrap();
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(fast_server.call(echo(1), T).await, Ok(1));
    assert!(!slow_start.is_finished());
    slow_start.await.unwrap().unwrap();
    assert_eq!(started.elapsed(), Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn idle_servers_stop_and_start_again_on_the_next_lookup() {
    let probe = Probe::default();
    let reg = registry(
        &probe,
        RegistryConfig {
            idle_timeout: Some(Duration::from_secs(60)),
            max_live: None,
        },
    );
    let name = "chores".to_string();
    assert_eq!(reg.call(&name, echo(1), T).await, Ok(1));
    let first = reg.get(&name).unwrap();
    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(reg.call(&name, echo(2), T).await, Ok(2));
    tokio::time::advance(Duration::from_secs(59)).await;
    assert!(!first.is_stopped(), "traffic resets the idle timer");
    tokio::time::sleep(Duration::from_secs(2)).await;
    first.stopped().await;
    assert!(reg.get(&name).is_none());
    assert_eq!(reg.call(&name, echo(3), T).await, Ok(3));
    assert_eq!(probe.inits.load(Ordering::SeqCst), 2);
    assert_ne!(reg.get(&name).unwrap().id(), first.id());
}

/// Tasks alive on this runtime now.
fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

#[tokio::test(start_paused = true)]
async fn a_registry_s_servers_share_one_call_timer_and_each_call_still_times_out_on_time() {
    let reg = registry(&Probe::default(), RegistryConfig::default());
    let names: Vec<String> = (0..5).map(|i| format!("list-{i}")).collect();
    for name in &names {
        assert_eq!(reg.call(name, echo(1), T).await, Ok(1));
    }
    tokio::task::yield_now().await;
    // One task per server, and one timer task for all of their callers.
    assert_eq!(alive_tasks(), names.len() + 1);
    // A slow call to each: every caller gives up exactly at its own timeout.
    let started = Instant::now();
    let calls = names.iter().enumerate().map(|(i, name)| {
        let reg = reg.clone();
        let timeout = T * (i as u32 + 1);
        async move {
            let r = reg
                .call(name, sleep(9, Duration::from_secs(60)), timeout)
                .await;
            (r, started.elapsed())
        }
    });
    let ended = futures::future::join_all(calls).await;
    for (i, (r, took)) in ended.into_iter().enumerate() {
        assert_eq!(r, Err(RegistryCallError::Call(CallError::Timeout)));
        assert_eq!(took, T * (i as u32 + 1));
    }
}

#[tokio::test(start_paused = true)]
async fn the_registry_refuses_servers_beyond_its_cap() {
    let probe = Probe::default();
    let reg = registry(
        &probe,
        RegistryConfig {
            idle_timeout: None,
            max_live: Some(2),
        },
    );
    reg.get_or_start(&"a".to_string()).await.unwrap();
    reg.get_or_start(&"b".to_string()).await.unwrap();
    assert_eq!(
        reg.call(&"c".to_string(), echo(1), T).await,
        Err(RegistryCallError::Start(StartError::TooManyServers {
            cap: 2
        }))
    );
    // Existing names still work.
    assert_eq!(reg.call(&"a".to_string(), echo(1), T).await, Ok(1));
}

async fn pool_serves_each_key_on_one_worker(routing: Routing) {
    #[derive(Clone)]
    struct Worker {
        index: usize,
        seen: Arc<Mutex<Vec<(usize, String)>>>,
    }

    /// A key, answered with the index of the worker that saw it.
    struct Which(String, ReplyTo<usize>);

    impl Server for Worker {
        type Call = Which;
        type Cast = String;
        async fn handle_call(&mut self, Which(key, reply): Which) {
            self.seen.lock().unwrap().push((self.index, key));
            reply.send(self.index)
        }
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let pool = KeyedPool::start(
        PoolSpec {
            worker_role: "w",
            router_role: "r",
            workers: 3,
            routing,
            worker_policy: Policy::Unbounded,
            router_policy: Policy::Unbounded,
        },
        &Supervisor::default(),
        move |index| Worker {
            index,
            seen: s.clone(),
        },
    )
    .await
    .unwrap();
    assert_eq!(pool.routing(), routing);
    assert_eq!(pool.router().is_some(), routing == Routing::Routed);
    let mut first: Vec<usize> = Vec::new();
    for round in 0..3 {
        for k in 0..30 {
            let key = format!("list-{k}");
            let k2 = key.clone();
            let w = pool.call(&key, |r| Which(k2, r), T).await.unwrap();
            if round == 0 {
                first.push(w);
            }
            assert_eq!(w, first[k], "key {key} moved in round {round}");
        }
    }
    let seen = seen.lock().unwrap();
    let used: HashSet<usize> = seen.iter().map(|(w, _)| *w).collect();
    assert_eq!(used.len(), 3, "30 keys spread over all 3 workers");
}

#[tokio::test(start_paused = true)]
async fn a_direct_pool_serves_each_key_on_one_worker() {
    pool_serves_each_key_on_one_worker(Routing::Direct).await;
}

#[tokio::test(start_paused = true)]
async fn a_routed_pool_serves_each_key_on_one_worker() {
    pool_serves_each_key_on_one_worker(Routing::Routed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_a_name_takes_its_server_out_of_the_registry_before_it_returns() {
    let probe = Probe::default();
    let reg = registry(&probe, RegistryConfig::default());
    let name = "a".to_string();
    assert!(!reg.stop(&name, true).await, "nothing live to stop");
    for _ in 0..50 {
        let first = reg.get_or_start(&name).await.unwrap();
        assert_eq!(first.call(echo(7), T).await, Ok(7));
        assert!(reg.stop(&name, true).await);
        // Out at once, not when the exit hook gets to run.
        assert!(reg.get(&name).is_none());
        assert!(reg.live_names().is_empty());
        assert!(first.is_stopped());
        let second = reg.get_or_start(&name).await.unwrap();
        assert_ne!(second.id(), first.id(), "a fresh server");
        assert!(reg.stop(&name, true).await);
    }
    assert!(reg.is_empty());
}

/// Every call is counted; about one in `CALL_LATENCY_SAMPLE_EVERY` has its latency
/// recorded, drawn per call: 1,600 calls give 100 timed ones on average (the bounds
/// are five standard deviations either side).
#[tokio::test(start_paused = true)]
async fn every_call_is_counted_and_about_one_in_sixteen_is_timed() {
    use metrics_exporter_prometheus::PrometheusBuilder;
    use sluicegate::runtime::metrics::CALL_LATENCY_SAMPLE_EVERY;
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    // This test's runtime runs on this thread only: every handle binds to `recorder`.
    let _bound = metrics::set_default_local_recorder(&recorder);
    let probe = Probe::default();
    let server = start(spec(&probe, Policy::Unbounded).name("sampled"))
        .await
        .unwrap();
    let n = 100 * CALL_LATENCY_SAMPLE_EVERY;
    for i in 0..n {
        assert_eq!(server.call(echo(i), Duration::from_secs(1)).await, Ok(i));
    }
    let text = handle.render();
    let calls = prometheus_sample(&text, "sluicegate_calls_total", "result=\"ok\"");
    assert_eq!(calls, Some(f64::from(n)), "{text}");
    let timed = prometheus_sample(&text, "sluicegate_call_duration_seconds_count", "role=")
        .expect("the latency histogram has samples");
    assert!(
        (50.0..=150.0).contains(&timed),
        "{timed} timed of {n}: {text}"
    );
}

/// A thread that calls two roles in turn has both roles' latency sampled (a
/// per-thread "every 16th call" would time only one of them).
#[tokio::test(start_paused = true)]
async fn calls_to_two_roles_in_turn_have_both_latencies_sampled() {
    use metrics_exporter_prometheus::PrometheusBuilder;
    use sluicegate::runtime::metrics::CALL_LATENCY_SAMPLE_EVERY;
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let _bound = metrics::set_default_local_recorder(&recorder);
    let probe = Probe::default();
    let p = probe.clone();
    let a = start(Spec::new("role_a", Policy::Unbounded, move || p.clone()))
        .await
        .unwrap();
    let p = probe.clone();
    let b = start(Spec::new("role_b", Policy::Unbounded, move || p.clone()))
        .await
        .unwrap();
    let n = 50 * CALL_LATENCY_SAMPLE_EVERY;
    for i in 0..n {
        assert_eq!(a.call(echo(i), Duration::from_secs(1)).await, Ok(i));
        assert_eq!(b.call(echo(i), Duration::from_secs(1)).await, Ok(i));
    }
    let text = handle.render();
    for role in ["role=\"role_a\"", "role=\"role_b\""] {
        let timed =
            prometheus_sample(&text, "sluicegate_call_duration_seconds_count", role).unwrap_or(0.0);
        assert!(
            (15.0..=85.0).contains(&timed),
            "{role}: {timed} timed of {n}: {text}"
        );
    }
}
