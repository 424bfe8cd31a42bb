//! A small HTTP/1.1 server for the collector: `GET`/`HEAD /metrics`,
//! keep-alive, gzip on request, bounded requests, a bounded number of
//! connections, and an absolute deadline for each request head (a client
//! trickling one byte at a time cannot hold a connection open).
//! Header parsing is httparse's; this file only decides what to answer.

use std::cell::Cell;
use std::io::Write as _;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt, future};
use glommio::net::{TcpListener, TcpStream};

use super::Collector;

/// Largest request head accepted; scrapers send a few hundred bytes.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;
const MAX_HEADERS: usize = 32;
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The endpoint's limits (`metrics-max-connections`,
/// `metrics-request-timeout`).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_connections: usize,
    /// From a request's first byte (or the connection's start, or the end
    /// of the previous response) to its complete head.
    pub request_timeout: Duration,
}

pub async fn serve(collector: Rc<Collector>, listener: TcpListener, limits: Limits) {
    let open = Rc::new(Cell::new(0usize));
    loop {
        let accepted = future::or(async { Some(listener.accept().await) }, async {
            let _ = collector.shutdown.acquire(1).await;
            None
        })
        .await;
        match accepted {
            Some(Ok(mut stream)) if open.get() >= limits.max_connections => {
                // Full: say so and close, never waiting on this client.
                glommio::spawn_local(async move {
                    let _ = future::or(
                        respond_plain(&mut stream, 503, "Too many connections", false),
                        async {
                            glommio::timer::sleep(Duration::from_millis(100)).await;
                            Ok(())
                        },
                    )
                    .await;
                })
                .detach();
            }
            Some(Ok(stream)) => {
                let (collector, open) = (collector.clone(), open.clone());
                open.set(open.get() + 1);
                glommio::spawn_local(async move {
                    connection(collector, stream, limits.request_timeout).await;
                    open.set(open.get() - 1);
                })
                .detach();
            }
            Some(Err(_)) => glommio::timer::sleep(Duration::from_millis(10)).await,
            None => return,
        }
    }
}

/// What a parsed request asks for.
#[derive(Debug, PartialEq, Eq)]
pub struct Wanted {
    pub head_only: bool,
    pub gzip: bool,
    pub keep_alive: bool,
    pub status: u16,
}

/// Decides the answer to one request head (path, method, headers).
pub fn decide(req: &httparse::Request) -> Wanted {
    let method = req.method.unwrap_or("");
    let path = req.path.unwrap_or("").split('?').next().unwrap_or("");
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).to_ascii_lowercase())
    };
    let http11 = req.version == Some(1);
    let keep_alive = match header("connection") {
        Some(v) if v.contains("close") => false,
        Some(v) if v.contains("keep-alive") => true,
        _ => http11,
    };
    let gzip = header("accept-encoding").is_some_and(|v| {
        v.split(',').any(|enc| {
            let mut parts = enc.trim().split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| p.trim().replace(' ', "") == "q=0");
            name == "gzip" && !refused
        })
    });
    let has_body = header("content-length").is_some_and(|v| v.trim() != "0")
        || header("transfer-encoding").is_some();
    let status = match (method, path) {
        ("GET" | "HEAD", "/metrics") => 200,
        ("GET" | "HEAD", _) => 404,
        _ => 405,
    };
    Wanted {
        head_only: method == "HEAD",
        gzip,
        // We never read request bodies, so a request with one ends the
        // connection rather than leaving its body to be parsed as a request.
        keep_alive: keep_alive && !has_body && status != 405,
        status,
    }
}

