import {
  BackendError,
  IDLE_PLAYER,
  NO_CAPABILITIES,
  SYNC_OFF,
  type AfterCall,
  type Backend,
  type CallNote,
  type CallView,
  type CallbackOutcome,
  type CallbackView,
  type Capabilities,
  type HotkeyAction,
  type ConnectionStatus,
  type ControlSpec,
  type Identity,
  type OperatorFigures,
  type OperatorInfo,
  type PlayerAction,
  type PlayerState,
  type PresenceView,
  type Profile,
  type ProfileList,
  type StartMarks,
  type SyncStatus,
  type RefusedChange,
  type HistoryPage,
  type HistoryQuery,
  type Waveform,
} from './backend';

export const ALL_CAPABILITIES: Capabilities = {
  originate: true,
  hangup: true,
  blindTransfer: true,
  attendedTransfer: true,
  hold: true,
  record: true,
  monitor: true,
  dtmf: true,
  queuePause: true,
};

export interface MemoryOptions {
  identity?: Identity;
  capabilities?: Capabilities;
  profiles?: ProfileList;
  presence?: PresenceView[];
  operators?: OperatorInfo[];
}

/**
 * In-memory backend: for tests and for running the UI in a plain browser.
 * `emitCall` / `setConnection` / `setPresence` play the role of the Rust side's events;
 * `controls` records every control sent, `saved` every profile saved (with its secret).
 */
export class MemoryBackend implements Backend {
  private calls = new Map<string, CallView>();
  private status: ConnectionStatus;
  private me: Identity;
  private caps: Capabilities;
  private profiles: ProfileList;
  private board = new Map<string, PresenceView>();
  private operatorList: OperatorInfo[];
  readonly aftercare = new Map<string, AfterCall>();
  /** The worklist's state per number: claimed (by 'me') and last closed (call end times). */
  readonly callbackState = new Map<string, { claimedAt: number | null; closedAt: number | null; outcome: CallbackOutcome | null }>();
  codes = ['sale', 'callback', 'info', 'complaint', 'wrong_number', 'other'];
  private callListeners = new Set<(c: CallView) => void>();
  private connListeners = new Set<(s: ConnectionStatus) => void>();
  private identityListeners = new Set<(i: Identity) => void>();
  private presenceListeners = new Set<(p: PresenceView) => void>();
  private callbacksListeners = new Set<() => void>();
  private syncListeners = new Set<(s: SyncStatus) => void>();
  private historyListeners = new Set<() => void>();
  /** The simulated sync (`off` unless a test sets it with `setSync`). */
  private sync: SyncStatus = { ...SYNC_OFF };
  /** How many times the UI asked for a sync round. */
  syncNowCalls = 0;
  /** Every history search the UI sent, in order. */
  readonly searches: HistoryQuery[] = [];
  private dialListeners = new Set<(n: string) => void>();
  private hotkeyListeners = new Set<(a: HotkeyAction) => void>();
  /** A number a link asked to dial before the UI listened. */
  pending: string | null = null;
  shownMain = 0;
  readyCalls = 0;
  /** The start-up marks the UI reported last. */
  startMarks: StartMarks | null = null;
  /** When set, the next callsSnapshot()/connectionStatus() rejects with it (once). */
  failNext: BackendError | null = null;
  /** When set, every callControl rejects with it. */
  failControls: BackendError | null = null;
  readonly controls: ControlSpec[] = [];
  readonly saved: Array<{ profile: Profile; secret: string | null; hubSecret?: string | null }> = [];
  readonly popLatencies: number[] = [];
  /** Recordings asked for, and the player controls sent, in order. */
  readonly played: Array<{ call: string; name: string | null }> = [];
  readonly playerActions: PlayerAction[] = [];
  /** The simulated player: a stored recording "plays" at once, this long. */
  recordingMs = 65_000;
  /** When set, every recordingPlay rejects with it. */
  failRecording: BackendError | null = null;
  private player: PlayerState = IDLE_PLAYER;
  private playerListeners = new Set<(s: PlayerState) => void>();
  private waveformListeners = new Set<(w: Waveform) => void>();

