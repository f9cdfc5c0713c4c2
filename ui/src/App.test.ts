// @vitest-environment jsdom
import { fireEvent, render, screen, within } from '@testing-library/svelte';
import { tick } from 'svelte';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import App from './App.svelte';
import { MemoryBackend } from './lib/backend-memory';
import { answered, ended, makeCall, party } from './lib/testing';

const NOW = Date.UTC(2025, 0, 15, 9, 0, 30);
const clock = () => NOW;

function setup(backend = new MemoryBackend()) {
  const utils = render(App, { props: { backend, clock } });
  return { backend, ...utils };
}

/** Lets mount + the async subscribe/snapshot chain settle. */
async function settle() {
  for (let i = 0; i < 5; i++) {
    await Promise.resolve();
    await tick();
  }
}

function rowOf(id: string): HTMLElement {
  const row = screen.getAllByTestId('call-row').find((r) => r.dataset.callId === id);
  if (!row) throw new Error(`no row for ${id}`);
  return row;
}

describe('App', () => {
  beforeEach(() => {
    localStorage.clear();
    vi.spyOn(navigator, 'language', 'get').mockReturnValue('en-US');
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('shows the empty state and the connection status', async () => {
    setup(new MemoryBackend([], { state: 'reconnecting', profile: 'demo', detail: 'AMI: connection refused' }));
    await settle();
    expect(screen.getByTestId('calls-empty').textContent).toBe('Waiting for calls…');
    expect(screen.queryByTestId('call-pop')).toBeNull();
    const status = screen.getByTestId('connection-status');
    expect(status.dataset.state).toBe('reconnecting');
    expect(status.textContent).toContain('Reconnecting…');
    expect(status.textContent).toContain('AMI: connection refused');
    expect(screen.getByTestId('profile').textContent?.trim()).toBe('Demo');
  });

  it('says when it is reading the live calls after a reconnect', async () => {
    setup(new MemoryBackend([], { state: 'resyncing', profile: 'direct', detail: 'pbx:5038' }));
    await settle();
    const status = screen.getByTestId('connection-status');
    expect(status.dataset.state).toBe('resyncing');
    expect(status.textContent).toContain('Reading live calls…');
  });

  it('ringing → pop; answered → pop gone, row talking; ended missed → "Missed" / "Пропущен"', async () => {
    const { backend, container } = setup();
    await settle();
    // The live region exists (empty) before the first call, so its change is announced.
    const live = container.querySelector('[aria-live="assertive"]');
    expect(live?.textContent).toBe('');

    const ringing = makeCall({
      id: 'call-1',
      startedAt: NOW - 12_000,
      from: party('+7 (495) 123-45-67', null),
      operator: '104',
    });
    backend.emitCall(ringing);
    await tick();

    const pop = screen.getByTestId('call-pop');
    expect(screen.getByTestId('call-pop-number').textContent).toBe('+7 (495) 123-45-67');
    expect(within(pop).getByTestId('call-pop-name').textContent?.trim()).toBe('Unknown caller');
    expect(within(pop).getByTestId('call-pop-target').textContent?.trim()).toBe('Ringing extension 104');
    expect(within(pop).getByTestId('call-pop-timer').textContent).toBe('0:12');
    expect(screen.queryByTestId('call-pop-more')).toBeNull();
    expect(container.querySelector('[aria-live="assertive"]')).toBe(live);
    expect(live?.textContent).toBe('Incoming call from +7 (495) 123-45-67, Unknown caller');
    expect(rowOf('call-1').dataset.status).toBe('ringing');
    expect(screen.queryByTestId('calls-empty')).toBeNull();

    const talking = answered(ringing, NOW - 5_000);
    backend.emitCall(talking);
    await tick();
    expect(screen.queryByTestId('call-pop')).toBeNull();
    expect(live?.textContent).toBe('');
    const row = rowOf('call-1');
    expect(row.dataset.status).toBe('talking');
    expect(within(row).getByTestId('call-status').textContent).toBe('Talking');
    expect(row.textContent).toContain('0:05'); // running talk time
    expect(row.textContent).toContain('104');

    backend.emitCall(ended(ringing, 'missed', NOW));
    await tick();
    const endedRow = rowOf('call-1');
    expect(endedRow.dataset.status).toBe('missed');
    expect(within(endedRow).getByTestId('call-status').textContent).toBe('Missed');
    expect(screen.getAllByTestId('call-row')).toHaveLength(1);

    await fireEvent.click(screen.getByTestId('lang-ru'));
    expect(within(rowOf('call-1')).getByTestId('call-status').textContent).toBe('Пропущен');
    expect(screen.getByTestId('lang-ru').getAttribute('aria-pressed')).toBe('true');
    expect(localStorage.getItem('calldesk.lang')).toBe('ru');
    expect(document.documentElement.lang).toBe('ru');

    // a duplicate ringing event after the end changes nothing
    backend.emitCall(ringing);
    await tick();
    expect(screen.queryByTestId('call-pop')).toBeNull();
    expect(rowOf('call-1').dataset.status).toBe('missed');
  });

  it('several ringing: newest pops with a plural "+N" badge', async () => {
    localStorage.setItem('calldesk.lang', 'ru');
    const { backend } = setup();
    await settle();
    for (let i = 0; i < 3; i++) {
      backend.emitCall(
        makeCall({ id: `r${i}`, startedAt: NOW - 10_000 + i * 1000, from: party(`+7 900 000-00-0${i}`, `Caller ${i}`) }),
      );
    }
    await tick();
    expect(screen.getByTestId('call-pop-number').textContent).toBe('+7 900 000-00-02');
    expect(screen.getByTestId('call-pop-name').textContent?.trim()).toBe('Caller 2');
    expect(screen.getByTestId('call-pop-more').textContent).toBe('Ещё 2 звонка');

    const announced = document.querySelector('[aria-live="assertive"]');
    expect(announced?.textContent).toBe('Входящий звонок с номера +7 900 000-00-02, Caller 2');

    await fireEvent.click(screen.getByTestId('lang-en'));
    expect(screen.getByTestId('call-pop-more').textContent).toBe('+2 more ringing');
    expect(announced?.textContent).toBe('Incoming call from +7 900 000-00-02, Caller 2');

    backend.emitCall(answered(makeCall({ id: 'r2', startedAt: NOW - 8_000 }), NOW));
    await tick();
    expect(screen.getByTestId('call-pop-number').textContent).toBe('+7 900 000-00-01');
    expect(screen.getByTestId('call-pop-more').textContent).toBe('+1 more ringing');
  });

  it('renders the snapshot: live first, then recent newest first, with RU system language', async () => {
    vi.spyOn(navigator, 'language', 'get').mockReturnValue('ru-RU');
    const a = ended(makeCall({ id: 'old', startedAt: NOW - 600_000 }), 'busy', NOW - 590_000);
    const b = ended(answered(makeCall({ id: 'newer', startedAt: NOW - 300_000 }), NOW - 290_000), 'answered', NOW - 200_000);
    const live = answered(makeCall({ id: 'live', startedAt: NOW - 20_000 }), NOW - 15_000);
    setup(new MemoryBackend([a, live, b]));
    await settle();
    expect(screen.getAllByTestId('call-row').map((r) => r.dataset.callId)).toEqual(['live', 'newer', 'old']);
    expect(within(rowOf('newer')).getByTestId('call-status').textContent).toBe('Отвечен');
    expect(within(rowOf('old')).getByTestId('call-status').textContent).toBe('Занято');
    expect(rowOf('newer').textContent).toContain('1:30'); // talk time 90 s
    expect(screen.getByTestId('connection-status').textContent).toContain('Подключено');
  });

  it('language buttons name their language in itself; the list is keyboard-scrollable', async () => {
    setup();
    await settle();
    const buttons = screen.getAllByRole('button');
    expect(buttons.map((b) => [b.dataset.testid, b.lang, b.getAttribute('aria-label')])).toEqual([
      ['lang-ru', 'ru', 'Русский'],
      ['lang-en', 'en', 'English'],
    ]);
    expect(screen.getByTestId('calls-list').tabIndex).toBe(0);
  });

  it('when subscribing fails, tries again after 1 s', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
    try {
      const backend = new MemoryBackend([makeCall({ id: 'a', startedAt: NOW - 3000 })]);
      const subscribe = backend.onCallUpdated.bind(backend);
      backend.onCallUpdated = vi.fn().mockRejectedValueOnce({ code: 'ipc', message: 'IPC not ready' }).mockImplementation(subscribe);
      setup(backend);
      await settle();
      expect(screen.getByTestId('connection-detail').textContent).toBe('IPC not ready');
      expect(screen.queryByTestId('call-pop')).toBeNull();
      await vi.advanceTimersByTimeAsync(1000);
      await settle();
      expect(screen.getByTestId('call-pop')).toBeTruthy();
      expect(screen.queryByTestId('connection-detail')).toBeNull();
    } finally {
      vi.useRealTimers();
    }
  });

  it('shows a backend error message in the status bar', async () => {
    const backend = new MemoryBackend();
    backend.callsSnapshot = () => Promise.reject({ code: 'db_locked', message: 'Журнал звонков недоступен' });
    setup(backend);
    await settle();
    expect(screen.getByTestId('connection-detail').textContent).toBe('Журнал звонков недоступен');
  });
});
