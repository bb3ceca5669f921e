//! Validation rules shared by the families. Each takes the wire value and the field name and returns
//! the normalized value or a [`ValidationError`] with its reason code.

use super::{Reason, ValidationError, WireDate, WireTime};
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use std::time::Duration;

/// What an integer timestamp counts: JSON senders use epoch milliseconds, Avro `timestamp-micros`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    Millis,
    Micros,
}

/// The context a record is validated in: the clock and the plausibility window for timestamps.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub now: DateTime<Utc>,
    /// How far ahead of `now` a timestamp may be (clock skew between spiders and us).
    pub max_future: Duration,
    /// How far behind `now` a timestamp may be (older data is a spider bug or a replay of junk).
    pub max_past: Duration,
    /// How far behind `now` a row of a day-partitioned table may be (`database.partition_max_past`):
    /// the days the worker may create partitions for. `None`: no bound beyond `max_past`.
    pub partition_max_past: Option<Duration>,
    pub int_time: TimeUnit,
}

impl Ctx {
    pub fn new(max_future: Duration, max_past: Duration) -> Self {
        Self {
            now: Utc::now(),
            max_future,
            max_past,
            partition_max_past: None,
            int_time: TimeUnit::Millis,
        }
    }

    /// Bounds the days of day-partitioned rows (see [`partition_time`]).
    pub fn with_partition_max_past(self, d: Duration) -> Self {
        Self {
            partition_max_past: Some(d),
            ..self
        }
    }

    pub fn with_int_time(&self, unit: TimeUnit) -> Self {
        Self {
            int_time: unit,
            ..self.clone()
        }
    }
}

type R<T> = Result<T, ValidationError>;

pub fn required<T>(v: Option<T>, field: &'static str) -> R<T> {
    v.ok_or_else(|| ValidationError::new(Reason::MissingField, field, "is required"))
}

/// Rejects NUL (PostgreSQL text cannot hold it) and other C0 controls except tab and newlines.
fn clean_text(s: &str, field: &'static str) -> R<()> {
    if let Some(c) = s
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(ValidationError::new(
            Reason::InvalidText,
            field,
            format!("contains the control character U+{:04X}", c as u32),
        ));
    }
    Ok(())
}

fn bounded(s: String, field: &'static str, max_chars: usize) -> R<String> {
    clean_text(&s, field)?;
    // Byte length bounds char length from above, so the count is only needed for long strings.
    if s.len() > max_chars && s.chars().count() > max_chars {
        return Err(ValidationError::new(
            Reason::TextTooLong,
            field,
            format!("is longer than {max_chars} characters"),
        ));
    }
    Ok(s)
}

fn trimmed(s: String) -> String {
    let t = s.trim();
    if t.len() == s.len() {
        s
    } else {
        t.to_owned()
    }
}

/// A required text, trimmed, non-empty, at most `max_chars`.
pub fn text(v: Option<String>, field: &'static str, max_chars: usize) -> R<String> {
    let s = trimmed(required(v, field)?);
    if s.is_empty() {
        return Err(ValidationError::new(
            Reason::MissingField,
            field,
            "is empty",
        ));
    }
    bounded(s, field, max_chars)
}

/// An optional text: trimmed; empty becomes absent.
pub fn opt_text(v: Option<String>, field: &'static str, max_chars: usize) -> R<Option<String>> {
    match v.map(trimmed) {
        Some(s) if !s.is_empty() => bounded(s, field, max_chars).map(Some),
        _ => Ok(None),
    }
}

/// A body text: kept as sent (no trimming), at most `max_chars`.
pub fn opt_body(v: Option<String>, field: &'static str, max_chars: usize) -> R<Option<String>> {
    match v {
        Some(s) if !s.trim().is_empty() => bounded(s, field, max_chars).map(Some),
        _ => Ok(None),
    }
}