  constructor(
    seed: CallView[] = [],
    status: ConnectionStatus = { state: 'connected', profile: 'demo', detail: null },
    options: MemoryOptions = {},
  ) {
    for (const c of seed) this.calls.set(c.id, clone(c));
    this.status = { ...status };
    this.me = options.identity ?? {
      profile: status.profile,
      tenant: null,
      login: null,
      name: null,
      extension: '101',
      supervisor: false,
    };
    this.caps = options.capabilities ?? ALL_CAPABILITIES;
    this.profiles = options.profiles ?? {
      active: 'demo',
      profiles: [{ id: 'demo', name: 'Demo', settings: { kind: 'demo', extension: '101', supervisor: false } }],
    };
    for (const p of options.presence ?? []) this.board.set(key(p), { ...p });
    this.operatorList = options.operators ?? [];
  }

  async callsSnapshot(): Promise<CallView[]> {
    this.throwIfFailing();
    this.throwIfNoProfile();
    return [...this.calls.values()].map(clone);
  }

  async connectionStatus(): Promise<ConnectionStatus> {
    this.throwIfFailing();
    this.throwIfNoProfile();
    return { ...this.status };
  }

  async identity(): Promise<Identity> {
    this.throwIfNoProfile();
    return { ...this.me };
  }

  async capabilities(): Promise<Capabilities> {
    return this.profiles.active === null ? { ...NO_CAPABILITIES } : { ...this.caps };
  }

  async presence(): Promise<PresenceView[]> {
    return [...this.board.values()].map((p) => ({ ...p }));
  }

  async callerHistory(number: string): Promise<CallView[]> {
    return [...this.calls.values()]
      .filter((c) => c.state === 'ended' && (c.from.e164 === number || c.to.e164 === number))
      .sort((a, b) => (b.endedAt ?? 0) - (a.endedAt ?? 0))
      .slice(0, 5)
      .map(clone);
  }

  async callControl(spec: ControlSpec): Promise<string | null> {
    if (this.failControls) throw this.failControls;
    this.controls.push(structuredClone(spec));
    return spec.control === 'originate' ? `memory-${this.controls.length}` : null;
  }

  /**
   * The history as the app's store answers it: ended calls, newest first (by end), matching
   * every word of `text` (digits against the numbers, others against name, company, queue,
   * operator) and the filters; paged by position.
   */
  async historySearch(query: HistoryQuery): Promise<HistoryPage> {
    this.searches.push(structuredClone(query));
    const words = (query.text ?? '').toLowerCase().split(/\s+/).filter((w) => w.length > 0);
    const matches = (c: CallView) =>
      words.every((w) => {
        const digits = w.replace(/[^0-9]/g, '');
        if (/^[0-9+\-().]+$/.test(w) && digits.length > 0) {
          return [c.from.raw, c.from.e164, c.to.raw, c.to.e164].some((n) => (n ?? '').replace(/[^0-9]/g, '').includes(digits));
        }
        return [c.from.name, c.company, c.queue, c.operator].some((x) => (x ?? '').toLowerCase().includes(w));
      });
    const all = [...this.calls.values()]
      .filter((c) => c.state === 'ended')
      .filter(matches)
      .filter((c) => query.since == null || c.startedAt >= query.since)
      .filter((c) => query.until == null || c.startedAt < query.until)
      .filter((c) => query.status == null || c.status === query.status)
      .filter((c) => query.direction == null || c.direction === query.direction)
      .filter((c) => query.operator == null || c.operator === query.operator)
      .sort((a, b) => (b.endedAt ?? 0) - (a.endedAt ?? 0));
    const start = query.before ?? 0;
    const limit = Math.min(Math.max(query.limit ?? 100, 1), 500);
    const calls = all.slice(start, start + limit).map(clone);
    return { calls, next: start + limit < all.length ? start + limit : null };
  }

  async syncStatus(): Promise<SyncStatus> {
    return { ...this.sync };
  }

  async syncNow(): Promise<void> {
    this.syncNowCalls += 1;
  }

  /** What the simulated hub refused (tests fill it). */
  refused: RefusedChange[] = [];

  async syncRefused(): Promise<RefusedChange[]> {
    return structuredClone(this.refused);
  }

  async onSyncChanged(cb: (s: SyncStatus) => void): Promise<() => void> {
    return subscribe(this.syncListeners, cb);
  }

  async onHistoryChanged(cb: () => void): Promise<() => void> {
    return subscribe(this.historyListeners, cb);
  }

  /** The sync moves on (like `sync-changed`). */
  setSync(status: SyncStatus): void {
    this.sync = { ...status };
    for (const cb of [...this.syncListeners]) cb({ ...status });
  }

