//! The integration-test binary: one module per feature. See tests/README.md.

mod common;

mod architecture;
mod browser;
mod cifar_binary;
mod cli;
mod dedup;
mod demo;
mod diff;
mod embed;
mod folder_layouts;
mod gate;
mod hostile;
mod idx_files;
mod images_parquet;
mod incremental;
mod interrupt;
mod manifest;
mod model;
mod review;
mod unreadable;
mod webdataset;