fn code(v: String, field: &'static str, max: usize, extra: &[char], reason: Reason) -> R<String> {
    let s = v.trim().to_ascii_uppercase();
    if s.is_empty() || s.len() > max {
        return Err(ValidationError::new(
            reason,
            field,
            format!("must be 1 to {max} characters, got {:?}", truncate(&v)),
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_uppercase() || c.is_ascii_digit() || extra.contains(c)))
    {
        return Err(ValidationError::new(
            reason,
            field,
            format!("contains {c:?}, allowed are A-Z, 0-9 and {extra:?}"),
        ));
    }
    Ok(s)
}

/// A ticker symbol: trimmed, upper-cased, 1..32 of `A-Z 0-9 . - / ^ = _`.
pub fn symbol(v: Option<String>, field: &'static str) -> R<String> {
    code(
        required(v, field)?,
        field,
        32,
        &['.', '-', '/', '^', '=', '_'],
        Reason::InvalidSymbol,
    )
}

pub fn opt_symbol(v: Option<String>, field: &'static str) -> R<Option<String>> {
    match v {
        Some(s) if !s.trim().is_empty() => symbol(Some(s), field).map(Some),
        _ => Ok(None),
    }
}

/// The most input references one result may carry (the database CHECK says the same).
pub const MAX_INPUTS: usize = 1000;

/// Whether `s` is an input reference: an enrichment event id `topic:partition:offset:batch_id`
/// (docs/RECORDS.md; Kafka topic names are `[A-Za-z0-9._-]{1,249}`, so the id splits from the
/// right) or a batch id `batch:<ingest_batches.id>`.
pub fn is_input_ref(s: &str) -> bool {
    fn num<T: std::str::FromStr>(s: &str) -> bool {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && s.parse::<T>().is_ok()
    }
    if let Some(id) = s.strip_prefix("batch:") {
        if num::<i64>(id) {
            return true;
        }
    }
    let parts: Vec<&str> = s.rsplitn(4, ':').collect();
    let [batch, offset, partition, topic] = parts[..] else {
        return false;
    };
    (1..=249).contains(&topic.len())
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && num::<i32>(partition)
        && num::<i64>(offset)
        && num::<i64>(batch)
}

/// A result's inputs (its lineage): every element an input reference ([`is_input_ref`]), at most
/// [`MAX_INPUTS`]. A set: sorted and without repeats, so that the same inputs in another order are
/// the same record. Absent is empty.
pub fn inputs(v: Option<Vec<String>>, field: &'static str) -> R<Vec<String>> {
    let mut v = v.unwrap_or_default();
    if v.len() > MAX_INPUTS {
        return Err(ValidationError::new(
            Reason::InvalidInputRef,
            field,
            format!("has {} elements, more than {MAX_INPUTS}", v.len()),
        ));
    }
    if let Some(bad) = v.iter().find(|s| !is_input_ref(s)) {
        return Err(ValidationError::new(
            Reason::InvalidInputRef,
            field,
            format!(
                "{:?} is neither an event id (topic:partition:offset:batch_id) nor a batch id (batch:<id>)",
                truncate(bad)
            ),
        ));
    }
    v.sort_unstable();
    v.dedup();
    Ok(v)
}

/// An exchange or venue code: 1..16 of `A-Z 0-9 _ -`.
pub fn exchange(v: Option<String>, field: &'static str) -> R<String> {
    code(
        required(v, field)?,
        field,
        16,
        &['_', '-'],
        Reason::InvalidSymbol,
    )
}

/// An indicator code: 1..64 of `A-Z 0-9 _ . -`.
pub fn indicator_code(v: Option<String>, field: &'static str) -> R<String> {
    code(
        required(v, field)?,
        field,
        64,
        &['_', '.', '-'],
        Reason::InvalidSymbol,
    )
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

/// ISO 4217 alphabetic codes in use (plus the precious metals and SDR that markets quote).
const ISO_4217: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD",
    "CDF", "CHF", "CLP", "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD",
    "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ",
    "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD",
    "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR",
    "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR",
    "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN",
    "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR",
    "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB",
    "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS",
    "VES", "VND", "VUV", "WST", "XAF", "XAG", "XAU", "XCD", "XDR", "XOF", "XPD", "XPF", "XPT",
    "YER", "ZAR", "ZMW", "ZWG",
];

/// An ISO 4217 currency code, upper-cased.
pub fn currency(v: Option<String>, field: &'static str) -> R<String> {
    let s = required(v, field)?.trim().to_ascii_uppercase();
    if ISO_4217.binary_search(&s.as_str()).is_err() {
        return Err(ValidationError::new(
            Reason::InvalidCurrency,
            field,
            format!("{:?} is not an ISO 4217 currency code", truncate(&s)),
        ));
    }
    Ok(s)
}

/// A quote currency for crypto pairs: 2..10 of `A-Z 0-9` (USDT and friends are not ISO 4217).
pub fn quote_currency(v: Option<String>, field: &'static str) -> R<String> {
    let s = code(required(v, field)?, field, 10, &[], Reason::InvalidCurrency)?;
    if s.len() < 2 {
        return Err(ValidationError::new(
            Reason::InvalidCurrency,
            field,
            "must be 2 to 10 characters",
        ));
    }
    Ok(s)
}

/// A country: ISO 3166-1 alpha-2 shape (two letters), upper-cased.
pub fn country(v: Option<String>, field: &'static str) -> R<String> {
    let s = required(v, field)?.trim().to_ascii_uppercase();
    if s.len() != 2 || !s.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(ValidationError::new(
            Reason::InvalidFormat,
            field,
            format!(
                "{:?} is not a two-letter ISO 3166 country code",
                truncate(&s)
            ),
        ));
    }
    Ok(s)
}

