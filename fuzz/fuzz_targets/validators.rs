//! The validation rules (`records::check` and the per-family rules), reached through records, since
//! the check functions are private to `esurio::records`.
//!
//! The input is structured: the first byte picks the family, whose *valid* template record
//! (`esurio_fuzz::template`) then gets one to four edits: a field set to a generated value (strings
//! from a dictionary of near-valid and hostile values, numbers near the limits, timestamps near the
//! plausibility window, arrays of generated objects up to past the depth/entity caps), a field removed,
//! or a field of one element of a nested array (entities, book levels) changed.
//!
//! Oracles, besides `esurio_fuzz::run`'s properties:
//! - blame: with a single edited field, a validation error must name that field (or a field inside
//!   it; a crossed book may blame the other side): the rest of the record is valid;
//! - JSON numbers round-trip: the JSON text (serde_json writes the shortest representation that
//!   round-trips) parses back to the same numbers;
//! - JSON == Avro: when the edited record has an exact Avro equivalent (`json_to_avro`), the Avro
//!   single-object record must come to the same outcome: the same reason, or byte-identical COPY rows.
#![no_main]

use arbitrary::{Result, Unstructured};
use esurio::records::FAMILIES;
use esurio_fuzz::{auto_decoders, avro_body, run, single_object, template, Outcome, NOW_MS};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value as Json};

const STRINGS: &[&str] = &[
    "", " ", "\t", "AAPL", " aapl ", "BRK.B", "^GSPC", "EUR/USD", "ES=F", "A B", "aapl$", "ÄPPLE",
    "XNAS", "binance", "x-y_z", "USD", "usd", " eur ", "XYZ", "US", "USDT", "U", "us", "USA", "u1",
    "en", "EN", "e", "eng", "e1", "zz", "http://x.y", "https://Example.COM/a#frag", "HTTP://a.b/c",
    "ftp://x.y/", "http://", "http:///a", "https://:80", "mailto:a@b.c", "/relative", "not a url",
    "http://[::1]/", "http://xn--nxasmq6b.com/", "http://a.b/%zz", "http://a b/",
    "2025-12-31T23:00:00Z", "2025-12-31T23:00:00+14:00", "2025-12-31T23:00:00-23:59",
    "2026-01-01T00:05:00Z", "2026-01-01T00:05:00.000001Z", "2005-12-31T23:00:00Z",
    "1970-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z", "0000-01-01T00:00:00Z",
    "2025-02-29T00:00:00Z", "2025-12-31t23:00:00z", "2025-12-31 23:00:00Z", "2025-12-31T23:00:60Z",
    "2025-11-01", "1900-01-01", "1899-12-31", "2200-12-31", "2201-01-01", "+2025-11-01",
    "person", "Organization", "LOCATION", "ticker", "product", "event", "other", "alien",
    "twitter", "Reddit", "stocktwits", "mastodon", "bluesky", "daily", "weekly", "monthly",
    "quarterly", "annual", "freight_rate", "port_congestion", "inventory_level", "lead_time",
    "shipping_volume", "container_price", "anomaly", "trend", "sentiment_shift", "correlation",
    "long", "short", "flat", "10-K", "10-q", "8-K", "S-1", "4", "13F-HR", "DEF 14A", "def  14a",
    "6-K", "20-F", "SC 13D", "SC 13G", "0000320193-25-000079", "0000320193-25-00007", "000032019325000079",
    "0000320193_25_000079", "０000320193-25-000079", "320193", "0000320193", "12345678901", "-1", "+1",
    "momentum_20d", "Momentum.20D", "a-b", "a b", "{}", "{\"a\": 1}", "[]", "\"x\"", "null", "1",
    "{\"a\": \"\\u0000\"}", "{\"a\\u0000\": 1}", "{\"a\": \"\\\\u0000\"}", "{\"a\": 1} x", "{\"a\":",
    "{\"a\": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
    "a\u{0}b", "a\u{7}b", "a\u{1b}[31m", "a\u{7f}b", "a\u{85}b", "a\u{9f}b", "a\u{2028}b", "line\nbreak",
    "tab\there", "cr\r", "é", "\u{feff}AAPL", "\u{a0}AAPL\u{a0}", "\u{3000}", "Ǆ", "ß", "ﬃ", "İ",
    "\u{10ffff}", "🦀", "e\u{301}",
];

