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
  /** The caller's company (hub caller card). */
  company: string | null;
  queue: string | null;
  onHold: boolean;
  /** Every extension whose phone rang, in order: the call pops for these operators. */
  rang: string[];
  /** Supervisors monitoring the call now. */
  monitors: MonitorView[];
  /** When the PBX event behind this update reached the app (unix ms; own PBX session only). */
  eventAt?: number;
  /** The call's recordings in the hub's store (Hub profile; absent when there are none). */
  recordings?: RecordingStatus[];
}

/** Where a recording is: `stored` can be played; `pending`/`failed` are retried by the hub. */
export interface RecordingStatus {
  name: string;
  state: 'pending' | 'stored' | 'failed';
  error?: string | null;
}

export type PlayerStatus = 'idle' | 'loading' | 'buffering' | 'playing' | 'paused' | 'ended' | 'failed';

/** The recording player (its own thread in the app), as the `player-state` event reports it. */
export interface PlayerState {
  /** The call whose recording is loaded. */
  id: string | null;
  status: PlayerStatus;
  positionMs: number;
  durationMs: number | null;
  speed: number;
  volume: number;
  downloaded: number;
  total: number | null;
  firstAudioMs: number | null;
  error: { code: string; message: string } | null;
}

export const IDLE_PLAYER: PlayerState = {
  id: null,
  status: 'idle',
  positionMs: 0,
  durationMs: null,
  speed: 1,
  volume: 1,
  downloaded: 0,
  total: null,
  firstAudioMs: null,
  error: null,
};

/** A recording's loudness over time (0..1 per bar), once it is downloaded. */
export interface Waveform {
  id: string;
  peaks: number[];
  durationMs: number;
}

export type PlayerAction =
  | { action: 'play' }
  | { action: 'pause' }
  | { action: 'seek'; ms: number }
  | { action: 'speed'; value: number }
  | { action: 'volume'; value: number }
  | { action: 'stop' };

export interface MonitorView {
  /** The supervisor's extension. */
  by: string;
  mode: 'listen' | 'whisper' | 'barge' | null;
}

export type ConnectionState =
  | 'connecting'
  | 'resyncing'
  | 'connected'
  | 'degraded'
  | 'reconnecting'
  | 'disconnected';

export type ProfileKind = 'demo' | 'direct' | 'hub';

export interface ConnectionStatus {
  state: ConnectionState;
  profile: ProfileKind;
  detail: string | null;
}

/** Who the app acts as: the hub's operator, or the seat a Direct/Demo profile names. */
export interface Identity {
  profile: ProfileKind;
  tenant: string | null;
  login: string | null;
  name: string | null;
  /** Calls ringing here pop; controls act as this extension. */
  extension: string | null;
  supervisor: boolean;
}

/** What the current PBX connection can do; the rest is disabled with a reason. */
export interface Capabilities {
  originate: boolean;
  hangup: boolean;
  blindTransfer: boolean;
  attendedTransfer: boolean;
  hold: boolean;
  record: boolean;
  monitor: boolean;
  /** Touch tones into a live call (AMI `PlayDTMF`); absent from older hubs. */
  dtmf: boolean;
  queuePause: boolean;
}

export const NO_CAPABILITIES: Capabilities = {
  originate: false,
  hangup: false,
  blindTransfer: false,
  attendedTransfer: false,
  hold: false,
  record: false,
  monitor: false,
  dtmf: false,
  queuePause: false,
};

/** An operator's phone (`queue` null) or one queue membership. */
export interface PresenceView {
  extension: string;
  /** idle, in_use, busy, ringing, ring_in_use, on_hold, unavailable, unknown. */
  device: string | null;
  queue: string | null;
  paused: boolean | null;
  reason: string | null;
}

export interface CallNote {
  id: string;
  text: string;
  /** The author's login (hub); null for this desk's own notes. */
  author: string | null;
  /** Unix ms. */
  createdAt: number;
}

/** The after-call work on a call. */
export interface AfterCall {
  notes: CallNote[];
  disposition: string | null;
  /** Normalised (lowercase letters, digits, `-`, `_`), sorted; at most 10. */
  tags: string[];
}

