//! The floor of a Tauri 2 window on this platform: one window with a one-line page (served by a
//! custom scheme, as the app's own pages are) and nothing
//! else (no engine, no plugins, no tray). `cargo xtask desk-bench` measures its memory beside
//! the app's, so what calldesk costs can be told from what WebKitGTK costs; it prints
//! `blank ready at_ms=<unix ms>` once its page has loaded (the floor of a cold start).

fn main() {
    let mut context = tauri::generate_context!("../tauri.conf.json");
    context.config_mut().app.windows.clear();
    let app = tauri::Builder::default()
        .on_page_load(|_, payload| {
            if matches!(payload.event(), tauri::webview::PageLoadEvent::Finished) {
                let at_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis());
                eprintln!("blank ready at_ms={at_ms}");
            }
        })
        .register_uri_scheme_protocol("blank", |_, _| {
            tauri::http::Response::builder()
                .header("Content-Type", "text/html")
                .body(b"<!doctype html><p>blank</p>".to_vec())
                .unwrap_or_default()
        })
        .setup(|app| {
            let url = "blank://localhost/".parse()?;
            tauri::WebviewWindowBuilder::new(app, "blank", tauri::WebviewUrl::External(url))
                .title("blank")
                .inner_size(1100.0, 720.0)
                .build()?;
            Ok(())
        })
        .run(context);
    if let Err(e) = app {
        eprintln!("blank window: {e}");
        std::process::exit(1);
    }
}
