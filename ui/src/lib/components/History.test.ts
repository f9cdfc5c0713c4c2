// @vitest-environment jsdom
// The history tab (search as you type, filters, a virtualised list over thousands of calls,
// paging, call details with after-call work) and the sync badge, against the in-memory backend.
import { cleanup, fireEvent, render, screen, within } from '@testing-library/svelte';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import App from '../../App.svelte';
import { SYNC_OFF, type CallView } from '../backend';
import { MemoryBackend } from '../backend-memory';
import { answered, ended, makeCall, party } from '../testing';
import { settle } from '../testing-dom';
import History from './History.svelte';
import SyncBadge from './SyncBadge.svelte';

const NOW = Date.UTC(2025, 0, 15, 12, 0, 0);

/** Call `i`: a minute apart going back from NOW; every third missed; names and companies cycle. */
function call(i: number): CallView {
  const start = NOW - (i + 1) * 60_000;
  const from = party(`+7 495 ${String(1_000_000 + i).slice(0, 3)}-${String(1_000_000 + i).slice(3, 5)}-${String(1_000_000 + i).slice(5, 7)}`, ['Остап Бендер', 'Anna Karenina', null][i % 3]);
  const base = makeCall({ id: `c${i}`, startedAt: start, from, company: i % 2 === 0 ? 'Рога и копыта' : null, operator: i % 4 === 0 ? '102' : '101' });
  return i % 3 === 2 ? ended(base, 'missed', start + 20_000) : ended(answered(base, start + 5_000), 'answered', start + 50_000);
}

function lastSearch(b: MemoryBackend) {
  return b.searches[b.searches.length - 1];
}

function rows(): string[] {
  return screen.queryAllByTestId('history-row').map((r) => r.dataset.callId ?? '');
}

/** Lets the debounce (0 ms in these tests) and the search settle. */
async function searched() {
  await settle(3);
  await new Promise((r) => setTimeout(r, 5));
  await settle(6);
}

describe('history', () => {
  beforeEach(() => {
    localStorage.clear();
    vi.spyOn(navigator, 'language', 'get').mockReturnValue('en-US');
  });
  afterEach(() => {
    vi.restoreAllMocks();
    cleanup();
  });

  it('searches as you type, by any digits of a number or part of a name, with filters', async () => {
    const backend = new MemoryBackend(Array.from({ length: 30 }, (_, i) => call(i)));
    render(History, { props: { lang: 'en', backend, now: NOW, debounceMs: 0 } });
    await searched();
    expect(screen.getByTestId('history-meta').textContent).toContain('30 calls shown');
    expect(rows()[0]).toBe('c0');
    const search = screen.getByTestId('history-search');
    // "100-00-1" is in +7 495 100-00-10 … 19, written any way.
    await fireEvent.input(search, { target: { value: '100-00-1' } });
    await searched();
    expect(lastSearch(backend)?.text).toBe('100-00-1');
    expect(rows()).toEqual(Array.from({ length: 10 }, (_, k) => `c${10 + k}`));
    await fireEvent.input(search, { target: { value: 'anna' } });
    await searched();
    expect(rows().every((id) => Number(id.slice(1)) % 3 === 1)).toBe(true);
    expect(rows()).toHaveLength(10);
    // Status and operator filters narrow it further; the query carries them.
    await fireEvent.input(search, { target: { value: '' } });
    await fireEvent.change(screen.getByTestId('history-status'), { target: { value: 'missed' } });
    await searched();
    expect(lastSearch(backend)?.status).toBe('missed');
    expect(rows()).toHaveLength(10);
    await fireEvent.input(screen.getByTestId('history-operator'), { target: { value: '102' } });
    await searched();
    expect(lastSearch(backend)?.operator).toBe('102');
    // Missed (i % 3 == 2) and on 102 (i % 4 == 0) within 30: i = 8 and 20.
    expect(rows()).toEqual(['c8', 'c20']);
    await fireEvent.change(screen.getByTestId('history-period'), { target: { value: 'all' } });
    await searched();
    expect(lastSearch(backend)?.since).toBeNull();
    await fireEvent.input(search, { target: { value: 'nobody-by-this-name' } });
    await searched();
    expect(screen.getByTestId('history-empty').textContent).toBe('No calls match.');
  });

  it('draws only the rows in view of ten thousand calls, and pages in more while scrolling', async () => {
    const backend = new MemoryBackend(Array.from({ length: 10_000 }, (_, i) => call(i)));
    const { rerender } = render(History, { props: { lang: 'en', backend, now: NOW + 40 * 86_400_000, debounceMs: 0, refreshKey: 0 } });
    await fireEvent.change(screen.getByTestId('history-period'), { target: { value: 'all' } });
    await searched();
    expect(lastSearch(backend)?.limit).toBe(200);
    expect(screen.getByTestId('history-meta').textContent).toContain('200 calls shown+');
    const drawn = rows();
    expect(drawn.length).toBeLessThan(40);
    expect(drawn[0]).toBe('c0');
    const list = screen.getByTestId('history-rows');
    // Scrolled to row 180: the rows around it are drawn, the first ones are gone.
    Object.defineProperty(list, 'scrollHeight', { configurable: true, value: 200 * 44 });
    Object.defineProperty(list, 'clientHeight', { configurable: true, value: 600 });
    list.scrollTop = 180 * 44;
    await fireEvent.scroll(list);
    await searched();
    expect(rows()).toContain('c180');
    expect(rows()).not.toContain('c0');
    expect(rows().length).toBeLessThan(40);
    // Near the end of the first page: the next page is read (`before` = the page's `next`).
    expect(lastSearch(backend)?.before).toBe(200);
    expect(screen.getByTestId('history-meta').textContent).toContain('400 calls shown+');
    // News (a pull, an ended call) reads the rows already loaded again, in place.
    await rerender({ lang: 'en', backend, now: NOW + 40 * 86_400_000, debounceMs: 0, refreshKey: 1 });
    await searched();
    expect(lastSearch(backend)?.limit).toBe(400);
    expect(lastSearch(backend)?.before).toBeNull();
    expect(screen.getByTestId('history-meta').textContent).toContain('400 calls shown+');
    expect(rows()).toContain('c180');
  });

  it('opens a call with its details and after-call work, and refreshes when a pull brings calls', async () => {
    const backend = new MemoryBackend([call(0), call(1)]);
    const { rerender } = render(History, { props: { lang: 'en', backend, now: NOW, debounceMs: 0, refreshKey: 0 } });
    await searched();
    await fireEvent.click(screen.getAllByTestId('history-row')[1]!);
    await searched();
    const detail = screen.getByTestId('history-detail');
    expect(detail.dataset.callId).toBe('c1');
    expect(detail.textContent).toContain('Anna Karenina');
    await fireEvent.input(within(detail).getByTestId('after-note'), { target: { value: 'called back, all fine' } });
    await fireEvent.click(within(detail).getByTestId('after-add-note'));
    await searched();
    expect((await backend.afterCall('c1')).notes.map((n) => n.text)).toEqual(['called back, all fine']);
    await fireEvent.click(screen.getByTestId('history-detail-close'));
    await settle();
    expect(screen.queryByTestId('history-detail')).toBeNull();
    // A pull brings a newer call: the list shows it once the app says the history changed.
    backend.pulled([call(-5)]);
    await rerender({ lang: 'en', backend, now: NOW, debounceMs: 0, refreshKey: 1 });
    await searched();
    expect(rows()[0]).toBe('c-5');
  });
});

