//! Economic indicators and supply-chain metrics.

use super::check::{self, Ctx};
use super::{table, Family, ValidationError, WireDate, WireTime};
use crate::sink::copy::{Lineage, StagedRows, Table};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;

table!(ECONOMIC_INDICATOR, "economic_indicator", partitioned = false, key = ["source", "indicator", "country", "frequency", "period_start"], [
    "indicator": TEXT, "country": BPCHAR, "frequency": TEXT, "period_start": DATE, "value": FLOAT8,
    "unit": TEXT, "released_at": TIMESTAMPTZ, "source": TEXT, "version_at": TIMESTAMPTZ,
]);
table!(SUPPLY_CHAIN_METRIC, "supply_chain_metric", partitioned = false, key = ["source", "metric", "location", "observed_at"], [
    "metric": TEXT, "location": TEXT, "observed_at": TIMESTAMPTZ, "value": FLOAT8, "unit": TEXT,
    "source": TEXT, "version_at": TIMESTAMPTZ,
]);

pub const FREQUENCIES: &[&str] = &["daily", "weekly", "monthly", "quarterly", "annual"];
pub const METRICS: &[&str] = &[
    "freight_rate",
    "port_congestion",
    "inventory_level",
    "lead_time",
    "shipping_volume",
    "container_price",
];

#[derive(Debug, Deserialize)]
pub struct EconomicIndicatorWire {
    pub indicator: Option<String>,
    pub country: Option<String>,
    pub frequency: Option<String>,
    pub period_start: Option<WireDate>,
    pub value: Option<f64>,
    pub unit: Option<String>,
    pub released_at: Option<WireTime>,
    pub source: Option<String>,
}

/// A validated release of one period of an economic series.
#[derive(Debug, Clone, PartialEq)]
pub struct EconomicIndicator {
    pub indicator: String,
    pub country: String,
    pub frequency: &'static str,
    pub period_start: NaiveDate,
    pub value: f64,
    pub unit: String,
    pub released_at: DateTime<Utc>,
    pub source: String,
}

impl Family for EconomicIndicator {
    type Wire = EconomicIndicatorWire;
    const NAME: &'static str = "economic_indicator";
    const TABLES: &'static [&'static Table] = &[&ECONOMIC_INDICATOR];
    const POLICY: super::Policy = super::Policy::Revise;

    fn parse(w: EconomicIndicatorWire, ctx: &Ctx) -> Result<Self, ValidationError> {
        Ok(Self {
            indicator: check::indicator_code(w.indicator, "indicator")?,
            country: check::country(w.country, "country")?,
            frequency: check::one_of(w.frequency, "frequency", FREQUENCIES)?,
            period_start: check::date(w.period_start, "period_start")?,
            value: check::finite(w.value, "value")?,
            unit: check::text(w.unit, "unit", 32)?,
            released_at: check::time(w.released_at, "released_at", ctx)?,
            source: check::text(w.source, "source", 200)?,
        })
    }

    fn encode(&self, l: &Lineage<'_>, out: &mut StagedRows) -> Result<(), String> {
        let version_at = self.released_at;
        out.buffers[0].row(
            ECONOMIC_INDICATOR.types,
            &[
                &self.indicator,
                &self.country,
                &self.frequency,
                &self.period_start,
                &self.value,
                &self.unit,
                &self.released_at,
                &self.source,
                &version_at,
            ],
            l,
        )
    }
}

#[derive(Debug, Deserialize)]
pub struct SupplyChainMetricWire {
    pub metric: Option<String>,
    pub location: Option<String>,
    pub observed_at: Option<WireTime>,
    pub value: Option<f64>,
    pub unit: Option<String>,
    pub source: Option<String>,
}

/// A validated supply-chain observation.
#[derive(Debug, Clone, PartialEq)]
pub struct SupplyChainMetric {
    pub metric: &'static str,
    pub location: String,
    pub observed_at: DateTime<Utc>,
    pub value: f64,
    pub unit: String,
    pub source: String,
}

impl Family for SupplyChainMetric {
    type Wire = SupplyChainMetricWire;
    const NAME: &'static str = "supply_chain_metric";
    const TABLES: &'static [&'static Table] = &[&SUPPLY_CHAIN_METRIC];
    const POLICY: super::Policy = super::Policy::Revise;

    fn parse(w: SupplyChainMetricWire, ctx: &Ctx) -> Result<Self, ValidationError> {
        Ok(Self {
            metric: check::one_of(w.metric, "metric", METRICS)?,
            location: check::text(w.location, "location", 128)?,
            observed_at: check::time(w.observed_at, "observed_at", ctx)?,
            value: check::non_negative(w.value, "value")?,
            unit: check::text(w.unit, "unit", 32)?,
            source: check::text(w.source, "source", 200)?,
        })
    }

    fn encode(&self, l: &Lineage<'_>, out: &mut StagedRows) -> Result<(), String> {
        let version_at = l.version_time();
        out.buffers[0].row(
            SUPPLY_CHAIN_METRIC.types,
            &[
                &self.metric,
                &self.location,
                &self.observed_at,
                &self.value,
                &self.unit,
                &self.source,
                &version_at,
            ],
            l,
        )
    }
}
