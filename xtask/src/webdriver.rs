//! A tiny W3C WebDriver client over plain HTTP (enough for tauri-driver): sessions, finding
//! elements by CSS, text, attributes, screenshots. Errors carry WebDriver's `value.error` and
//! `value.message`, so a failing end-to-end test says what the driver said.

use std::fmt;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use base64::Engine as _;
use serde_json::{Value, json};

/// The key under which W3C WebDriver returns an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// WebDriver key code points for [`Session::keys`].
pub const TAB: char = '\u{E004}';
pub const ENTER: char = '\u{E007}';
pub const ARROW_DOWN: char = '\u{E015}';

/// An error reported by the WebDriver server (`{"value":{"error":…,"message":…}}`).
#[derive(Debug)]
pub struct WebDriverError {
    pub status: u16,
    /// The W3C error code, such as `no such element` or `stale element reference`.
    pub error: String,
    pub message: String,
}

impl WebDriverError {
    /// Errors that mean "the page is changing, look again" while polling.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.error.as_str(),
            "no such element" | "stale element reference"
        )
    }
}

impl fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "WebDriver error `{}` (HTTP {}): {}",
            self.error, self.status, self.message
        )
    }
}

impl std::error::Error for WebDriverError {}

/// Whether `err` is a [`WebDriverError::is_transient`] error.
pub fn is_transient(err: &anyhow::Error) -> bool {
    err.downcast_ref::<WebDriverError>()
        .is_some_and(WebDriverError::is_transient)
}

/// An open WebDriver session; deleted (which closes the app) on drop if not closed before.
#[derive(Debug)]
pub struct Session {
    agent: ureq::Agent,
    url: String,
    open: bool,
}

/// A reference to an element of the current page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element(String);

impl Session {
    /// `POST /session` on the server at `base` (e.g. `http://127.0.0.1:4444`).
    pub fn new(base: &str, capabilities: Value) -> Result<Self> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            // Creating a session starts the app; later calls are quick.
            .timeout_global(Some(Duration::from_secs(60)))
            .http_status_as_error(false)
            .build()
            .into();
        let base = base.trim_end_matches('/');
        let body = json!({ "capabilities": capabilities });
        let value = send(&agent, Method::Post(&body), &format!("{base}/session"))
            .context("cannot create a WebDriver session")?;
        let id = value["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("no sessionId in the new-session response: {value}"))?;
        Ok(Self {
            url: format!("{base}/session/{id}"),
            agent,
            open: true,
        })
    }

    /// All elements matching a CSS selector (empty if none).
    pub fn find_all(&self, css: &str) -> Result<Vec<Element>> {
        let body = json!({ "using": "css selector", "value": css });
        let value = self.post("/elements", &body)?;
        value
            .as_array()
            .ok_or_else(|| anyhow!("find elements `{css}`: expected a list, got {value}"))?
            .iter()
            .map(element_from)
            .collect()
    }

    /// The first element matching a CSS selector, if any.
    pub fn find(&self, css: &str) -> Result<Option<Element>> {
        Ok(self.find_all(css)?.into_iter().next())
    }

