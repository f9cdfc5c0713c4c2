//! The hub's WebSocket from the load tool's side: the URL, the `hello` check, the supervisor
//! clients that time every call message ([`watch`]) and the idle clients that only stay
//! connected ([`idle`]). The token travels in the URL's query: the URL is never printed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use calldesk_wire::HubMessage;
use futures_util::StreamExt as _;
use reqwest::Url;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::matcher::{SendLog, WatchStats};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a connection may take to say `hello`.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// `ws://…/ws?token=…` from the hub's `http://…` base URL.
pub fn ws_url(hub: &str, token: &str) -> anyhow::Result<Url> {
    let mut url = Url::parse(&format!("{}/ws", hub.trim_end_matches('/')))
        .with_context(|| format!("--hub `{hub}` is not a URL"))?;
    let scheme = match url.scheme() {
        "http" | "ws" => "ws",
        "https" | "wss" => bail!(
            "--hub `{hub}`: this load tool speaks plain HTTP and WebSocket only; measure the hub on its plain listener (TLS belongs in front of it)"
        ),
        other => bail!("--hub `{hub}`: scheme `{other}` is not http"),
    };
    if url.set_scheme(scheme).is_err() {
        bail!("--hub `{hub}`: cannot derive the WebSocket URL");
    }
    url.query_pairs_mut().clear().append_pair("token", token);
    Ok(url)
}

/// Opens a WebSocket; `small` buffers for the thousands of idle clients.
pub async fn connect(url: &Url, small: bool) -> anyhow::Result<Ws> {
    let config = small.then(|| {
        WebSocketConfig::default()
            .read_buffer_size(4 * 1024)
            .write_buffer_size(0)
    });
    let (ws, _response) =
        tokio_tungstenite::connect_async_with_config(url.as_str(), config, true).await?;
    Ok(ws)
}

/// What a connection's `hello` said.
#[derive(Debug, Clone)]
pub struct Hello {
    pub role: String,
    pub extension: Option<String>,
}

/// Waits for the `hello` (the hub's first message).
pub async fn hello(ws: &mut Ws) -> anyhow::Result<Hello> {
    let wait = async {
        while let Some(msg) = ws.next().await {
            match msg? {
                Message::Text(text) => {
                    return match serde_json::from_str::<HubMessage>(text.as_str()) {
                        Ok(HubMessage::Hello {
                            role, extension, ..
                        }) => Ok(Hello { role, extension }),
                        Ok(_) => Err(anyhow::anyhow!("the hub's first message was not `hello`")),
                        Err(e) => Err(anyhow::anyhow!(
                            "the hub's first message is not a hub message: {e}"
                        )),
                    };
                }
                Message::Close(frame) => {
                    let why = frame.map(|f| clean(f.reason.as_str())).unwrap_or_default();
                    bail!("the hub closed the WebSocket before `hello` {why}");
                }
                _ => {}
            }
        }
        bail!("the hub closed the WebSocket before `hello`")
    };
    tokio::time::timeout(HELLO_TIMEOUT, wait)
        .await
        .context("no `hello` from the hub within 10 s")?
}

/// Text a server sent, safe for a terminal: no control characters, at most 200 characters.
pub fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect()
}

/// Counters of a group of clients.
#[derive(Debug, Default)]
pub struct ClientCounts {
    pub connected: AtomicU64,
    pub failed: AtomicU64,
    pub dropped: AtomicU64,
    pub messages: AtomicU64,
    /// The first connect failure or drop, for the report.
    pub first_error: Mutex<Option<String>>,
}

impl ClientCounts {
    pub fn note_error(&self, what: String) {
        let mut first = self
            .first_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        first.get_or_insert(what);
    }

    pub fn get(&self, c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    pub fn first_error(&self) -> Option<String> {
        self.first_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Why a client's read loop ended.
enum End {
    Stopped,
    Dropped(String),
}

/// Reads until told to stop or the connection ends; `on_text` gets each text frame and when it
/// arrived.
async fn read_loop(
    ws: &mut Ws,
    stop: &mut watch::Receiver<bool>,
    mut on_text: impl FnMut(&str, Instant),
) -> End {
    loop {
        if *stop.borrow() {
            return End::Stopped;
        }
        tokio::select! {
            biased;
            msg = ws.next() => {
                let at = Instant::now();
                match msg {
                    Some(Ok(Message::Text(text))) => on_text(text.as_str(), at),
                    Some(Ok(Message::Close(frame))) => {
                        let why = frame.map(|f| format!("{} {}", f.code, clean(f.reason.as_str())));
                        return End::Dropped(format!("closed by the hub {}", why.unwrap_or_default()));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return End::Dropped(clean(&e.to_string())),
                    None => return End::Dropped(String::from("connection closed")),
                }
            }
            _ = stop.changed() => return End::Stopped,
        }
    }
}

async fn close(ws: &mut Ws) {
    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
}

/// A supervisor client: files every message in `stats`, timed against `log`.
pub async fn watch(
    mut ws: Ws,
    log: Arc<SendLog>,
    stats: Arc<Mutex<WatchStats>>,
    counts: Arc<ClientCounts>,
    epoch: Instant,
    mut stop: watch::Receiver<bool>,
) {
    let end = read_loop(&mut ws, &mut stop, |text, at| {
        let at_us = at.saturating_duration_since(epoch).as_micros() as u64;
        counts.messages.fetch_add(1, Ordering::Relaxed);
        stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .observe(&log, text, at_us);
    })
    .await;
    match end {
        End::Stopped => close(&mut ws).await,
        End::Dropped(why) => {
            counts.dropped.fetch_add(1, Ordering::Relaxed);
            counts.note_error(format!("a supervisor client dropped: {why}"));
        }
    }
}

/// An idle operator client: connects, counts what it gets, stays until told to stop.
pub async fn idle(url: Arc<Url>, counts: Arc<ClientCounts>, mut stop: watch::Receiver<bool>) {
    let mut ws = match connect(&url, true).await {
        Ok(ws) => ws,
        Err(e) => {
            counts.failed.fetch_add(1, Ordering::Relaxed);
            counts.note_error(format!(
                "a client could not connect: {}",
                clean(&format!("{e:#}"))
            ));
            return;
        }
    };
    counts.connected.fetch_add(1, Ordering::Relaxed);
    let end = read_loop(&mut ws, &mut stop, |_, _| {
        counts.messages.fetch_add(1, Ordering::Relaxed);
    })
    .await;
    match end {
        End::Stopped => close(&mut ws).await,
        End::Dropped(why) => {
            counts.dropped.fetch_add(1, Ordering::Relaxed);
            counts.note_error(format!("a client dropped: {why}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ws_url_comes_from_the_hub_url() {
        let u = ws_url("http://127.0.0.1:8080", "a.b-c_d").unwrap();
        assert_eq!(u.as_str(), "ws://127.0.0.1:8080/ws?token=a.b-c_d");
        let u = ws_url("http://hub.local/calldesk/", "t").unwrap();
        assert_eq!(u.as_str(), "ws://hub.local/calldesk/ws?token=t");
        let u = ws_url("http://h:1", "x y&z").unwrap();
        assert_eq!(u.query(), Some("token=x+y%26z"));
        assert!(ws_url("https://h", "t").is_err());
        assert!(ws_url("ftp://h", "t").is_err());
        assert!(ws_url("not a url", "t").is_err());
    }

    #[test]
    fn server_text_is_cleaned() {
        assert_eq!(clean("bad\u{1b}[31m\ntoken"), "bad [31m token");
        assert_eq!(clean(&"x".repeat(500)).len(), 200);
    }
}
