//! Property tests (fuzzing, issue 10 item 12) of every parser of outside input: arbitrary bytes
//! and valid shapes with one part mutated must never panic, every refusal must be the RFC's
//! error, and what is accepted must mean what it says.
//!
//! The short pass runs in CI with 128 cases per property (the whole module in well under a
//! minute in a debug build); the long pass is run by hand (README, "Fuzzing"):
//! `PROPTEST_CASES=20000 cargo test --release --test api properties:: -- --nocapture`.
//! Each property prints one line — its case count, the wall time and its slowest single case
//! (measured and reported, never asserted: speed is a benchmark's business).

mod address;
mod client_auth;
mod config;
mod forms;
mod http;
mod jose;
mod jose_keys;
mod metadata;
mod nul;

use std::cell::Cell;
use std::fmt::Debug;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// The case count: `PROPTEST_CASES` when set, else 128 (the short pass).
pub fn cases() -> u32 {
    match std::env::var_os("PROPTEST_CASES") {
        Some(_) => Config::default().cases,
        None => 128,
    }
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: cases(),
        // Regressions are kept as named tests, not as files beside the sources.
        failure_persistence: None,
        ..Config::default()
    })
}

/// Runs `check` on `cases()` values of `strategy`, shrinking any failure (a panic included) to a
/// minimal input, and prints the case count, the wall time and the slowest single case.
pub fn check<S>(name: &str, strategy: S, check: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S: Strategy,
    S::Value: Debug,
{
    let started = Instant::now();
    let slowest = Cell::new(Duration::ZERO);
    let count = Cell::new(0u32);
    let result = runner().run(&strategy, |value| {
        let t = Instant::now();
        let outcome = check(value);
        slowest.set(slowest.get().max(t.elapsed()));
        count.set(count.get() + 1);
        outcome
    });
    report(name, count.get(), started.elapsed(), slowest.get());
    if let Err(e) = result {
        panic!("property {name:?} failed: {e}");
    }
}

/// `cases()` values of `strategy`, made one at a time, for properties checked by async code
/// (over HTTP), where proptest's runner cannot drive the check.
pub fn samples<S: Strategy>(strategy: S) -> impl Iterator<Item = S::Value> {
    let mut runner = runner();
    (0..cases()).map(move |_| {
        strategy
            .new_tree(&mut runner)
            .expect("strategy makes a value")
            .current()
    })
}

pub fn report(name: &str, cases: u32, wall: Duration, slowest: Duration) {
    eprintln!(
        "property {name}: {cases} cases in {:.2} s, slowest case {:.2} ms",
        wall.as_secs_f64(),
        slowest.as_secs_f64() * 1e3
    );
}

/// Arbitrary bytes, up to `max` long.
pub fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

/// Values an attacker would try in any text field: empty, NUL, control and bidi characters,
/// huge and negative numbers, exponents, percent escapes (of invalid UTF-8 too), quotes,
/// path traversal, SQL, and very long strings.
pub fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("\0".to_string()),
        Just("a\0b".to_string()),
        Just("\u{202e}\u{feff}\r\n\t".to_string()),
        Just("9".repeat(400)),
        Just("-1".to_string()),
        Just("-9223372036854775809".to_string()),
        Just("18446744073709551616".to_string()),
        Just("1e309".to_string()),
        Just("NaN".to_string()),
        Just("%00%ff%fe%c0%af".to_string()),
        Just("\"'\\<>&;=+, ".to_string()),
        Just("../../dev/null".to_string()),
        Just("' OR '1'='1".to_string()),
        Just("a".repeat(70_000)),
        "[\\PC]{0,40}",
        ".{0,40}",
        any::<String>(),
    ]
}

/// `valid` with one mutation: cut short, a hostile value put in at some place, one byte
/// replaced, or the whole repeated many times.
pub fn mutated(valid: String) -> impl Strategy<Value = String> {
    let len = valid.len();
    (0..=len, hostile_text(), any::<char>(), 0..4u8).prop_map(move |(at, insert, ch, how)| {
        let at = floor_char_boundary(&valid, at);
        match how {
            0 => valid[..at].to_string(),
            1 => format!("{}{insert}{}", &valid[..at], &valid[at..]),
            2 => {
                let rest = valid[at..].chars().skip(1).collect::<String>();
                format!("{}{ch}{rest}", &valid[..at])
            }
            _ => valid.repeat(64),
        }
    })
}

fn floor_char_boundary(s: &str, mut at: usize) -> usize {
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// JSON values of every type, with the numbers and strings parsers trip on, nested a few levels.
pub fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::{json, Value};
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        Just(json!(1e308)),
        Just(json!(-0.0)),
        hostile_text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z_]{1,12}", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// JSON text nested `depth` levels deep: arrays, objects, or both in turn.
pub fn deep_json(depth: usize) -> String {
    let mut s = String::with_capacity(depth * 6);
    for i in 0..depth {
        s.push_str(if i % 2 == 0 { "{\"a\":" } else { "[" });
    }
    s.push('1');
    for i in (0..depth).rev() {
        s.push(if i % 2 == 0 { '}' } else { ']' });
    }
    s
}

/// Nesting depths around serde_json's recursion limit (128) and far beyond it.
pub fn nesting_depth() -> impl Strategy<Value = usize> {
    prop_oneof![
        100..140usize,
        Just(1_000usize),
        Just(10_000usize),
        Just(100_000usize)
    ]
}
