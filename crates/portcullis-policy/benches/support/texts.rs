//! Texts for the detection benchmarks, built deterministically: benign prose,
//! a code block, a markdown table and mail headers (what most traffic looks
//! like: nothing in them should fire). Shared by `benches/engine.rs` and
//! `examples/assess_instructions.rs`.

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
pub fn document(len: usize) -> String {
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
pub fn prompt() -> String {
    let mut p = String::from(
        "You are helping me prepare a status update. Read the notes below and write \
         three short paragraphs for the leadership team, then list open risks.\n\n",
    );
    p.push_str(&document(2048 - p.len()));
    p
}
