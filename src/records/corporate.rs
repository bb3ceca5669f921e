//! Corporate events: earnings and SEC filings.

use super::check::{self, Ctx};
use super::{table, Family, Reason, ValidationError, WireTime};
use crate::sink::copy::{Lineage, StagedRows, Table};
use chrono::{DateTime, Utc};
use serde::Deserialize;

table!(EARNINGS_EVENT, "earnings_event", partitioned = false, key = ["symbol", "fiscal_year", "fiscal_quarter"], [
    "symbol": TEXT, "fiscal_year": INT4, "fiscal_quarter": INT2, "reported_at": TIMESTAMPTZ,
    "eps_estimate": FLOAT8, "eps_actual": FLOAT8, "revenue_estimate": FLOAT8,
    "revenue_actual": FLOAT8, "currency": BPCHAR, "version_at": TIMESTAMPTZ,
]);
table!(SEC_FILING, "sec_filing", partitioned = false, key = ["accession_number"], [
    "accession_number": TEXT, "cik": TEXT, "company_name": TEXT, "form_type": TEXT,
    "filed_at": TIMESTAMPTZ, "url": TEXT, "symbol": TEXT, "version_at": TIMESTAMPTZ,
]);

pub const FORM_TYPES: &[&str] = &[
    "10-K", "10-Q", "8-K", "S-1", "4", "13F-HR", "DEF 14A", "6-K", "20-F", "SC 13D", "SC 13G",
];

#[derive(Debug, Deserialize)]
pub struct EarningsEventWire {
    pub symbol: Option<String>,
    pub fiscal_year: Option<i64>,
    pub fiscal_quarter: Option<i64>,
    pub reported_at: Option<WireTime>,
    pub eps_estimate: Option<f64>,
    pub eps_actual: Option<f64>,
    pub revenue_estimate: Option<f64>,
    pub revenue_actual: Option<f64>,
    pub currency: Option<String>,
}

/// A validated quarterly earnings report.
#[derive(Debug, Clone, PartialEq)]
pub struct EarningsEvent {
    pub symbol: String,
    pub fiscal_year: i32,
    pub fiscal_quarter: i16,
    pub reported_at: DateTime<Utc>,
    pub eps_estimate: Option<f64>,
    pub eps_actual: Option<f64>,
    pub revenue_estimate: Option<f64>,
    pub revenue_actual: Option<f64>,
    pub currency: String,
}

impl Family for EarningsEvent {
    type Wire = EarningsEventWire;
    const NAME: &'static str = "earnings_event";
    const TABLES: &'static [&'static Table] = &[&EARNINGS_EVENT];
    const POLICY: super::Policy = super::Policy::Revise;

    fn parse(w: EarningsEventWire, ctx: &Ctx) -> Result<Self, ValidationError> {
        Ok(Self {
            symbol: check::symbol(w.symbol, "symbol")?,
            fiscal_year: check::int_in_range(w.fiscal_year, "fiscal_year", 1900, 2200)? as i32,
            fiscal_quarter: check::int_in_range(w.fiscal_quarter, "fiscal_quarter", 1, 4)? as i16,
            reported_at: check::time(w.reported_at, "reported_at", ctx)?,
            eps_estimate: check::opt_finite(w.eps_estimate, "eps_estimate")?,
            eps_actual: check::opt_finite(w.eps_actual, "eps_actual")?,
            revenue_estimate: check::opt_non_negative(w.revenue_estimate, "revenue_estimate")?,
            revenue_actual: check::opt_non_negative(w.revenue_actual, "revenue_actual")?,
            currency: check::currency(w.currency, "currency")?,
        })
    }

    fn encode(&self, l: &Lineage<'_>, out: &mut StagedRows) -> Result<(), String> {
        let version_at = self.reported_at;
        out.buffers[0].row(
            EARNINGS_EVENT.types,
            &[
                &self.symbol,
                &self.fiscal_year,
                &self.fiscal_quarter,
                &self.reported_at,
                &self.eps_estimate,
                &self.eps_actual,
                &self.revenue_estimate,
                &self.revenue_actual,
                &self.currency,
                &version_at,
            ],
            l,
        )
    }
}

#[derive(Debug, Deserialize)]
pub struct SecFilingWire {
    pub accession_number: Option<String>,
    pub cik: Option<String>,
    pub company_name: Option<String>,
    pub form_type: Option<String>,
    pub filed_at: Option<WireTime>,
    pub url: Option<String>,
    pub symbol: Option<String>,
}

/// A validated SEC EDGAR filing.
#[derive(Debug, Clone, PartialEq)]
pub struct SecFiling {
    pub accession_number: String,
    /// Zero-padded to 10 digits, as EDGAR prints it, so `320193` and `0000320193` are one company.
    pub cik: String,
    pub company_name: String,
    pub form_type: &'static str,
    pub filed_at: DateTime<Utc>,
    pub url: String,
    pub symbol: Option<String>,
}

fn accession(v: Option<String>) -> Result<String, ValidationError> {
    let s = check::required(v, "accession_number")?.trim().to_owned();
    let b = s.as_bytes();
    let ok = b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            10 | 13 => *c == b'-',
            _ => c.is_ascii_digit(),
        });
    if !ok {
        return Err(ValidationError::new(
            Reason::InvalidFormat,
            "accession_number",
            format!("{s:?} is not of the form NNNNNNNNNN-NN-NNNNNN"),
        ));
    }
    Ok(s)
}

fn cik(v: Option<String>) -> Result<String, ValidationError> {
    let s = check::required(v, "cik")?;
    let t = s.trim();
    if t.is_empty() || t.len() > 10 || !t.bytes().all(|c| c.is_ascii_digit()) {
        return Err(ValidationError::new(
            Reason::InvalidFormat,
            "cik",
            format!("{t:?} is not a CIK of 1 to 10 digits"),
        ));
    }
    Ok(format!("{t:0>10}"))
}

impl Family for SecFiling {
    type Wire = SecFilingWire;
    const NAME: &'static str = "sec_filing";
    const TABLES: &'static [&'static Table] = &[&SEC_FILING];
    const POLICY: super::Policy = super::Policy::Revise;

    fn parse(w: SecFilingWire, ctx: &Ctx) -> Result<Self, ValidationError> {
        Ok(Self {
            accession_number: accession(w.accession_number)?,
            cik: cik(w.cik)?,
            company_name: check::text(w.company_name, "company_name", 300)?,
            form_type: check::one_of(w.form_type, "form_type", FORM_TYPES)?,
            filed_at: check::time(w.filed_at, "filed_at", ctx)?,
            url: check::url(w.url, "url")?,
            symbol: check::opt_symbol(w.symbol, "symbol")?,
        })
    }

    fn encode(&self, l: &Lineage<'_>, out: &mut StagedRows) -> Result<(), String> {
        let version_at = l.version_time();
        out.buffers[0].row(
            SEC_FILING.types,
            &[
                &self.accession_number,
                &self.cik,
                &self.company_name,
                &self.form_type,
                &self.filed_at,
                &self.url,
                &self.symbol,
                &version_at,
            ],
            l,
        )
    }
}
