// @vitest-environment jsdom
import { cleanup, fireEvent, render, screen, within } from '@testing-library/svelte';
import { tick } from 'svelte';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import App from './App.svelte';
import { BackendError } from './lib/backend';
import { ALL_CAPABILITIES, MemoryBackend } from './lib/backend-memory';
import { answered, ended, makeCall, party } from './lib/testing';
import { rowOf, settle } from './lib/testing-dom';

const NOW = Date.UTC(2025, 0, 15, 9, 0, 30);
const clock = () => NOW;

function setup(backend = new MemoryBackend()) {
  const utils = render(App, { props: { backend, clock } });
  return { backend, ...utils };
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

  it('reports once that it is interactive, with its start-up stages in order', async () => {
    const backend = new MemoryBackend();
    setup(backend);
    await settle();
    await new Promise((resolve) => requestAnimationFrame(() => resolve(null)));
    await settle();
    expect(backend.readyCalls).toBe(1);
    const m = backend.startMarks;
    expect(m).not.toBeNull();
    if (!m) return;
    expect(m.navigationStartUnixMs).toBeGreaterThan(1_600_000_000_000);
    expect(m.scriptStartMs).toBeLessThanOrEqual(m.mountedMs);
    expect(m.mountedMs).toBeLessThanOrEqual(m.profilesMs);
    expect(m.profilesMs).toBeLessThanOrEqual(m.paintedMs);
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
    const buttons = screen.getAllByRole('button').filter((b) => b.dataset.testid?.startsWith('lang-'));
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

  it('first run: the wizard saves a hub profile with its password, activates it and shows the app', async () => {
    const backend = new MemoryBackend([], { state: 'connected', profile: 'hub', detail: null }, { profiles: { active: null, profiles: [] } });
    setup(backend);
    await settle();
    expect(screen.getByTestId('wizard').textContent).toContain('Welcome to calldesk');
    expect(screen.queryByTestId('calls-list')).toBeNull();
    await fireEvent.click(within(screen.getByTestId('wizard-kind-hub')).getByRole('radio'));
    await fireEvent.input(screen.getByTestId('wizard-url'), { target: { value: 'https://hub.example.com' } });
    await fireEvent.input(screen.getByTestId('wizard-tenant'), { target: { value: 'acme' } });
    await fireEvent.input(screen.getByTestId('wizard-login'), { target: { value: 'ivan' } });
    // No password: said next to the form, nothing saved.
    await fireEvent.click(screen.getByTestId('wizard-save'));
    await settle();
    expect(screen.getByTestId('wizard-error').textContent).toBe('Enter the password.');
    expect(backend.saved).toEqual([]);
    await fireEvent.input(screen.getByTestId('wizard-secret'), { target: { value: 'pa55' } });
    await fireEvent.click(screen.getByTestId('wizard-save'));
    await settle();
    expect(backend.saved).toHaveLength(1);
    expect(backend.saved[0]?.secret).toBe('pa55');
    expect(backend.saved[0]?.profile.settings).toEqual({ kind: 'hub', url: 'https://hub.example.com', tenant: 'acme', login: 'ivan' });
    expect((await backend.profilesList()).active).toBe(backend.saved[0]?.profile.id);
    expect(screen.queryByTestId('wizard')).toBeNull();
    expect(screen.getByTestId('calls-list')).toBeTruthy();
  });

  it('the wizard saves a direct profile that reports to a hub, with the hub password apart', async () => {
    const backend = new MemoryBackend([], { state: 'connected', profile: 'direct', detail: null }, { profiles: { active: null, profiles: [] } });
    setup(backend);
    await settle();
    await fireEvent.click(within(screen.getByTestId('wizard-kind-direct')).getByRole('radio'));
    await fireEvent.input(screen.getByTestId('wizard-host'), { target: { value: 'pbx.local' } });
    await fireEvent.input(screen.getByTestId('wizard-user'), { target: { value: 'crm' } });
    await fireEvent.input(screen.getByTestId('wizard-secret'), { target: { value: 'ami-secret' } });
    expect(screen.queryByTestId('wizard-hub-url')).toBeNull();
    await fireEvent.click(screen.getByTestId('wizard-reports'));
    await settle();
    await fireEvent.input(screen.getByTestId('wizard-hub-url'), { target: { value: 'https://hub.example.com' } });
    await fireEvent.input(screen.getByTestId('wizard-hub-tenant'), { target: { value: 'acme' } });
    await fireEvent.input(screen.getByTestId('wizard-hub-login'), { target: { value: 'ivan' } });
    // The hub's password is asked for too.
    await fireEvent.click(screen.getByTestId('wizard-save'));
    await settle();
    expect(screen.getByTestId('wizard-error').textContent).toBe('Enter the password.');
    expect(backend.saved).toEqual([]);
    await fireEvent.input(screen.getByTestId('wizard-hub-secret'), { target: { value: 'hub-pass' } });
    await fireEvent.click(screen.getByTestId('wizard-save'));
    await settle();
    expect(backend.saved).toHaveLength(1);
    expect(backend.saved[0]?.secret).toBe('ami-secret');
    expect(backend.saved[0]?.hubSecret).toBe('hub-pass');
    expect(backend.saved[0]?.profile.settings).toEqual({
      kind: 'direct',
      host: 'pbx.local',
      port: 5038,
      username: 'crm',
      extension: '101',
      supervisor: false,
      reportTo: { url: 'https://hub.example.com', tenant: 'acme', login: 'ivan' },
    });
  });

  it('controls act as the operator on their own call; unsupported ones are disabled with the reason', async () => {
    const talking = answered(makeCall({ id: 'c1', startedAt: NOW - 20_000, operator: '101', rang: ['101'] }), NOW - 10_000);
    const backend = new MemoryBackend([talking], undefined, {
      capabilities: {
        originate: true,
        hangup: true,
        blindTransfer: true,
        attendedTransfer: false,
        hold: false,
        record: true,
        monitor: false,
        dtmf: false,
        queuePause: false,
      },
    });
    setup(backend);
    await settle();
    expect(screen.getByTestId('active-call').dataset.callId).toBe('c1');
    const hold = screen.getByTestId('ctl-hold') as HTMLButtonElement;
    expect(hold.disabled).toBe(true);
    expect(hold.title).toBe('Not available on this connection');
    await fireEvent.click(screen.getByTestId('ctl-record'));
    await fireEvent.input(screen.getByTestId('ctl-transfer-to'), { target: { value: '102' } });
    await fireEvent.click(screen.getByTestId('ctl-transfer'));
    await settle();
    // Attended transfer is not supported here: ticking it disables the button.
    await fireEvent.click(screen.getByTestId('ctl-attended'));
    await settle();
    expect((screen.getByTestId('ctl-transfer') as HTMLButtonElement).disabled).toBe(true);
    await fireEvent.click(screen.getByTestId('ctl-hangup'));
    await settle();
    expect(backend.controls).toEqual([
      { control: 'record', call: 'c1', action: 'start' },
      { control: 'transfer', region: '', call: 'c1', operator: '101', to: '102', kind: 'blind' },
      { control: 'hangup', call: 'c1', operator: '101' },
    ]);
    expect(screen.getByTestId('ctl-done').textContent).toBe('Call ended');
  });

  it('the keypad plays tones into an answered call, in order, and types the number otherwise', async () => {
    const talking = answered(makeCall({ id: 'c1', startedAt: NOW - 20_000, operator: '101', rang: ['101'] }), NOW - 10_000);
    const backend = new MemoryBackend([talking]);
    setup(backend);
    await settle();
    await fireEvent.click(screen.getByTestId('dialpad-1'));
    await fireEvent.click(screen.getByTestId('dialpad-#'));
    await settle();
    const sent = backend.controls.filter((c) => c.control === 'dtmf');
    expect(sent.map((c) => (c.control === 'dtmf' ? c.digits : '')).join('')).toBe('1#');
    expect(sent.every((c) => c.control === 'dtmf' && c.call === 'c1' && c.operator === '101')).toBe(true);
    expect(screen.getByTestId('tones-sent').textContent).toBe('Tones sent: 1#');
    expect((screen.getByTestId('ctl-dial') as HTMLInputElement).value).toBe('');

    // Without tone support the keys type the number, and say why.
    const noTones = new MemoryBackend([talking], undefined, { capabilities: { ...ALL_CAPABILITIES, dtmf: false } });
    cleanup();
    setup(noTones);
    await settle();
    await fireEvent.click(screen.getByTestId('dialpad-5'));
    await settle();
    expect(noTones.controls).toEqual([]);
    expect((screen.getByTestId('ctl-dial') as HTMLInputElement).value).toBe('5');
    expect(screen.getByTestId('dialpad-5').title).toBe('Types into the number to dial. Tones into the call: Not available on this connection');
  });

  it('a control on its way keeps its button focusable and ignores a second press', async () => {
    const talking = answered(makeCall({ id: 'c1', startedAt: NOW - 20_000, operator: '101', rang: ['101'] }), NOW - 10_000);
    const backend = new MemoryBackend([talking]);
    let release: (v: string | null) => void = () => {};
    let sent = 0;
    backend.callControl = () => {
      sent += 1;
      return new Promise((resolve) => (release = resolve));
    };
    setup(backend);
    await settle();
    const hold = screen.getByTestId('ctl-hold') as HTMLButtonElement;
    hold.focus();
    await fireEvent.click(hold);
    await settle();
    // Not disabled (that would drop the keyboard focus), but marked busy.
    expect(hold.disabled).toBe(false);
    expect(hold.getAttribute('aria-disabled')).toBe('true');
    expect(document.activeElement).toBe(hold);
    await fireEvent.click(hold);
    await settle();
    expect(sent).toBe(1);
    release(null);
    await settle();
    expect(hold.getAttribute('aria-disabled')).toBe('false');
  });

  it('a call on hold says so in the calls list', async () => {
    const held = { ...answered(makeCall({ id: 'h1', startedAt: NOW - 20_000 }), NOW - 10_000), onHold: true };
    setup(new MemoryBackend([held]));
    await settle();
    expect(within(rowOf('h1')).getByTestId('call-status').textContent).toBe('On hold');
  });

  it('times pops of calls that ring after the UI listens, not of calls already ringing at start', async () => {
    const early = { ...makeCall({ id: 'early', startedAt: NOW - 5_000 }), eventAt: NOW - 5_000 };
    const backend = new MemoryBackend([early]);
    setup(backend);
    await settle();
    expect(screen.getByTestId('call-pop').dataset.callId).toBe('early');
    backend.emitCall(answered(early, NOW));
    await settle();
    backend.emitCall({ ...makeCall({ id: 'live', startedAt: NOW }), eventAt: NOW });
    await settle();
    expect(screen.getByTestId('call-pop').dataset.callId).toBe('live');
    await new Promise((r) => setTimeout(r, 50));
    await settle();
    // Only the live pop (the test's clock stands still: 0 ms).
    expect(backend.popLatencies).toEqual([0]);
  });

  it('a refused control shows the backend message verbatim', async () => {
    const backend = new MemoryBackend();
    backend.failControls = new BackendError('refused', 'the PBX refused originate: Extension does not exist');
    setup(backend);
    await settle();
    await fireEvent.input(screen.getByTestId('ctl-dial'), { target: { value: '+7 495 123-45-67' } });
    await fireEvent.click(screen.getByTestId('ctl-call'));
    await settle();
    expect(screen.getByTestId('ctl-error').textContent).toBe('the PBX refused originate: Extension does not exist');
  });

  it('pops only calls ringing at the operator\'s extension, with company, queue and last calls', async () => {
    const earlier = ended(makeCall({ id: 'old', startedAt: NOW - 86_400_000, from: party('+7 495 123-45-67') }), 'answered', NOW - 86_000_000);
    const backend = new MemoryBackend([earlier]);
    setup(backend);
    await settle();
    backend.emitCall(makeCall({ id: 'other', startedAt: NOW - 2000, operator: '102', rang: ['102'] }));
    await settle();
    expect(screen.queryByTestId('call-pop')).toBeNull();
    backend.emitCall(
      makeCall({ id: 'mine', startedAt: NOW - 1000, operator: '101', rang: ['101'], company: 'Horns and Hooves', queue: 'sales', from: party('+7 495 123-45-67', 'Ostap') }),
    );
    await settle();
    expect(screen.getByTestId('call-pop').dataset.callId).toBe('mine');
    expect(screen.getByTestId('call-pop-company').textContent).toBe('Horns and Hooves');
    expect(screen.getByTestId('call-pop-queue').textContent).toBe('Queue sales');
    expect(screen.getByTestId('call-pop-history').textContent).toContain('Answered');
  });

  it('supervisors get the live board: presence, current call, queues, today\'s figures, listen/whisper/barge', async () => {
    const talking = answered(makeCall({ id: 't1', startedAt: NOW - 100_000, operator: '101', rang: ['101'], queue: 'sales' }), NOW - 90_000);
    const waiting = makeCall({ id: 'w1', startedAt: NOW - 12_000, operator: null, rang: [], queue: 'sales' });
    const done = ended(answered(makeCall({ id: 'd1', startedAt: NOW - 30_000, operator: '102', rang: ['102'] }), NOW - 29_000), 'answered', NOW - 9_000);
    const backend = new MemoryBackend([talking, waiting, done], undefined, {
      identity: { profile: 'hub', tenant: 'acme', login: 'sam', name: 'Sam', extension: '201', supervisor: true },
      operators: [
        { extension: '101', name: 'Ivan', login: 'ivan', role: 'operator' },
        { extension: '102', name: 'Petr', login: 'petr', role: 'operator' },
      ],
      presence: [
        { extension: '101', device: 'in_use', queue: null, paused: null, reason: null },
        { extension: '102', device: 'idle', queue: null, paused: null, reason: null },
        { extension: '102', device: null, queue: 'sales', paused: true, reason: 'lunch' },
      ],
    });
    setup(backend);
    await settle();
    await settle();
    const row = (ext: string) => screen.getAllByTestId('board-row').find((r) => r.dataset.extension === ext) as HTMLElement;
    expect(row('101').textContent).toContain('Ivan');
    expect(row('101').textContent).toContain('On a call');
    expect(within(row('101')).getByTestId('board-call').textContent).toContain('Talking');
    expect(row('102').textContent).toContain('sales (paused: lunch)');
    expect(within(row('102')).getByTestId('board-figures').textContent).toBe('1 answered · 0 missed · AHT 0:20');
    expect(screen.getByTestId('queue-sales').textContent).toContain('waiting: 1');
    // 102 has no call: nothing to join.
    expect((screen.getByTestId('monitor-listen-102') as HTMLButtonElement).disabled).toBe(true);
    await fireEvent.click(screen.getByTestId('monitor-whisper-101'));
    await settle();
    expect(backend.controls).toEqual([{ control: 'monitor', call: 't1', operator: '101', supervisor: '201', mode: 'whisper' }]);
    // The monitoring state is shown once the PBX reports it.
    backend.emitCall({ ...talking, monitors: [{ by: '201', mode: 'whisper' }] });
    await settle();
    expect(screen.getByTestId('monitor-whisper-101').getAttribute('aria-pressed')).toBe('true');
    expect(screen.getByTestId('monitor-listen-101').getAttribute('aria-pressed')).toBe('false');
    // The calls list is one tab away.
    await fireEvent.click(screen.getByTestId('tab-calls'));
    expect(screen.getByTestId('calls-list')).toBeTruthy();
  });

  it('a tel: link dials at once as the operator; hotkeys act on the active call', async () => {
    const talking = answered(makeCall({ id: 'c9', startedAt: NOW - 20_000, operator: '101', rang: ['101'] }), NOW - 10_000);
    const backend = new MemoryBackend([talking]);
    backend.pending = '+7 (495) 123-45-67';
    setup(backend);
    await settle();
    await settle();
    backend.emitDialRequest('102');
    await settle();
    backend.emitHotkey('hold');
    await settle();
    backend.emitHotkey('hangup');
    await settle();
    expect(backend.controls).toEqual([
      { control: 'originate', region: '', operator: '101', to: '+7 (495) 123-45-67' },
      { control: 'originate', region: '', operator: '101', to: '102' },
      { control: 'hold', call: 'c9', operator: '101', on: true },
      { control: 'hangup', call: 'c9', operator: '101' },
    ]);
    backend.emitHotkey('transfer');
    await settle();
    expect(document.activeElement).toBe(screen.getByTestId('ctl-transfer-to'));
  });

  it('after the call: notes and a disposition go on the operator\'s last ended call', async () => {
    const done = ended(answered(makeCall({ id: 'e1', startedAt: NOW - 60_000, operator: '101', rang: ['101'] }), NOW - 50_000), 'answered', NOW - 5_000);
    const backend = new MemoryBackend([done]);
    setup(backend);
    await settle();
    await settle();
    expect(screen.getByTestId('after-call').dataset.callId).toBe('e1');
    await fireEvent.input(screen.getByTestId('after-note'), { target: { value: 'wants a quote by Friday' } });
    await fireEvent.click(screen.getByTestId('after-add-note'));
    await settle();
    expect(screen.getByTestId('after-notes').textContent).toContain('wants a quote by Friday');
    await fireEvent.change(screen.getByTestId('after-disposition'), { target: { value: 'callback' } });
    await settle();
    expect(screen.getByTestId('after-saved').textContent).toBe('Disposition: Call back');
    // Tags: several at once, normalised; a chip's × removes one.
    await fireEvent.input(screen.getByTestId('after-tag-input'), { target: { value: 'VIP, ремонт vip' } });
    await fireEvent.submit(screen.getByTestId('after-tag-input').closest('form') as HTMLFormElement);
    await settle();
    expect(within(screen.getByTestId('after-tags')).getAllByRole('listitem').map((li) => li.firstChild?.textContent)).toEqual(['vip', 'ремонт']);
    expect((screen.getByTestId('after-tag-input') as HTMLInputElement).value).toBe('');
    await fireEvent.click(screen.getByRole('button', { name: 'Remove tag vip' }));
    await settle();
    await fireEvent.input(screen.getByTestId('after-tag-input'), { target: { value: 'two words!' } });
    await fireEvent.click(screen.getByTestId('after-add-tags'));
    await settle();
    expect(screen.getByTestId('after-error').textContent).toContain('words!');
    expect(await backend.afterCall('e1')).toEqual({
      notes: [{ id: 'note-1', text: 'wants a quote by Friday', author: null, createdAt: 0 }],
      disposition: 'callback',
      tags: ['ремонт'],
    });
    // The disposition hotkey puts the focus on the list.
    backend.emitHotkey('disposition');
    await settle();
    expect(document.activeElement).toBe(screen.getByTestId('after-disposition'));
  });

  it('the missed-calls worklist: a badge counts open callers; call back takes it and dials; close clears it', async () => {
    const miss = (id: string, from: string, at: number) =>
      ended(makeCall({ id, from: party(from, 'Ivan'), startedAt: at, operator: '101', rang: ['101'] }), 'missed', at + 20_000);
    const reached = ended(
      answered(makeCall({ id: 'b2', from: party('+7 495 765-43-21'), startedAt: NOW - 100_000, rang: ['101'] }), NOW - 95_000),
      'answered',
      NOW - 90_000,
    );
    const backend = new MemoryBackend([
      miss('a1', '+7 495 123-45-67', NOW - 300_000),
      miss('a2', '+7 495 123-45-67', NOW - 200_000),
      miss('b1', '+7 495 765-43-21', NOW - 250_000),
      reached,
    ]);
    setup(backend);
    await settle();
    await settle();
    // B was reached later: only A waits.
    expect(screen.getByTestId('callbacks-open').textContent).toBe('1');
    await fireEvent.click(screen.getByTestId('tab-callbacks'));
    await settle();
    const items = screen.getAllByTestId('wl-item');
    expect(items.map((i) => i.dataset.number)).toEqual(['+74951234567']);
    const item = items[0] as HTMLElement;
    expect(within(item).getByTestId('wl-missed').textContent).toBe('2 missed calls');
    expect(item.textContent).toContain('Ivan');
    expect(item.textContent).toContain('+7 495 123-45-67');
    await fireEvent.click(within(item).getByTestId('wl-call-back'));
    await settle();
    await settle();
    expect(backend.controls).toEqual([{ control: 'originate', region: '', operator: '101', to: '+74951234567' }]);
    expect(within(screen.getByTestId('wl-item')).getByTestId('wl-claim').textContent?.trim()).toBe('taken by you');
    expect(screen.queryByTestId('callbacks-open')).toBeNull();
    await fireEvent.change(screen.getByTestId('wl-outcome'), { target: { value: 'unreachable' } });
    await fireEvent.click(screen.getByTestId('wl-close'));
    await settle();
    await settle();
    expect(screen.getByTestId('wl-done').textContent).toBe('+7 495 123-45-67 closed: Unreachable');
    expect(screen.getByTestId('wl-empty')).toBeTruthy();
    expect(backend.callbackState.get('+74951234567')?.outcome).toBe('unreachable');

    // A new miss, closed by a colleague on another desk: the list follows at once.
    backend.emitCall(miss('a3', '+7 495 123-45-67', Date.now() - 1_000));
    await settle();
    await settle();
    expect(screen.getAllByTestId('wl-item')).toHaveLength(1);
    backend.closedElsewhere('+74951234567');
    await settle();
    await settle();
    expect(screen.getByTestId('wl-empty')).toBeTruthy();
  });

  it('a call that still rings can be hung up, but hold, transfer and recording wait for the answer', async () => {
    const ringing = makeCall({ id: 'r1', startedAt: NOW - 3_000, operator: '101', rang: ['101'] });
    const backend = new MemoryBackend([ringing]);
    setup(backend);
    await settle();
    await settle();
    const hold = screen.getByTestId('ctl-hold') as HTMLButtonElement;
    expect(hold.disabled).toBe(true);
    expect(hold.title).toBe('Only once the call is answered');
    expect((screen.getByTestId('ctl-record') as HTMLButtonElement).disabled).toBe(true);
    expect((screen.getByTestId('ctl-hangup') as HTMLButtonElement).disabled).toBe(false);
    backend.emitCall(answered(ringing, NOW - 1_000));
    await settle();
    expect((screen.getByTestId('ctl-hold') as HTMLButtonElement).disabled).toBe(false);
    expect(screen.getByTestId('active-call').dataset.state).toBe('talking');
  });

  it('the theme button cycles auto, light, dark on the page and remembers it', async () => {
    setup();
    await settle();
    const button = () => screen.getByTestId('theme');
    expect(button().textContent).toBe('Auto');
    await fireEvent.click(button());
    expect(document.documentElement.dataset.theme).toBe('light');
    await fireEvent.click(button());
    expect(document.documentElement.dataset.theme).toBe('dark');
    expect(button().getAttribute('aria-label')).toBe('Theme: Dark (click to change)');
    expect(localStorage.getItem('calldesk.theme')).toBe('dark');
  });
});
