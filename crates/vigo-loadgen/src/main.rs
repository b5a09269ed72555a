//! `vigo-loadgen`: see the library's documentation (`src/lib.rs`) for the
//! modes and what they measure.

use std::process::ExitCode;

fn main() -> ExitCode {
    match vigo_loadgen::main_with_args(std::env::args_os()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<clap::Error>() {
            // `--help`, `--version` and usage mistakes, as clap prints them.
            Some(usage) => usage.exit(),
            None => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}
