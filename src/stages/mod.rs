//! The six pipeline stages, in order: ingest → sample → statistics → dedup → embed → render.
//!
//! Each stage module exposes `NAME`, `VERSION` (bump when its logic changes, so old caches
//! are not trusted) and a `run` taking typed upstream artifacts and returning its own
//! serialisable artifact. Caching and ordering live in [`crate::pipeline`], not here.

pub mod dedup;
pub mod embed;
pub mod ingest;
pub mod render;
pub mod sample;
pub mod statistics;
