// Wires a Backend to a CallsStore: subscribe first, then fetch, then merge.
import { toBackendError, type Backend, type BackendError, type ConnectionStatus } from './backend';
import type { CallsStore } from './calls-store';

export interface SyncHandlers {
  onConnection(status: ConnectionStatus): void;
  /** A command failed; `err.message` is meant for people, `err.code` for branching. */
  onError(err: BackendError, during: 'snapshot' | 'status'): void;
}

/**
 * Subscribes to call and connection events BEFORE fetching the snapshot and the
 * status, so nothing that happens in between is lost; an event newer than the
 * fetched data wins. After a reconnect the snapshot is fetched again to fill gaps.
 * Resolves to a function that unsubscribes everything.
 */
export async function startSync(backend: Backend, store: CallsStore, handlers: SyncHandlers): Promise<() => void> {
  let stopped = false;
  let connSeq = 0;
  let lastState: ConnectionStatus['state'] | null = null;

  const unsubs: Array<() => void> = [];
  const stop = () => {
    stopped = true;
    for (const u of unsubs.splice(0)) u();
  };

  const fetchSnapshot = async () => {
    const mark = store.mark();
    try {
      const calls = await backend.callsSnapshot();
      if (!stopped) store.applySnapshot(calls, mark);
    } catch (e) {
      if (!stopped) handlers.onError(toBackendError(e), 'snapshot');
    }
  };

  const setConnection = (s: ConnectionStatus) => {
    const prev = lastState;
    lastState = s.state;
    handlers.onConnection(s);
    // Back online after a gap: events may have been missed.
    if (s.state === 'connected' && prev !== null && prev !== 'connected') void fetchSnapshot();
  };

  unsubs.push(
    await backend.onCallUpdated((call) => {
      if (!stopped) store.applyUpdate(call);
    }),
  );
  unsubs.push(
    await backend.onConnectionChanged((s) => {
      if (stopped) return;
      connSeq += 1;
      setConnection(s);
    }),
  );

  const fetchStatus = async () => {
    const seqAtRequest = connSeq;
    try {
      const s = await backend.connectionStatus();
      // An event that arrived meanwhile is newer than this answer.
      if (!stopped && connSeq === seqAtRequest) {
        lastState = s.state;
        handlers.onConnection(s);
      }
    } catch (e) {
      if (!stopped) handlers.onError(toBackendError(e), 'status');
    }
  };

  await Promise.all([fetchStatus(), fetchSnapshot()]);
  return stop;
}