/// An ISO 639-1 language code, lower-cased; absent stays absent.
pub fn opt_language(v: Option<String>, field: &'static str) -> R<Option<String>> {
    let Some(s) = v.map(|s| s.trim().to_ascii_lowercase()) else {
        return Ok(None);
    };
    if s.is_empty() {
        return Ok(None);
    }
    if s.len() != 2 || !s.bytes().all(|b| b.is_ascii_lowercase()) {
        return Err(ValidationError::new(
            Reason::InvalidLanguage,
            field,
            format!("{:?} is not a two-letter ISO 639-1 code", truncate(&s)),
        ));
    }
    Ok(Some(s))
}

/// An absolute http(s) URL of at most 2048 characters, normalized (lower-case host, no fragment).
pub fn url(v: Option<String>, field: &'static str) -> R<String> {
    let raw = required(v, field)?;
    let raw = raw.trim();
    let bad = |why: &str| {
        ValidationError::new(
            Reason::InvalidUrl,
            field,
            format!("{:?} {why}", truncate(raw)),
        )
    };
    if raw.len() > 2048 {
        return Err(bad("is longer than 2048 characters"));
    }
    let mut u = url::Url::parse(raw).map_err(|e| bad(&format!("is not a URL: {e}")))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(bad("is not an http(s) URL"));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    u.set_fragment(None);
    Ok(u.into())
}

pub fn opt_url(v: Option<String>, field: &'static str) -> R<Option<String>> {
    match v {
        Some(s) if !s.trim().is_empty() => url(Some(s), field).map(Some),
        _ => Ok(None),
    }
}

/// One of a fixed set of values, matched after trimming and case folding to the canonical spelling.
pub fn one_of(v: Option<String>, field: &'static str, allowed: &[&'static str]) -> R<&'static str> {
    let s = required(v, field)?;
    let t = s.trim();
    allowed
        .iter()
        .copied()
        .find(|a| a.eq_ignore_ascii_case(t))
        .ok_or_else(|| {
            ValidationError::new(
                Reason::UnknownEnum,
                field,
                format!("{:?} is not one of {allowed:?}", truncate(t)),
            )
        })
}

pub fn finite(v: Option<f64>, field: &'static str) -> R<f64> {
    let x = required(v, field)?;
    if !x.is_finite() {
        return Err(ValidationError::new(
            Reason::NonFinite,
            field,
            format!("must be a finite number, got {x}"),
        ));
    }
    Ok(x)
}

pub fn opt_finite(v: Option<f64>, field: &'static str) -> R<Option<f64>> {
    v.map(|x| finite(Some(x), field)).transpose()
}

