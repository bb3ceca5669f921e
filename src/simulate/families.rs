//! One builder per record family: a valid record for an index, and the family's catalogue of
//! validation-level defects (each breaking exactly one rule, with the reason the validator gives).
//!
//! The defect lists mirror `src/records/*`: a defect is only listed where the family's `parse` really
//! produces its reason, for the encodings it can be expressed in (a JSON record can omit a field or
//! carry a number no JSON can spell; an Avro record cannot omit a required field but can carry NaN).
//! The unit tests run every defect through the real decoder and validator.

use super::gen::{base36, Env};
use super::universe::*;
use super::wire::{Rec, TsStyle, V};
use crate::records::Reason as R;
use chrono::{Datelike, Duration as ChronoDuration, NaiveDate};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;

/// Which encodings a defect can be expressed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum On {
    Both,
    Json,
    Avro,
}

/// How a defect changes a valid record.
pub(crate) enum Kind {
    /// Omit one of these required fields (`missing_field`; JSON only).
    Remove(&'static [&'static str]),
    /// Set one of these required texts to blank (`missing_field`: blank counts as absent).
    Blank(&'static [&'static str]),
    /// Put a U+0000 into one of these texts (`invalid_text`).
    Nul(&'static [&'static str]),
    /// Make one of these texts longer than its maximum (`text_too_long`).
    TooLong(&'static [(&'static str, usize)]),
    /// Set the field to one of these strings.
    Strs(&'static str, &'static [&'static str]),
    /// Set the field (a double) to one of these numbers.
    F64s(&'static str, &'static [f64]),
    /// Set the field (an Avro int) to one of these.
    Ints(&'static str, &'static [i32]),
    /// Set the field (an Avro long) to one of these.
    Longs(&'static str, &'static [i64]),
    /// Set one of these doubles to NaN or an infinity (Avro only: JSON has no such numbers).
    NonFinite(&'static [&'static str]),
    /// An unparseable timestamp.
    BadTs(&'static str),
    /// A timestamp beyond `max_future`.
    Future(&'static str),
    /// A timestamp older than `max_past`.
    Old(&'static str),
    /// A timestamp older than `partition_max_past` (day-partitioned families).
    StaleDay(&'static str),
    Custom(fn(&mut Rec, &mut ChaCha8Rng, &Env)),
}

pub(crate) struct Defect {
    pub reason: &'static str,
    pub on: On,
    pub kind: Kind,
}

// The validator's own limits and lists, so a defect is always just past the rule.
use crate::records::MAX_DEPTH as MAX_BOOK_DEPTH;
use crate::records::{INSIGHT_KINDS, MAX_ENTITIES, PLATFORMS};

fn d(reason: R, on: On, kind: Kind) -> Defect {
    Defect {
        reason: reason.as_str(),
        on,
        kind,
    }
}

fn ts_defects(field: &'static str) -> [Defect; 3] {
    [
        d(R::InvalidTimestamp, On::Both, Kind::BadTs(field)),
        d(R::TimestampInFuture, On::Both, Kind::Future(field)),
        d(R::TimestampTooOld, On::Both, Kind::Old(field)),
    ]
}

/// The timestamp defects of a day-partitioned family's `ts`.
fn partition_ts_defects(field: &'static str) -> [Defect; 4] {
    let [a, b, c] = ts_defects(field);
    [
        a,
        b,
        c,
        d(R::OutsidePartitionWindow, On::Both, Kind::StaleDay(field)),
    ]
}

/// A valid record of a family, with its Kafka key and the rows it must stage.
pub(crate) struct Base {
    pub rec: Rec,
    pub key: Vec<u8>,
    pub rows: Vec<(&'static str, usize)>,
}

pub(crate) trait Builder: Send {
    fn build(&mut self, i: u64, rng: &mut ChaCha8Rng, env: &Env) -> Base;
    fn defects(&self) -> &[Defect];
}

/// The builder of a family, by name.
pub(crate) fn builder(name: &str, env: &Env) -> Option<Box<dyn Builder>> {
    Some(match name {
        "market_data" => Box::new(MarketData::new()),
        "crypto_data" => Box::new(CryptoData::new()),
        "order_book" => Box::new(OrderBook::new()),
        "news_article" => Box::new(News::new(env)),
        "social_post" => Box::new(Social::new(env)),
        "economic_indicator" => Box::new(Economic::new(env)),
        "supply_chain_metric" => Box::new(Supply::new()),
        "earnings_event" => Box::new(Earnings::new(env)),
        "sec_filing" => Box::new(SecFiling::new()),
        "feature" => Box::new(Feature::new()),
        "insight" => Box::new(Insight::new()),
        "strategy" => Box::new(Strategy::new(env)),
        "signal" => Box::new(Signal::new(env)),
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// Helpers.

fn pick<'a, T>(rng: &mut ChaCha8Rng, xs: &'a [T]) -> &'a T {
    &xs[rng.gen_range(0..xs.len())]
}

/// A standard normal deviate (Box-Muller).
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

pub(crate) fn round_dp(x: f64, dp: i32) -> f64 {
    let p = 10f64.powi(dp);
    (x * p).round() / p
}

/// Decimal places of an instrument's tick size, by price level.
pub(crate) fn decimals(price: f64) -> i32 {
    if price < 0.1 {
        6
    } else if price < 1.0 {
        4
    } else if price < 10.0 {
        3
    } else {
        2
    }
}

/// UTC offset (seconds) of a venue's local time, as exchange feeds stamp their ticks.
fn venue_offset(exchange: &str) -> i32 {
    match exchange {
        "NASDAQ" | "NYSE" | "BATS" | "ARCA" | "IEX" | "EDGX" => -4 * 3600,
        "XETRA" | "EURONEXT" => 2 * 3600,
        "LSE" => 3600,
        "TSE" => 9 * 3600,
        "HKEX" => 8 * 3600,
        _ => 0,
    }
}

/// A key timestamp (sub-millisecond precision matters): RFC 3339, mostly UTC, sometimes local time.
fn key_ts(micros: i64, offset: i32, rng: &mut ChaCha8Rng) -> V {
    if offset != 0 && rng.gen_bool(0.25) {
        V::Ts(micros, TsStyle::Offset(offset))
    } else {
        V::Ts(micros, TsStyle::Utc)
    }
}

/// A non-key timestamp: RFC 3339 or epoch milliseconds (then truncated to the millisecond).
fn any_ts(micros: i64, offset: i32, rng: &mut ChaCha8Rng) -> V {
    match rng.gen_range(0..10) {
        0..=1 => V::Ts(micros - micros.rem_euclid(1000), TsStyle::Millis),
        2..=3 if offset != 0 => V::Ts(micros, TsStyle::Offset(offset)),
        _ => V::Ts(micros, TsStyle::Utc),
    }
}

/// Codes as spiders send them: mostly canonical, sometimes lower-case or padded (the validator
/// trims and upper-cases).
fn sloppy_code(code: &str, rng: &mut ChaCha8Rng) -> String {
    match rng.gen_range(0..40) {
        0 => code.to_ascii_lowercase(),
        1 => format!(" {code} "),
        _ => code.to_owned(),
    }
}

/// A random walk of prices, one per instrument, slightly mean-reverting to its start.
struct Walk {
    start: Vec<f64>,
    px: Vec<f64>,
    vol: f64,
}

impl Walk {
    fn new(start: Vec<f64>, vol: f64) -> Self {
        Self {
            px: start.clone(),
            start,
            vol,
        }
    }

    fn step(&mut self, k: usize, rng: &mut ChaCha8Rng) -> f64 {
        let drift = -0.002 * (self.px[k] / self.start[k]).ln();
        self.px[k] *= (drift + self.vol * normal(rng)).exp();
        self.px[k]
    }
}

fn lower36(n: u64) -> String {
    base36(n).to_ascii_lowercase()
}

fn days(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()).num_days() as i32
}

/// A person's name from the name lists.
fn person(rng: &mut ChaCha8Rng) -> String {
    format!("{} {}", pick(rng, FIRST_NAMES), pick(rng, LAST_NAMES))
}

// ---------------------------------------------------------------------------------------------
// Market data.

struct MarketData {
    walk: Walk,
    defects: Vec<Defect>,
}

impl MarketData {
    fn new() -> Self {
        let mut defects = vec![
            d(
                R::MissingField,
                On::Json,
                Kind::Remove(&["symbol", "exchange", "ts", "price", "volume", "currency"]),
            ),
            d(
                R::InvalidSymbol,
                On::Both,
                Kind::Strs("symbol", &["AA PL", "BRK B", "ÄPFEL", "", "AAPL$"]),
            ),
            d(
                R::InvalidSymbol,
                On::Both,
                Kind::Strs("exchange", &["NEW YORK", "XETRA!", "LONDON STOCK EXCHANGE"]),
            ),
            d(
                R::NonFinite,
                On::Avro,
                Kind::NonFinite(&["price", "volume", "bid", "ask"]),
            ),
            d(R::NonPositive, On::Both, Kind::F64s("price", &[0.0, -1.25])),
            d(R::NonPositive, On::Both, Kind::F64s("bid", &[0.0, -0.01])),
            d(R::Negative, On::Both, Kind::F64s("volume", &[-100.0, -1.0])),
            d(
                R::InvalidCurrency,
                On::Both,
                Kind::Strs("currency", &["XYZ", "US", "DOLLAR", "€"]),
            ),
            d(R::CrossedBook, On::Both, Kind::Custom(cross_quote)),
        ];
        defects.extend(partition_ts_defects("ts"));
        Self {
            walk: Walk::new(EQUITIES.iter().map(|e| e.price).collect(), 0.0004),
            defects,
        }
    }
}

/// Bid above ask.
fn cross_quote(rec: &mut Rec, rng: &mut ChaCha8Rng, _: &Env) {
    let p = rec.get("price").and_then(V::as_f64).unwrap_or(100.0);
    let delta = p * rng.gen_range(0.0005..0.01);
    rec.set("bid", V::F64(p + delta));
    rec.set("ask", V::F64(p - delta));
}

impl Builder for MarketData {
    fn build(&mut self, i: u64, rng: &mut ChaCha8Rng, env: &Env) -> Base {
        let k = rng.gen_range(0..EQUITIES.len());
        let e = &EQUITIES[k];
        let p = self.walk.step(k, rng);
        let scale = 10f64.powi(decimals(p));
        let ticks = ((p * scale).round() as i64).max(10);
        let px = |t: i64| t as f64 / scale;
        let below = rng.gen_range(0..=3);
        let above = rng.gen_range(if below == 0 { 1 } else { 0 }..=3);
        let (bid, ask) = match rng.gen_range(0..20) {
            0 => (None, None),
            1 => (Some(px(ticks - below)), None),
            2 => (None, Some(px(ticks + above))),
            _ => (Some(px(ticks - below)), Some(px(ticks + above))),
        };
        let exchange = if e.currency == "USD" && rng.gen_bool(0.25) {
            *pick(rng, US_VENUES)
        } else {
            e.exchange
        };
        let volume = if rng.gen_bool(0.1) {
            f64::from(rng.gen_range(1..100))
        } else {
            f64::from(rng.gen_range(1..=50) * 100)
        };
        let mut r = Rec::with_capacity(8);
        r.put("symbol", V::Str(sloppy_code(e.symbol, rng)))
            .put("exchange", V::s(exchange))
            .put("ts", key_ts(env.ts(i), venue_offset(exchange), rng))
            .put("price", V::F64(px(ticks)))
            .put("volume", V::F64(volume))
            .put("bid", V::opt(bid.map(V::F64)))
            .put("ask", V::opt(ask.map(V::F64)))
            .put("currency", V::Str(sloppy_code(e.currency, rng)));
        Base {
            rec: r,
            key: e.symbol.as_bytes().to_vec(),
            rows: vec![("market_data", 1)],
        }
    }

    fn defects(&self) -> &[Defect] {
        &self.defects
    }
}

// ---------------------------------------------------------------------------------------------
// Crypto data.

struct CryptoData {
    walk: Walk,
    defects: Vec<Defect>,
}

impl CryptoData {
    fn new() -> Self {
        let mut defects = vec![
            d(
                R::MissingField,
                On::Json,
                Kind::Remove(&[
                    "symbol",
                    "exchange",
                    "ts",
                    "price",
                    "volume",
                    "quote_currency",
                ]),
            ),
            d(
                R::InvalidSymbol,
                On::Both,
                Kind::Strs("symbol", &["BTC USD", "BTC:USD", "₿-USD"]),
            ),
            d(
                R::InvalidSymbol,
                On::Both,
                Kind::Strs("exchange", &["COIN BASE", "BINANCE.COM"]),
            ),
            d(
                R::NonFinite,
                On::Avro,
                Kind::NonFinite(&["price", "volume", "market_cap"]),
            ),
            d(
                R::NonPositive,
                On::Both,
                Kind::F64s("price", &[0.0, -64_000.0]),
            ),
            d(R::Negative, On::Both, Kind::F64s("volume", &[-0.5, -12.0])),
            d(R::Negative, On::Both, Kind::F64s("market_cap", &[-1.0e9])),
            d(
                R::InvalidCurrency,
                On::Both,
                Kind::Strs(
                    "quote_currency",
                    &["U", "US DOLLAR", "TETHER-USD", "STABLECOIN12"],
                ),
            ),
        ];
        defects.extend(partition_ts_defects("ts"));
        Self {
            walk: Walk::new(PAIRS.iter().map(|p| p.price).collect(), 0.0008),
            defects,
        }
    }
}

impl Builder for CryptoData {
    fn build(&mut self, i: u64, rng: &mut ChaCha8Rng, env: &Env) -> Base {
        let k = rng.gen_range(0..PAIRS.len());
        let pair = &PAIRS[k];
        let p = self.walk.step(k, rng);
        let price = round_dp(p, decimals(p));
        let volume = round_dp((normal(rng) * 1.2).exp() * 500.0 / p.max(0.01), 6).max(0.000_001);
        let cap = (pair.quote != "BTC" && rng.gen_bool(0.6)).then(|| (price * pair.supply).round());
        let mut r = Rec::with_capacity(7);
        r.put("symbol", V::Str(sloppy_code(pair.symbol, rng)))
            .put("exchange", V::s(*pick(rng, CRYPTO_EXCHANGES)))
            .put("ts", key_ts(env.ts(i), 0, rng))
            .put("price", V::F64(price))
            .put("volume", V::F64(volume))
            .put("market_cap", V::opt(cap.map(V::F64)))
            .put("quote_currency", V::Str(sloppy_code(pair.quote, rng)));
        Base {
            rec: r,
            key: pair.symbol.as_bytes().to_vec(),
            rows: vec![("crypto_data", 1)],
        }
    }

    fn defects(&self) -> &[Defect] {
        &self.defects
    }
}

// ---------------------------------------------------------------------------------------------
// Order books.

struct OrderBook {
    walk: Walk,
    defects: Vec<Defect>,
}

/// Instrument `k` of the order-book universe: equities, then crypto pairs.
fn book_instrument(k: usize, rng: &mut ChaCha8Rng) -> (&'static str, &'static str, bool) {
    if k < EQUITIES.len() {
        (EQUITIES[k].symbol, EQUITIES[k].exchange, true)
    } else {
        (
            PAIRS[k - EQUITIES.len()].symbol,
            *pick(rng, CRYPTO_EXCHANGES),
            false,
        )
    }
}

impl OrderBook {
    fn new() -> Self {
        let mut defects = vec![
            d(
                R::MissingField,
                On::Json,
                Kind::Remove(&["symbol", "exchange", "ts", "bids", "asks"]),
            ),
            d(
                R::InvalidSymbol,
                On::Both,
                Kind::Strs("symbol", &["BTC USD", "AAPL?"]),
            ),
            d(
                R::InvalidSymbol,
                On::Both,
                Kind::Strs("exchange", &["NASDAQ GS"]),
            ),
            d(R::InvalidBook, On::Both, Kind::Custom(book_empty_side)),
            d(R::InvalidBook, On::Both, Kind::Custom(book_duplicate_level)),
            d(R::InvalidBook, On::Both, Kind::Custom(book_too_deep)),
            d(R::NonPositive, On::Both, Kind::Custom(book_non_positive)),
            d(R::NonFinite, On::Avro, Kind::Custom(book_non_finite)),
            d(R::CrossedBook, On::Both, Kind::Custom(book_cross)),
        ];
        defects.extend(partition_ts_defects("ts"));
        let start = EQUITIES
            .iter()
            .map(|e| e.price)
            .chain(PAIRS.iter().map(|p| p.price))
            .collect();
        Self {
            walk: Walk::new(start, 0.0005),
            defects,
        }
    }
}

fn level(price: f64, size: f64) -> V {
    let mut r = Rec::with_capacity(2);
    r.put("price", V::F64(price)).put("size", V::F64(size));
    V::Rec(r)
}

fn levels_mut<'a>(rec: &'a mut Rec, side: &'static str) -> &'a mut Vec<V> {
    levels_mut_named(rec, side)
}

fn level_prices(rec: &Rec, side: &str) -> Vec<f64> {
    match rec.get(side) {
        Some(V::Arr(v)) => v
            .iter()
            .filter_map(|l| match l {
                V::Rec(r) => r.get("price").and_then(V::as_f64),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn side(rng: &mut ChaCha8Rng) -> &'static str {
    if rng.gen_bool(0.5) {
        "bids"
    } else {
        "asks"
    }
}

fn book_empty_side(rec: &mut Rec, rng: &mut ChaCha8Rng, _: &Env) {
    levels_mut(rec, side(rng)).clear();
}

fn book_duplicate_level(rec: &mut Rec, rng: &mut ChaCha8Rng, _: &Env) {
    let v = levels_mut(rec, side(rng));
    if let Some(V::Rec(l)) = v.choose(rng).cloned() {
        let mut dup = l;
        dup.set("size", V::F64(rng.gen_range(1..50) as f64));
        v.push(V::Rec(dup));
    }
}

fn book_too_deep(rec: &mut Rec, rng: &mut ChaCha8Rng, _: &Env) {
    let v = levels_mut(rec, side(rng));
    let n = MAX_BOOK_DEPTH + 1 + rng.gen_range(0..20);
    let first = v.first().cloned().unwrap_or_else(|| level(1.0, 1.0));
    while v.len() < n {
        v.push(first.clone());
    }
}

fn book_non_positive(rec: &mut Rec, rng: &mut ChaCha8Rng, _: &Env) {
    let v = levels_mut(rec, side(rng));
    let k = rng.gen_range(0..v.len().max(1));
    if let Some(V::Rec(l)) = v.get_mut(k) {
        if rng.gen_bool(0.5) {
            l.set("size", V::F64(0.0));
        } else {
            let p = l.get("price").and_then(V::as_f64).unwrap_or(1.0);
            l.set("price", V::F64(-p));
        }
    }
}

fn book_non_finite(rec: &mut Rec, rng: &mut ChaCha8Rng, _: &Env) {
    let v = levels_mut(rec, side(rng));
    let k = rng.gen_range(0..v.len().max(1));
    if let Some(V::Rec(l)) = v.get_mut(k) {
        let field = if rng.gen_bool(0.5) { "size" } else { "price" };
        l.set(field, V::F64(f64::NAN));
    }
}

/// A bid at or above the best ask.
fn book_cross(rec: &mut Rec, rng: &mut ChaCha8Rng, _: &Env) {
    let best_ask = level_prices(rec, "asks")
        .into_iter()
        .fold(f64::INFINITY, f64::min);
    let best_ask = if best_ask.is_finite() { best_ask } else { 1.0 };
    let price = best_ask * (1.0 + f64::from(rng.gen_range(0..3)) * 0.001);
    levels_mut(rec, "bids").insert(0, level(price, 100.0));
}

impl Builder for OrderBook {
    fn build(&mut self, i: u64, rng: &mut ChaCha8Rng, env: &Env) -> Base {
        let k = rng.gen_range(0..EQUITIES.len() + PAIRS.len());
        let (symbol, exchange, equity) = book_instrument(k, rng);
        let mid = self.walk.step(k, rng);
        let dp = decimals(mid);
        let scale = 10f64.powi(dp);
        let mid_t = ((mid * scale).round() as i64).max(100);
        let half = rng.gen_range(1..=3);
        let size = |rng: &mut ChaCha8Rng| {
            if equity {
                f64::from(rng.gen_range(1..=40) * 100)
            } else {
                round_dp((normal(rng)).exp() * 2.0, 4).max(0.0001)
            }
        };
        let make_side = |start: i64, dir: i64, rng: &mut ChaCha8Rng| {
            let n = rng.gen_range(5..=20);
            let mut out = Vec::with_capacity(n);
            let mut t = start;
            for _ in 0..n {
                if t <= 0 {
                    break;
                }
                out.push(level(t as f64 / scale, size(rng)));
                t += dir * rng.gen_range(1..=3);
            }
            match rng.gen_range(0..20) {
                0..=1 => out.reverse(),
                2 => out.shuffle(rng),
                _ => {}
            }
            out
        };
        let bids = make_side(mid_t - half, -1, rng);
        let asks = make_side(mid_t + half, 1, rng);
        let mut r = Rec::with_capacity(5);
        r.put("symbol", V::Str(sloppy_code(symbol, rng)))
            .put("exchange", V::s(exchange))
            .put("ts", key_ts(env.ts(i), venue_offset(exchange), rng))
            .put("bids", V::Arr(bids))
            .put("asks", V::Arr(asks));
        Base {
            rec: r,
            key: symbol.as_bytes().to_vec(),
            rows: vec![("order_book", 1)],
        }
    }

    fn defects(&self) -> &[Defect] {
        &self.defects
    }
}

// ---------------------------------------------------------------------------------------------
// Entities (news articles and social posts).

/// One entity of the universe; (entity_type, name) is unique across it.
struct Ent {
    name: String,
    etype: &'static str,
    symbol: Option<&'static str>,
}

struct Entities {
    all: Vec<Ent>,
    /// Per equity: the indexes of its company, ticker, chief executive, home town and product.
    related: Vec<Vec<usize>>,
}

impl Entities {
    fn new() -> Self {
        let mut all: Vec<Ent> = Vec::new();
        let mut index: HashMap<(&'static str, String), usize> = HashMap::new();
        let mut add = |name: &str, etype: &'static str, symbol: Option<&'static str>| -> usize {
            *index.entry((etype, name.to_owned())).or_insert_with(|| {
                all.push(Ent {
                    name: name.to_owned(),
                    etype,
                    symbol,
                });
                all.len() - 1
            })
        };
        let mut related = Vec::new();
        for e in EQUITIES {
            related.push(vec![
                add(e.company, "organization", Some(e.symbol)),
                add(e.symbol, "ticker", Some(e.symbol)),
                add(e.ceo, "person", None),
                add(e.hq, "location", None),
                add(e.product, "product", None),
            ]);
        }
        for p in PEOPLE {
            add(p, "person", None);
        }
        for p in PLACES {
            add(p, "location", None);
        }
        for p in EVENTS {
            add(p, "event", None);
        }
        for p in OTHER {
            add(p, "other", None);
        }
        for p in PAIRS {
            add(p.symbol, "ticker", Some(p.symbol));
        }
        Self { all, related }
    }

    /// Up to `k` distinct entities, those related to `equity` first.
    fn choose(&self, equity: usize, k: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
        let mut out: Vec<usize> = Vec::with_capacity(k);
        let mut related = self.related[equity].clone();
        related.shuffle(rng);
        for r in related {
            if out.len() >= k.min(3) {
                break;
            }
            out.push(r);
        }
        let mut guard = 0;
        while out.len() < k && guard < 100 {
            let x = rng.gen_range(0..self.all.len());
            if !out.contains(&x) {
                out.push(x);
            }
            guard += 1;
        }
        out
    }

    fn wire(&self, ids: &[usize], rng: &mut ChaCha8Rng) -> Vec<V> {
        ids.iter()
            .map(|&x| {
                let e = &self.all[x];
                let mut r = Rec::with_capacity(5);
                r.put("name", V::s(e.name.as_str()))
                    .put(
                        "entity_type",
                        V::s(if rng.gen_range(0..30) == 0 {
                            e.etype.to_ascii_uppercase()
                        } else {
                            e.etype.to_owned()
                        }),
                    )
                    .put("symbol", V::opt(e.symbol.map(V::s)))
                    .put(
                        "salience",
                        V::opt(rng.gen_bool(0.9).then(|| V::F64(round_dp(rng.gen(), 3)))),
                    )
                    .put(
                        "sentiment",
                        V::opt(
                            rng.gen_bool(0.8)
                                .then(|| V::F64(round_dp(rng.gen_range(-1.0..=1.0), 3))),
                        ),
                    );
                V::Rec(r)
            })
            .collect()
    }
}

pub(crate) fn entity(name: &str, etype: &str) -> V {
    let mut r = Rec::with_capacity(5);
    r.put("name", V::s(name))
        .put("entity_type", V::s(etype))
        .put("symbol", V::none())
        .put("salience", V::some(V::F64(0.5)))
        .put("sentiment", V::none());
    V::Rec(r)
}

/// The entities of a record, with at least one.
fn entities_mut(rec: &mut Rec) -> &mut Vec<V> {
    let v = levels_mut_named(rec, "entities");
    if v.is_empty() {
        v.push(entity("Reuters", "organization"));
    }
    v
}

fn levels_mut_named<'a>(rec: &'a mut Rec, name: &'static str) -> &'a mut Vec<V> {
    if !matches!(rec.get(name), Some(V::Arr(_))) {
        rec.replace(name, V::Arr(Vec::new()));
    }
    match rec.get_mut(name) {
        Some(V::Arr(v)) => v,
        _ => unreachable!("just set"),
    }
}

fn with_one_entity(rec: &mut Rec, rng: &mut ChaCha8Rng, f: impl FnOnce(&mut Rec, &mut ChaCha8Rng)) {
    let v = entities_mut(rec);
    let k = rng.gen_range(0..v.len());
    if let Some(V::Rec(e)) = v.get_mut(k) {
        f(e, rng);
    }
}

fn entity_bad_type(rec: &mut Rec, rng: &mut ChaCha8Rng, _: &Env) {
    with_one_entity(rec, rng, |e, rng| {
        let t = *["company", "alien", "ORG", "place"]
            .choose(rng)
            .unwrap_or(&"alien");
        e.set("entity_type", V::s(t));
    });
}

fn entity_duplicate(rec: &mut Rec, rng: &mut ChaCha8Rng, _: &Env) {
    let v = entities_mut(rec);
    if let Some(V::Rec(e)) = v.choose(rng).cloned() {
        let mut dup = e;
        // The same entity again, spelled with extra blanks / another case of the type.
        if let Some(name) = dup.get("name").and_then(V::as_str).map(str::to_owned) {
            dup.set("name", V::Str(format!(" {name} ")));
        }
        if let Some(t) = dup
            .get("entity_type")
            .and_then(V::as_str)
            .map(str::to_owned)
        {
            dup.set("entity_type", V::Str(t.to_ascii_uppercase()));
        }
        let at = rng.gen_range(0..=v.len());
        v.insert(at, V::Rec(dup));
    }
}

fn entity_out_of_range(rec: &mut Rec, rng: &mut ChaCha8Rng, _: &Env) {
    match rng.gen_range(0..5) {
        0 => {
            // More entities than any article has: an extractor gone wrong.
            let v = entities_mut(rec);
            let first = v[0].clone();
            let n = MAX_ENTITIES + 1;
            while v.len() < n {
                v.push(first.clone());
            }
        }
        1 | 2 => with_one_entity(rec, rng, |e, rng| {
            e.set(
                "salience",
                V::F64(*[1.5, -0.2, 7.0].choose(rng).unwrap_or(&1.5)),
            );
        }),
        _ => with_one_entity(rec, rng, |e, rng| {
            e.set(
                "sentiment",
                V::F64(*[-1.7, 2.0, 45.0].choose(rng).unwrap_or(&2.0)),
            );
        }),
    }
}

fn entity_bad_symbol(rec: &mut Rec, rng: &mut ChaCha8Rng, _: &Env) {
    with_one_entity(rec, rng, |e, rng| {
        let s = *["NOT A SYMBOL", "AAPL!", "€STX50"]
            .choose(rng)
            .unwrap_or(&"AAPL!");
        e.set("symbol", V::s(s));
    });
}

fn entity_non_finite(rec: &mut Rec, rng: &mut ChaCha8Rng, _: &Env) {
    with_one_entity(rec, rng, |e, rng| {
        let f = if rng.gen_bool(0.5) {
            "salience"
        } else {
            "sentiment"
        };
        e.set(f, V::F64(f64::NAN));
    });
}

fn entity_blank_name(rec: &mut Rec, rng: &mut ChaCha8Rng, _: &Env) {
    with_one_entity(rec, rng, |e, _| e.set("name", V::s("  ")));
}

fn entity_nul_name(rec: &mut Rec, rng: &mut ChaCha8Rng, _: &Env) {
    with_one_entity(rec, rng, |e, _| e.set("name", V::s("Apple\u{0} Inc.")));
}

fn entity_long_name(rec: &mut Rec, rng: &mut ChaCha8Rng, _: &Env) {
    with_one_entity(rec, rng, |e, rng| {
        let n = 201 + rng.gen_range(0..50);
        e.set(
            "name",
            V::Str("Société Générale ".chars().cycle().take(n).collect()),
        );
    });
}

fn entity_defects() -> Vec<Defect> {
    vec![
        d(R::UnknownEnum, On::Both, Kind::Custom(entity_bad_type)),
        d(R::DuplicateEntity, On::Both, Kind::Custom(entity_duplicate)),
        d(R::OutOfRange, On::Both, Kind::Custom(entity_out_of_range)),
        d(R::InvalidSymbol, On::Both, Kind::Custom(entity_bad_symbol)),
        d(R::NonFinite, On::Avro, Kind::Custom(entity_non_finite)),
        d(R::MissingField, On::Both, Kind::Custom(entity_blank_name)),
        d(R::InvalidText, On::Both, Kind::Custom(entity_nul_name)),
        d(R::TextTooLong, On::Both, Kind::Custom(entity_long_name)),
    ]
}

const BAD_LANGUAGES: &[&str] = &["english", "e", "en-US", "1"];

// ---------------------------------------------------------------------------------------------
// News articles.

struct News {
    entities: Entities,
    /// `<seed36>-<base36>` in lower case: makes URLs unique per seed and base time.
    tag: String,
    defects: Vec<Defect>,
}

impl News {
    fn new(env: &Env) -> Self {
        let mut defects = vec![
            d(
                R::MissingField,
                On::Json,
                Kind::Remove(&["url", "title", "source", "published_at"]),
            ),
            d(R::MissingField, On::Both, Kind::Blank(&["title", "source"])),
            d(
                R::InvalidUrl,
                On::Both,
                Kind::Strs(
                    "url",
                    &[
                        "not a url",
                        "ftp://files.example.com/report.pdf",
                        "/markets/2024/06/01/story",
                        "http://",
                        "javascript:void(0)",
                    ],
                ),
            ),
            d(
                R::InvalidText,
                On::Both,
                Kind::Nul(&["title", "source", "author", "body"]),
            ),
            d(
                R::TextTooLong,
                On::Both,
                Kind::TooLong(&[("title", 1000), ("author", 200), ("source", 200)]),
            ),
            d(
                R::InvalidLanguage,
                On::Both,
                Kind::Strs("language", BAD_LANGUAGES),
            ),
        ];
        defects.extend(ts_defects("published_at"));
        defects.extend(entity_defects());
        Self {
            entities: Entities::new(),
            tag: format!(
                "{}-{}",
                env.seed36.to_ascii_lowercase(),
                env.base36.to_ascii_lowercase()
            ),
            defects,
        }
    }
}

const MOVES_UP: &[&str] = &["rise", "jump", "climb", "rally"];
const MOVES_DOWN: &[&str] = &["fall", "slide", "drop", "sink"];
const CATALYSTS: &[&str] = &[
    "quarterly results",
    "an analyst upgrade",
    "a guidance cut",
    "a regulatory probe",
    "a product launch",
    "merger talks",
];
const BANKS: &[&str] = &[
    "Goldman Sachs",
    "Morgan Stanley",
    "UBS",
    "Barclays",
    "BNP Paribas",
    "Nomura",
];
const WEEKDAYS: &[&str] = &["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"];

fn slug(title: &str) -> String {
    let mut s = String::with_capacity(title.len());
    for w in title
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if s.len() + w.len() > 70 {
            break;
        }
        if !s.is_empty() {
            s.push('-');
        }
        s.push_str(&w.to_ascii_lowercase());
    }
    s
}

impl Builder for News {
    fn build(&mut self, i: u64, rng: &mut ChaCha8Rng, env: &Env) -> Base {
        let q = rng.gen_range(0..EQUITIES.len());
        let e = &EQUITIES[q];
        let (source, host, lang) = *pick(rng, NEWS_SOURCES);
        let pct = round_dp(rng.gen_range(0.2..9.5), 1);
        let up = rng.gen_bool(0.5);
        let mv = if up {
            pick(rng, MOVES_UP)
        } else {
            pick(rng, MOVES_DOWN)
        };
        let title = match rng.gen_range(0..6) {
            0 => format!(
                "{} shares {mv} {pct}% after {}",
                e.short,
                pick(rng, CATALYSTS)
            ),
            1 => format!(
                "{} to buy back ${}bn of stock",
                e.short,
                rng.gen_range(1..=60)
            ),
            2 => format!(
                "{} says {} remain in focus",
                pick(rng, PEOPLE),
                pick(rng, OTHER)
            ),
            3 => format!(
                "{} stocks {} ahead of {}",
                pick(rng, PLACES),
                if up { "rally" } else { "slip" },
                pick(rng, EVENTS)
            ),
            4 => format!("{} unveils new {}", e.short, e.product),
            _ => format!(
                "{} beats estimates on strong {} demand; {} hails 'record quarter'",
                e.short, e.product, e.ceo
            ),
        };
        let body = rng.gen_bool(0.85).then(|| {
            let n = rng.gen_range(2..=7);
            let mut b = String::with_capacity(160 * n);
            for s in 0..n {
                if s > 0 {
                    b.push(if rng.gen_range(0..4) == 0 { '\n' } else { ' ' });
                }
                match rng.gen_range(0..5) {
                    0 => b.push_str(&format!(
                        "{} ({}) shares {} {pct}% in {} trading on {}.",
                        e.company,
                        e.symbol,
                        if up { "rose" } else { "fell" },
                        e.exchange,
                        pick(rng, WEEKDAYS)
                    )),
                    1 => b.push_str(&format!(
                        "Analysts at {} {} their price target to {:.0} {}.",
                        pick(rng, BANKS),
                        if up { "raised" } else { "cut" },
                        e.price * rng.gen_range(0.8..1.3),
                        e.currency
                    )),
                    2 => b.push_str(&format!(
                        "{} said on {} that {} would weigh on the outlook in the coming months.",
                        pick(rng, PEOPLE),
                        pick(rng, WEEKDAYS),
                        pick(rng, OTHER)
                    )),
                    3 => b.push_str(&format!(
                        "Investors are watching the {} closely.",
                        pick(rng, EVENTS)
                    )),
                    _ => b.push_str(&format!(
                        "The company, based in {}, is led by {}.",
                        e.hq, e.ceo
                    )),
                }
            }
            b
        });
        let author = rng.gen_bool(0.8).then(|| {
            if rng.gen_range(0..5) == 0 {
                format!("{} and {}", person(rng), person(rng))
            } else {
                person(rng)
            }
        });
        let day = env.base_date();
        let mut url = format!(
            "https://{}/{}/{}/{:02}/{:02}/{}-{}-{}",
            if rng.gen_range(0..20) == 0 {
                host.to_ascii_uppercase()
            } else {
                host.to_owned()
            },
            pick(rng, NEWS_SECTIONS),
            day.year(),
            day.month(),
            day.day(),
            slug(&title),
            self.tag,
            lower36(i)
        );
        match rng.gen_range(0..20) {
            0 => url.push_str("#comments"),
            1 => url.push_str("?utm_source=twitter&utm_medium=social"),
            _ => {}
        }
        let k = rng.gen_range(0..=6);
        let ids = self.entities.choose(q, k, rng);
        let ents = self.entities.wire(&ids, rng);
        let n_ents = ents.len();
        let mut r = Rec::with_capacity(8);
        r.put("url", V::Str(url))
            .put("title", V::Str(title))
            .put("body", V::opt(body.map(V::Str)))
            .put("source", V::s(source))
            .put("author", V::opt(author.map(V::Str)))
            .put("published_at", any_ts(env.ts(i), 0, rng))
            .put("language", V::opt(rng.gen_bool(0.9).then(|| V::s(lang))))
            .put("entities", V::Arr(ents));
        Base {
            rec: r,
            key: host.as_bytes().to_vec(),
            rows: vec![("news_article", 1), ("news_entity", n_ents)],
        }
    }

    fn defects(&self) -> &[Defect] {
        &self.defects
    }
}

// ---------------------------------------------------------------------------------------------
// Social posts.

struct Social {
    entities: Entities,
    tag: String,
    defects: Vec<Defect>,
}

impl Social {
    fn new(env: &Env) -> Self {
        let mut defects = vec![
            d(
                R::MissingField,
                On::Json,
                Kind::Remove(&["platform", "post_id", "author", "text", "posted_at"]),
            ),
            d(
                R::MissingField,
                On::Both,
                Kind::Blank(&["post_id", "author", "text"]),
            ),
            d(
                R::UnknownEnum,
                On::Both,
                Kind::Strs("platform", &["myspace", "facebook", "tik tok"]),
            ),
            d(
                R::InvalidText,
                On::Both,
                Kind::Nul(&["author", "text", "post_id"]),
            ),
            d(
                R::TextTooLong,
                On::Both,
                Kind::TooLong(&[("author", 200), ("post_id", 128), ("text", 40_000)]),
            ),
            d(
                R::InvalidUrl,
                On::Both,
                Kind::Strs(
                    "url",
                    &[
                        "twitter.com/someone/status/1",
                        "javascript:alert(1)",
                        "mailto:ir@example.com",
                    ],
                ),
            ),
            d(R::Negative, On::Both, Kind::Longs("likes", &[-1, -42])),
            d(R::Negative, On::Both, Kind::Longs("shares", &[-3])),
            d(
                R::InvalidLanguage,
                On::Both,
                Kind::Strs("language", BAD_LANGUAGES),
            ),
        ];
        defects.extend(ts_defects("posted_at"));
        defects.extend(entity_defects());
        Self {
            entities: Entities::new(),
            tag: format!(
                "{}_{}",
                env.seed36.to_ascii_lowercase(),
                env.base36.to_ascii_lowercase()
            ),
            defects,
        }
    }
}

const EMOJI: &[&str] = &["🚀", "📈", "📉", "🐻", "🐂", "💎🙌", "🤔", ""];

impl Builder for Social {
    fn build(&mut self, i: u64, rng: &mut ChaCha8Rng, env: &Env) -> Base {
        let q = rng.gen_range(0..EQUITIES.len());
        let e = &EQUITIES[q];
        let platform = *pick(rng, PLATFORMS);
        let numeric = matches!(platform, "twitter" | "stocktwits" | "mastodon");
        let post_id = if numeric {
            format!("{}{:010}{:010}", env.seed, env.base_secs.max(0), i)
        } else if platform == "reddit" {
            format!("t3_{}_{}", self.tag, lower36(i))
        } else {
            format!("{}.{}", self.tag, lower36(i))
        };
        let author = format!(
            "{}_{}{}",
            pick(rng, HANDLE_WORDS),
            pick(rng, LAST_NAMES)
                .chars()
                .filter(char::is_ascii_alphabetic)
                .collect::<String>()
                .to_ascii_lowercase(),
            rng.gen_range(1..999)
        );
        let cashtag = format!("${}", e.symbol.split('.').next().unwrap_or(e.symbol));
        let text = match rng.gen_range(0..5) {
            0 => format!(
                "{cashtag} looking strong into earnings {} target {:.0}",
                pick(rng, EMOJI),
                e.price * rng.gen_range(1.05..1.4)
            ),
            1 => format!(
                "{} sounding hawkish again... {} {}",
                pick(rng, PEOPLE),
                cashtag,
                pick(rng, EMOJI)
            ),
            2 => format!(
                "Sold my {cashtag} calls. {} is priced in imo. {}",
                pick(rng, OTHER),
                pick(rng, EMOJI)
            ),
            3 => format!(
                "Anyone else watching {} and {} ahead of the {}?",
                cashtag,
                pick(rng, PAIRS).symbol,
                pick(rng, EVENTS)
            ),
            _ => format!(
                "{} just announced a new {}. Bullish for {cashtag}? Thread 🧵\n1/ {}",
                e.short,
                e.product,
                pick(rng, CATALYSTS)
            ),
        };
        let url = rng.gen_bool(0.7).then(|| match platform {
            "twitter" => format!("https://twitter.com/{author}/status/{post_id}"),
            "reddit" => format!(
                "https://www.reddit.com/r/{}/comments/{}/",
                pick(rng, SUBREDDITS),
                post_id.trim_start_matches("t3_")
            ),
            "stocktwits" => format!("https://stocktwits.com/{author}/message/{post_id}"),
            "mastodon" => format!("https://mastodon.social/@{author}/{post_id}"),
            "bluesky" => format!("https://bsky.app/profile/{author}.bsky.social/post/{post_id}"),
            _ => format!("https://forum.example.org/t/{post_id}"),
        });
        let heavy = |rng: &mut ChaCha8Rng, scale: f64| ((normal(rng) * 1.6).exp() * scale) as i64;
        let likes = rng.gen_bool(0.85).then(|| heavy(rng, 12.0));
        let shares = rng.gen_bool(0.6).then(|| heavy(rng, 2.0));
        let k = rng.gen_range(0..=4);
        let ids = self.entities.choose(q, k, rng);
        let ents = self.entities.wire(&ids, rng);
        let n_ents = ents.len();
        let mut r = Rec::with_capacity(10);
        r.put("platform", V::s(platform))
            .put("post_id", V::Str(post_id))
            .put("author", V::Str(author))
            .put("text", V::Str(text))
            .put("url", V::opt(url.map(V::Str)))
            .put("posted_at", key_ts(env.ts(i), 0, rng))
            .put("likes", V::opt(likes.map(V::Long)))
            .put("shares", V::opt(shares.map(V::Long)))
            .put(
                "language",
                V::opt(rng.gen_bool(0.7).then(|| {
                    V::s(if rng.gen_range(0..10) == 0 {
                        "es"
                    } else {
                        "en"
                    })
                })),
            )
            .put("entities", V::Arr(ents));
        Base {
            rec: r,
            key: platform.as_bytes().to_vec(),
            rows: vec![("social_post", 1), ("social_entity", n_ents)],
        }
    }

    fn defects(&self) -> &[Defect] {
        &self.defects
    }
}

// ---------------------------------------------------------------------------------------------
// Economic indicators.

/// Consecutive periods of one series and country: its records share the Kafka key, and each block's
/// indicator code carries the run's tag and the block number, so natural keys stay unique now that
/// released_at is the version time rather than part of the key.
const ECONOMIC_PERIODS_PER_SERIES: u64 = 48;

struct Economic {
    tag: String,
    defects: Vec<Defect>,
}

fn bad_period(rec: &mut Rec, rng: &mut ChaCha8Rng, _: &Env) {
    let t = *["2024-02-30", "2024/01/01", "Q1 2024", "20240101"]
        .choose(rng)
        .unwrap_or(&"Q1 2024");
    rec.set("period_start", V::BadDate(t));
}

fn ancient_period(rec: &mut Rec, rng: &mut ChaCha8Rng, _: &Env) {
    let (y, m) = *[(1850, 1), (1899, 12), (2201, 1), (2350, 7)]
        .choose(rng)
        .unwrap_or(&(1850, 1));
    let date = NaiveDate::from_ymd_opt(y, m, 1).unwrap_or_default();
    rec.set("period_start", V::Date(days(date)));
}

impl Economic {
    fn new(env: &Env) -> Self {
        let mut defects = vec![
            d(
                R::MissingField,
                On::Json,
                Kind::Remove(&[
                    "indicator",
                    "country",
                    "frequency",
                    "period_start",
                    "value",
                    "unit",
                    "released_at",
                    "source",
                ]),
            ),
            d(R::MissingField, On::Both, Kind::Blank(&["unit", "source"])),
            d(
                R::InvalidSymbol,
                On::Both,
                Kind::Strs("indicator", &["CPI ALL ITEMS", "GDP/CAPITA", "CPI (YOY)"]),
            ),
            d(
                R::InvalidFormat,
                On::Both,
                Kind::Strs("country", &["USA", "U1", "United States", ""]),
            ),
            d(
                R::UnknownEnum,
                On::Both,
                Kind::Strs("frequency", &["hourly", "biweekly", "yearly"]),
            ),
            d(R::InvalidTimestamp, On::Both, Kind::Custom(bad_period)),
            d(R::OutOfRange, On::Both, Kind::Custom(ancient_period)),
            d(R::NonFinite, On::Avro, Kind::NonFinite(&["value"])),
            d(
                R::TextTooLong,
                On::Both,
                Kind::TooLong(&[("unit", 32), ("source", 200)]),
            ),
            d(R::InvalidText, On::Both, Kind::Nul(&["unit", "source"])),
        ];
        defects.extend(ts_defects("released_at"));
        Self {
            tag: format!("{}{:0>6}", env.seed36, env.base36),
            defects,
        }
    }
}

/// The start of the period a release covers: the latest complete period before the base date,
/// `back` periods further back.
fn period_start(frequency: &str, base: NaiveDate, back: u32) -> NaiveDate {
    let first_of_month = base.with_day(1).unwrap_or(base);
    let months_back =
        |d: NaiveDate, n: u32| d.checked_sub_months(chrono::Months::new(n)).unwrap_or(d);
    match frequency {
        "monthly" => months_back(first_of_month, 1 + back),
        "quarterly" => {
            let q0 = NaiveDate::from_ymd_opt(base.year(), (base.month0() / 3) * 3 + 1, 1)
                .unwrap_or(first_of_month);
            months_back(q0, 3 * (1 + back))
        }
        "weekly" => {
            base - ChronoDuration::days(
                i64::from(base.weekday().num_days_from_monday()) + 7 * (1 + i64::from(back)),
            )
        }
        "daily" => base - ChronoDuration::days(1 + i64::from(back)),
        _ => NaiveDate::from_ymd_opt(base.year() - 1 - back as i32, 1, 1).unwrap_or(base),
    }
}

impl Builder for Economic {
    fn build(&mut self, i: u64, rng: &mut ChaCha8Rng, env: &Env) -> Base {
        let block = i / ECONOMIC_PERIODS_PER_SERIES;
        let back = (i % ECONOMIC_PERIODS_PER_SERIES) as u32;
        let s = &SERIES[(block % SERIES.len() as u64) as usize];
        let (country, stats, bank, ccy) =
            COUNTRIES[((block / SERIES.len() as u64) % COUNTRIES.len() as u64) as usize];
        let source = if s.central_bank { bank } else { stats };
        let unit = if s.unit == "bn" {
            format!("bn {ccy}")
        } else {
            s.unit.to_owned()
        };
        let value = round_dp(s.value + s.spread * 0.5 * normal(rng), 2);
        let period = period_start(s.frequency, env.base_date(), back);
        let indicator = format!("{}.{}.{}", s.code, self.tag, base36(block));
        let mut r = Rec::with_capacity(8);
        r.put("indicator", V::Str(sloppy_code(&indicator, rng)))
            .put("country", V::Str(sloppy_code(country, rng)))
            .put("frequency", V::s(s.frequency))
            .put("period_start", V::Date(days(period)))
            .put("value", V::F64(value))
            .put("unit", V::Str(unit))
            .put("released_at", key_ts(env.ts(i), 0, rng))
            .put("source", V::s(source));
        Base {
            rec: r,
            key: format!("{country}.{}", s.code).into_bytes(),
            rows: vec![("economic_indicator", 1)],
        }
    }

    fn defects(&self) -> &[Defect] {
        &self.defects
    }
}

// ---------------------------------------------------------------------------------------------
// Supply-chain metrics.

struct Supply {
    defects: Vec<Defect>,
}

impl Supply {
    fn new() -> Self {
        let mut defects = vec![
            d(
                R::MissingField,
                On::Json,
                Kind::Remove(&[
                    "metric",
                    "location",
                    "observed_at",
                    "value",
                    "unit",
                    "source",
                ]),
            ),
            d(
                R::MissingField,
                On::Both,
                Kind::Blank(&["location", "unit", "source"]),
            ),
            d(
                R::UnknownEnum,
                On::Both,
                Kind::Strs(
                    "metric",
                    &["freight-rate", "warehouse_rent", "port congestion"],
                ),
            ),
            d(
                R::TextTooLong,
                On::Both,
                Kind::TooLong(&[("location", 128), ("unit", 32), ("source", 200)]),
            ),
            d(
                R::InvalidText,
                On::Both,
                Kind::Nul(&["location", "unit", "source"]),
            ),
            d(R::Negative, On::Both, Kind::F64s("value", &[-12.5, -0.01])),
            d(R::NonFinite, On::Avro, Kind::NonFinite(&["value"])),
        ];
        defects.extend(ts_defects("observed_at"));
        Self { defects }
    }
}

impl Builder for Supply {
    fn build(&mut self, i: u64, rng: &mut ChaCha8Rng, env: &Env) -> Base {
        let m = pick(rng, METRICS);
        let value = round_dp(rng.gen_range(m.lo..=m.hi), 2);
        let mut r = Rec::with_capacity(6);
        r.put("metric", V::s(m.metric))
            .put("location", V::s(*pick(rng, m.locations)))
            .put("observed_at", key_ts(env.ts(i), 0, rng))
            .put("value", V::F64(value))
            .put("unit", V::s(m.unit))
            .put("source", V::s(*pick(rng, m.sources)));
        Base {
            rec: r,
            key: m.metric.as_bytes().to_vec(),
            rows: vec![("supply_chain_metric", 1)],
        }
    }

    fn defects(&self) -> &[Defect] {
        &self.defects
    }
}

// ---------------------------------------------------------------------------------------------
// Earnings events.

/// Records per synthetic symbol: 25 fiscal years of 4 quarters.
const EARNINGS_PER_SYMBOL: u64 = 100;

struct Earnings {
    /// `<seed36><base36, 6 wide>`: the part of the synthetic symbol that makes it unique per run.
    tag: String,
    defects: Vec<Defect>,
}

impl Earnings {
    fn new(env: &Env) -> Self {
        let mut defects = vec![
            d(
                R::MissingField,
                On::Json,
                Kind::Remove(&[
                    "symbol",
                    "fiscal_year",
                    "fiscal_quarter",
                    "reported_at",
                    "currency",
                ]),
            ),
            d(
                R::InvalidSymbol,
                On::Both,
                Kind::Strs("symbol", &["APPLE INC", "AAPL$", ""]),
            ),
            d(
                R::OutOfRange,
                On::Both,
                Kind::Ints("fiscal_quarter", &[0, 5, -1]),
            ),
            d(
                R::OutOfRange,
                On::Both,
                Kind::Ints("fiscal_year", &[1899, 2201, 24]),
            ),
            d(
                R::NonFinite,
                On::Avro,
                Kind::NonFinite(&[
                    "eps_estimate",
                    "eps_actual",
                    "revenue_estimate",
                    "revenue_actual",
                ]),
            ),
            d(
                R::Negative,
                On::Both,
                Kind::F64s("revenue_estimate", &[-1.0e6]),
            ),
            d(
                R::Negative,
                On::Both,
                Kind::F64s("revenue_actual", &[-5.0e8]),
            ),
            d(
                R::InvalidCurrency,
                On::Both,
                Kind::Strs("currency", &["DOLLARS", "US$", "XYZ"]),
            ),
        ];
        defects.extend(ts_defects("reported_at"));
        Self {
            tag: format!("{}{:0>6}", env.seed36, env.base36),
            defects,
        }
    }
}

impl Builder for Earnings {
    fn build(&mut self, i: u64, rng: &mut ChaCha8Rng, env: &Env) -> Base {
        // The key (symbol, fiscal_year, fiscal_quarter) is a function of the index: each block of
        // 100 indexes is one synthetic share class of a real company, `<TICKER>.<run tag>.<block>`.
        let block = i / EARNINGS_PER_SYMBOL;
        let within = i % EARNINGS_PER_SYMBOL;
        let e = &EQUITIES[(block % EQUITIES.len() as u64) as usize];
        let symbol = format!("{}.{}.{}", e.symbol, self.tag, base36(block));
        let fiscal_year = env.base_date().year() - 1 - (within / 4) as i32;
        let fiscal_quarter = (within % 4) as i32 + 1;
        let scale = if e.currency == "JPY" { 150.0 } else { 1.0 };
        let eps_est = round_dp((1.5 + normal(rng)) * scale, 2);
        let eps_act = round_dp(eps_est + 0.2 * normal(rng) * scale, 2);
        let rev_est = (rng.gen_range(1.0e9..1.2e11_f64) * scale / 1e6).round() * 1e6;
        let rev_act = ((rev_est * (1.0 + 0.03 * normal(rng))) / 1e6).round() * 1e6;
        let opt =
            |rng: &mut ChaCha8Rng, x: f64, p: f64| V::opt(rng.gen_bool(p).then_some(V::F64(x)));
        let mut r = Rec::with_capacity(9);
        r.put("symbol", V::Str(symbol.clone()))
            .put("fiscal_year", V::Int(fiscal_year))
            .put("fiscal_quarter", V::Int(fiscal_quarter))
            .put(
                "reported_at",
                any_ts(env.ts(i), venue_offset(e.exchange), rng),
            )
            .put("eps_estimate", opt(rng, eps_est, 0.9))
            .put("eps_actual", opt(rng, eps_act, 0.95))
            .put("revenue_estimate", opt(rng, rev_est.max(0.0), 0.85))
            .put("revenue_actual", opt(rng, rev_act.max(0.0), 0.9))
            .put("currency", V::Str(sloppy_code(e.currency, rng)));
        Base {
            rec: r,
            key: symbol.into_bytes(),
            rows: vec![("earnings_event", 1)],
        }
    }

    fn defects(&self) -> &[Defect] {
        &self.defects
    }
}

// ---------------------------------------------------------------------------------------------
// SEC filings.

struct SecFiling {
    filers: Vec<usize>,
    defects: Vec<Defect>,
}

const FORMS: &[(&str, u32)] = &[
    ("4", 30),
    ("8-K", 20),
    ("10-Q", 12),
    ("SC 13G", 8),
    ("13F-HR", 8),
    ("10-K", 5),
    ("DEF 14A", 4),
    ("6-K", 4),
    ("20-F", 3),
    ("SC 13D", 3),
    ("S-1", 3),
];

impl SecFiling {
    fn new() -> Self {
        let mut defects = vec![
            d(
                R::MissingField,
                On::Json,
                Kind::Remove(&[
                    "accession_number",
                    "cik",
                    "company_name",
                    "form_type",
                    "filed_at",
                    "url",
                ]),
            ),
            d(R::MissingField, On::Both, Kind::Blank(&["company_name"])),
            d(
                R::InvalidFormat,
                On::Both,
                Kind::Strs(
                    "accession_number",
                    &[
                        "0000320193-24-00012",
                        "000032019324000123",
                        "0000320193_24_000123",
                        "ABCDEFGHIJ-24-000123",
                    ],
                ),
            ),
            d(
                R::InvalidFormat,
                On::Both,
                Kind::Strs("cik", &["CIK0000320193", "12345678901", "", "32 0193"]),
            ),
            d(
                R::TextTooLong,
                On::Both,
                Kind::TooLong(&[("company_name", 300)]),
            ),
            d(R::InvalidText, On::Both, Kind::Nul(&["company_name"])),
            d(
                R::UnknownEnum,
                On::Both,
                Kind::Strs("form_type", &["10-Z", "FORM 10-K", "8K"]),
            ),
            d(
                R::InvalidUrl,
                On::Both,
                Kind::Strs(
                    "url",
                    &[
                        "www.sec.gov/Archives/edgar/data/320193/",
                        "ftp://ftp.sec.gov/edgar/",
                    ],
                ),
            ),
            d(
                R::InvalidSymbol,
                On::Both,
                Kind::Strs("symbol", &["BRK B", "N/A?"]),
            ),
        ];
        defects.extend(ts_defects("filed_at"));
        Self {
            filers: (0..EQUITIES.len())
                .filter(|k| EQUITIES[*k].cik.is_some())
                .collect(),
            defects,
        }
    }
}

impl Builder for SecFiling {
    fn build(&mut self, i: u64, rng: &mut ChaCha8Rng, env: &Env) -> Base {
        let e = &EQUITIES[*pick(rng, &self.filers)];
        let cik = e.cik.unwrap_or(1);
        // NNNNNNNNNN-YY-SSSSSS: the filer-agent part carries the seed (mod 10^4), the base date's day
        // of the year and the index's millions; the sequence the index's rest.
        let d = env.base_date();
        let accession = format!(
            "{:04}{:03}{:03}-{:02}-{:06}",
            env.seed % 10_000,
            d.ordinal(),
            (i / 1_000_000) % 1000,
            d.year() % 100,
            i % 1_000_000
        );
        let total: u32 = FORMS.iter().map(|f| f.1).sum();
        let mut roll = rng.gen_range(0..total);
        let mut form = FORMS[0].0;
        for (f, w) in FORMS {
            if roll < *w {
                form = f;
                break;
            }
            roll -= w;
        }
        let cik_text = if rng.gen_bool(0.5) {
            format!("{cik:010}")
        } else {
            cik.to_string()
        };
        let url = format!(
            "https://www.sec.gov/Archives/edgar/data/{cik}/{}/{accession}-index.htm",
            accession.replace('-', "")
        );
        let company = if rng.gen_bool(0.3) {
            e.company.to_uppercase()
        } else {
            e.company.to_owned()
        };
        let mut r = Rec::with_capacity(7);
        r.put("accession_number", V::Str(accession))
            .put("cik", V::Str(cik_text))
            .put("company_name", V::Str(company))
            .put("form_type", V::s(form))
            .put("filed_at", any_ts(env.ts(i), -4 * 3600, rng))
            .put("url", V::Str(url))
            .put("symbol", V::opt(rng.gen_bool(0.8).then(|| V::s(e.symbol))));
        Base {
            rec: r,
            key: format!("{cik:010}").into_bytes(),
            rows: vec![("sec_filing", 1)],
        }
    }

    fn defects(&self) -> &[Defect] {
        &self.defects
    }
}

// ---------------------------------------------------------------------------------------------
// Features.

struct Feature {
    defects: Vec<Defect>,
}

impl Feature {
    fn new() -> Self {
        let mut defects = vec![
            d(
                R::MissingField,
                On::Json,
                Kind::Remove(&["entity", "name", "ts", "value", "model_version"]),
            ),
            d(
                R::MissingField,
                On::Both,
                Kind::Blank(&["name", "model_version"]),
            ),
            d(
                R::InvalidSymbol,
                On::Both,
                Kind::Strs("entity", &["AAPL US", "ÆØÅ", ""]),
            ),
            d(
                R::InvalidFormat,
                On::Both,
                Kind::Strs("name", &["rsi-14", "RSI 14", "momentum/5d", "préférence"]),
            ),
            d(
                R::TextTooLong,
                On::Both,
                Kind::TooLong(&[("name", 128), ("model_version", 64)]),
            ),
            d(
                R::InvalidText,
                On::Both,
                Kind::Nul(&["name", "model_version"]),
            ),
            d(R::NonFinite, On::Avro, Kind::NonFinite(&["value"])),
            d(R::InvalidInputRef, On::Both, Kind::Custom(bad_inputs)),
        ];
        defects.extend(ts_defects("ts"));
        Self { defects }
    }
}

/// The version of the strategy record at index `i` (see [`Strategy`]'s build).
pub(crate) fn strategy_version(i: u64) -> i32 {
    (i % VERSIONS_PER_STRATEGY) as i32 + 1
}

/// A symbol for a result to name: one the run's market data stores when it has any (the worker
/// quarantines results about unknown symbols), else one of the universe.
fn result_symbol(rng: &mut ChaCha8Rng, env: &Env) -> String {
    match env.references.as_deref() {
        Some(r) if !r.symbols.is_empty() => pick(rng, &r.symbols).clone(),
        _ => instrument_symbol(rng).to_owned(),
    }
}

fn instrument_symbol(rng: &mut ChaCha8Rng) -> &'static str {
    let k = rng.gen_range(0..EQUITIES.len() + PAIRS.len());
    if k < EQUITIES.len() {
        EQUITIES[k].symbol
    } else {
        PAIRS[k - EQUITIES.len()].symbol
    }
}

/// A result's inputs: a few well-formed enrichment event ids of the market data topics (the
/// worker checks their form, not that they resolve).
fn result_inputs(rng: &mut ChaCha8Rng) -> V {
    V::Arr(
        (0..rng.gen_range(0..4))
            .map(|_| {
                V::Str(format!(
                    "{}:{}:{}:{}",
                    pick(rng, &["market_data", "crypto_data", "news_article"]),
                    rng.gen_range(0..4),
                    rng.gen_range(0..100_000),
                    rng.gen_range(1..10_000)
                ))
            })
            .collect(),
    )
}

/// An `inputs` element that is neither an event id nor a batch id (`invalid_input_ref`).
fn bad_inputs(rec: &mut Rec, rng: &mut ChaCha8Rng, _: &Env) {
    let bad = *pick(
        rng,
        &[
            "market_data:0:12",
            "batch:",
            "news article:0:1:2",
            "market_data:-1:5:3",
            "row 17",
        ],
    );
    rec.set("inputs", V::Arr(vec![V::s("market_data:0:1:1"), V::s(bad)]));
}

impl Builder for Feature {
    fn build(&mut self, i: u64, rng: &mut ChaCha8Rng, env: &Env) -> Base {
        let entity = result_symbol(rng, env);
        let entity = entity.as_str();
        let name = *pick(rng, FEATURE_NAMES);
        let value = match name {
            "rsi_14" => round_dp(rng.gen_range(5.0..95.0), 4),
            "volatility_20d" => round_dp(rng.gen_range(0.05..1.2), 6),
            "vwap_ratio" => round_dp(1.0 + 0.01 * normal(rng), 6),
            n if n.starts_with("sentiment") => round_dp(rng.gen_range(-1.0..=1.0), 4),
            _ => round_dp(normal(rng), 6),
        };
        let name_text = if rng.gen_range(0..30) == 0 {
            name.to_ascii_uppercase()
        } else {
            name.to_owned()
        };
        let mut r = Rec::with_capacity(5);
        r.put("entity", V::Str(sloppy_code(entity, rng)))
            .put("name", V::Str(name_text))
            .put("ts", key_ts(env.ts(i), 0, rng))
            .put("value", V::F64(value))
            .put("model_version", V::s(*pick(rng, MODEL_VERSIONS)))
            .put(
                "model",
                V::opt(rng.gen_bool(0.7).then(|| V::s("esurio-sim-features"))),
            )
            .put("inputs", result_inputs(rng));
        Base {
            rec: r,
            key: entity.as_bytes().to_vec(),
            rows: vec![("feature", 1)],
        }
    }

    fn defects(&self) -> &[Defect] {
        &self.defects
    }
}

// ---------------------------------------------------------------------------------------------
// Insights.

struct Insight {
    defects: Vec<Defect>,
}

impl Insight {
    fn new() -> Self {
        let mut defects = vec![
            d(
                R::MissingField,
                On::Json,
                Kind::Remove(&[
                    "insight_id",
                    "kind",
                    "title",
                    "confidence",
                    "generated_at",
                    "model",
                ]),
            ),
            d(
                R::MissingField,
                On::Both,
                Kind::Blank(&["insight_id", "title", "model"]),
            ),
            d(
                R::InvalidSymbol,
                On::Both,
                Kind::Strs("symbol", &["NOT A SYMBOL", "AAPL!"]),
            ),
            d(
                R::UnknownEnum,
                On::Both,
                Kind::Strs("kind", &["prediction", "alert", "Anomaly Detected"]),
            ),
            d(
                R::TextTooLong,
                On::Both,
                Kind::TooLong(&[
                    ("title", 500),
                    ("insight_id", 128),
                    ("model", 64),
                    ("body", 20_000),
                ]),
            ),
            d(
                R::InvalidText,
                On::Both,
                Kind::Nul(&["title", "body", "model"]),
            ),
            d(
                R::OutOfRange,
                On::Both,
                Kind::F64s("confidence", &[1.5, -0.1, 100.0]),
            ),
            d(R::NonFinite, On::Avro, Kind::NonFinite(&["confidence"])),
            d(R::InvalidInputRef, On::Both, Kind::Custom(bad_inputs)),
        ];
        defects.extend(ts_defects("generated_at"));
        Self { defects }
    }
}

impl Builder for Insight {
    fn build(&mut self, i: u64, rng: &mut ChaCha8Rng, env: &Env) -> Base {
        let id = uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_OID,
            format!("esurio-simulate:insight:{}:{}:{i}", env.seed, env.base_secs).as_bytes(),
        );
        let kind = *pick(rng, INSIGHT_KINDS);
        let symbol = rng.gen_bool(0.8).then(|| result_symbol(rng, env));
        let symbol = symbol.as_deref();
        let about = symbol.unwrap_or("the market");
        let title = match kind {
            "anomaly" => format!(
                "Unusual volume in {about}: {:.1}x the 20-day average",
                rng.gen_range(2.0..12.0)
            ),
            "trend" => format!(
                "{about} in a {} trend for {} sessions",
                if rng.gen_bool(0.5) {
                    "rising"
                } else {
                    "falling"
                },
                rng.gen_range(3..15)
            ),
            "sentiment_shift" => format!(
                "News sentiment on {about} turned {}",
                if rng.gen_bool(0.5) {
                    "positive"
                } else {
                    "negative"
                }
            ),
            "correlation" => format!("{about} decoupled from {}", instrument_symbol(rng)),
            _ => format!("{} may move {about}", pick(rng, EVENTS)),
        };
        let body = rng.gen_bool(0.6).then(|| {
            format!(
                "Detected by {} over a {}-minute window. z-score {:.2}; p-value {:.4}. Not investment advice.",
                pick(rng, INSIGHT_MODELS),
                pick(rng, &[5, 15, 60, 240]),
                2.0 + rng.gen_range(0.0..4.0),
                rng.gen_range(0.0001..0.05)
            )
        });
        let mut r = Rec::with_capacity(8);
        r.put("insight_id", V::Str(id.to_string()))
            .put("symbol", V::opt(symbol.map(V::s)))
            .put("kind", V::s(kind))
            .put("title", V::Str(title))
            .put("body", V::opt(body.map(V::Str)))
            .put("confidence", V::F64(round_dp(rng.gen_range(0.0..=1.0), 3)))
            .put("generated_at", any_ts(env.ts(i), 0, rng))
            .put("model", V::s(*pick(rng, INSIGHT_MODELS)))
            .put(
                "model_version",
                V::opt(rng.gen_bool(0.7).then(|| V::s(*pick(rng, MODEL_VERSIONS)))),
            )
            .put("inputs", result_inputs(rng));
        Base {
            rec: r,
            key: symbol.unwrap_or(kind).as_bytes().to_vec(),
            rows: vec![("insight", 1)],
        }
    }

    fn defects(&self) -> &[Defect] {
        &self.defects
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies and signals.

/// Versions per strategy id.
const VERSIONS_PER_STRATEGY: u64 = 8;

/// The id of strategy `block` of a run: `<slug>-<seed36>-<base36>-<block36>`.
fn strategy_id(tag: &str, block: u64) -> String {
    let (slug, _) = STRATEGIES[(block % STRATEGIES.len() as u64) as usize];
    format!("{slug}-{tag}-{}", lower36(block))
}

struct Strategy {
    tag: String,
    defects: Vec<Defect>,
}

fn params_nul(rec: &mut Rec, _: &mut ChaCha8Rng, _: &Env) {
    rec.set(
        "parameters",
        V::Json(serde_json::json!({"lookback": 20, "note": "copied from\u{0}a PDF"})),
    );
}

fn params_not_object(rec: &mut Rec, rng: &mut ChaCha8Rng, _: &Env) {
    // (Not `null`: JSON null is an absent field, `missing_field`.)
    let v = match rng.gen_range(0..4) {
        0 => serde_json::json!([20, 2.0, "AAPL"]),
        1 => serde_json::json!(42),
        2 => serde_json::json!("lookback=20; entry_z=2.0"),
        _ => serde_json::json!(true),
    };
    rec.set("parameters", V::Json(v));
}

impl Strategy {
    fn new(env: &Env) -> Self {
        let mut defects = vec![
            d(
                R::MissingField,
                On::Json,
                Kind::Remove(&["strategy_id", "version", "name", "parameters", "created_at"]),
            ),
            d(
                R::MissingField,
                On::Both,
                Kind::Blank(&["strategy_id", "name"]),
            ),
            d(R::OutOfRange, On::Both, Kind::Ints("version", &[0, -1])),
            d(
                R::TextTooLong,
                On::Both,
                Kind::TooLong(&[("name", 200), ("strategy_id", 128), ("description", 20_000)]),
            ),
            d(
                R::InvalidText,
                On::Both,
                Kind::Nul(&["name", "description"]),
            ),
            d(R::InvalidText, On::Both, Kind::Custom(params_nul)),
            d(R::InvalidFormat, On::Both, Kind::Custom(params_not_object)),
            d(R::InvalidInputRef, On::Both, Kind::Custom(bad_inputs)),
        ];
        defects.extend(ts_defects("created_at"));
        Self {
            tag: format!(
                "{}-{}",
                env.seed36.to_ascii_lowercase(),
                env.base36.to_ascii_lowercase()
            ),
            defects,
        }
    }
}

impl Builder for Strategy {
    fn build(&mut self, i: u64, rng: &mut ChaCha8Rng, env: &Env) -> Base {
        let block = i / VERSIONS_PER_STRATEGY;
        let version = strategy_version(i);
        let (slug, display) = STRATEGIES[(block % STRATEGIES.len() as u64) as usize];
        let id = strategy_id(&self.tag, block);
        let universe: Vec<&str> = (0..rng.gen_range(1..6))
            .map(|_| instrument_symbol(rng))
            .collect();
        let params = serde_json::json!({
            "lookback": rng.gen_range(5..250),
            "entry_z": round_dp(rng.gen_range(0.5..3.0), 2),
            "exit_z": round_dp(rng.gen_range(0.0..1.0), 2),
            "universe": universe,
            "risk": {"max_position": round_dp(rng.gen_range(0.01..0.2), 3), "stop_loss_bps": rng.gen_range(20..500)},
            "rebalance": *pick(rng, &["1m", "5m", "1h", "1d"]),
            "kind": slug,
        });
        let description = rng.gen_bool(0.7).then(|| {
            format!(
                "{display}, version {version}: trades when the {}-bar z-score crosses the entry threshold.",
                params["lookback"]
            )
        });
        let mut r = Rec::with_capacity(6);
        r.put("strategy_id", V::Str(id.clone()))
            .put("version", V::Int(version))
            .put(
                "name",
                V::Str(format!(
                    "{display} ({})",
                    pick(rng, &["US", "EU", "APAC", "crypto"])
                )),
            )
            .put("description", V::opt(description.map(V::Str)))
            .put("parameters", V::Json(params))
            .put("created_at", any_ts(env.ts(i), 0, rng))
            .put(
                "model",
                V::opt(rng.gen_bool(0.5).then(|| V::s("esurio-sim-optimizer"))),
            )
            .put(
                "model_version",
                V::opt(rng.gen_bool(0.5).then(|| V::s(*pick(rng, MODEL_VERSIONS)))),
            )
            .put("inputs", result_inputs(rng));
        Base {
            rec: r,
            key: id.into_bytes(),
            rows: vec![("strategy", 1)],
        }
    }

    fn defects(&self) -> &[Defect] {
        &self.defects
    }
}

struct Signal {
    tag: String,
    defects: Vec<Defect>,
}

impl Signal {
    fn new(env: &Env) -> Self {
        let mut defects = vec![
            d(
                R::MissingField,
                On::Json,
                Kind::Remove(&[
                    "strategy_id",
                    "strategy_version",
                    "symbol",
                    "ts",
                    "direction",
                    "strength",
                ]),
            ),
            d(R::MissingField, On::Both, Kind::Blank(&["strategy_id"])),
            d(
                R::NonPositive,
                On::Both,
                Kind::Longs("horizon_seconds", &[0, -3600]),
            ),
            d(
                R::OutOfRange,
                On::Both,
                Kind::Ints("strategy_version", &[0, -2]),
            ),
            d(
                R::OutOfRange,
                On::Both,
                Kind::F64s("strength", &[1.2, -0.5]),
            ),
            d(
                R::OutOfRange,
                On::Both,
                Kind::F64s("confidence", &[2.0, -0.01]),
            ),
            d(
                R::InvalidSymbol,
                On::Both,
                Kind::Strs("symbol", &["NOT A SYMBOL", "€URO"]),
            ),
            d(
                R::UnknownEnum,
                On::Both,
                Kind::Strs("direction", &["buy", "sell", "neutral"]),
            ),
            d(
                R::TextTooLong,
                On::Both,
                Kind::TooLong(&[("strategy_id", 128)]),
            ),
            d(R::InvalidText, On::Both, Kind::Nul(&["strategy_id"])),
            d(
                R::NonFinite,
                On::Avro,
                Kind::NonFinite(&["strength", "confidence"]),
            ),
            d(R::InvalidInputRef, On::Both, Kind::Custom(bad_inputs)),
        ];
        defects.extend(ts_defects("ts"));
        Self {
            tag: format!(
                "{}-{}",
                env.seed36.to_ascii_lowercase(),
                env.base36.to_ascii_lowercase()
            ),
            defects,
        }
    }
}

impl Builder for Signal {
    fn build(&mut self, i: u64, rng: &mut ChaCha8Rng, env: &Env) -> Base {
        // A strategy version the run stores when it has any (the worker quarantines signals of
        // unknown strategies), else one of the first twelve strategies' versions.
        let (strategy, version) = match env.references.as_deref() {
            Some(r) if !r.strategies.is_empty() => pick(rng, &r.strategies).clone(),
            _ => (
                strategy_id(&self.tag, rng.gen_range(0..12)),
                rng.gen_range(1..=VERSIONS_PER_STRATEGY as i32),
            ),
        };
        let symbol = result_symbol(rng, env);
        let symbol = symbol.as_str();
        let direction = match rng.gen_range(0..20) {
            0..=8 => "long",
            9..=15 => "short",
            _ => "flat",
        };
        let mut r = Rec::with_capacity(8);
        r.put("strategy_id", V::Str(strategy))
            .put("strategy_version", V::Int(version))
            .put("symbol", V::Str(sloppy_code(symbol, rng)))
            .put("ts", key_ts(env.ts(i), 0, rng))
            .put("direction", V::s(direction))
            .put("strength", V::F64(round_dp(rng.gen_range(0.0..=1.0), 4)))
            .put(
                "confidence",
                V::opt(
                    rng.gen_bool(0.8)
                        .then(|| V::F64(round_dp(rng.gen_range(0.0..=1.0), 3))),
                ),
            )
            .put(
                "horizon_seconds",
                V::opt(
                    rng.gen_bool(0.7)
                        .then(|| V::Long(*pick(rng, &[60, 300, 3600, 14_400, 86_400, 604_800]))),
                ),
            )
            .put(
                "model",
                V::opt(rng.gen_bool(0.6).then(|| V::s("esurio-sim-signals"))),
            )
            .put(
                "model_version",
                V::opt(rng.gen_bool(0.6).then(|| V::s(*pick(rng, MODEL_VERSIONS)))),
            )
            .put("inputs", result_inputs(rng));
        Base {
            rec: r,
            key: symbol.as_bytes().to_vec(),
            rows: vec![("signal", 1)],
        }
    }

    fn defects(&self) -> &[Defect] {
        &self.defects
    }
}
