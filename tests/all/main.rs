//! The integration-test binary: one module per feature. See tests/README.md.

mod common;

mod architecture;
mod browser;
mod cifar_binary;
mod cli;
mod dedup;
mod demo;
mod embed;
mod folder_layouts;
mod hostile;
mod images_parquet;
mod incremental;
mod interrupt;
mod manifest;
mod model;
mod unreadable;
