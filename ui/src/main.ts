import { mount } from 'svelte';

// When this module began to run (the cold start's script stage; see `StartMarks`).
(window as unknown as { calldeskScriptStart: number }).calldeskScriptStart = performance.now();
import App from './App.svelte';
import PopWindow from './lib/components/PopWindow.svelte';
import type { Backend } from './lib/backend';
import { MemoryBackend } from './lib/backend-memory';
import { TauriBackend } from './lib/backend-tauri';
import { sampleCalls } from './lib/sample-calls';
import { THEME_STORAGE_KEY, applyTheme, loadTheme } from './lib/theme';
import './app.css';

function pickBackend(): Backend {
  if ('__TAURI_INTERNALS__' in window) return new TauriBackend();
  // Plain browser: sample data; `window.calldeskDemo.emitCall(...)` pushes more from devtools.
  const demo = new MemoryBackend(sampleCalls(Date.now()), { state: 'connected', profile: 'demo', detail: null });
  (window as unknown as { calldeskDemo: MemoryBackend }).calldeskDemo = demo;
  return demo;
}

// The theme before the first paint; the pop window follows the main window's choice.
let stopTheme = applyTheme(loadTheme(safeStorage()));
window.addEventListener('storage', (e) => {
  if (e.key !== THEME_STORAGE_KEY) return;
  stopTheme();
  stopTheme = applyTheme(loadTheme(safeStorage()));
});

function safeStorage(): Storage | null {
  try {
    return window.localStorage;
  } catch {
    return null;
  }
}

const target = document.getElementById('app');
if (!target) throw new Error('#app element missing');

// The always-on-top pop window loads the same page with `#pop`.
const app =
  window.location.hash === '#pop'
    ? mount(PopWindow, { target, props: { backend: pickBackend() } })
    : mount(App, { target, props: { backend: pickBackend() } });

export default app;