describe('sync badge', () => {
  afterEach(() => cleanup());

  it('is hidden without a hub, shows what waits and the progress, and syncs on a click', async () => {
    const clicks: number[] = [];
    const { rerender } = render(SyncBadge, { props: { lang: 'en', sync: SYNC_OFF, onSyncNow: () => clicks.push(1) } });
    expect(screen.queryByTestId('sync-status')).toBeNull();
    const refused = [{ id: 'x', kind: 'disposition' as const, callId: '1700.5', error: 'disposition `vip` is not in the list', createdAt: 0 }];
    await rerender({
      lang: 'en',
      sync: { ...SYNC_OFF, state: 'offline', pending: 1234, refused: 2, error: 'the hub at http://hub/ cannot be reached' },
      onSyncNow: () => clicks.push(1),
      loadRefused: async () => refused,
    });
    const badge = screen.getByTestId('sync-status');
    expect(badge.dataset.state).toBe('offline');
    expect(screen.getByTestId('sync-pending').textContent).toBe('1234 changes waiting');
    expect(screen.getByTestId('sync-refused').textContent).toBe('2 changes refused by the hub');
    expect(badge.title).toContain('Hub unreachable — changes are kept here');
    expect(badge.title).toContain('cannot be reached');
    await fireEvent.click(badge);
    expect(clicks).toHaveLength(1);
    // Opening the refused count lists what the hub refused, and why.
    const list = screen.getByTestId('sync-refused-list') as HTMLDetailsElement;
    list.open = true;
    await fireEvent(list, new Event('toggle'));
    await settle();
    const item = screen.getByTestId('sync-refused-item');
    expect(item.textContent).toContain('Disposition · 1700.5');
    expect(item.textContent).toContain('disposition `vip` is not in the list');
    await rerender({ lang: 'ru', sync: { ...SYNC_OFF, state: 'syncing', pending: 3, done: 40, total: 100 }, onSyncNow: () => {} });
    expect(screen.getByTestId('sync-progress').getAttribute('value')).toBe('40');
    expect(screen.getByTestId('sync-pending').textContent).toBe('Ждут отправки: 3 изменения');
  });

  it('follows the app events in the status bar', async () => {
    vi.spyOn(navigator, 'language', 'get').mockReturnValue('en-US');
    const backend = new MemoryBackend([], { state: 'connected', profile: 'hub', detail: null });
    render(App, { props: { backend, clock: () => NOW } });
    await settle(6);
    expect(screen.queryByTestId('sync-status')).toBeNull();
    backend.setSync({ ...SYNC_OFF, state: 'idle', lastSyncedAt: NOW });
    await settle();
    expect(screen.getByTestId('sync-status').dataset.state).toBe('idle');
    await fireEvent.click(screen.getByTestId('sync-status'));
    await settle();
    expect(backend.syncNowCalls).toBe(1);
    vi.restoreAllMocks();
  });
});
