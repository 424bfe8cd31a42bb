//! kora-bench: a load generator for any RESP2 server (Kora, Redis, …).
//!
//! Pipelined, multi-connection, at most one thread per core, replies
//! checked in place (a wrong reply is an error, never a success), latency
//! from its own HDR histograms, text or `--json` output. See README.md,
//! "Performance", and `kora-bench --help`.

mod client;
mod reply;
mod report;
mod workload;

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use clap::Parser;

use client::{Bound, Progress, Settings, Shared, Written};
use workload::{Distribution, MAX_KEYSPACE, Mix, Workload};

#[derive(Parser, Debug)]
#[command(
    name = "kora-bench",
    version,
    about = "Load generator for RESP2 servers: pipelined, verified, with HDR latency percentiles",
    after_help = "Exit status: 0 when the run completed without errors, 3 when any \
                  reply was wrong, 1 when the server could not be reached, 2 on bad flags."
)]
struct Cli {
    /// Server host.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Server port.
    #[arg(short, long, default_value_t = 6379)]
    port: u16,
    /// Connections, spread over the threads.
    #[arg(short, long, default_value_t = 50)]
    clients: usize,
    /// Client threads (each runs one epoll loop); default and maximum: the
    /// number of cores.
    #[arg(long)]
    threads: Option<usize>,
    /// Requests per connection in flight at once (sent with one write).
    #[arg(short = 'P', long, default_value_t = 1)]
    pipeline: usize,
    /// Measured requests in total (default 100000 when --duration is not given).
    #[arg(short = 'n', long, conflicts_with = "duration")]
    requests: Option<u64>,
    /// Seconds of measured load.
    #[arg(long)]
    duration: Option<f64>,
    /// Seconds of unmeasured load before measuring.
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
    /// SET:GET weights, e.g. 1:10; 1:0 is SET only.
    #[arg(long, default_value = "1:10", conflicts_with = "commands")]
    ratio: String,
    /// Weighted command mix instead of --ratio, e.g. "incr,lpush" or
    /// "set:1,get:4,hget:2". Known: ping set get incr lpush rpush lpop
    /// hset hget sadd mget.
    #[arg(long)]
    commands: Option<String>,
    /// Number of distinct keys (per data type); redis-benchmark's -r.
    #[arg(short = 'r', long, default_value_t = 100_000)]
    keyspace: u64,
    /// Key distribution: "uniform", or "zipf:S" (rank k drawn with
    /// probability ∝ 1/k^S, e.g. zipf:0.99; key 0 is the hottest).
    #[arg(long, default_value = "uniform")]
    distribution: String,
    /// Bytes per value (SET, LPUSH, HSET); redis-benchmark's -d.
    #[arg(short = 'd', long, default_value_t = 64)]
    value_size: usize,
    /// Keys per MGET.
    #[arg(long, default_value_t = 10)]
    mget_keys: u64,
    /// Seed of the key and command choices (and stamped into values).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Check that every GET/HGET/MGET of a key this run wrote returns the
    /// value written; a mismatch or a nil counts as an error.
    #[arg(long)]
    verify: bool,
    /// SET every key (and HSET, when the mix reads hashes) before the run,
    /// so reads hit from the first request.
    #[arg(long)]
    preload: bool,
    /// Seconds without any reply after which the requests in flight count
    /// as errors and the run ends.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Print the result as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

/// A validated run description.
struct Plan {
    addr: SocketAddr,
    target: String,
    clients: usize,
    threads: usize,
    settings: Settings,
}

fn seconds(flag: &str, value: f64, min: f64) -> Result<Duration, String> {
    if !(value.is_finite() && value >= min && value <= 86_400.0) {
        return Err(format!("--{flag} must be between {min} and 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(value))
}

fn plan(cli: &Cli) -> Result<Plan, String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cli.clients == 0 || cli.clients > 100_000 {
        return Err("--clients must be between 1 and 100000".into());
    }
    if cli.pipeline == 0 || cli.pipeline > 100_000 {
        return Err("--pipeline must be between 1 and 100000".into());
    }
    if cli.keyspace == 0 || cli.keyspace > MAX_KEYSPACE {
        return Err(format!("--keyspace must be between 1 and {MAX_KEYSPACE}"));
    }
    if cli.value_size > 64 * 1024 * 1024 {
        return Err("--value-size must be at most 64 MiB".into());
    }
    let mix = match &cli.commands {
        Some(list) => Mix::parse_commands(list)?,
        None => Mix::parse_ratio(&cli.ratio)?,
    };
    if mix.contains(workload::Op::Mget) && !(1..=64).contains(&cli.mget_keys) {
        return Err("--mget-keys must be between 1 and 64".into());
    }
    if cli.mget_keys > cli.keyspace && mix.contains(workload::Op::Mget) {
        return Err("--mget-keys must not exceed --keyspace".into());
    }
    let distribution = Distribution::parse(&cli.distribution, cli.keyspace)?;
    let bound = match (cli.requests, cli.duration) {
        (Some(0), _) => return Err("--requests must be at least 1".into()),
        (Some(n), _) => Bound::Requests(n),
        (None, Some(d)) => Bound::Duration(seconds("duration", d, 0.001)?),
        (None, None) => Bound::Requests(100_000),
    };
    let threads = cli.threads.unwrap_or(cores);
    if threads == 0 {
        return Err("--threads must be at least 1".into());
    }
    if threads > cores {
        eprintln!("kora-bench: {threads} threads asked, using {cores} (one per core at most)");
    }
    let threads = threads.min(cores).min(cli.clients);
    let target = format!("{}:{}", cli.host, cli.port);
    let addr = target
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {target}: {e}"))?
        .next()
        .ok_or_else(|| format!("{target} resolves to no address"))?;
    Ok(Plan {
        addr,
        target,
        clients: cli.clients,
        threads,
        settings: Settings {
            workload: Workload::new(
                mix,
                cli.keyspace,
                distribution,
                cli.value_size,
                cli.mget_keys,
                cli.seed,
            ),
            pipeline: cli.pipeline,
            warmup: seconds("warmup", cli.warmup, 0.0)?,
            bound,
            timeout: seconds("timeout", cli.timeout, 0.1)?,
            verify: cli.verify,
            preload: cli.preload,
            seed: cli.seed,
        },
    })
}

/// `total` split into `parts` shares that differ by at most one.
fn share(total: u64, parts: usize, i: usize) -> u64 {
    let parts = parts as u64;
    total / parts + u64::from((i as u64) < total % parts)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let plan = match plan(&cli) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("kora-bench: {e}");
            return ExitCode::from(2);
        }
    };

    // Connect everything before any load, so that a refused connection
    // fails the run up front instead of skewing it.
    let mut per_thread: Vec<Vec<TcpStream>> = (0..plan.threads).map(|_| Vec::new()).collect();
    for i in 0..plan.clients {
        match TcpStream::connect_timeout(&plan.addr, Duration::from_secs(5)) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                per_thread[i % plan.threads].push(s);
            }
            Err(e) => {
                eprintln!("kora-bench: cannot connect to {}: {e}", plan.target);
                return ExitCode::from(1);
            }
        }
    }

    let keyspace = plan.settings.workload.keyspace;
    let shared = Shared {
        written: plan.settings.verify.then(|| Written::new(keyspace)),
        progress: (0..plan.threads).map(|_| Progress::default()).collect(),
        start_line: Barrier::new(plan.threads + 1),
        settings: plan.settings,
    };
    let bound = shared.settings.bound;
    let warmup = shared.settings.warmup;
    let preload = shared.settings.preload;

    let preload_started = Instant::now();
    let (reports, started) = std::thread::scope(|scope| {
        let handles: Vec<_> = per_thread
            .into_iter()
            .enumerate()
            .map(|(id, streams)| {
                let keys = if preload {
                    let from = (0..id)
                        .map(|t| share(keyspace, plan.threads, t))
                        .sum::<u64>();
                    from..from + share(keyspace, plan.threads, id)
                } else {
                    0..0
                };
                let quota = match bound {
                    Bound::Requests(n) => Some(share(n, plan.threads, id)),
                    Bound::Duration(_) => None,
                };
                let shared = &shared;
                scope.spawn(move || client::run_thread(id, streams, keys, quota, shared))
            })
            .collect();
        shared.start_line.wait();
        let started = Instant::now();
        report::show_progress(&shared, bound, warmup, started, || {
            handles.iter().all(|h| h.is_finished())
        });
        let reports: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().expect("client thread panicked"))
            .collect();
        (reports, started)
    });
    let preload_time = started.duration_since(preload_started);

    let summary = report::Summary::new(&reports);
    let header = report::Header {
        target: &plan.target,
        clients: plan.clients,
        threads: plan.threads,
        settings: &shared.settings,
        preload_time: preload.then_some(preload_time),
    };
    if cli.json {
        println!("{}", report::json(&header, &summary));
    } else {
        print!("{}", report::text(&header, &summary));
    }
    if let Some(e) = &summary.first_error {
        eprintln!("kora-bench: first error: {e}");
    }
    if summary.errors > 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    }
}
