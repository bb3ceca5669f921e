//! Operator commands that inspect or repair the worker's state rather than move data.
//!
//! - [`offsets`]: `esurio offsets list | reset`: stored offsets against the broker, and audited
//!   resets (after a topic was recreated, or retention removed records never written).
//! - [`lineage`]: `esurio lineage <family> <key>`: what a result was computed from, back to the
//!   ticks and articles (docs/LINEAGE.md).

pub mod lineage;
pub mod offsets;