/// A price: finite and strictly positive.
pub fn positive(v: Option<f64>, field: &'static str) -> R<f64> {
    let x = finite(v, field)?;
    if x <= 0.0 {
        return Err(ValidationError::new(
            Reason::NonPositive,
            field,
            format!("must be positive, got {x}"),
        ));
    }
    Ok(x)
}

pub fn opt_positive(v: Option<f64>, field: &'static str) -> R<Option<f64>> {
    v.map(|x| positive(Some(x), field)).transpose()
}

/// A volume or amount: finite and not negative.
pub fn non_negative(v: Option<f64>, field: &'static str) -> R<f64> {
    let x = finite(v, field)?;
    if x < 0.0 {
        return Err(ValidationError::new(
            Reason::Negative,
            field,
            format!("must not be negative, got {x}"),
        ));
    }
    Ok(x)
}

pub fn opt_non_negative(v: Option<f64>, field: &'static str) -> R<Option<f64>> {
    v.map(|x| non_negative(Some(x), field)).transpose()
}

pub fn opt_count(v: Option<i64>, field: &'static str) -> R<Option<i64>> {
    match v {
        Some(x) if x < 0 => Err(ValidationError::new(
            Reason::Negative,
            field,
            format!("must not be negative, got {x}"),
        )),
        _ => Ok(v),
    }
}

/// A finite number within `[lo, hi]`.
pub fn in_range(v: Option<f64>, field: &'static str, lo: f64, hi: f64) -> R<f64> {
    let x = finite(v, field)?;
    if !(lo..=hi).contains(&x) {
        return Err(ValidationError::new(
            Reason::OutOfRange,
            field,
            format!("must be within [{lo}, {hi}], got {x}"),
        ));
    }
    Ok(x)
}

pub fn opt_in_range(v: Option<f64>, field: &'static str, lo: f64, hi: f64) -> R<Option<f64>> {
    v.map(|x| in_range(Some(x), field, lo, hi)).transpose()
}

pub fn int_in_range(v: Option<i64>, field: &'static str, lo: i64, hi: i64) -> R<i64> {
    let x = required(v, field)?;
    if !(lo..=hi).contains(&x) {
        return Err(ValidationError::new(
            Reason::OutOfRange,
            field,
            format!("must be within [{lo}, {hi}], got {x}"),
        ));
    }
    Ok(x)
}

/// A timestamp, converted to UTC and checked against the plausibility window.
/// A [`time`] that decides the day partition of its row: it must also lie inside the window of
/// days the worker creates partitions for, so that a stray old tick neither creates a partition
/// for a long-gone day nor lands in one that retention dropped.
pub fn partition_time(v: Option<WireTime>, field: &'static str, ctx: &Ctx) -> R<DateTime<Utc>> {
    let ts = time(v, field, ctx)?;
    // esurio_ensure_partitions creates at most 31 days ahead (only matters when
    // validate.max_future is set beyond that).
    if ts > ctx.now + chrono::Duration::days(30) {
        return Err(ValidationError::new(
            Reason::OutsidePartitionWindow,
            field,
            format!(
                "{} is more than 30 days ahead, beyond the days partitions are created for",
                ts.to_rfc3339()
            ),
        ));
    }
    if let Some(window) = ctx.partition_max_past {
        if ts < ctx.now - window {
            return Err(ValidationError::new(
                Reason::OutsidePartitionWindow,
                field,
                format!(
                    "{} is more than {:?} before now, outside the days partitions are kept for (database.partition_max_past)",
                    ts.to_rfc3339(),
                    window
                ),
            ));
        }
    }
    Ok(ts)
}