    /// The rendered text of an element.
    pub fn text(&self, element: &Element) -> Result<String> {
        let value = self.get(&format!("/element/{}/text", element.0))?;
        value
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("element text: expected a string, got {value}"))
    }

    /// An attribute of an element (`None` if it has none).
    pub fn attribute(&self, element: &Element, name: &str) -> Result<Option<String>> {
        let value = self.get(&format!("/element/{}/attribute/{name}", element.0))?;
        Ok(value.as_str().map(str::to_owned))
    }

    /// Clicks an element (scrolling it into view first, as WebDriver does).
    pub fn click(&self, element: &Element) -> Result<()> {
        self.post(&format!("/element/{}/click", element.0), &json!({}))
            .map(drop)
    }

    /// Empties an editable element (W3C "Element Clear").
    pub fn clear(&self, element: &Element) -> Result<()> {
        self.post(&format!("/element/{}/clear", element.0), &json!({}))
            .map(drop)
    }

    /// Types `text` into an element (W3C "Element Send Keys": focus, then one key per character).
    pub fn send_keys(&self, element: &Element, text: &str) -> Result<()> {
        self.post(
            &format!("/element/{}/value", element.0),
            &json!({ "text": text }),
        )
        .map(drop)
    }

    /// Presses `keys` one after another on whatever has the focus, as a keyboard would (W3C
    /// "Perform Actions" with a key input source). Special keys are WebDriver code points:
    /// [`TAB`], [`ENTER`], [`ARROW_DOWN`] …
    pub fn keys(&self, keys: &str) -> Result<()> {
        let mut actions = Vec::new();
        for key in keys.chars() {
            let key = key.to_string();
            actions.push(json!({"type": "keyDown", "value": key}));
            actions.push(json!({"type": "keyUp", "value": key}));
        }
        self.post(
            "/actions",
            &json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]}),
        )
        .map(drop)
    }

    /// Runs `script` in the page as an async function body: its last argument is the callback
    /// that returns a value (W3C "Execute Async Script").
    pub fn execute_async(&self, script: &str, args: &[Value]) -> Result<Value> {
        self.post("/execute/async", &json!({ "script": script, "args": args }))
    }

    /// The window's position and size: `(x, y, width, height)` (W3C "Get Window Rect").
    pub fn window_rect(&self) -> Result<(i64, i64, i64, i64)> {
        let r = self.get("/window/rect")?;
        let n = |k: &str| {
            r[k].as_f64()
                .map(|v| v.round() as i64)
                .ok_or_else(|| anyhow!("window rect: no {k} in {r}"))
        };
        Ok((n("x")?, n("y")?, n("width")?, n("height")?))
    }

    /// Moves and resizes the window (W3C "Set Window Rect").
    pub fn set_window_rect(&self, x: i64, y: i64, width: i64, height: i64) -> Result<()> {
        self.post(
            "/window/rect",
            &json!({"x": x, "y": y, "width": width, "height": height}),
        )
        .map(drop)
    }

    /// A PNG screenshot of the current window.
    pub fn screenshot(&self) -> Result<Vec<u8>> {
        let value = self.get("/screenshot")?;
        let encoded = value
            .as_str()
            .ok_or_else(|| anyhow!("screenshot: expected a base64 string, got {value}"))?;
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .context("screenshot: invalid base64")
    }

    /// `DELETE /session/{id}`: ends the session and closes the app.
    pub fn close(mut self) -> Result<()> {
        self.open = false;
        send(&self.agent, Method::Delete, &self.url).map(drop)
    }

    fn get(&self, path: &str) -> Result<Value> {
        send(&self.agent, Method::Get, &format!("{}{path}", self.url))
    }

    fn post(&self, path: &str, body: &Value) -> Result<Value> {
        send(
            &self.agent,
            Method::Post(body),
            &format!("{}{path}", self.url),
        )
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.open
            && let Err(err) = send(&self.agent, Method::Delete, &self.url)
        {
            eprintln!("xtask: warning: deleting the WebDriver session: {err:#}");
        }
    }
}

fn element_from(value: &Value) -> Result<Element> {
    value[ELEMENT_KEY]
        .as_str()
        .map(|id| Element(id.to_owned()))
        .ok_or_else(|| anyhow!("expected an element reference, got {value}"))
}

/// The HTTP requests WebDriver uses; only POST has a (JSON) body.
#[derive(Debug, Clone, Copy)]
enum Method<'a> {
    Get,
    Post(&'a Value),
    Delete,
}

impl fmt::Display for Method<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Get => "GET",
            Self::Post(_) => "POST",
            Self::Delete => "DELETE",
        })
    }
}

/// One request; returns the response's `value`, or a [`WebDriverError`] for error responses.
fn send(agent: &ureq::Agent, method: Method<'_>, url: &str) -> Result<Value> {
    let sent = match method {
        Method::Get => agent.get(url).call(),
        Method::Post(body) => agent.post(url).send_json(body),
        Method::Delete => agent.delete(url).call(),
    };
    let mut response = sent.with_context(|| format!("{method} {url}"))?;
    let status = response.status().as_u16();
    let mut json: Value = response
        .body_mut()
        .with_config()
        .limit(64 * 1024 * 1024)
        .read_json()
        .with_context(|| format!("{method} {url}: HTTP {status} with a body that is not JSON"))?;
    let value = json["value"].take();
    if (200..300).contains(&status) {
        return Ok(value);
    }
    let text = |key: &str| value[key].as_str().unwrap_or_default().to_owned();
    Err(anyhow::Error::new(WebDriverError {
        status,
        error: text("error"),
        message: text("message"),
    })
    .context(format!("{method} {url}")))
}
