// The one interface between the UI and whatever feeds it calls.
// Two implementations: TauriBackend (the desktop app) and MemoryBackend
// (tests, and running the UI in a plain browser).

export type Direction = 'inbound' | 'outbound' | 'internal';
export type CallState = 'ringing' | 'talking' | 'ended';
export type CallStatus = 'answered' | 'missed' | 'no_answer' | 'busy' | 'failed' | 'cancelled';

export interface PartyView {
  raw: string;
  e164: string | null;
  display: string;
  name: string | null;
}

export interface CallView {
  id: string;
  direction: Direction;
  from: PartyView;
  to: PartyView;
  state: CallState;
  status: CallStatus | null;
  /** Extension ringing or answering. */
  operator: string | null;
  /** Unix ms. */
  startedAt: number;
  answeredAt: number | null;
  endedAt: number | null;
  ringSeconds: number | null;
  talkSeconds: number | null;
  hangupCause: string | null;
}

export type ConnectionState =
  | 'connecting'
  | 'resyncing'
  | 'connected'
  | 'degraded'
  | 'reconnecting'
  | 'disconnected';

export interface ConnectionStatus {
  state: ConnectionState;
  profile: 'demo' | 'direct' | 'hub';
  detail: string | null;
}

export interface Backend {
  /** Live + recent calls. */
  callsSnapshot(): Promise<CallView[]>;
  connectionStatus(): Promise<ConnectionStatus>;
  /** Resolves to an unsubscribe function. */
  onCallUpdated(cb: (call: CallView) => void): Promise<() => void>;
  onConnectionChanged(cb: (s: ConnectionStatus) => void): Promise<() => void>;
}

/**
 * Error shape of every failed backend command (`{ code, message }`).
 * Code is for branching; message is for people and is shown as-is.
 */
export class BackendError extends Error {
  readonly code: string;

  constructor(code: string, message: string) {
    super(message);
    this.name = 'BackendError';
    this.code = code;
  }
}

/** Normalises anything thrown/rejected by a backend into a BackendError. */
export function toBackendError(err: unknown): BackendError {
  if (err instanceof BackendError) return err;
  if (typeof err === 'object' && err !== null) {
    const o = err as { code?: unknown; message?: unknown };
    if (typeof o.code === 'string') {
      return new BackendError(o.code, typeof o.message === 'string' ? o.message : o.code);
    }
    if (err instanceof Error) return new BackendError('unknown', err.message);
  }
  if (typeof err === 'string') return new BackendError('unknown', err);
  return new BackendError('unknown', String(err));
}
