use std::process::ExitCode;

use clap::Parser;
use kora::config::{Cli, Config};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are not errors.
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let config = match Config::from_cli(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kora: {e}");
            return ExitCode::from(2);
        }
    };
    eprintln!(
        "kora {} listening on {} with {} shard(s); metrics on {}",
        env!("CARGO_PKG_VERSION"),
        config.listen_addr(),
        config.workers,
        if config.metrics_port == 0 {
            "(disabled)".to_string()
        } else {
            config.metrics_addr()
        },
    );
    match kora::shard::runtime::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kora: {e}");
            ExitCode::from(1)
        }
    }
}