const INTS: &[i64] = &[
    0,
    1,
    -1,
    2,
    3,
    4,
    5,
    1899,
    1900,
    2025,
    2200,
    2201,
    3600,
    20393,
    -719162,
    2932896,
    2932897,
    i32::MAX as i64,
    i32::MAX as i64 + 1,
    i32::MIN as i64,
    i32::MIN as i64 - 1,
    i64::MAX,
    i64::MIN,
    i64::MAX / 1000,
    i64::MIN / 1000,
    i64::MAX / 86_400,
    i64::MAX / 86_400 + 1,
    i64::MAX / 86_400_000,
    8_210_266_876_799_999,
    8_210_266_876_800_000,
    -8_334_632_851_200_000,
    106_751_991_167_300,
    106_751_991_167_301,
    1 << 53,
    (1 << 53) + 1,
];

const FLOATS: &[f64] = &[
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.5,
    1.0000000000000002,
    0.9999999999999999,
    -1.0000000000000002,
    f64::MIN_POSITIVE,
    5e-324,
    -5e-324,
    1e308,
    f64::MAX,
    f64::MIN,
    1e-7,
    189.5,
    189.4,
    189.6,
    10.0,
    10.5,
    9.5,
    11.0,
    2.5,
    3.0,
];

/// Offsets from NOW_MS around the plausibility window (5 minutes ahead, 20 years back).
const TIME_OFFSETS_MS: &[i64] = &[
    0,
    -1,
    1,
    300_000,
    300_001,
    299_999,
    -3_600_000,
    -631_152_000_000,
    -631_152_000_001,
    -631_151_999_999,
    -631_152_000_000 + 86_400_000,
];

const EXTRA_KEYS: &[&str] = &["extra", "Symbol", "", "__proto__", "ts ", "entities_"];
const NESTED_KEYS: &[&str] = &[
    "name",
    "entity_type",
    "symbol",
    "salience",
    "sentiment",
    "price",
    "size",
    "extra",
];

thread_local! {
    /// Bytes of bulk (long strings, repeated array elements) one input may still generate: keeps
    /// the records near the 64 KiB record limit instead of the harness itself using the memory.
    static BUDGET: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Takes up to `want` bytes from the budget; returns how many were granted.
fn take_budget(want: usize) -> usize {
    BUDGET.with(|b| {
        let got = want.min(b.get());
        b.set(b.get() - got);
        got
    })
}

fn pick<'a, T>(u: &mut Unstructured<'_>, xs: &'a [T]) -> Result<&'a T> {
    u.choose(xs)
}

fn string(u: &mut Unstructured<'_>) -> Result<String> {
    Ok(match u.int_in_range(0u8..=6)? {
        0..=2 => (*pick(u, STRINGS)?).to_owned(),
        3 => u.arbitrary::<String>()?,
        4 => {
            // Near the length limits: a piece repeated up to past 64 KiB.
            let piece = *pick(u, &["a", "A", "é", " ", "🦀", "9", "\u{0}"])?;
            let n = *pick(
                u,
                &[31usize, 32, 33, 63, 64, 65, 127, 128, 129, 199, 200, 201],
            )?;
            let n = if u.arbitrary::<bool>()? {
                n
            } else {
                u.int_in_range(0..=70_000)?
            };
            piece.repeat(take_budget(n * piece.len()) / piece.len())
        }
        5 => {
            // A dictionary value with something around it.
            let s = *pick(u, STRINGS)?;
            let around = *pick(
                u,
                &[" ", "\t", "\n", "\u{0}", "\u{a0}", "\u{feff}", "x", "."],
            )?;
            match u.int_in_range(0u8..=2)? {
                0 => format!("{around}{s}"),
                1 => format!("{s}{around}"),
                _ => format!("{around}{s}{around}"),
            }
        }
        _ => {
            // An RFC 3339-shaped timestamp or a date with arbitrary parts.
            let y: u16 = u.int_in_range(0..=10_000)?;
            let (mo, d, h, mi, s) = (
                u.int_in_range(0u8..=13)?,
                u.int_in_range(0u8..=32)?,
                u.int_in_range(0u8..=25)?,
                u.int_in_range(0u8..=61)?,
                u.int_in_range(0u8..=61)?,
            );
            match u.int_in_range(0u8..=3)? {
                0 => format!("{y:04}-{mo:02}-{d:02}"),
                1 => format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z"),
                2 => format!(
                    "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{}+{:02}:{:02}",
                    u.arbitrary::<u32>()?,
                    u.int_in_range(0u8..=25)?,
                    u.int_in_range(0u8..=61)?
                ),
                _ => format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}-00:00"),
            }
        }
    })
}

