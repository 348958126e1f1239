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

const PROSE: &[&str] = &[
    "The quarterly review covered three topics: onboarding time for new customers, \
     the backlog of support tickets, and the plan to move the reporting jobs to the \
     new cluster. Most of the discussion was about the second item. ",
    "Could you summarise the attached meeting notes in five bullet points and suggest \
     a title for the follow-up email? Keep the tone friendly but concise. ",
    "Our migration guide explains how to export the old data, transform the records \
     with the provided script and import them again; the whole process takes about \
     an hour for a medium-sized workspace. ",
    "When the temperature drops below freezing, the pipes in the north wing need to \
     be drained, and the caretaker should check the boiler pressure twice a day. ",
];

const CODE: &str = "```rust\n\
fn parse_line(line: &str) -> Option<(String, u32)> {\n\
    let (name, count) = line.split_once(',')?;\n\
    let count = count.trim().parse().ok()?;\n\
    Some((name.trim().to_owned(), count))\n\
}\n\
\n\
fn main() {\n\
    let totals: Vec<_> = std::io::stdin().lines().flatten().filter_map(|l| parse_line(&l)).collect();\n\
    println!(\"{} rows\", totals.len());\n\
}\n\
```\n";

const TABLE: &str = "| region | orders | revenue (EUR) | growth |\n\
|---|---:|---:|---:|\n\
| north | 1,204 | 98,310 | 4.1% |\n\
| south | 988 | 71,004 | -1.2% |\n\
| east | 1,530 | 120,777 | 7.9% |\n\
| west | 642 | 44,120 | 0.4% |\n\n";

const HEADER: &str = "From: Dana Whitfield <dana.whitfield@example.com>\n\
To: planning-team@example.com\n\
Date: Tue, 3 Nov 2026 09:14:02 +0100\n\
Subject: Re: agenda for Thursday\n\
Message-ID: <20261103091402.4417@mail.example.com>\n\n";

/// A deterministic mix of the pieces above, exactly `len` bytes (all ASCII).
fn document(len: usize) -> String {
    let mut out = String::with_capacity(len + 1024);
    let mut state: u32 = 0x2545_f491;
    while out.len() < len {
        // xorshift32: the same text on every run and machine.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        match state % 10 {
            0 => out.push_str(CODE),
            1 => out.push_str(TABLE),
            2 => out.push_str(HEADER),
            n => out.push_str(PROSE[n as usize % PROSE.len()]),
        }
    }
    out.truncate(len);
    out
}

/// A 2 KB chat prompt: an instruction and pasted context.
fn prompt() -> String {
    let mut p = String::from(
        "You are helping me prepare a status update. Read the notes below and write \
         three short paragraphs for the leadership team, then list open risks.\n\n",
    );
    p.push_str(&document(2048 - p.len()));
    p
}

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