  /** A pull brought calls (like `history-changed`): they join the history. */
  pulled(calls: CallView[]): void {
    for (const c of calls) this.calls.set(c.id, clone(c));
    for (const cb of [...this.historyListeners]) cb();
  }

  async afterCall(call: string): Promise<AfterCall> {
    return structuredClone(this.aftercare.get(call) ?? emptyAfterCall());
  }

  async addNote(call: string, text: string): Promise<CallNote> {
    if (!text.trim()) throw new BackendError('invalid', 'a note is 1 to 4000 characters');
    const entry = this.aftercare.get(call) ?? emptyAfterCall();
    const note: CallNote = { id: `note-${entry.notes.length + 1}`, text: text.trim(), author: null, createdAt: entry.notes.length };
    entry.notes.push(note);
    this.aftercare.set(call, entry);
    return { ...note };
  }

  async setDisposition(call: string, code: string): Promise<void> {
    if (!this.codes.includes(code)) throw new BackendError('invalid', `\`${code}\` is not in the disposition list`);
    const entry = this.aftercare.get(call) ?? emptyAfterCall();
    entry.disposition = code;
    this.aftercare.set(call, entry);
  }

  async dispositionCodes(): Promise<string[]> {
    return [...this.codes];
  }

  async setTags(call: string, tags: string[]): Promise<string[]> {
    const norm = [...new Set(tags.map((t) => t.trim().toLowerCase()))].sort();
    const bad = norm.find((t) => !/^[\p{L}\p{N}_-]{1,32}$/u.test(t));
    if (bad !== undefined) throw new BackendError('invalid', `tag \`${bad}\` is not letters, digits, - or _`);
    if (norm.length > 10) throw new BackendError('invalid', `${norm.length} tags on one call; at most 10 are allowed`);
    const entry = this.aftercare.get(call) ?? emptyAfterCall();
    entry.tags = norm;
    this.aftercare.set(call, entry);
    return [...norm];
  }

  /** The worklist by the Rust side's rules, over the calls in memory (ended-at as "recorded"). */
  async callbacks(): Promise<CallbackView[]> {
    const ended = [...this.calls.values()].filter((c) => c.state === 'ended');
    const out: CallbackView[] = [];
    const numbers = new Set(
      ended
        .filter((c) => c.direction === 'inbound' && (c.status === 'missed' || c.status === 'busy') && c.from.e164)
        .map((c) => c.from.e164 as string),
    );
    for (const number of numbers) {
      const state = this.callbackState.get(number);
      const reached = ended.filter((c) => c.status === 'answered' && (c.from.e164 === number || c.to.e164 === number));
      const reachedAt = Math.max(-1, ...reached.map((c) => c.startedAt));
      const reachedRec = Math.max(-1, ...reached.map((c) => c.endedAt ?? 0));
      const open = ended
        .filter(
          (c) =>
            c.direction === 'inbound' &&
            (c.status === 'missed' || c.status === 'busy') &&
            c.from.e164 === number &&
            (c.endedAt ?? 0) > (state?.closedAt ?? -1) &&
            c.startedAt > reachedAt,
        )
        .sort((a, b) => b.startedAt - a.startedAt);
      const last = open[0];
      const first = open[open.length - 1];
      if (!last || !first) continue;
      const claimedAt = state?.claimedAt != null && state.claimedAt > reachedRec ? state.claimedAt : null;
      out.push({
        number,
        display: last.from.display,
        name: last.from.name ?? last.company,
        company: last.company,
        missed: open.length,
        firstMissedAt: first.startedAt,
        lastMissedAt: last.startedAt,
        lastCallId: last.id,
        claimedBy: claimedAt === null ? null : 'me',
        claimedAt,
      });
    }
    return out.sort((a, b) => b.lastMissedAt - a.lastMissedAt);
  }

  async claimCallback(number: string, claim: boolean): Promise<CallbackView | null> {
    await this.openItem(number);
    const state = this.callbackState.get(number) ?? { claimedAt: null, closedAt: null, outcome: null };
    state.claimedAt = claim ? Date.now() : null;
    this.callbackState.set(number, state);
    return this.openItem(number);
  }

  async closeCallback(number: string, outcome: CallbackOutcome): Promise<void> {
    const item = await this.openItem(number);
    this.callbackState.set(number, { claimedAt: null, closedAt: Math.max(Date.now(), item.lastMissedAt + 1), outcome });
  }

