// Framework-agnostic call state. No timers, no clock: callers pass `now`.
import type { CallState, CallView } from './backend';

export const RECENT_CAP = 200;

const STATE_RANK: Record<CallState, number> = { ringing: 0, talking: 1, ended: 2 };

interface Entry {
  call: CallView;
  /** Store sequence number at which this entry was last written. */
  seq: number;
}

export interface PopCandidate {
  /** Newest ringing inbound call. */
  call: CallView;
  /** How many other inbound calls are ringing at the same time. */
  others: number;
}

export interface CallsView {
  pop: PopCandidate | null;
  /** Ringing / talking, newest first. */
  live: CallView[];
  /** Ended, newest end first, at most `recentCap` (see `prune`). */
  recent: CallView[];
}

export interface CallsStoreOptions {
  recentCap?: number;
  /** How many ids of dropped (over the cap) ended calls to remember, so late events can't resurrect them. */
  tombstoneCap?: number;
}

/**
 * Calls by id, merged from a snapshot and a stream of updates.
 *
 * Rules:
 * - a call's state only moves forward: ringing → talking → ended; `ended` is final;
 * - updates are idempotent: re-applying an identical call changes nothing (no notification);
 * - a snapshot does not override what an event wrote after the snapshot was requested
 *   (see `mark()`), unless the snapshot is further along (e.g. ended vs talking);
 * - a live call missing from a snapshot is dropped unless an event wrote it after the mark.
 */
export class CallsStore {
  private readonly entries = new Map<string, Entry>();
  private readonly tombstones = new Set<string>();
  private readonly listeners = new Set<() => void>();
  private readonly recentCap: number;
  private readonly tombstoneCap: number;
  private seq = 0;
  private cached: CallsView | null = null;
  /** The operator's extension: only calls ringing there pop (null: every inbound call). */
  private seat: string | null = null;

  constructor(opts: CallsStoreOptions = {}) {
    this.recentCap = opts.recentCap ?? RECENT_CAP;
    this.tombstoneCap = opts.tombstoneCap ?? 5000;
  }

  /**
   * Marks "now" in the store's update sequence. Take it right before requesting a
   * snapshot and pass it to `applySnapshot`: entries written by events after the
   * mark are newer than the snapshot and win ties.
   */
  mark(): number {
    return this.seq;
  }

  /** Pops only calls ringing at `extension` from now on (null: every inbound ringing call). */
  setSeat(extension: string | null): void {
    if (this.seat === extension) return;
    this.seat = extension;
    this.changed();
  }

  /** Applies one `call-updated` event. Returns true if anything visible changed. */
  applyUpdate(call: CallView): boolean {
    const changed = this.merge(call, Number.POSITIVE_INFINITY);
    if (changed) this.changed();
    return changed;
  }

  /**
   * Applies a snapshot (live + recent). `mark` is the value of `mark()` taken before
   * the snapshot was requested; default 0 = every event already applied is at least
   * as new as the snapshot. Ended calls absent from the snapshot are kept; live ones
   * absent from it and not updated after the mark are dropped (their `ended` event
   * was lost, e.g. during a disconnect, so they would otherwise ring forever).
   */
  applySnapshot(calls: readonly CallView[], mark = 0): boolean {
    let changed = false;
    const present = new Set<string>();
    for (const c of calls) {
      if (this.merge(c, mark)) changed = true;
      present.add(c.id);
    }
    for (const [id, e] of this.entries) {
      if (e.call.state !== 'ended' && e.seq <= mark && !present.has(id)) {
        this.entries.delete(id);
        changed = true;
      }
    }
    if (changed) this.changed();
    return changed;
  }

