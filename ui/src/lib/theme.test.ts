// @vitest-environment jsdom
import { describe, expect, it, vi } from 'vitest';
import { THEME_STORAGE_KEY, applyTheme, effectiveTheme, loadTheme, nextTheme, saveTheme } from './theme';

function fakeWindow(dark: boolean) {
  const listeners = new Set<() => void>();
  const query = {
    matches: dark,
    addEventListener: (_: string, cb: () => void) => listeners.add(cb),
    removeEventListener: (_: string, cb: () => void) => listeners.delete(cb),
  };
  const win = { document: { documentElement: { dataset: {} as Record<string, string> } }, matchMedia: vi.fn(() => query) };
  return {
    win: win as unknown as Window,
    root: win.document.documentElement,
    flip(to: boolean) {
      query.matches = to;
      for (const cb of listeners) cb();
    },
    listeners,
  };
}

describe('theme', () => {
  it('cycles auto → light → dark and resolves auto by the system setting', () => {
    expect([nextTheme('system'), nextTheme('light'), nextTheme('dark')]).toEqual(['light', 'dark', 'system']);
    expect(effectiveTheme('system', true)).toBe('dark');
    expect(effectiveTheme('system', false)).toBe('light');
    expect(effectiveTheme('light', true)).toBe('light');
  });

  it('remembers the choice; anything else stored reads as auto', () => {
    const store = new Map<string, string>();
    const storage = { getItem: (k: string) => store.get(k) ?? null, setItem: (k: string, v: string) => void store.set(k, v) };
    expect(loadTheme(storage)).toBe('system');
    saveTheme(storage, 'dark');
    expect(store.get(THEME_STORAGE_KEY)).toBe('dark');
    expect(loadTheme(storage)).toBe('dark');
    store.set(THEME_STORAGE_KEY, 'purple');
    expect(loadTheme(storage)).toBe('system');
    const broken = { getItem: () => { throw new Error('denied'); }, setItem: () => { throw new Error('denied'); } };
    expect(loadTheme(broken)).toBe('system');
    expect(() => saveTheme(broken, 'light')).not.toThrow();
  });

  it('auto follows the system live until stopped; an explicit choice ignores it', () => {
    const w = fakeWindow(false);
    const stop = applyTheme('system', w.win);
    expect(w.root.dataset.theme).toBe('light');
    w.flip(true);
    expect(w.root.dataset.theme).toBe('dark');
    stop();
    expect(w.listeners.size).toBe(0);
    applyTheme('light', w.win);
    w.flip(true);
    expect(w.root.dataset.theme).toBe('light');
  });
});
