//! Market data: exchange ticks, crypto ticks and order-book snapshots.

use super::check::{self, Ctx};
use super::{table, Family, Reason, ValidationError, WireTime};
use crate::sink::copy::{Lineage, StagedRows, Table};
use chrono::{DateTime, Utc};
use serde::Deserialize;

table!(MARKET_DATA, "market_data", partitioned = true, key = ["exchange", "symbol", "ts"], [
    "symbol": TEXT, "exchange": TEXT, "ts": TIMESTAMPTZ, "price": FLOAT8, "volume": FLOAT8,
    "bid": FLOAT8, "ask": FLOAT8, "currency": BPCHAR,
]);
table!(CRYPTO_DATA, "crypto_data", partitioned = true, key = ["exchange", "symbol", "ts"], [
    "symbol": TEXT, "exchange": TEXT, "ts": TIMESTAMPTZ, "price": FLOAT8, "volume": FLOAT8,
    "market_cap": FLOAT8, "quote_currency": TEXT,
]);
table!(ORDER_BOOK, "order_book", partitioned = true, key = ["exchange", "symbol", "ts"], [
    "symbol": TEXT, "exchange": TEXT, "ts": TIMESTAMPTZ, "bid_prices": FLOAT8_ARRAY,
    "bid_sizes": FLOAT8_ARRAY, "ask_prices": FLOAT8_ARRAY, "ask_sizes": FLOAT8_ARRAY,
    "best_bid": FLOAT8, "best_ask": FLOAT8,
]);

#[derive(Debug, Deserialize)]
pub struct MarketDataWire {
    pub symbol: Option<String>,
    pub exchange: Option<String>,
    pub ts: Option<WireTime>,
    pub price: Option<f64>,
    pub volume: Option<f64>,
    pub bid: Option<f64>,
    pub ask: Option<f64>,
    pub currency: Option<String>,
}

/// A validated trade or quote tick.
#[derive(Debug, Clone, PartialEq)]
pub struct MarketData {
    pub symbol: String,
    pub exchange: String,
    pub ts: DateTime<Utc>,
    pub price: f64,
    pub volume: f64,
    pub bid: Option<f64>,
    pub ask: Option<f64>,
    pub currency: String,
}

impl Family for MarketData {
    type Wire = MarketDataWire;
    const NAME: &'static str = "market_data";
    const TABLES: &'static [&'static Table] = &[&MARKET_DATA];
    const POLICY: super::Policy = super::Policy::Reject;

    fn parse(w: MarketDataWire, ctx: &Ctx) -> Result<Self, ValidationError> {
        let bid = check::opt_positive(w.bid, "bid")?;
        let ask = check::opt_positive(w.ask, "ask")?;
        if let (Some(b), Some(a)) = (bid, ask) {
            if b > a {
                return Err(ValidationError::new(
                    Reason::CrossedBook,
                    "bid",
                    format!("bid {b} is above ask {a}"),
                ));
            }
        }
        Ok(Self {
            symbol: check::symbol(w.symbol, "symbol")?,
            exchange: check::exchange(w.exchange, "exchange")?,
            ts: check::partition_time(w.ts, "ts", ctx)?,
            price: check::positive(w.price, "price")?,
            volume: check::non_negative(w.volume, "volume")?,
            bid,
            ask,
            currency: check::currency(w.currency, "currency")?,
        })
    }

    fn encode(&self, l: &Lineage<'_>, out: &mut StagedRows) -> Result<(), String> {
        out.note_day(&self.ts);
        out.buffers[0].row(
            MARKET_DATA.types,
            &[
                &self.symbol,
                &self.exchange,
                &self.ts,
                &self.price,
                &self.volume,
                &self.bid,
                &self.ask,
                &self.currency,
            ],
            l,
        )
    }
}

#[derive(Debug, Deserialize)]
pub struct CryptoDataWire {
    pub symbol: Option<String>,
    pub exchange: Option<String>,
    pub ts: Option<WireTime>,
    pub price: Option<f64>,
    pub volume: Option<f64>,
    pub market_cap: Option<f64>,
    pub quote_currency: Option<String>,
}

/// A validated crypto tick.
#[derive(Debug, Clone, PartialEq)]
pub struct CryptoData {
    pub symbol: String,
    pub exchange: String,
    pub ts: DateTime<Utc>,
    pub price: f64,
    pub volume: f64,
    pub market_cap: Option<f64>,
    pub quote_currency: String,
}

