use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use kora::config::{Cli, Config};

fn main() -> ExitCode {
    // `kora top` is the operator's live view, not a server option.
    if std::env::args_os().nth(1).is_some_and(|a| a == "top") {
        return kora::top::main(std::env::args_os().skip(2));
    }
    // So is `kora cluster`, the tool that pushes the topology to the nodes.
    if std::env::args_os().nth(1).is_some_and(|a| a == "cluster") {
        return kora::cluster::tool::main(std::env::args_os().skip(2));
    }
    let command = Cli::command().after_help(
        "Live view of a running server: kora top [--host H] [--port P] [--metrics-port M] (kora top --help)\n\
         Cluster operations: kora cluster create|check|push|reshard|fix|info (kora cluster --help)",
    );
    let cli = match command
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m))
    {
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
    if config.cluster_enabled {
        // A topology file that does not parse stops the start, as a bad
        // config would: serving slots from a half-read file is worse.
        if let Err(e) = kora::cluster::load_topology(&config) {
            eprintln!("kora: cluster-config-file {e}");
            return ExitCode::from(2);
        }
        let (host, port) = config.cluster_announce();
        eprintln!(
            "kora: cluster mode, node id {} ({host}:{port})",
            kora::cluster::node_id_for(&host, port)
        );
    }
    for warning in kora::command::auth::startup_warnings(&config) {
        eprintln!("kora: {warning}");
    }
    match kora::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kora: {e}");
            ExitCode::from(1)
        }
    }
}
