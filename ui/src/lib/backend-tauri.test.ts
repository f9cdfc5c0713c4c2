import { beforeEach, describe, expect, it, vi } from 'vitest';

const invoke = vi.fn();
const handlers = new Map<string, (ev: { payload: unknown }) => void>();
const unlisten = vi.fn();

vi.mock('@tauri-apps/api/core', () => ({ invoke: (...args: unknown[]) => invoke(...args) }));
vi.mock('@tauri-apps/api/event', () => ({
  listen: async (name: string, cb: (ev: { payload: unknown }) => void) => {
    handlers.set(name, cb);
    return unlisten;
  },
}));

const { TauriBackend } = await import('./backend-tauri');
const { BackendError } = await import('./backend');

describe('TauriBackend', () => {
  beforeEach(() => {
    invoke.mockReset();
    handlers.clear();
    unlisten.mockReset();
  });

  it('uses the calls_snapshot and connection_status commands', async () => {
    invoke.mockImplementation(async (cmd: string) =>
      cmd === 'calls_snapshot' ? [{ id: 'x' }] : { state: 'connected', profile: 'direct', detail: null },
    );
    const b = new TauriBackend();
    expect(await b.callsSnapshot()).toEqual([{ id: 'x' }]);
    expect((await b.connectionStatus()).profile).toBe('direct');
    expect(invoke.mock.calls.map((c) => c[0])).toEqual(['calls_snapshot', 'connection_status']);
  });

  it('turns { code, message } rejections into BackendError', async () => {
    invoke.mockRejectedValue({ code: 'pbx_down', message: 'PBX unreachable' });
    const err = await new TauriBackend().callsSnapshot().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackendError);
    expect(err).toMatchObject({ code: 'pbx_down', message: 'PBX unreachable' });
  });

  it('listens to call-updated and connection-changed and passes payloads through', async () => {
    const b = new TauriBackend();
    const calls: unknown[] = [];
    const states: unknown[] = [];
    const off = await b.onCallUpdated((c) => calls.push(c));
    await b.onConnectionChanged((s) => states.push(s));
    handlers.get('call-updated')?.({ payload: { id: 'c1' } });
    handlers.get('connection-changed')?.({ payload: { state: 'reconnecting' } });
    expect(calls).toEqual([{ id: 'c1' }]);
    expect(states).toEqual([{ state: 'reconnecting' }]);
    off();
    expect(unlisten).toHaveBeenCalledTimes(1);
  });

  it('passes command arguments by the names the Rust commands take', async () => {
    invoke.mockResolvedValue(null);
    const b = new TauriBackend();
    const profile = { id: 'p', name: 'P', settings: { kind: 'demo' as const, extension: '101', supervisor: false } };
    await b.profileSave(profile, 'secret');
    await b.profileActivate('p');
    await b.callerHistory('+74951234567');
    await b.callControl({ control: 'hold', call: 'c1', operator: '101', on: true });
    await b.historySearch({ text: '495', status: 'missed', before: 200 });
    await b.syncNow();
    expect(invoke.mock.calls).toEqual([
      ['profile_save', { profile, secret: 'secret', hubSecret: null }],
      ['profile_activate', { id: 'p' }],
      ['caller_history', { number: '+74951234567' }],
      ['call_control', { spec: { control: 'hold', call: 'c1', operator: '101', on: true } }],
      ['history_search', { query: { text: '495', status: 'missed', before: 200 } }],
      ['sync_now', undefined],
    ]);
  });
});
