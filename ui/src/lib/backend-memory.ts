import {
  BackendError,
  type Backend,
  type CallView,
  type ConnectionStatus,
} from './backend';

/**
 * In-memory backend: for tests and for running the UI in a plain browser.
 * `emitCall` / `setConnection` play the role of the Rust side's events.
 */
export class MemoryBackend implements Backend {
  private calls = new Map<string, CallView>();
  private status: ConnectionStatus;
  private callListeners = new Set<(c: CallView) => void>();
  private connListeners = new Set<(s: ConnectionStatus) => void>();
  /** When set, the next callsSnapshot()/connectionStatus() rejects with it (once). */
  failNext: BackendError | null = null;

  constructor(
    seed: CallView[] = [],
    status: ConnectionStatus = { state: 'connected', profile: 'demo', detail: null },
  ) {
    for (const c of seed) this.calls.set(c.id, clone(c));
    this.status = { ...status };
  }

  async callsSnapshot(): Promise<CallView[]> {
    this.throwIfFailing();
    return [...this.calls.values()].map(clone);
  }

  async connectionStatus(): Promise<ConnectionStatus> {
    this.throwIfFailing();
    return { ...this.status };
  }

  async onCallUpdated(cb: (call: CallView) => void): Promise<() => void> {
    this.callListeners.add(cb);
    return () => {
      this.callListeners.delete(cb);
    };
  }

  async onConnectionChanged(cb: (s: ConnectionStatus) => void): Promise<() => void> {
    this.connListeners.add(cb);
    return () => {
      this.connListeners.delete(cb);
    };
  }

  /** Records the call and notifies subscribers (like a `call-updated` event). */
  emitCall(call: CallView): void {
    this.calls.set(call.id, clone(call));
    for (const cb of [...this.callListeners]) cb(clone(call));
  }

  /** Changes the connection status and notifies subscribers (like `connection-changed`). */
  setConnection(status: ConnectionStatus): void {
    this.status = { ...status };
    for (const cb of [...this.connListeners]) cb({ ...status });
  }

  /** Number of active subscriptions (for tests: checks unsubscribe works). */
  get listenerCount(): number {
    return this.callListeners.size + this.connListeners.size;
  }

  private throwIfFailing(): void {
    const err = this.failNext;
    if (err) {
      this.failNext = null;
      throw err;
    }
  }
}

function clone(c: CallView): CallView {
  return { ...c, from: { ...c.from }, to: { ...c.to } };
}