  private async openItem(number: string): Promise<CallbackView> {
    const item = (await this.callbacks()).find((c) => c.number === number);
    if (!item) throw new BackendError('invalid', `no missed calls from ${number} wait for a call back`);
    return item;
  }

  async figuresSince(since: number): Promise<OperatorFigures[]> {
    const by = new Map<string, { answered: number; missed: number; talk: number; timed: number }>();
    const tally = (ext: string) => {
      let t = by.get(ext);
      if (!t) by.set(ext, (t = { answered: 0, missed: 0, talk: 0, timed: 0 }));
      return t;
    };
    for (const c of this.calls.values()) {
      if (c.state !== 'ended' || (c.endedAt ?? 0) < since) continue;
      if (c.status === 'answered' && c.operator) {
        const t = tally(c.operator);
        t.answered += 1;
        if (c.talkSeconds !== null) {
          t.talk += c.talkSeconds;
          t.timed += 1;
        }
      } else if (c.status === 'missed' || c.status === 'no_answer') {
        for (const ext of new Set(c.rang)) tally(ext).missed += 1;
      }
    }
    return [...by.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([extension, t]) => ({
        extension,
        answered: t.answered,
        missed: t.missed,
        averageHandleSeconds: t.timed > 0 ? Math.floor(t.talk / t.timed) : null,
      }));
  }

  async operators(): Promise<OperatorInfo[]> {
    return this.operatorList.map((o) => ({ ...o }));
  }

  async reportPopLatency(ms: number): Promise<void> {
    this.popLatencies.push(ms);
  }

  async profilesList(): Promise<ProfileList> {
    return structuredClone(this.profiles);
  }