pub fn time(v: Option<WireTime>, field: &'static str, ctx: &Ctx) -> R<DateTime<Utc>> {
    let bad = |m: String| ValidationError::new(Reason::InvalidTimestamp, field, m);
    let ts = match required(v, field)? {
        WireTime::Int(n) => match ctx.int_time {
            TimeUnit::Millis => Utc.timestamp_millis_opt(n).single(),
            TimeUnit::Micros => Utc.timestamp_micros(n).single(),
        }
        .ok_or_else(|| bad(format!("{n} is not a representable epoch time")))?,
        WireTime::Text(s) => DateTime::parse_from_rfc3339(s.trim())
            .map_err(|e| bad(format!("{:?} is not RFC 3339: {e}", truncate(&s))))?
            .with_timezone(&Utc),
    };
    // Microseconds are PostgreSQL's resolution; truncating here makes duplicates compare equal.
    let ts = DateTime::from_timestamp_micros(ts.timestamp_micros()).unwrap_or(ts);
    if ts > ctx.now + ctx.max_future {
        return Err(ValidationError::new(
            Reason::TimestampInFuture,
            field,
            format!(
                "{} is more than {:?} ahead of now",
                ts.to_rfc3339(),
                ctx.max_future
            ),
        ));
    }
    if ts < ctx.now - ctx.max_past {
        return Err(ValidationError::new(
            Reason::TimestampTooOld,
            field,
            format!(
                "{} is more than {:?} before now",
                ts.to_rfc3339(),
                ctx.max_past
            ),
        ));
    }
    Ok(ts)
}

