//! Detection engine throughput and latency (`make bench-detection`).
//!
//! All built-in packs compiled once; texts of 1 KB, 16 KB and 256 KB built
//! deterministically from benign prose, code, a table and mail headers (what most
//! traffic looks like: nothing fires), reported as MB/s:
//! - `assess`: `Engine::assess` at the request location (normalisation, both
//!   pattern sets and the injection scorer);
//! - `normalize`: `normalize` alone;
//! - `score`: `Model::builtin().score` alone, on the already folded text;
//! - `prompt_2k`: latency of `assess` on a 2 KB chat prompt.
#![allow(
    clippy::expect_used,
    reason = "a bench with broken built-in packs should stop loudly"
)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use portcullis_policy::normalize::{fold_for_matching, normalize, Limits};
use portcullis_policy::scorer::{Model, Shape};
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
}

criterion_group!(benches, bench_detection);
criterion_main!(benches);
