//! Detection engine throughput and latency (`make bench-detection`).
//!
//! All built-in packs compiled once; texts of 1 KB, 16 KB and 256 KB built
//! deterministically from benign prose, code, a table and mail headers (what most
//! traffic looks like: nothing fires), reported as MB/s:
//! - `assess`: `Engine::assess` at the request location (normalisation, both
//!   pattern sets and the injection scorer);
//! - `normalize`: `normalize` alone;
//! - `score`: `Model::builtin().score` alone, on the already folded text;
//! - `prompt_2k`: latency of `assess` on a 2 KB chat prompt; its percentiles
//!   (p50, p99, p99.9 over 20,000 timed scans) are printed first;
//! - `chat_history`: the 11 messages of `bench/bodies/chat-history.json` (a
//!   5-turn chat) as a proxy scans them per request: every one with `scan`, or
//!   with `scan_remembered`, where only the newest (new each time) is scanned;
//! - `stream_answer`: a 4 KB answer pushed through a `StreamScanner` in pieces
//!   of 4, 64 and 4096 bytes (each piece is scanned with the carry-over window
//!   before it, so small pieces cost more).
#![allow(
    clippy::expect_used,
    reason = "a bench with broken built-in packs should stop loudly"
)]

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use portcullis_policy::normalize::{fold_for_matching, normalize, Limits};
use portcullis_policy::scorer::{Model, Shape};
use portcullis_policy::stream_scan::StreamScanner;
use portcullis_policy::{builtin, Engine, Location};
use std::hint::black_box;

#[path = "support/texts.rs"]
mod texts;
use texts::{document, prompt};

const SIZES: [(&str, usize); 3] = [("1KB", 1024), ("16KB", 16 * 1024), ("256KB", 256 * 1024)];

fn engine() -> Engine {
    let packs = builtin::packs().expect("built-in packs load");
    Engine::compile(&packs).expect("built-in packs compile")
}

fn bench_detection(c: &mut Criterion) {
    let engine = engine();
    let limits = Limits::default();
    let model = Model::builtin();

    let mut group = c.benchmark_group("assess");
    for (name, len) in SIZES {
        let text = document(len);
        group.throughput(Throughput::BytesDecimal(len as u64));
        group.sample_size(if len > 64 * 1024 { 20 } else { 50 });
        group.bench_with_input(BenchmarkId::from_parameter(name), &text, |b, text| {
            b.iter(|| engine.assess(Location::Request, black_box(text)))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("normalize");
    for (name, len) in SIZES {
        let text = document(len);
        group.throughput(Throughput::BytesDecimal(len as u64));
        group.sample_size(if len > 64 * 1024 { 20 } else { 50 });
        group.bench_with_input(BenchmarkId::from_parameter(name), &text, |b, text| {
            b.iter(|| normalize(black_box(text), &limits))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("score");
    for (name, len) in SIZES {
        let text = document(len);
        let folded = fold_for_matching(&text);
        let shape = Shape::of(&text);
        group.throughput(Throughput::BytesDecimal(len as u64));
        group.sample_size(if len > 64 * 1024 { 20 } else { 50 });
        group.bench_with_input(BenchmarkId::from_parameter(name), &folded, |b, folded| {
            b.iter(|| model.score(black_box(folded), shape))
        });
    }
    group.finish();

    let text = prompt();
    let mut group = c.benchmark_group("prompt_2k");
    group.throughput(Throughput::BytesDecimal(text.len() as u64));
    group.bench_function("assess", |b| {
        b.iter(|| engine.assess(Location::Request, black_box(&text)))
    });
    group.finish();

    let messages = chat_history();
    let bytes: usize = messages.iter().map(String::len).sum();
    let mut group = c.benchmark_group("chat_history");
    group.throughput(Throughput::BytesDecimal(bytes as u64));
    let (history, newest) = messages.split_at(messages.len() - 1);
    group.bench_function("scan", |b| {
        b.iter(|| {
            for text in &messages {
                black_box(engine.scan(Location::Request, black_box(text)));
            }
        })
    });
    let mut turn = 0u64;
    group.bench_function("remembered", |b| {
        b.iter(|| {
            for text in history {
                black_box(engine.scan_remembered(Location::Request, black_box(text)));
            }
            turn += 1;
            let newest = newest[0].replace("{{n}}", &format!("{turn:08}"));
            black_box(engine.scan_remembered(Location::Request, black_box(&newest)));
        })
    });
    group.finish();

    let answer = document(4096);
    let mut group = c.benchmark_group("stream_answer");
    group.throughput(Throughput::BytesDecimal(answer.len() as u64));
    group.sample_size(20);
    for piece in [4usize, 64, 4096] {
        group.bench_with_input(BenchmarkId::new("pieces", piece), &piece, |b, &piece| {
            b.iter(|| {
                let mut scanner = StreamScanner::new(Location::Response);
                // The text is ASCII, so every cut is a char boundary.
                for at in (0..answer.len()).step_by(piece) {
                    let end = (at + piece).min(answer.len());
                    black_box(scanner.push(&engine, &answer[at..end]));
                }
                black_box(scanner.finish(&engine));
            })
        });
    }
    group.finish();
}

/// The messages of the benchmark's 5-turn chat, in order.
fn chat_history() -> Vec<String> {
    let body: serde_json::Value =
        serde_json::from_str(include_str!("../../../bench/bodies/chat-history.json"))
            .expect("chat-history.json is JSON");
    body["messages"]
        .as_array()
        .expect("chat-history.json has messages")
        .iter()
        .filter_map(|m| m["content"].as_str().map(str::to_owned))
        .collect()
}

/// Percentiles of `assess` on the 2 KB prompt, each scan timed alone: the
/// latency target is a p99, which criterion's mean does not give.
fn prompt_2k_percentiles() {
    const SCANS: usize = 20_000;
    let engine = engine();
    let text = prompt();
    for _ in 0..1_000 {
        black_box(engine.assess(Location::Request, black_box(&text)));
    }
    let mut micros: Vec<f64> = (0..SCANS)
        .map(|_| {
            let started = std::time::Instant::now();
            black_box(engine.assess(Location::Request, black_box(&text)));
            started.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    micros.sort_by(f64::total_cmp);
    let at = |q: f64| micros[((micros.len() as f64 * q) as usize).min(micros.len() - 1)];
    println!(
        "prompt_2k/assess percentiles over {SCANS} scans of {} bytes: p50 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs, max {:.1} µs",
        text.len(),
        at(0.50),
        at(0.99),
        at(0.999),
        micros[micros.len() - 1],
    );
}

criterion_group!(benches, bench_detection);

fn main() {
    // `cargo bench` passes --bench; a test run of the bench target does not.
    if std::env::args().any(|a| a == "--bench") {
        prompt_2k_percentiles();
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
