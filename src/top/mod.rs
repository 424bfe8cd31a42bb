//! `kora top`: a live view of a running server for an operator's ssh
//! session, like `redis-cli --stat` with latency, per-shard balance and hot
//! keys. Every interval it scrapes `/metrics` (rates and latency quantiles
//! come from the difference between two scrapes) and asks `HOTKEYS` over
//! RESP. On a terminal it redraws one screen and quits on `q`; on a pipe it
//! prints one plain block per interval. With `--cluster HOST:PORT` it
//! watches every node of a cluster instead, one row each ([`cluster`]).
//!
//! Layer: none — a separate client of a running server (see the crate docs,
//! "Layers and imports"). Owns `kora top`'s scrape parsing, its RESP client,
//! the view and the terminal. Imports nothing from the rest of the crate and
//! talks to the server over TCP only, like any operator tool.

pub mod cluster;
pub mod resp;
pub mod scrape;
pub mod term;
pub mod view;

use std::ffi::OsString;
use std::io::{self, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;

use self::resp::{RespClient, hotkeys_from_reply};
use self::scrape::{Scrape, fetch_metrics};
use self::term::Screen;
use self::view::{Context, Frame, Line};

#[derive(Parser, Debug)]
#[command(
    name = "kora top",
    about = "Live view of a running Kora server: ops/s and p50/p99 per command, memory, keys, \
             network, clients, per-shard balance and hot keys; with --cluster, one row per node \
             of a cluster. Quit with q.",
    version
)]
pub struct TopArgs {
    /// Server to watch (RESP and /metrics).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// RESP port (for HOTKEYS).
    #[arg(long, default_value_t = 6379)]
    pub port: u16,
    /// /metrics port.
    #[arg(long, default_value_t = 9090)]
    pub metrics_port: u16,
    /// Seconds between refreshes; rates and quantiles cover this interval.
    #[arg(long, default_value_t = 1.0, value_parser = parse_interval)]
    pub interval: f64,
    /// Stop after this many refreshes (default: until q or a signal).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub iterations: Option<u64>,
    /// How many hot keys to show.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub hotkeys: u32,
    /// Plain text blocks even on a terminal (the default when stdout is not one).
    #[arg(long)]
    pub plain: bool,
    /// Watch a whole cluster instead: HOST:PORT of any node (RESP). One row
    /// per node from its CLUSTER NODES, each node's /metrics found with
    /// CONFIG GET metrics-port on the node's own host.
    #[arg(long, value_name = "HOST:PORT", value_parser = cluster_entry,
          conflicts_with_all = ["host", "port", "metrics_port", "hotkeys"])]
    pub cluster: Option<String>,
}

fn cluster_entry(s: &str) -> Result<String, String> {
    cluster::parse_host_port(s).map(|_| s.to_string())
}

fn parse_interval(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("not a number: {s}"))?;
    if (0.1..=3600.0).contains(&v) {
        Ok(v)
    } else {
        Err("must be between 0.1 and 3600 seconds".to_string())
    }
}

/// Entry point for `kora top ARGS…` (`args` without the leading `kora top`).
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args =
        match TopArgs::try_parse_from(std::iter::once(OsString::from("kora top")).chain(args)) {
            Ok(a) => a,
            Err(e) => {
                let code = if e.use_stderr() { 2 } else { 0 };
                let _ = e.print();
                return ExitCode::from(code);
            }
        };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kora top: {e}");
            ExitCode::from(1)
        }
    }
}

/// The HOTKEYS connection, opened on first use and again after a failure.
struct Hotkeys {
    host: String,
    port: u16,
    count: Vec<u8>,
    timeout: Duration,
    client: Option<RespClient>,
}

impl Hotkeys {
    fn fetch(&mut self) -> Result<Vec<(Vec<u8>, i64)>, String> {
        if self.client.is_none() {
            let client = RespClient::connect(&self.host, self.port, self.timeout).map_err(|e| {
                format!(
                    "cannot reach {}:{}: {e}",
                    scrape::bracket_ipv6(&self.host),
                    self.port
                )
            })?;
            self.client = Some(client);
        }
        let client = self.client.as_mut().expect("connected above");
        match client.call(&[b"HOTKEYS", b"COUNT", &self.count]) {
            Ok(reply) => hotkeys_from_reply(reply),
            Err(e) => {
                self.client = None;
                Err(e.to_string())
            }
        }
    }
}