fn number(u: &mut Unstructured<'_>) -> Result<Json> {
    Ok(match u.int_in_range(0u8..=5)? {
        0 => Json::from(*pick(u, INTS)?),
        1 => Json::from(u.arbitrary::<i64>()?),
        2 => Json::from(*pick(u, FLOATS)?),
        3 => {
            let x = f64::from_bits(u.arbitrary::<u64>()?);
            serde_json::Number::from_f64(x).map_or(Json::Null, Json::Number)
        }
        4 => Json::from(u.arbitrary::<u64>()? | (1 << 63)),
        _ => Json::from(NOW_MS.saturating_add(*pick(u, TIME_OFFSETS_MS)?)),
    })
}

fn value(u: &mut Unstructured<'_>, depth: u8) -> Result<Json> {
    Ok(match u.int_in_range(0u8..=9)? {
        0 => Json::Null,
        1 => Json::Bool(u.arbitrary()?),
        2..=4 => Json::String(string(u)?),
        5..=7 => number(u)?,
        8 if depth < 3 => array(u, depth + 1)?,
        9 if depth < 3 => object(u, depth + 1)?,
        _ => Json::String(string(u)?),
    })
}

fn object(u: &mut Unstructured<'_>, depth: u8) -> Result<Json> {
    let mut m = Map::new();
    for _ in 0..u.int_in_range(0u8..=6)? {
        let k = if u.ratio(7u8, 8)? {
            (*pick(u, NESTED_KEYS)?).to_owned()
        } else {
            u.arbitrary::<String>()?
        };
        m.insert(k, value(u, depth)?);
    }
    Ok(Json::Object(m))
}

fn array(u: &mut Unstructured<'_>, depth: u8) -> Result<Json> {
    let mut items = Vec::new();
    for _ in 0..u.int_in_range(0u8..=4)? {
        items.push(if u.ratio(3u8, 4)? {
            object(u, depth)?
        } else {
            value(u, depth)?
        });
    }
    // Sometimes repeat the last element up to past the caps (500 entities, 1000 levels).
    if let (Some(last), true) = (items.last().cloned(), u.ratio(1u8, 4)?) {
        let want = *pick(u, &[499usize, 500, 501, 999, 1000, 1001])?;
        let size = serde_json::to_vec(&last)
            .map_or(usize::MAX, |v| v.len())
            .max(1);
        let n = items.len() + take_budget(size.saturating_mul(want - items.len())) / size;
        while items.len() < n {
            items.push(last.clone());
        }
    }
    Ok(Json::Array(items))
}

