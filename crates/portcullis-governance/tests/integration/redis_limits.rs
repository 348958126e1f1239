use portcullis_core::model::RateLimits;
use portcullis_governance::ratelimit::{RateLimiter, Subject};
use portcullis_governance::shared::Shared;
use std::time::Duration;

const URL: &str = "redis://127.0.0.1:6379";

/// A limiter on its own prefix, or `None` (with a message) if Redis is not there.
async fn limiter(test: &str) -> Option<RateLimiter> {
    let prefix = format!("pcx-test:{test}:{}", portcullis_core::id::new_id());
    match Shared::connect(URL, &prefix).await {
        Ok(shared) => Some(RateLimiter::redis(shared)),
        Err(e) => {
            eprintln!("SKIPPED {test}: Redis does not answer at {URL} ({e}); run `make services`");
            None
        }
    }
}

fn subject(key: &str, k: RateLimits, g: RateLimits) -> Subject<'_> {
    Subject {
        key_id: key,
        group_id: "g1",
        key: k,
        group: g,
    }
}

fn rpm(n: u64) -> RateLimits {
    RateLimits {
        rpm: Some(n),
        tpm: None,
    }
}

#[tokio::test]
async fn a_burst_up_to_the_limit_then_429() {
    let Some(l) = limiter("burst").await else {
        return;
    };
    let s = subject("k1", rpm(5), RateLimits::default());
    for left in (0..5).rev() {
        let v = l.check(&s).await.unwrap();
        assert!(v.allowed);
        assert_eq!(v.requests.map(|w| (w.limit, w.remaining)), Some((5, left)));
    }
    let v = l.check(&s).await.unwrap();
    assert!(!v.allowed);
    // 5 per minute: one every 12 s; a little of it has passed already.
    assert!(
        (Duration::from_secs(11)..=Duration::from_secs(12)).contains(&v.retry_after),
        "{:?}",
        v.retry_after
    );
    assert_eq!(v.requests.map(|w| w.remaining), Some(0));
}

#[tokio::test]
async fn two_limiters_on_one_redis_share_the_limit() {
    let prefix = format!("pcx-test:shared:{}", portcullis_core::id::new_id());
    let (Ok(a), Ok(b)) = (
        Shared::connect(URL, &prefix).await,
        Shared::connect(URL, &prefix).await,
    ) else {
        eprintln!("SKIPPED: Redis does not answer at {URL}; run `make services`");
        return;
    };
    let (a, b) = (RateLimiter::redis(a), RateLimiter::redis(b));
    let s = subject("k1", rpm(7), RateLimits::default());
    let mut allowed = 0;
    for i in 0..20 {
        let l = if i % 2 == 0 { &a } else { &b };
        if l.check(&s).await.unwrap().allowed {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 7);
}

#[tokio::test]
async fn concurrent_checks_never_overshoot() {
    let Some(l) = limiter("concurrent").await else {
        return;
    };
    let l = std::sync::Arc::new(l);
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let l = l.clone();
        tasks.push(tokio::spawn(async move {
            let s = subject("k1", RateLimits::default(), rpm(20));
            l.check(&s).await.unwrap().allowed
        }));
    }
    let mut allowed = 0;
    for t in tasks {
        allowed += usize::from(t.await.unwrap());
    }
    assert_eq!(allowed, 20);
}

#[tokio::test]
async fn token_debt_refuses_until_repaid() {
    let Some(l) = limiter("tokens").await else {
        return;
    };
    let RateLimiter::Redis(r) = &l else {
        unreachable!()
    };
    let limits = RateLimits {
        rpm: None,
        tpm: Some(600),
    };
    let s = subject("k1", limits, RateLimits::default());
    assert!(l.check(&s).await.unwrap().allowed);
    r.settle_now(&s, 500).await.unwrap();
    let v = l.check(&s).await.unwrap();
    assert!(v.allowed);
    assert_eq!(v.tokens.map(|w| w.limit), Some(600));
    assert!(v.tokens.is_some_and(|w| (100..=101).contains(&w.remaining)));
    r.settle_now(&s, 700).await.unwrap();
    let v = l.check(&s).await.unwrap();
    assert!(!v.allowed);
    // 600 in debt at 10 tokens a second: about a minute.
    assert!(
        (Duration::from_secs(60)..=Duration::from_secs(61)).contains(&v.retry_after),
        "{:?}",
        v.retry_after
    );
}

#[tokio::test]
async fn the_group_limit_binds_every_key_and_buckets_expire() {
    let prefix = format!("pcx-test:group:{}", portcullis_core::id::new_id());
    let Ok(shared) = Shared::connect(URL, &prefix).await else {
        eprintln!("SKIPPED: Redis does not answer at {URL}; run `make services`");
        return;
    };
    let l = RateLimiter::redis(shared);
    let a = subject("a", RateLimits::default(), rpm(3));
    let b = subject("b", rpm(100), rpm(3));
    assert!(l.check(&a).await.unwrap().allowed);
    assert!(l.check(&b).await.unwrap().allowed);
    let v = l.check(&b).await.unwrap();
    assert_eq!(v.requests.map(|w| (w.limit, w.remaining)), Some((3, 0)));
    assert!(!l.check(&a).await.unwrap().allowed);

    // Every bucket written has a TTL (idle ones expire).
    let client = redis::Client::open(URL).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    for key in keys {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(ttl > 0 && ttl <= 61_000, "{key}: {ttl}");
    }
}

#[tokio::test]
async fn a_raised_limit_applies_at_once() {
    let Some(l) = limiter("raised").await else {
        return;
    };
    let tight = subject("k1", rpm(1), RateLimits::default());
    assert!(l.check(&tight).await.unwrap().allowed);
    assert!(!l.check(&tight).await.unwrap().allowed);
    // The limit goes from 1 to 1000 a minute: the next request passes without
    // waiting out the old minute, and the one used unit stays used.
    let raised = subject("k1", rpm(1000), RateLimits::default());
    let v = l.check(&raised).await.unwrap();
    assert!(v.allowed);
    let left = v.requests.map_or(0, |w| w.remaining);
    assert!((997..=998).contains(&left), "remaining {left}");
}