  async profileSave(profile: Profile, secret: string | null, hubSecret: string | null = null): Promise<void> {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(profile.id)) {
      throw new BackendError('invalid_profile', `the profile id \`${profile.id}\` must be 1–64 letters, digits, \`-\` or \`_\``);
    }
    this.saved.push({ profile: structuredClone(profile), secret, hubSecret });
    const list = this.profiles.profiles.filter((p) => p.id !== profile.id);
    this.profiles = { ...this.profiles, profiles: [...list, structuredClone(profile)] };
  }

  async profileActivate(id: string): Promise<void> {
    const profile = this.profiles.profiles.find((p) => p.id === id);
    if (!profile) throw new BackendError('no_such_profile', `no profile \`${id}\``);
    this.profiles = { ...this.profiles, active: id };
    const s = profile.settings;
    this.me = {
      profile: s.kind,
      tenant: s.kind === 'hub' ? s.tenant : null,
      login: s.kind === 'hub' ? s.login : null,
      name: null,
      extension: s.kind === 'hub' ? this.me.extension : s.extension,
      supervisor: s.kind === 'hub' ? this.me.supervisor : s.supervisor,
    };
    for (const cb of [...this.identityListeners]) cb({ ...this.me });
    this.setConnection({ state: 'connecting', profile: s.kind, detail: null });
  }

  async profileDelete(id: string): Promise<void> {
    this.profiles = {
      active: this.profiles.active === id ? null : this.profiles.active,
      profiles: this.profiles.profiles.filter((p) => p.id !== id),
    };
  }

  async onCallUpdated(cb: (call: CallView) => void): Promise<() => void> {
    return subscribe(this.callListeners, cb);
  }

  async onConnectionChanged(cb: (s: ConnectionStatus) => void): Promise<() => void> {
    return subscribe(this.connListeners, cb);
  }

  async onIdentityChanged(cb: (i: Identity) => void): Promise<() => void> {
    return subscribe(this.identityListeners, cb);
  }

  async recordingPlay(call: string, name?: string | null): Promise<void> {
    this.played.push({ call, name: name ?? null });
    if (this.failRecording) throw this.failRecording;
    const recordings = this.calls.get(call)?.recordings ?? [];
    const rec = recordings.find((r) => (name ? r.name === name : true));
    if (!rec) throw new BackendError('no_recording', `call ${call} has no such recording`);
    if (rec.state !== 'stored') {
      throw new BackendError('recording_not_ready', `the recording ${rec.name} is not stored yet (${rec.state}); it is retried by itself`);
    }
    this.emitPlayerState({ ...IDLE_PLAYER, speed: this.player.speed, volume: this.player.volume, id: call, status: 'playing', durationMs: this.recordingMs, firstAudioMs: 42 });
    const peaks = Array.from({ length: 40 }, (_, i) => (i % 10) / 10);
    for (const cb of [...this.waveformListeners]) cb({ id: call, peaks, durationMs: this.recordingMs });
  }

  async playerControl(action: PlayerAction): Promise<void> {
    this.playerActions.push(action);
    const p = this.player;
    switch (action.action) {
      case 'play':
        return this.emitPlayerState({ ...p, status: 'playing', positionMs: p.status === 'ended' ? 0 : p.positionMs });
      case 'pause':
        return this.emitPlayerState({ ...p, status: 'paused' });
      case 'seek':
        return this.emitPlayerState({ ...p, positionMs: Math.min(action.ms, p.durationMs ?? action.ms) });
      case 'speed':
        if (action.value < 0.75 || action.value > 2) throw new BackendError('invalid', `the speed must be from 0.75 to 2, not ${action.value}`);
        return this.emitPlayerState({ ...p, speed: action.value });
      case 'volume':
        return this.emitPlayerState({ ...p, volume: action.value });
      case 'stop':
        return this.emitPlayerState({ ...IDLE_PLAYER, speed: p.speed, volume: p.volume });
    }
  }

  async playerState(): Promise<PlayerState> {
    return this.player;
  }

  async onPlayerState(cb: (s: PlayerState) => void): Promise<() => void> {
    return subscribe(this.playerListeners, cb);
  }

  async onWaveform(cb: (w: Waveform) => void): Promise<() => void> {
    return subscribe(this.waveformListeners, cb);
  }

  /** The player reports a state (like the app's `player-state` event). */
  emitPlayerState(state: PlayerState): void {
    this.player = state;
    for (const cb of [...this.playerListeners]) cb(state);
  }

  async onCallbacksChanged(cb: () => void): Promise<() => void> {
    return subscribe(this.callbacksListeners, cb);
  }

  /** A colleague closes the item of `number` elsewhere (like the hub's `callbacks-changed`). */
  closedElsewhere(number: string): void {
    const recorded = [...this.calls.values()].filter((c) => c.from.e164 === number).map((c) => c.endedAt ?? 0);
    this.callbackState.set(number, { claimedAt: null, closedAt: Math.max(Date.now(), ...recorded) + 1, outcome: 'reached' });
    for (const cb of [...this.callbacksListeners]) cb();
  }

  async onPresenceChanged(cb: (p: PresenceView) => void): Promise<() => void> {
    return subscribe(this.presenceListeners, cb);
  }

  async onDialRequest(cb: (number: string) => void): Promise<() => void> {
    return subscribe(this.dialListeners, cb);
  }

  async onHotkey(cb: (action: HotkeyAction) => void): Promise<() => void> {
    return subscribe(this.hotkeyListeners, cb);
  }

  async pendingDial(): Promise<string | null> {
    const n = this.pending;
    this.pending = null;
    return n;
  }

  async showMain(): Promise<void> {
    this.shownMain += 1;
  }

  async uiReady(marks: StartMarks): Promise<void> {
    this.readyCalls += 1;
    this.startMarks = marks;
  }

  /** Like a `dial-request` event (a tel: link). */
  emitDialRequest(number: string): void {
    for (const cb of [...this.dialListeners]) cb(number);
  }

  /** Like a `hotkey` event. */
  emitHotkey(action: HotkeyAction): void {
    for (const cb of [...this.hotkeyListeners]) cb(action);
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

  /** Updates the presence board and notifies subscribers (like `presence-changed`). */
  setPresence(p: PresenceView): void {
    this.board.set(key(p), { ...p });
    for (const cb of [...this.presenceListeners]) cb({ ...p });
  }

  /** Number of active call/connection subscriptions (for tests: checks unsubscribe works). */
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

  private throwIfNoProfile(): void {
    if (this.profiles.active === null) {
      throw new BackendError('no_profile', 'no connection profile yet: create one in the first-run wizard');
    }
  }
}

function key(p: PresenceView): string {
  return `${p.extension}\u0000${p.queue ?? ''}`;
}

function subscribe<T>(set: Set<(v: T) => void>, cb: (v: T) => void): () => void {
  set.add(cb);
  return () => {
    set.delete(cb);
  };
}

function clone(c: CallView): CallView {
  return structuredClone(c);
}

function emptyAfterCall(): AfterCall {
  return { notes: [], disposition: null, tags: [] };
}
