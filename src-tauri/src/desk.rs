//! Desktop conventions around the engine: the always-on-top pop window and the desktop
//! notification for a call ringing at this desk, the tray icon (state, show, quit), global
//! hotkeys (configurable in `hotkeys.json`), and `tel:`/`callto:` links (a second start of the
//! app hands its arguments to the first, which dials).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use calldesk_wire::{CallStateView, CallView, ConnectionStatus, DirectionView, Identity};
use tauri::menu::{Menu, MenuItem};
use tauri::tray::{TrayIcon, TrayIconBuilder};
use tauri::{AppHandle, Emitter, Manager, WebviewUrl, WebviewWindowBuilder};
use tauri_plugin_global_shortcut::{GlobalShortcutExt, Shortcut, ShortcutState};
use tauri_plugin_notification::NotificationExt;

/// The pop window's label; the UI renders only the pop there (`index.html#pop`).
pub const POP_WINDOW: &str = "pop";
const TRAY_ID: &str = "calldesk";

/// Hotkey actions the UI carries out on the operator's active call.
pub const HOTKEY_ACTIONS: [&str; 4] = ["hangup", "hold", "transfer", "disposition"];

/// The default hotkeys; `hotkeys.json` in the data folder overrides any of them.
fn default_hotkeys() -> BTreeMap<String, String> {
    [
        ("hangup", "CmdOrCtrl+Alt+H"),
        ("hold", "CmdOrCtrl+Alt+J"),
        ("transfer", "CmdOrCtrl+Alt+T"),
        ("disposition", "CmdOrCtrl+Alt+D"),
    ]
    .into_iter()
    .map(|(a, k)| (a.to_owned(), k.to_owned()))
    .collect()
}

/// What the desk shell remembers between events.
#[derive(Debug, Default)]
pub struct DeskState {
    /// Calls ringing at this desk now (the pop window shows while there is one).
    ringing: Mutex<HashSet<String>>,
    /// Calls a notification was shown for (once per call).
    notified: Mutex<HashSet<String>>,
    /// A number from a `tel:` link that arrived before the UI could take it.
    pending_dial: Mutex<Option<String>>,
    /// Hotkey → action.
    hotkeys: Mutex<Vec<(Shortcut, String)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Makes the main window lean, creates the tray icon and registers the hotkeys. The hidden pop
/// window is prepared once the main window's UI is ready ([`prepare_pop`]).
pub fn setup(app: &tauri::App, data_dir: &Path) -> tauri::Result<()> {
    if let Some(main) = app.get_webview_window("main") {
        lean_webview(&main);
    }
    let show = MenuItem::with_id(app, "show", "Show calldesk", true, None::<&str>)?;
    let state = MenuItem::with_id(app, "state", "Connecting…", false, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit", true, None::<&str>)?;
    let menu = Menu::with_items(app, &[&state, &show, &quit])?;
    let mut tray = TrayIconBuilder::with_id(TRAY_ID)
        .menu(&menu)
        .tooltip("calldesk")
        .on_menu_event(|app, event| match event.id().as_ref() {
            "show" => show_main(app),
            "quit" => app.exit(0),
            _ => {}
        });
    if let Some(icon) = app.default_window_icon() {
        tray = tray.icon(icon.clone());
    }
    let tray = tray.build(app)?;
    app.manage(TrayState { tray, state });
    register_hotkeys(app.handle(), data_dir);
    if let Some(queue) = start_queue(app.handle()) {
        app.manage(queue);
    }
    Ok(())
}

struct TrayState {
    tray: TrayIcon,
    state: MenuItem<tauri::Wry>,
}

/// Reads `hotkeys.json` (action → accelerator, e.g. `{"hangup": "Ctrl+Alt+H"}`) over the
/// defaults and registers each; one that cannot be registered (taken by another program, no
/// X server grab) is logged and skipped.
fn register_hotkeys(app: &AppHandle, data_dir: &Path) {
    let mut keys = default_hotkeys();
    let path = data_dir.join("hotkeys.json");
    match std::fs::read(&path) {
        Ok(bytes) => match serde_json::from_slice::<BTreeMap<String, String>>(&bytes) {
            Ok(custom) => keys.extend(custom),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "hotkeys.json is not a JSON object of action → keys; using the defaults")
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot read hotkeys.json"),
    }
    let state = app.state::<DeskState>();
    for (action, accel) in keys {
        if !HOTKEY_ACTIONS.contains(&action.as_str()) {
            tracing::warn!(%action, "unknown hotkey action in hotkeys.json (known: hangup, hold, transfer, disposition)");
            continue;
        }
        let shortcut: Shortcut = match accel.parse() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(%action, keys = %accel, error = %e, "not a key combination");
                continue;
            }
        };
        match app.global_shortcut().register(shortcut) {
            Ok(()) => lock(&state.hotkeys).push((shortcut, action)),
            Err(e) => tracing::warn!(%action, keys = %accel, error = %e, "hotkey not registered"),
        }
    }
}