/** A caller to call back: their unanswered inbound calls since the item was last closed. */
export interface CallbackView {
  /** E.164: the item's key. */
  number: string;
  /** The number as people read it (`+7 495 123-45-67`). */
  display: string;
  name: string | null;
  company: string | null;
  missed: number;
  /** Unix ms. */
  firstMissedAt: number;
  lastMissedAt: number;
  lastCallId: string;
  /** A login (hub), 'me' on this desk's own worklist, null while open. */
  claimedBy: string | null;
  claimedAt: number | null;
}

export type CallbackOutcome = 'reached' | 'unreachable' | 'not_needed';

/** One operator's figures since a moment (today). */
export interface OperatorFigures {
  extension: string;
  answered: number;
  missed: number;
  /** Average talk time of answered calls, seconds; null when none. */
  averageHandleSeconds: number | null;
}

/** An operator of the tenant (hub profile). */
export interface OperatorInfo {
  extension: string;
  name: string | null;
  login: string;
  role: string;
}

export type ProfileSettings =
  | { kind: 'demo'; extension: string; supervisor: boolean }
  | {
      kind: 'direct';
      host: string;
      port: number;
      username: string;
      extension: string;
      supervisor: boolean;
      /** A hub this desk reports its calls and after-call work to (its password: `hubSecret`). */
      reportTo?: { url: string; tenant: string; login: string };
    }
  | { kind: 'hub'; url: string; tenant: string; login: string };

export interface Profile {
  id: string;
  name: string;
  settings: ProfileSettings;
}

/** The desk's sync with the hub (`calldesk_wire::SyncStatusView`). */
export interface SyncStatus {
  /** `off`: this profile does not sync (Demo; Direct without a hub). */
  state: 'off' | 'idle' | 'syncing' | 'offline';
  /** Changes made here that the hub does not have yet. */
  pending: number;
  /** Changes the hub refused for good. */
  refused: number;
  /** Progress of the push under way: `done` of `total`. */
  done: number;
  total: number;
  /** Unix ms. */
  lastSyncedAt: number | null;
  error: string | null;
}

/** A change the hub refused for good (`calldesk_store::RefusedChange`). */
export interface RefusedChange {
  id: string;
  kind: 'note' | 'disposition' | 'tags' | 'call' | 'callback';
  /** The call (a worklist change: the number). */
  callId: string;
  error: string;
  /** Unix ms. */
  createdAt: number;
}

export const SYNC_OFF: SyncStatus = { state: 'off', pending: 0, refused: 0, done: 0, total: 0, lastSyncedAt: null, error: null };

/** A history search (`calldesk_store::HistoryQuery`); every part optional. */
export interface HistoryQuery {
  /** As typed: any 3+ digits of a number, names, companies, queues, operators. */
  text?: string;
  /** Calls that started at or after / before (unix ms). */
  since?: number | null;
  until?: number | null;
  status?: CallStatus | null;
  direction?: Direction | null;
  operator?: string | null;
  /** The previous page's `next`. */
  before?: number | null;
  /** 1–500, default 100. */
  limit?: number;
}

export interface HistoryPage {
  calls: CallView[];
  /** Pass as `before` for the next page; null at the end. */
  next: number | null;
}

export interface ProfileList {
  active: string | null;
  profiles: Profile[];
}

/**
 * A call control as the Rust side reads it (`calldesk_wire::ControlSpec`, snake_case).
 * `region` is filled in by the app; send ''.
 */
export type ControlSpec =
  | { control: 'originate'; region: ''; operator: string; to: string }
  | { control: 'hangup'; call: string; operator: string | null }
  | { control: 'transfer'; region: ''; call: string; operator: string; to: string; kind: 'blind' | 'attended' }
  | { control: 'hold'; call: string; operator: string; on: boolean }
  | { control: 'record'; call: string; action: 'start' | 'stop' | 'mute' | 'unmute' }
  | { control: 'monitor'; call: string; operator: string; supervisor: string; mode: 'listen' | 'whisper' | 'barge' }
  | { control: 'dtmf'; call: string; operator: string; digits: string }
  | { control: 'queue_pause'; operator: string; queue: string | null; paused: boolean; reason: string | null };