async fn connection(collector: Rc<Collector>, mut stream: TcpStream, timeout: Duration) {
    let mut buf = vec![0u8; MAX_REQUEST_BYTES];
    let mut filled = 0usize;
    // Each request head must be complete by this instant, however its
    // bytes trickle in; reset only after a response.
    let mut deadline = Instant::now() + timeout;
    loop {
        // Parse whatever is buffered; read more only when it is not a
        // whole request head yet.
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let parsed = req.parse(&buf[..filled]);
        let (wanted, consumed) = match parsed {
            Ok(httparse::Status::Complete(n)) => (decide(&req), n),
            Ok(httparse::Status::Partial) if filled < buf.len() => {
                let read = future::or(
                    async { Some(stream.read(&mut buf[filled..]).await) },
                    async {
                        glommio::timer::sleep(deadline.saturating_duration_since(Instant::now()))
                            .await;
                        None
                    },
                )
                .await;
                match read {
                    Some(Ok(n)) if n > 0 => {
                        filled += n;
                        continue;
                    }
                    _ => return,
                }
            }
            Ok(httparse::Status::Partial) => {
                let _ =
                    respond_plain(&mut stream, 431, "Request Header Fields Too Large", false).await;
                return;
            }
            Err(_) => {
                let _ = respond_plain(&mut stream, 400, "Bad Request", false).await;
                return;
            }
        };
        let ok = match wanted.status {
            200 => respond_metrics(&collector, &mut stream, &wanted).await,
            404 => respond_plain(&mut stream, 404, "Not Found", wanted.keep_alive).await,
            _ => respond_plain(&mut stream, 405, "Method Not Allowed", false).await,
        };
        if ok.is_err() || !wanted.keep_alive {
            return;
        }
        buf.copy_within(consumed..filled, 0);
        filled -= consumed;
        deadline = Instant::now() + timeout;
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    }
}

async fn respond_plain(
    stream: &mut TcpStream,
    status: u16,
    body: &str,
    keep_alive: bool,
) -> std::io::Result<()> {
    let body = format!("{body}\n");
    let allow = if status == 405 {
        "Allow: GET, HEAD\r\n"
    } else {
        ""
    };
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n{allow}Connection: {}\r\n\r\n",
        reason(status),
        body.len(),
        if keep_alive { "keep-alive" } else { "close" },
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.flush().await
}

async fn respond_metrics(
    collector: &Rc<Collector>,
    stream: &mut TcpStream,
    wanted: &Wanted,
) -> std::io::Result<()> {
    let text = collector.render_metrics().await;
    let body = if wanted.gzip {
        let mut enc = flate2::write::GzEncoder::new(
            Vec::with_capacity(text.len() / 4),
            flate2::Compression::fast(),
        );
        enc.write_all(text.as_bytes())?;
        enc.finish()?
    } else {
        text.into_bytes()
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\n{}Vary: Accept-Encoding\r\nConnection: {}\r\n\r\n",
        body.len(),
        if wanted.gzip {
            "Content-Encoding: gzip\r\n"
        } else {
            ""
        },
        if wanted.keep_alive {
            "keep-alive"
        } else {
            "close"
        },
    );
    stream.write_all(head.as_bytes()).await?;
    if !wanted.head_only {
        stream.write_all(&body).await?;
    }
    stream.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide_raw(raw: &[u8]) -> Wanted {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        assert!(req.parse(raw).unwrap().is_complete());
        decide(&req)
    }

    #[test]
    fn routes_methods_and_encodings() {
        let w = decide_raw(
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip, deflate\r\n\r\n",
        );
        assert_eq!(
            w,
            Wanted {
                head_only: false,
                gzip: true,
                keep_alive: true,
                status: 200
            }
        );
        let w = decide_raw(b"HEAD /metrics?x=1 HTTP/1.0\r\n\r\n");
        assert_eq!(
            w,
            Wanted {
                head_only: true,
                gzip: false,
                keep_alive: false,
                status: 200
            }
        );
        assert_eq!(decide_raw(b"GET /nope HTTP/1.1\r\n\r\n").status, 404);
        let w = decide_raw(b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\n");
        assert_eq!((w.status, w.keep_alive), (405, false));
        assert!(!decide_raw(b"GET /metrics HTTP/1.1\r\nAccept-Encoding: gzip;q=0\r\n\r\n").gzip);
        assert!(!decide_raw(b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
    }
}