/// A calendar date between 1900 and 2200.
pub fn date(v: Option<WireDate>, field: &'static str) -> R<NaiveDate> {
    let bad = |m: String| ValidationError::new(Reason::InvalidTimestamp, field, m);
    let d = match required(v, field)? {
        // try_days: Duration::days panics past ±i64::MAX/86400 days (found by fuzzing).
        WireDate::Days(n) => chrono::Duration::try_days(n)
            .and_then(|d| NaiveDate::from_ymd_opt(1970, 1, 1)?.checked_add_signed(d))
            .ok_or_else(|| bad(format!("{n} days is out of range")))?,
        WireDate::Text(s) => NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
            .map_err(|e| bad(format!("{:?} is not YYYY-MM-DD: {e}", truncate(&s))))?,
    };
    if !(1900..=2200).contains(&d.year()) {
        return Err(ValidationError::new(
            Reason::OutOfRange,
            field,
            format!("{d} is outside 1900..2200"),
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Ctx {
        Ctx::new(Duration::from_secs(300), Duration::from_secs(86400 * 365))
    }

    #[test]
    fn iso_list_is_sorted_for_binary_search() {
        assert!(ISO_4217.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn symbols_are_trimmed_and_upper_cased() {
        assert_eq!(symbol(Some(" aapl ".into()), "s").unwrap(), "AAPL");
        assert_eq!(
            symbol(Some("AA PL".into()), "s").unwrap_err().reason,
            Reason::InvalidSymbol
        );
        assert_eq!(symbol(None, "s").unwrap_err().reason, Reason::MissingField);
    }

    #[test]
    fn numbers() {
        assert_eq!(
            positive(Some(f64::NAN), "p").unwrap_err().reason,
            Reason::NonFinite
        );
        assert_eq!(
            positive(Some(0.0), "p").unwrap_err().reason,
            Reason::NonPositive
        );
        assert_eq!(
            non_negative(Some(-1.0), "v").unwrap_err().reason,
            Reason::Negative
        );
        assert_eq!(non_negative(Some(0.0), "v").unwrap(), 0.0);
    }

    #[test]
    fn times_are_utc_and_plausible() {
        let c = ctx();
        let t = time(
            Some(WireTime::Text("2020-01-01T01:00:00+01:00".into())),
            "t",
            &{
                let mut c = c.clone();
                c.max_past = Duration::from_secs(86400 * 365 * 50);
                c
            },
        )
        .unwrap();
        assert_eq!(t.to_rfc3339(), "2020-01-01T00:00:00+00:00");
        let future = (c.now + chrono::Duration::hours(1)).timestamp_millis();
        assert_eq!(
            time(Some(WireTime::Int(future)), "t", &c)
                .unwrap_err()
                .reason,
            Reason::TimestampInFuture
        );
        assert_eq!(
            time(Some(WireTime::Int(0)), "t", &c).unwrap_err().reason,
            Reason::TimestampTooOld
        );
        assert_eq!(
            time(Some(WireTime::Text("yesterday".into())), "t", &c)
                .unwrap_err()
                .reason,
            Reason::InvalidTimestamp
        );
        assert_eq!(
            time(Some(WireTime::Int(i64::MAX)), "t", &c)
                .unwrap_err()
                .reason,
            Reason::InvalidTimestamp
        );
    }

    #[test]
    fn input_references() {
        for ok in [
            "market_data:0:12:3",
            "it.x_1-2.news_article:3:0:57",
            "batch:9",
        ] {
            assert!(is_input_ref(ok), "{ok}");
        }
        // A topic name cannot hold ':' (the id splits from the right: topic "a:b:c" is refused).
        assert!(!is_input_ref("a:b:c:1:2:3"));
        for bad in [
            "",
            "batch:",
            "batch:-1",
            "batch:x",
            "market_data:0:12",
            "market_data:-1:12:3",
            "market_data:0:12:3x",
            ":0:1:2",
            "news article:0:1:2",
            "t:99999999999:1:2",
            "t:0:1:99999999999999999999",
        ] {
            assert!(!is_input_ref(bad), "{bad}");
        }
        let v = inputs(
            Some(vec!["t:0:2:1".into(), "batch:3".into(), "t:0:2:1".into()]),
            "inputs",
        )
        .unwrap();
        assert_eq!(v, ["batch:3", "t:0:2:1"]);
        assert_eq!(inputs(None, "inputs").unwrap(), Vec::<String>::new());
        assert_eq!(
            inputs(Some(vec!["nope".into()]), "inputs")
                .unwrap_err()
                .reason,
            Reason::InvalidInputRef
        );
        assert_eq!(
            inputs(Some(vec!["batch:1".into(); MAX_INPUTS + 1]), "inputs")
                .unwrap_err()
                .reason,
            Reason::InvalidInputRef
        );
    }

    #[test]
    fn huge_day_counts_are_rejected_not_panics() {
        // Regressions from fuzz/regressions/*/date_days_overflow*.
        for n in [
            106_751_991_167_301,
            -106_751_991_167_301,
            i64::MAX,
            i64::MIN,
        ] {
            assert_eq!(
                date(Some(WireDate::Days(n)), "d").unwrap_err().reason,
                Reason::InvalidTimestamp
            );
        }
        assert_eq!(
            date(Some(WireDate::Days(20_000)), "d").unwrap().to_string(),
            "2024-10-04"
        );
    }

    #[test]
    fn urls_are_normalized() {
        assert_eq!(
            url(Some("HTTPS://Example.COM/a#frag".into()), "u").unwrap(),
            "https://example.com/a"
        );
        for bad in ["ftp://x.y/", "not a url", "http://", "/relative"] {
            assert_eq!(
                url(Some(bad.into()), "u").unwrap_err().reason,
                Reason::InvalidUrl,
                "{bad}"
            );
        }
    }

    #[test]
    fn text_rules() {
        assert_eq!(
            text(Some("a\0b".into()), "t", 10).unwrap_err().reason,
            Reason::InvalidText
        );
        assert_eq!(
            text(Some("é".repeat(11)), "t", 10).unwrap_err().reason,
            Reason::TextTooLong
        );
        assert_eq!(text(Some("é".repeat(10)), "t", 10).unwrap(), "é".repeat(10));
        assert_eq!(
            text(Some("  ".into()), "t", 10).unwrap_err().reason,
            Reason::MissingField
        );
        assert_eq!(
            currency(Some("usd".into()), "c").unwrap(),
            "USD".to_string()
        );
        assert_eq!(
            currency(Some("XYZ".into()), "c").unwrap_err().reason,
            Reason::InvalidCurrency
        );
        assert_eq!(
            one_of(Some("Person".into()), "e", &["person"]).unwrap(),
            "person"
        );
        assert_eq!(
            one_of(Some("alien".into()), "e", &["person"])
                .unwrap_err()
                .reason,
            Reason::UnknownEnum
        );
    }
}
