//! `/metrics`, `/health` and `/ready` over a minimal blocking HTTP/1.0 server on its own thread
//! (three fixed GET routes need no HTTP framework).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::metrics::Metrics;

/// Liveness and readiness, written by the loop, read by the endpoints.
#[derive(Debug, Default)]
pub struct Health {
    /// When the loop last turned (ms since the epoch).
    last_turn_ms: AtomicU64,
    /// Transactions initialised, subscribed, not shutting down.
    ready: AtomicBool,
    /// A fatal error stopped the loop.
    failed: AtomicBool,
    /// What the loop is waiting for (a dependency that is down), if anything.
    waiting: std::sync::Mutex<Option<String>>,
    /// Destinations stopped until a restart (`label: why`); the others keep flowing.
    stopped: std::sync::Mutex<Vec<String>>,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Health {
    pub fn turn(&self) {
        self.last_turn_ms.store(now_ms(), Ordering::Relaxed);
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    pub fn set_failed(&self) {
        self.failed.store(true, Ordering::Relaxed);
        self.ready.store(false, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && self.waiting().is_none()
    }

    /// The loop waits for a dependency (`Some(why)`) or no longer does (`None`).
    pub fn set_waiting(&self, why: Option<String>) {
        if let Ok(mut w) = self.waiting.lock() {
            *w = why;
        }
    }

    pub fn waiting(&self) -> Option<String> {
        self.waiting.lock().ok().and_then(|w| w.clone())
    }

    /// The destinations stopped until a restart, each as `label: why`.
    pub fn set_stopped(&self, stopped: Vec<String>) {
        if let Ok(mut s) = self.stopped.lock() {
            *s = stopped;
        }
    }

    pub fn stopped(&self) -> Vec<String> {
        self.stopped.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Alive: not failed and the loop turned within `stall`.
    pub fn is_alive(&self, stall: Duration) -> bool {
        let last = self.last_turn_ms.load(Ordering::Relaxed);
        !self.failed.load(Ordering::Relaxed)
            && (last == 0 || now_ms().saturating_sub(last) <= stall.as_millis() as u64)
    }
}

/// Serves the endpoints on `listen` from a background thread; returns the bound address.
pub fn serve(
    listen: &str,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    stall: Duration,
) -> std::io::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind(listen)?;
    let addr = listener.local_addr()?;
    std::thread::Builder::new()
        .name("decant-http".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
                handle(stream, &metrics, &health, stall);
            }
        })?;
    Ok(addr)
}

fn handle(stream: TcpStream, metrics: &Metrics, health: &Health, stall: Duration) {
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    // Drain the request headers.
    let mut h = String::new();
    while reader.read_line(&mut h).map(|n| n > 2).unwrap_or(false) {
        h.clear();
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/");
    let (status, ctype, body) = match path {
        "/metrics" => ("200 OK", "text/plain; version=0.0.4", metrics.render()),
        "/health" | "/healthz" => {
            if health.is_alive(stall) {
                // Alive while it waits for a dependency (it retries; a restart would not help),
                // but it says what it waits for.
                let mut body = match health.waiting() {
                    Some(why) => format!("ok; waiting: {why}\n"),
                    None => "ok\n".to_owned(),
                };
                // Alive (the other tables flow), but a stopped table needs an operator.
                for s in health.stopped() {
                    body.push_str(&format!("stopped until restart: {s}\n"));
                }
                ("200 OK", "text/plain", body)
            } else {
                (
                    "503 Service Unavailable",
                    "text/plain",
                    "stalled or failed\n".to_owned(),
                )
            }
        }
        "/ready" | "/readyz" => {
            if health.is_ready() {
                ("200 OK", "text/plain", "ready\n".to_owned())
            } else {
                let body = match health.waiting() {
                    Some(why) => format!("not ready; waiting: {why}\n"),
                    None => "not ready\n".to_owned(),
                };
                ("503 Service Unavailable", "text/plain", body)
            }
        }
        _ => ("404 Not Found", "text/plain", "not found\n".to_owned()),
    };
    let mut s = &stream;
    let _ = write!(
        s,
        "HTTP/1.0 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}
