//! The `aldente` binary: parse flags, run, print the error chain, pick the exit code.
//!
//! Exit codes: 0 the report was written (undecodable files are findings, not failures);
//! 1 the run failed; 2 the command line or a setting was wrong (clap's own code for flags,
//! [`aldente::config::SettingError`] for the settings file and values out of range,
//! [`aldente::stages::embed::onnx::ModelError`] for a model that cannot be used); 3 the
//! outputs were written and a `--fail-on` check failed ([`aldente::gate::EXIT_CODE`]); 4
//! `aldente apply` refused some decisions and applied the rest
//! ([`aldente::review::EXIT_REFUSED`]).

use std::process::ExitCode;

// Ingest makes a few small allocations per image from two threads; mimalloc cut the cold
// CIFAR-10 ingest's allocator time (glibc arena growth: mprotect, page faults) noticeably.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = match aldente::cli::parse() {
        Ok(args) => args,
        Err(err) => {
            // clap prints usage errors and help itself, with its own exit code.
            err.exit();
        }
    };
    match aldente::run(args) {
        Ok(aldente::Outcome::Done) => ExitCode::SUCCESS,
        Ok(aldente::Outcome::GateFailed) => ExitCode::from(aldente::gate::EXIT_CODE),
        Ok(aldente::Outcome::Refused) => ExitCode::from(aldente::review::EXIT_REFUSED),
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            let setting_wrong = err.chain().any(|cause| {
                cause.is::<aldente::config::SettingError>()
                    || cause.is::<aldente::stages::embed::onnx::ModelError>()
                    || cause.is::<aldente::review::apply::ApplyError>()
            });
            ExitCode::from(if setting_wrong { 2 } else { 1 })
        }
    }
}