impl Family for CryptoData {
    type Wire = CryptoDataWire;
    const NAME: &'static str = "crypto_data";
    const TABLES: &'static [&'static Table] = &[&CRYPTO_DATA];
    const POLICY: super::Policy = super::Policy::Reject;

    fn parse(w: CryptoDataWire, ctx: &Ctx) -> Result<Self, ValidationError> {
        Ok(Self {
            symbol: check::symbol(w.symbol, "symbol")?,
            exchange: check::exchange(w.exchange, "exchange")?,
            ts: check::partition_time(w.ts, "ts", ctx)?,
            price: check::positive(w.price, "price")?,
            volume: check::non_negative(w.volume, "volume")?,
            market_cap: check::opt_non_negative(w.market_cap, "market_cap")?,
            quote_currency: check::quote_currency(w.quote_currency, "quote_currency")?,
        })
    }

    fn encode(&self, l: &Lineage<'_>, out: &mut StagedRows) -> Result<(), String> {
        out.note_day(&self.ts);
        out.buffers[0].row(
            CRYPTO_DATA.types,
            &[
                &self.symbol,
                &self.exchange,
                &self.ts,
                &self.price,
                &self.volume,
                &self.market_cap,
                &self.quote_currency,
            ],
            l,
        )
    }
}

#[derive(Debug, Deserialize)]
pub struct LevelWire {
    pub price: Option<f64>,
    pub size: Option<f64>,
}

#[derive(Debug, Deserialize)]
pub struct OrderBookWire {
    pub symbol: Option<String>,
    pub exchange: Option<String>,
    pub ts: Option<WireTime>,
    pub bids: Option<Vec<LevelWire>>,
    pub asks: Option<Vec<LevelWire>>,
}

/// A validated order-book snapshot: bids sorted best (highest) first, asks best (lowest) first, not
/// crossed.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderBook {
    pub symbol: String,
    pub exchange: String,
    pub ts: DateTime<Utc>,
    pub bid_prices: Vec<f64>,
    pub bid_sizes: Vec<f64>,
    pub ask_prices: Vec<f64>,
    pub ask_sizes: Vec<f64>,
}

/// Deepest book we accept per side: deeper snapshots are a spider bug, and arrays this size already
/// cost 16 KiB a row.
pub const MAX_DEPTH: usize = 1000;

fn side(
    levels: Option<Vec<LevelWire>>,
    field: &'static str,
    descending: bool,
) -> Result<(Vec<f64>, Vec<f64>), ValidationError> {
    let levels = check::required(levels, field)?;
    if levels.is_empty() || levels.len() > MAX_DEPTH {
        return Err(ValidationError::new(
            Reason::InvalidBook,
            field,
            format!("must have 1 to {MAX_DEPTH} levels, got {}", levels.len()),
        ));
    }
    let mut parsed = Vec::with_capacity(levels.len());
    for l in levels {
        parsed.push((
            check::positive(l.price, field)?,
            check::positive(l.size, field)?,
        ));
    }
    // Normalization: spiders send levels in whatever order the page had them.
    parsed.sort_by(|a, b| {
        if descending {
            b.0.total_cmp(&a.0)
        } else {
            a.0.total_cmp(&b.0)
        }
    });
    if parsed.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err(ValidationError::new(
            Reason::InvalidBook,
            field,
            "has two levels at the same price",
        ));
    }
    Ok(parsed.into_iter().unzip())
}

impl Family for OrderBook {
    type Wire = OrderBookWire;
    const NAME: &'static str = "order_book";
    const TABLES: &'static [&'static Table] = &[&ORDER_BOOK];
    const POLICY: super::Policy = super::Policy::Reject;

    fn parse(w: OrderBookWire, ctx: &Ctx) -> Result<Self, ValidationError> {
        let symbol = check::symbol(w.symbol, "symbol")?;
        let exchange = check::exchange(w.exchange, "exchange")?;
        let ts = check::partition_time(w.ts, "ts", ctx)?;
        let (bid_prices, bid_sizes) = side(w.bids, "bids", true)?;
        let (ask_prices, ask_sizes) = side(w.asks, "asks", false)?;
        if bid_prices[0] >= ask_prices[0] {
            return Err(ValidationError::new(
                Reason::CrossedBook,
                "bids",
                format!(
                    "best bid {} is not below best ask {}",
                    bid_prices[0], ask_prices[0]
                ),
            ));
        }
        Ok(Self {
            symbol,
            exchange,
            ts,
            bid_prices,
            bid_sizes,
            ask_prices,
            ask_sizes,
        })
    }

    fn encode(&self, l: &Lineage<'_>, out: &mut StagedRows) -> Result<(), String> {
        out.note_day(&self.ts);
        out.buffers[0].row(
            ORDER_BOOK.types,
            &[
                &self.symbol,
                &self.exchange,
                &self.ts,
                &self.bid_prices,
                &self.bid_sizes,
                &self.ask_prices,
                &self.ask_sizes,
                &self.bid_prices[0],
                &self.ask_prices[0],
            ],
            l,
        )
    }
}
