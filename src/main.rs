//! The `updraft` binary: parse the arguments, run the command, choose the exit code.

use std::process::ExitCode;

use updraft::{app, cli};

fn main() -> ExitCode {
    let result = cli::parse(std::env::args_os().skip(1).collect())
        .and_then(|cmd| app::run(cmd, &app::Env::from_process()));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}
