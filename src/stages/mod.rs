//! The six pipeline stages, in order: ingest → sample → statistics → dedup → embed → render.
//!
//! Each stage module exposes `STAGE` (its [`Stage`]), `VERSION` (bump when its logic
//! changes, so old caches are not trusted) and a `run` taking typed upstream artifacts and
//! returning its own serialisable artifact. Stages never touch the cache: what a stage reuses
//! from an earlier run (ingest's stat cache and previous image table, embed's feature store)
//! is handed to it by [`crate::pipeline`], which also stores what it returns.

pub mod dedup;
pub mod embed;
pub mod ingest;
pub mod render;
pub mod sample;
pub mod statistics;

pub use crate::stage::Stage;
