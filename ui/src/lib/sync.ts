// Wires a Backend to a CallsStore: subscribe first, then fetch, then merge.
import { toBackendError, type Backend, type BackendError, type ConnectionStatus } from './backend';
import type { CallsStore } from './calls-store';

/** What the sync needs of a backend. */
export type SyncBackend = Pick<Backend, 'callsSnapshot' | 'connectionStatus' | 'onCallUpdated' | 'onConnectionChanged'>;

export interface SyncHandlers {
  onConnection(status: ConnectionStatus): void;
  /** A command failed; `err.message` is meant for people, `err.code` for branching. */
  onError(err: BackendError, during: 'snapshot' | 'status'): void;
  /** The snapshot succeeded after having failed (its error is no longer current). */
  onRecovered(during: 'snapshot'): void;
}

/** Wait before retry number `attempt` (0, 1, …): 1 s, doubling, at most 30 s. */
export function retryDelay(attempt: number): number {
  return Math.min(1000 * 2 ** attempt, 30_000);
}

/**
 * Subscribes to call and connection events BEFORE fetching the snapshot and the
 * status, so nothing that happens in between is lost; an event newer than the
 * fetched data wins. A failed snapshot is retried with backoff (`retryDelay`), and
 * fetched again after a reconnect to fill gaps.
 * Resolves to a function that unsubscribes everything; rejects (with nothing left
 * subscribed) if subscribing fails.
 */
export async function startSync(backend: SyncBackend, store: CallsStore, handlers: SyncHandlers): Promise<() => void> {
  let stopped = false;
  let connSeq = 0;
  let lastState: ConnectionStatus['state'] | null = null;
  let snapshotFailures = 0;
  let snapshotRetry: ReturnType<typeof setTimeout> | undefined;

  const unsubs: Array<() => void> = [];
  const stop = () => {
    stopped = true;
    clearTimeout(snapshotRetry);
    for (const u of unsubs.splice(0)) u();
  };

  const fetchSnapshot = async () => {
    clearTimeout(snapshotRetry);
    const mark = store.mark();
    try {
      const calls = await backend.callsSnapshot();
      if (stopped) return;
      store.applySnapshot(calls, mark);
      if (snapshotFailures > 0) handlers.onRecovered('snapshot');
      snapshotFailures = 0;
    } catch (e) {
      if (stopped) return;
      handlers.onError(toBackendError(e), 'snapshot');
      snapshotRetry = setTimeout(() => void fetchSnapshot(), retryDelay(snapshotFailures++));
    }
  };

  const setConnection = (s: ConnectionStatus) => {
    const prev = lastState;
    lastState = s.state;
    handlers.onConnection(s);
    // Back online after a gap: events may have been missed.
    if (s.state === 'connected' && prev !== null && prev !== 'connected') void fetchSnapshot();
  };

  try {
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
  } catch (e) {
    stop();
    throw e;
  }

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