/// Applies one edit to `rec`; returns the top-level key it touched.
fn edit(u: &mut Unstructured<'_>, rec: &mut Map<String, Json>) -> Result<String> {
    let keys: Vec<String> = rec.keys().cloned().collect();
    let k = if u.ratio(15u8, 16)? {
        pick(u, &keys)?.clone()
    } else {
        (*pick(u, EXTRA_KEYS)?).to_owned()
    };
    match u.int_in_range(0u8..=7)? {
        0 => {
            rec.remove(&k);
        }
        1 | 2 if rec.get(&k).is_some_and(Json::is_array) => {
            // One field of one element of a nested array (an entity, a book level).
            let Some(Json::Array(items)) = rec.get_mut(&k) else {
                unreachable!()
            };
            if items.is_empty() || u.ratio(1u8, 8)? {
                let new = items
                    .first()
                    .cloned()
                    .unwrap_or_else(|| Json::Object(Map::new()));
                items.push(new);
            }
            let i = u.choose_index(items.len())?;
            if let Json::Object(o) = &mut items[i] {
                let nk = (*pick(u, NESTED_KEYS)?).to_owned();
                if u.ratio(1u8, 6)? {
                    o.remove(&nk);
                } else {
                    o.insert(nk, value(u, 2)?);
                }
            }
        }
        _ => {
            let v = value(u, 0)?;
            rec.insert(k.clone(), v);
        }
    }
    Ok(k)
}

/// Whether a validation error on `field` can be explained by an edit of `edited` alone.
fn blames(edited: &str, field: &str, reason: &str) -> bool {
    field == edited
        || field
            .strip_prefix(edited)
            .is_some_and(|rest| rest.starts_with('.'))
        || (reason == "crossed_order_book"
            && ((matches!(edited, "bid" | "ask") && field == "bid")
                || (matches!(edited, "bids" | "asks") && field == "bids")))
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    BUDGET.with(|b| b.set(160 * 1024));
    let f = esurio_fuzz::family_index(u.arbitrary::<u8>().unwrap_or(0));
    let spec = &FAMILIES[f];
    let decoder = &auto_decoders()[f];
    let Json::Object(mut rec) = template(spec.name) else {
        unreachable!()
    };
    let n = u.int_in_range(1u8..=4).unwrap_or(1);
    let mut edited: Vec<String> = Vec::new();
    for _ in 0..n {
        match edit(&mut u, &mut rec) {
            Ok(k) if !edited.contains(&k) => edited.push(k),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let rec = Json::Object(rec);
    let text = serde_json::to_vec(&rec).unwrap();
    // What the worker's JSON path will see: serde_json must read back the numbers it was given
    // (serde_json writes the shortest representation that round-trips, as other producers do).
    let seen: Json = serde_json::from_slice(&text).unwrap();
    if seen != rec {
        esurio_fuzz::fail(format!(
            "{}: serde_json float round trip: the JSON text {} parses back as {seen}",
            spec.name,
            String::from_utf8_lossy(&text)
        ));
    }
    // Compare the Avro path with what the JSON path saw, so that the check below finds other
    // differences even while the round trip is a known issue.
    let rec = seen;
    let from_json = run(f, decoder, &text, true);

    if let (
        [k],
        Outcome::Record {
            reason,
            field: Some(field),
        },
    ) = (&edited[..], &from_json)
    {
        assert!(
            blames(k, field, reason),
            "{}: only {k:?} was changed from a valid record, but the error blames {field:?} ({reason})\nrecord: {rec}",
            spec.name
        );
    }
    if edited.is_empty() && from_json != Outcome::IgnoredPanic {
        assert!(
            matches!(from_json, Outcome::Rows(_)),
            "{}: the valid template was rejected: {from_json:?}",
            spec.name
        );
    }

    if let Some(body) = avro_body(f, &rec) {
        let from_avro = run(f, decoder, &single_object(f, &body), true);
        let skip = |o: &Outcome| matches!(o, Outcome::Decode("too_large") | Outcome::IgnoredPanic);
        if !skip(&from_json) && !skip(&from_avro) {
            assert!(
                from_json == from_avro,
                "{}: JSON and Avro disagree: JSON {} vs Avro {}\nrecord: {rec}",
                spec.name,
                describe(&from_json),
                describe(&from_avro)
            );
        }
    }
});

fn describe(o: &Outcome) -> String {
    match o {
        Outcome::Rows(t) => format!(
            "ok, rows {:?}",
            t.iter().map(|(_, n)| n).collect::<Vec<_>>()
        ),
        other => format!("{other:?}"),
    }
}