  get(id: string): CallView | undefined {
    return this.entries.get(id)?.call;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Immutable view; the same object until the next change. */
  view(): CallsView {
    if (!this.cached) this.cached = this.computeView();
    return this.cached;
  }

  popCandidate(): PopCandidate | null {
    return this.view().pop;
  }

  live(): CallView[] {
    return this.view().live;
  }

  recent(): CallView[] {
    return this.view().recent;
  }

  /** Called after every visible change. Returns unsubscribe. */
  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /**
   * @param snapshotMark for snapshot entries: the mark; for events: +Infinity.
   */
  private merge(incoming: CallView, snapshotMark: number): boolean {
    if (!incoming || typeof incoming.id !== 'string' || !(incoming.state in STATE_RANK)) {
      return false;
    }
    if (this.tombstones.has(incoming.id)) return false;
    const existing = this.entries.get(incoming.id);
    if (existing) {
      const was = STATE_RANK[existing.call.state];
      const now = STATE_RANK[incoming.state];
      if (now < was) return false; // never goes back (ended is final)
      const fromSnapshot = snapshotMark !== Number.POSITIVE_INFINITY;
      if (now === was) {
        // Same state: a snapshot loses against events written after its mark.
        if (fromSnapshot && existing.seq > snapshotMark) return false;
        if (deepEqual(existing.call, incoming)) return false;
      }
    }
    this.seq += 1;
    this.entries.set(incoming.id, { call: freeze(incoming), seq: this.seq });
    if (incoming.state === 'ended') this.prune();
    return true;
  }

  /** Drops ended calls beyond the cap (oldest first) and remembers their ids. */
  private prune(): void {
    const ended = [...this.entries.values()].filter((e) => e.call.state === 'ended');
    if (ended.length <= this.recentCap) return;
    ended.sort((a, b) => compareEnded(a.call, b.call));
    for (const e of ended.slice(this.recentCap)) {
      this.entries.delete(e.call.id);
      this.tombstones.add(e.call.id);
    }
    while (this.tombstones.size > this.tombstoneCap) {
      const first = this.tombstones.values().next().value;
      if (first === undefined) break;
      this.tombstones.delete(first);
    }
  }

  private computeView(): CallsView {
    const live: Entry[] = [];
    const ended: CallView[] = [];
    for (const e of this.entries.values()) {
      if (e.call.state === 'ended') ended.push(e.call);
      else live.push(e);
    }
    // Newest first; equal start times: the one written last first.
    live.sort((a, b) => b.call.startedAt - a.call.startedAt || b.seq - a.seq);
    ended.sort(compareEnded);
    const ringing = live.filter(
      (e) => e.call.state === 'ringing' && e.call.direction === 'inbound' && ringsAt(e.call, this.seat),
    );
    const top = ringing[0];
    return {
      pop: top ? { call: top.call, others: ringing.length - 1 } : null,
      live: live.map((e) => e.call),
      recent: ended,
    };
  }

  private changed(): void {
    this.cached = null;
    for (const l of [...this.listeners]) l();
  }
}

/** Whether `call` rings (or rang) at `extension`; every call does for a desk without one. */
export function ringsAt(call: CallView, extension: string | null): boolean {
  return extension === null || call.operator === extension || call.rang.includes(extension);
}

function endTime(c: CallView): number {
  return c.endedAt ?? c.startedAt;
}

function compareEnded(a: CallView, b: CallView): number {
  return endTime(b) - endTime(a) || b.startedAt - a.startedAt || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
}

function freeze(c: CallView): CallView {
  return Object.freeze({ ...c, from: Object.freeze({ ...c.from }), to: Object.freeze({ ...c.to }) });
}

/**
 * Structural equality of JSON-like data (a CallView arrives as JSON): compares every
 * field, so a field added to CallView later cannot be silently ignored.
 */
function deepEqual(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  const keys = Object.keys(x);
  return keys.length === Object.keys(y).length && keys.every((k) => k in y && deepEqual(x[k], y[k]));
}

/** Seconds the call has been ringing (live, running) or rang (answered / ended). */
export function ringSecondsOf(c: CallView, now: number): number | null {
  if (c.state === 'ringing') return secondsBetween(c.startedAt, now);
  if (c.ringSeconds !== null) return c.ringSeconds;
  const until = c.answeredAt ?? c.endedAt;
  return until === null ? null : secondsBetween(c.startedAt, until);
}

/** Seconds of conversation so far (talking, running) or in total (ended); null if never answered. */
export function talkSecondsOf(c: CallView, now: number): number | null {
  if (c.state === 'ringing') return null;
  if (c.state === 'talking') return secondsBetween(c.answeredAt ?? c.startedAt, now);
  if (c.talkSeconds !== null) return c.talkSeconds;
  if (c.answeredAt === null) return null;
  return secondsBetween(c.answeredAt, c.endedAt ?? c.answeredAt);
}

function secondsBetween(from: number, to: number): number {
  return Math.max(0, Math.floor((to - from) / 1000));
}