/// The global-shortcut plugin's handler: tells the UI which action was pressed.
pub fn on_hotkey(app: &AppHandle, shortcut: &Shortcut, state: ShortcutState) {
    if state != ShortcutState::Pressed {
        return;
    }
    let action = lock(&app.state::<DeskState>().hotkeys)
        .iter()
        .find(|(s, _)| s == shortcut)
        .map(|(_, a)| a.clone());
    if let Some(action) = action {
        show_main(app);
        let _ = app.emit("hotkey", action);
    }
}

pub fn show_main(app: &AppHandle) {
    if let Some(w) = app.get_webview_window("main") {
        let _ = w.unminimize();
        let _ = w.show();
        let _ = w.set_focus();
    }
}

/// The number of the first `tel:`/`callto:` argument, if any: dialled by the UI (now, or when
/// it asks for it after starting).
pub fn dial_from_args(app: &AppHandle, args: &[String]) {
    let Some(number) = args
        .iter()
        .skip(1)
        .find_map(|a| calldesk_engine::dial_link_number(a))
    else {
        return;
    };
    tracing::info!(%number, "dial link received");
    *lock(&app.state::<DeskState>().pending_dial) = Some(number.clone());
    show_main(app);
    let _ = app.emit("dial-request", number);
}

/// Takes the number a link asked to dial (the UI calls it once it listens).
pub fn take_pending_dial(app: &AppHandle) -> Option<String> {
    lock(&app.state::<DeskState>().pending_dial).take()
}

fn rings_here(call: &CallView, me: &Identity) -> bool {
    call.direction == DirectionView::Inbound
        && call.state == CallStateView::Ringing
        && me.extension.as_ref().is_none_or(|ext| {
            call.operator.as_ref() == Some(ext) || call.rang.iter().any(|r| r == ext)
        })
}

/// A call changed: shows the pop window and a notification for a call that starts ringing at
/// this desk, hides the pop once none rings here.
/// Desk work for call changes, in order, on a thread of its own: showing, placing or creating
/// the pop window waits on the GTK main thread (creating it takes a WebKit web process), and
/// the relay that tells the UI about the call must not wait behind that.
pub struct DeskQueue(std::sync::mpsc::Sender<(CallView, Identity)>);

/// Starts the desk thread; falls back to doing the work inline if no thread can be made.
pub fn start_queue(app: &AppHandle) -> Option<DeskQueue> {
    let (tx, rx) = std::sync::mpsc::channel::<(CallView, Identity)>();
    let handle = app.clone();
    let started = std::thread::Builder::new()
        .name("calldesk-desk".into())
        .spawn(move || {
            while let Ok((call, me)) = rx.recv() {
                call_changed(&handle, &call, &me);
            }
        });
    match started {
        Ok(_) => Some(DeskQueue(tx)),
        Err(e) => {
            tracing::warn!(error = %e, "no desk thread; the pop window is handled inline");
            None
        }
    }
}

/// A call changed: the pop window and notification follow (on the desk thread).
pub fn queue_call_changed(app: &AppHandle, call: &CallView, me: Identity) {
    match app.try_state::<DeskQueue>() {
        Some(queue) => {
            if queue.0.send((call.clone(), me)).is_err() {
                tracing::warn!("the desk thread has stopped; the pop window is not updated");
            }
        }
        None => call_changed(app, call, &me),
    }
}

fn call_changed(app: &AppHandle, call: &CallView, me: &Identity) {
    let state = app.state::<DeskState>();
    let ringing_now = {
        let mut ringing = lock(&state.ringing);
        if rings_here(call, me) {
            ringing.insert(call.id.clone());
        } else {
            ringing.remove(&call.id);
        }
        !ringing.is_empty()
    };
    let pop = match app.get_webview_window(POP_WINDOW) {
        Some(pop) => Some(pop),
        None if ringing_now => open_pop(app)
            .inspect_err(|e| tracing::warn!(error = %e, "cannot open the pop window"))
            .ok(),
        None => None,
    };
    if let Some(pop) = pop {
        let shown = pop.is_visible().unwrap_or(false);
        if ringing_now && !shown {
            place_bottom_right(&pop);
            let _ = pop.show();
        } else if !ringing_now && shown {
            let _ = pop.hide();
        }
    }
    if rings_here(call, me) && lock(&state.notified).insert(call.id.clone()) {
        let who = call
            .from
            .name
            .clone()
            .unwrap_or_else(|| call.from.display.clone());
        let body = match &call.company {
            Some(company) => format!("{} · {company}", call.from.display),
            None => call.from.display.clone(),
        };
        if let Err(e) = app
            .notification()
            .builder()
            .title(format!("Incoming call: {who}"))
            .body(body)
            .show()
        {
            // No notification daemon (a bare X session): the pop window still shows.
            tracing::debug!(error = %e, "desktop notification not shown");
        }
    }
}

/// The pop window's size (logical pixels; no decorations, so also its outer size).
const POP_SIZE: (f64, f64) = (380.0, 150.0);

