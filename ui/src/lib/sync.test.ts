import { describe, expect, it, vi } from 'vitest';
import { BackendError, toBackendError, type CallView, type ConnectionStatus } from './backend';
import { MemoryBackend } from './backend-memory';
import { CallsStore } from './calls-store';
import { retryDelay, startSync, type SyncBackend, type SyncHandlers } from './sync';
import { T0, answered, ended, makeCall } from './testing';

function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

const connected: ConnectionStatus = { state: 'connected', profile: 'demo', detail: null };
const quiet: SyncHandlers = { onConnection: () => {}, onError: () => {}, onRecovered: () => {} };

describe('startSync', () => {
  it('subscribes to both events before asking for the snapshot or the status', async () => {
    const order: string[] = [];
    const backend: SyncBackend = {
      callsSnapshot: async () => (order.push('snapshot'), []),
      connectionStatus: async () => (order.push('status'), connected),
      onCallUpdated: async () => (order.push('onCallUpdated'), () => {}),
      onConnectionChanged: async () => (order.push('onConnectionChanged'), () => {}),
    };
    await startSync(backend, new CallsStore(), quiet);
    expect(order.slice(0, 2).sort()).toEqual(['onCallUpdated', 'onConnectionChanged']);
    expect(order.slice(2).sort()).toEqual(['snapshot', 'status']);
  });

  it('an event that arrives while the snapshot is in flight is not overwritten by it', async () => {
    const mem = new MemoryBackend();
    const a = makeCall({ id: 'a' });
    const snap = deferred<CallView[]>();
    const backend: SyncBackend = {
      ...bind(mem),
      callsSnapshot: () => snap.promise,
    };
    const store = new CallsStore();
    const done = startSync(backend, store, quiet);
    await vi.waitFor(() => expect(mem.listenerCount).toBe(2));
    // Same state, newer data: the call moved on to extension 102 ...
    mem.emitCall({ ...a, operator: '102' });
    // ... but the snapshot (taken before that on the backend) still says 101.
    snap.resolve([a]);
    await done;
    expect(store.get('a')?.operator).toBe('102');
    // and a state change after the snapshot still applies
    mem.emitCall(answered({ ...a, operator: '102' }, T0 + 2000));
    expect(store.get('a')?.state).toBe('talking');
  });

  it('a connection event newer than the fetched status wins', async () => {
    const mem = new MemoryBackend([], { state: 'connecting', profile: 'hub', detail: null });
    const status = deferred<ConnectionStatus>();
    const backend: SyncBackend = { ...bind(mem), connectionStatus: () => status.promise };
    const seen: ConnectionStatus[] = [];
    const done = startSync(backend, new CallsStore(), { ...quiet, onConnection: (s) => seen.push(s) });
    await vi.waitFor(() => expect(mem.listenerCount).toBe(2));
    mem.setConnection({ state: 'connected', profile: 'hub', detail: null });
    status.resolve({ state: 'connecting', profile: 'hub', detail: null });
    await done;
    expect(seen.map((s) => s.state)).toEqual(['connected']);
  });

  it('reports command errors as BackendError with code and message', async () => {
    const mem = new MemoryBackend();
    const backend: SyncBackend = {
      ...bind(mem),
      callsSnapshot: () => Promise.reject({ code: 'db_unavailable', message: 'Database is locked' }),
      connectionStatus: () => Promise.reject('boom'),
    };
    const onError = vi.fn();
    const stop = await startSync(backend, new CallsStore(), { ...quiet, onError });
    stop();
    const calls = onError.mock.calls.map(([e, during]) => [(e as BackendError).code, (e as BackendError).message, during]);
    expect(calls).toContainEqual(['db_unavailable', 'Database is locked', 'snapshot']);
    expect(calls).toContainEqual(['unknown', 'boom', 'status']);
  });

  it('retries a failed snapshot with backoff until it succeeds, then reports recovery', async () => {
    vi.useFakeTimers();
    try {
      const mem = new MemoryBackend([makeCall({ id: 'a' })]);
      let failures = 2;
      const backend: SyncBackend = {
        ...bind(mem),
        callsSnapshot: () => (failures-- > 0 ? Promise.reject({ code: 'db_locked', message: 'x' }) : mem.callsSnapshot()),
      };
      const store = new CallsStore();
      const handlers = { ...quiet, onError: vi.fn(), onRecovered: vi.fn() };
      const stop = await startSync(backend, store, handlers);
      expect(handlers.onError).toHaveBeenCalledTimes(1);
      await vi.advanceTimersByTimeAsync(999);
      expect(handlers.onError).toHaveBeenCalledTimes(1);
      await vi.advanceTimersByTimeAsync(1); // 1 s: second attempt fails too
      expect(handlers.onError).toHaveBeenCalledTimes(2);
      expect(store.size).toBe(0);
      await vi.advanceTimersByTimeAsync(2000); // 2 s later: third attempt succeeds
      expect(store.get('a')).toBeDefined();
      expect(handlers.onRecovered).toHaveBeenCalledWith('snapshot');
      stop();
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });

  it('backoff: 1 s doubling up to 30 s', () => {
    expect([0, 1, 2, 3, 4, 5, 6, 20].map(retryDelay)).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  });

  it('if a later subscription fails, the earlier one is undone and the error rethrown', async () => {
    const mem = new MemoryBackend();
    const backend: SyncBackend = { ...bind(mem), onConnectionChanged: () => Promise.reject(new Error('no events')) };
    await expect(startSync(backend, new CallsStore(), quiet)).rejects.toThrow('no events');
    expect(mem.listenerCount).toBe(0);
  });

  it('fetches the snapshot again after reconnecting, and stops cleanly', async () => {
    const mem = new MemoryBackend([], connected);
    const store = new CallsStore();
    const spy = vi.spyOn(mem, 'callsSnapshot');
    const stop = await startSync(mem, store, quiet);
    expect(spy).toHaveBeenCalledTimes(1);
    mem.setConnection({ ...connected, state: 'reconnecting', detail: 'AMI socket closed' });
    // a call that happened while we were away, only visible via the snapshot
    (mem as unknown as { calls: Map<string, CallView> }).calls.set('gap', ended(makeCall({ id: 'gap' }), 'missed', T0 + 9000));
    mem.setConnection(connected);
    await vi.waitFor(() => expect(store.get('gap')?.status).toBe('missed'));
    expect(spy).toHaveBeenCalledTimes(2);
    expect(mem.listenerCount).toBe(2);
    stop();
    expect(mem.listenerCount).toBe(0);
    mem.emitCall(makeCall({ id: 'after-stop' }));
    expect(store.get('after-stop')).toBeUndefined();
  });
});

describe('toBackendError', () => {
  it('keeps code and message of the { code, message } shape', () => {
    const e = toBackendError({ code: 'not_found', message: 'No such call' });
    expect(e).toBeInstanceOf(BackendError);
    expect([e.code, e.message]).toEqual(['not_found', 'No such call']);
  });
  it('wraps anything else as code "unknown"', () => {
    expect(toBackendError(new Error('x')).code).toBe('unknown');
    expect(toBackendError('text').message).toBe('text');
    expect(toBackendError(42).message).toBe('42');
    const same = new BackendError('a', 'b');
    expect(toBackendError(same)).toBe(same);
  });
});

function bind(mem: MemoryBackend): SyncBackend {
  return {
    callsSnapshot: () => mem.callsSnapshot(),
    connectionStatus: () => mem.connectionStatus(),
    onCallUpdated: (cb) => mem.onCallUpdated(cb),
    onConnectionChanged: (cb) => mem.onConnectionChanged(cb),
  };
}
