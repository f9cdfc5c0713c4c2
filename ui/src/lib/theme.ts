// Light / dark theme: the operator's choice (system, light or dark), remembered in
// localStorage, applied as `data-theme` on <html> (app.css keys its dark palette on it). With
// `system` the OS setting decides and is followed live. Both windows (main and pop) apply it;
// the pop follows a change made in the main window through the `storage` event.

export type ThemeChoice = 'system' | 'light' | 'dark';
export const THEME_STORAGE_KEY = 'calldesk.theme';
const ORDER: ThemeChoice[] = ['system', 'light', 'dark'];

type StorageLike = Pick<Storage, 'getItem' | 'setItem'>;

export function isThemeChoice(v: unknown): v is ThemeChoice {
  return v === 'system' || v === 'light' || v === 'dark';
}

/** The remembered choice, else `system`. Storage errors are ignored. */
export function loadTheme(storage: StorageLike | null | undefined): ThemeChoice {
  try {
    const saved = storage?.getItem(THEME_STORAGE_KEY);
    if (isThemeChoice(saved)) return saved;
  } catch {
    // storage unavailable: fall through
  }
  return 'system';
}

export function saveTheme(storage: StorageLike | null | undefined, choice: ThemeChoice): void {
  try {
    storage?.setItem(THEME_STORAGE_KEY, choice);
  } catch {
    // not fatal: the choice just isn't remembered
  }
}

/** The next choice of the theme button: system → light → dark → system. */
export function nextTheme(choice: ThemeChoice): ThemeChoice {
  return ORDER[(ORDER.indexOf(choice) + 1) % ORDER.length] ?? 'system';
}

export function effectiveTheme(choice: ThemeChoice, systemDark: boolean): 'light' | 'dark' {
  if (choice === 'system') return systemDark ? 'dark' : 'light';
  return choice;
}

/**
 * Sets `data-theme` on <html> for `choice`; with `system`, follows the OS setting until the
 * returned function is called.
 */
export function applyTheme(choice: ThemeChoice, win: Window = window): () => void {
  const root = win.document.documentElement;
  const query = typeof win.matchMedia === 'function' ? win.matchMedia('(prefers-color-scheme: dark)') : null;
  const set = () => {
    root.dataset.theme = effectiveTheme(choice, query?.matches ?? false);
  };
  set();
  if (choice !== 'system' || !query) return () => {};
  query.addEventListener('change', set);
  return () => query.removeEventListener('change', set);
}