fn pop_builder(app: &AppHandle) -> WebviewWindowBuilder<'_, tauri::Wry, AppHandle> {
    WebviewWindowBuilder::new(app, POP_WINDOW, WebviewUrl::App("index.html#pop".into()))
        .title("calldesk — incoming call")
        .inner_size(POP_SIZE.0, POP_SIZE.1)
        .resizable(false)
        .decorations(false)
        .always_on_top(true)
        .skip_taskbar(true)
        .focused(false)
        .visible(false)
}

/// Makes the hidden pop window in the main window's web process (a WebKit related view), so
/// it costs one page in a process that runs anyway rather than a process of its own
/// (~80–120 MB), and starts fast. Runs on the main thread (inside `with_webview`); does nothing
/// if the window exists.
fn make_pop(handle: &AppHandle, webview: tauri::webview::PlatformWebview) {
    if handle.get_webview_window(POP_WINDOW).is_some() {
        return;
    }
    #[cfg(target_os = "linux")]
    let builder = pop_builder(handle).with_related_view(webview.inner());
    #[cfg(not(target_os = "linux"))]
    let builder = {
        let _ = webview;
        pop_builder(handle)
    };
    match builder.build() {
        Ok(_) => tracing::debug!("pop window ready (hidden)"),
        Err(e) => tracing::warn!(error = %e, "cannot make the pop window"),
    }
}

/// Prepares the hidden pop window once the UI is up, so the first call pops as fast as the
/// hundredth (making it when a call rang took up to 1–2 s on our VM). Does not wait.
pub fn prepare_pop(app: &AppHandle) {
    let Some(main) = app.get_webview_window("main") else {
        return;
    };
    let handle = app.clone();
    if let Err(e) = main.with_webview(move |webview| make_pop(&handle, webview)) {
        tracing::warn!(error = %e, "cannot prepare the pop window; it is made when a call rings");
    }
}

/// The pop window, made now if it was not prepared yet (from the desk thread: waits for the
/// main thread to make it, at most 5 s).
fn open_pop(app: &AppHandle) -> tauri::Result<tauri::WebviewWindow> {
    if let Some(main) = app.get_webview_window("main") {
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let handle = app.clone();
        main.with_webview(move |webview| {
            make_pop(&handle, webview);
            let _ = done_tx.send(());
        })?;
        let _ = done_rx.recv_timeout(std::time::Duration::from_secs(5));
        if let Some(pop) = app.get_webview_window(POP_WINDOW) {
            return Ok(pop);
        }
    }
    // No main window to share a process with: one of its own.
    let pop = pop_builder(app).build()?;
    lean_webview(&pop);
    Ok(pop)
}

/// Our pages are plain forms and lists: WebKit's smallest caches are enough. (Turning GPU
/// compositing off as well would save ~80 MB and much CPU per web process under software
/// rendering, but WebKit's automation then loses the pages — WebDriver reports "page crash or
/// hang" — so the end-to-end tests could not drive the app that ships.)
fn lean_webview(window: &tauri::WebviewWindow) {
    #[cfg(target_os = "linux")]
    {
        let done = window.with_webview(|webview| {
            use webkit2gtk::{CacheModel, WebContextExt, WebViewExt};
            if let Some(context) = webview.inner().context() {
                context.set_cache_model(CacheModel::DocumentViewer);
            }
        });
        if let Err(e) = done {
            tracing::debug!(error = %e, "webview settings not applied");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = window;
}

/// Puts the pop in the bottom-right corner of the screen, clear of a bottom panel.
fn place_bottom_right(pop: &tauri::WebviewWindow) {
    let monitor = pop
        .current_monitor()
        .ok()
        .flatten()
        .or_else(|| pop.primary_monitor().ok().flatten());
    let Some(monitor) = monitor else {
        return;
    };
    // The known size, not `outer_size()`: a window never shown yet reports 1×1 on X11, which
    // put the first pop almost entirely off screen (seen in the end-to-end screenshots).
    let scale = monitor.scale_factor();
    let (width, height) = ((POP_SIZE.0 * scale) as i32, (POP_SIZE.1 * scale) as i32);
    let area = monitor.size();
    let origin = monitor.position();
    let margin = (16.0 * scale) as i32;
    let x = origin.x + area.width as i32 - width - margin;
    let y = origin.y + area.height as i32 - height - 3 * margin;
    let _ = pop.set_position(tauri::PhysicalPosition::new(x.max(0), y.max(0)));
}

/// The connection changed: the tray says so.
pub fn connection_changed(app: &AppHandle, status: &ConnectionStatus) {
    let Some(tray) = app.try_state::<TrayState>() else {
        return;
    };
    let text = format!(
        "{:?}{}",
        status.state,
        status
            .detail
            .as_deref()
            .map(|d| format!(" — {d}"))
            .unwrap_or_default()
    );
    let _ = tray.state.set_text(&text);
    let _ = tray.tray.set_tooltip(Some(format!("calldesk: {text}")));
}