/// Runs until the iterations are done, `q`, or a signal. Fails when the
/// last refresh could not read the server.
pub fn run(args: &TopArgs) -> Result<(), String> {
    if let Some(entry) = &args.cluster {
        return cluster::run(args, entry);
    }
    let interval = Duration::from_secs_f64(args.interval);
    let timeout = interval.clamp(Duration::from_millis(500), Duration::from_secs(2));
    let terminal = !args.plain && term::is_terminal(libc::STDOUT_FILENO);
    let target = format!(
        "{}:{} (metrics :{})",
        scrape::bracket_ipv6(&args.host),
        args.port,
        args.metrics_port
    );
    let mut hotkeys = Hotkeys {
        host: args.host.clone(),
        port: args.port,
        count: args.hotkeys.to_string().into_bytes(),
        timeout,
        client: None,
    };
    let screen = terminal.then(Screen::enter);
    let mut previous: Option<Scrape> = None;
    let mut refreshes = 0u64;
    let mut last_error: Option<String> = None;
    let mut next = Instant::now();
    loop {
        let scraped = fetch_metrics(&args.host, args.metrics_port, timeout)
            .map(|text| Scrape::parse(&text, Instant::now()));
        let lines = match (&scraped, &previous) {
            (Ok(current), Some(before)) => {
                let frame = Frame::between(before, current);
                let hot = hotkeys.fetch();
                let ctx = Context {
                    target: &target,
                    clock: &clock(),
                    hotkeys: &hot,
                    max_command_rows: command_rows_that_fit(terminal, &frame, args.hotkeys),
                };
                refreshes += 1;
                last_error = None;
                Some(view::render(&frame, &ctx, args.interval))
            }
            // The first good scrape only sets the baseline for rates.
            (Ok(_), None) => terminal.then(|| {
                vec![
                    waiting_title(&target, args.interval),
                    Line {
                        text: "reading a second scrape to compute rates...".into(),
                        heading: false,
                    },
                ]
            }),
            (Err(e), _) => {
                refreshes += 1;
                last_error = Some(e.clone());
                Some(vec![
                    waiting_title(&target, args.interval),
                    Line {
                        text: format!("error: {e}"),
                        heading: false,
                    },
                ])
            }
        };
        if let Ok(current) = scraped {
            previous = Some(current);
        }
        match show_and_wait(
            lines.as_deref(),
            screen.as_ref(),
            args,
            refreshes,
            &mut next,
        ) {
            Pace::Again => {}
            Pace::Done => break,
            // The reader went away (closed pipe): nothing left to do.
            Pace::Closed => return Ok(()),
        }
    }
    drop(screen);
    match last_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn waiting_title(target: &str, every: f64) -> Line {
    let hot = Ok(Vec::new());
    let ctx = Context {
        target,
        clock: &clock(),
        hotkeys: &hot,
        max_command_rows: 0,
    };
    view::title(&ctx, "", None, every)
}

/// On a terminal, command rows get the height the rest leaves over.
fn command_rows_that_fit(terminal: bool, frame: &Frame, hotkeys: u32) -> usize {
    if !terminal {
        return usize::MAX;
    }
    let rows = term::size().map_or(40, |(rows, _)| rows);
    // title, summary, 3 blank lines, 3 headings, the "more" line.
    let fixed = 9 + frame.shards.len() + hotkeys as usize;
    rows.saturating_sub(fixed).max(3)
}

/// What the refresh loop does next.
pub(crate) enum Pace {
    /// Refresh again (the interval has passed).
    Again,
    /// The iterations are done or the user pressed `q`.
    Done,
    /// The output went away (closed pipe).
    Closed,
}

/// Shows a frame (full screen on a terminal, else printed as a block), then
/// waits for the next refresh: one `--interval` after the last, or right
/// away when that is past. Shared by `kora top` and `kora top --cluster`.
pub(crate) fn show_and_wait(
    lines: Option<&[Line]>,
    screen: Option<&term::Screen>,
    args: &TopArgs,
    refreshes: u64,
    next: &mut Instant,
) -> Pace {
    if let Some(lines) = lines {
        let shown = if screen.is_some() {
            draw_screen(lines)
        } else {
            print_block(lines)
        };
        if shown.is_err() {
            return Pace::Closed;
        }
    }
    if args.iterations.is_some_and(|n| refreshes >= n) {
        return Pace::Done;
    }
    *next += Duration::from_secs_f64(args.interval);
    let now = Instant::now();
    if *next < now {
        *next = now;
    }
    match screen {
        Some(screen) if screen.wait_for_quit(*next) => Pace::Done,
        Some(_) => Pace::Again,
        None => {
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
            Pace::Again
        }
    }
}

fn print_block(lines: &[Line]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    for line in lines {
        writeln!(out, "{}", line.text)?;
    }
    writeln!(out)?;
    out.flush()
}

fn draw_screen(lines: &[Line]) -> io::Result<()> {
    let (rows, cols) = term::size().unwrap_or((40, 120));
    let mut buf = String::from("\x1b[H");
    for line in lines.iter().take(rows) {
        let text: String = line.text.chars().take(cols).collect();
        if line.heading {
            buf.push_str("\x1b[1m");
            buf.push_str(&text);
            buf.push_str("\x1b[0m");
        } else {
            buf.push_str(&text);
        }
        buf.push_str("\x1b[K\r\n");
    }
    buf.push_str("\x1b[J");
    let mut out = io::stdout().lock();
    out.write_all(buf.as_bytes())?;
    out.flush()
}

/// Local wall-clock time as HH:MM:SS.
fn clock() -> String {
    // SAFETY: time and localtime_r write only into the values we pass.
    unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&now, &mut tm).is_null() {
            return String::new();
        }
        format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec)
    }
}