export interface Backend {
  /** Live + recent calls. */
  callsSnapshot(): Promise<CallView[]>;
  connectionStatus(): Promise<ConnectionStatus>;
  identity(): Promise<Identity>;
  capabilities(): Promise<Capabilities>;
  presence(): Promise<PresenceView[]>;
  /** The latest calls with this number (the pop's "last calls"). */
  callerHistory(number: string): Promise<CallView[]>;
  /** Resolves to the new call's id for a click-to-call (when the PBX tells it), else null. */
  callControl(spec: ControlSpec): Promise<string | null>;
  afterCall(call: string): Promise<AfterCall>;
  addNote(call: string, text: string): Promise<CallNote>;
  setDisposition(call: string, code: string): Promise<void>;
  /** The call centre's disposition codes. */
  dispositionCodes(): Promise<string[]>;
  /** Replaces the call's tags; resolves to them as stored (normalised). */
  setTags(call: string, tags: string[]): Promise<string[]>;
  /** Searches this desk's call history (the same with the hub away); newest first. */
  historySearch(query: HistoryQuery): Promise<HistoryPage>;
  syncStatus(): Promise<SyncStatus>;
  /** Runs a sync round now. */
  syncNow(): Promise<void>;
  /** The changes the hub refused for good, newest first. */
  syncRefused(): Promise<RefusedChange[]>;
  onSyncChanged(cb: (s: SyncStatus) => void): Promise<() => void>;
  /** A pull brought calls or after-call work into the history. */
  onHistoryChanged(cb: () => void): Promise<() => void>;
  /** The missed-calls worklist, newest missed call first. */
  callbacks(): Promise<CallbackView[]>;
  /** Takes (`claim`) or gives back an item; resolves to it after (null if the hub did not say). */
  claimCallback(number: string, claim: boolean): Promise<CallbackView | null>;
  closeCallback(number: string, outcome: CallbackOutcome): Promise<void>;
  /** Figures per operator for the calls since `since` (unix ms). */
  figuresSince(since: number): Promise<OperatorFigures[]>;
  /** The tenant's operators (hub; empty otherwise). */
  operators(): Promise<OperatorInfo[]>;
  /** The pop of a call was painted `ms` after its PBX event (the pop latency). */
  reportPopLatency(ms: number): Promise<void>;
  profilesList(): Promise<ProfileList>;
  /** `secret` null keeps the stored one; `hubSecret`: the password of a Direct profile's hub. */
  profileSave(profile: Profile, secret: string | null, hubSecret?: string | null): Promise<void>;
  /** Makes the profile active and (re)starts the connection on it. */
  profileActivate(id: string): Promise<void>;
  profileDelete(id: string): Promise<void>;
  /** Resolves to an unsubscribe function. */
  onCallUpdated(cb: (call: CallView) => void): Promise<() => void>;
  onConnectionChanged(cb: (s: ConnectionStatus) => void): Promise<() => void>;
  onIdentityChanged(cb: (i: Identity) => void): Promise<() => void>;
  onPresenceChanged(cb: (p: PresenceView) => void): Promise<() => void>;
  /** A colleague claimed, gave back or closed a worklist item (Hub profile). */
  onCallbacksChanged(cb: () => void): Promise<() => void>;
  /** A `tel:`/`callto:` link asks to dial this number. */
  onDialRequest(cb: (number: string) => void): Promise<() => void>;
  /** A global hotkey was pressed: `hangup`, `hold`, `transfer` or `disposition`. */
  onHotkey(cb: (action: HotkeyAction) => void): Promise<() => void>;
  /** The number a link asked to dial before the UI listened (taken once). */
  pendingDial(): Promise<string | null>;
  /** Plays call `call`'s recording (the first, or `name`); progress comes as player states. */
  recordingPlay(call: string, name?: string | null): Promise<void>;
  playerControl(action: PlayerAction): Promise<void>;
  playerState(): Promise<PlayerState>;
  onPlayerState(cb: (s: PlayerState) => void): Promise<() => void>;
  onWaveform(cb: (w: Waveform) => void): Promise<() => void>;
  /** Brings the main window up (from the pop window). */
  showMain(): Promise<void>;
  /** The UI is mounted and has its first data (the cold-start mark). */
  /** The UI is interactive; `marks` say how long each start-up stage took (logged by the app). */
  uiReady(marks: StartMarks): Promise<void>;
}

/**
 * Start-up stages of the page, in ms since the navigation started (`performance.now()`), and that
 * start as unix ms: the app logs them with its own process start, so a slow cold start can be
 * split into WebKit, page load, script and first data.
 */
export interface StartMarks {
  navigationStartUnixMs: number;
  responseEndMs: number | null;
  scriptStartMs: number;
  mountedMs: number;
  profilesMs: number;
  paintedMs: number;
}

export type HotkeyAction = 'hangup' | 'hold' | 'transfer' | 'disposition';

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
