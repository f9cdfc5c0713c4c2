import { describe, expect, it, vi } from 'vitest';
import { CallsStore, RECENT_CAP, ringSecondsOf, talkSecondsOf } from './calls-store';
import type { CallView } from './backend';
import { T0, answered, ended, makeCall, party } from './testing';

const ids = (cs: { id: string }[]) => cs.map((c) => c.id);

describe('CallsStore: snapshot then updates', () => {
  it('splits a snapshot into live (newest first) and recent (newest end first)', () => {
    const s = new CallsStore();
    const a = makeCall({ id: 'a', startedAt: T0 });
    const b = answered(makeCall({ id: 'b', startedAt: T0 + 1000 }), T0 + 5000);
    const c = ended(makeCall({ id: 'c', startedAt: T0 - 60_000 }), 'missed', T0 - 30_000);
    const d = ended(answered(makeCall({ id: 'd', startedAt: T0 - 90_000 }), T0 - 85_000), 'answered', T0 - 10_000);
    expect(s.applySnapshot([a, c, b, d])).toBe(true);
    expect(ids(s.live())).toEqual(['b', 'a']);
    expect(ids(s.recent())).toEqual(['d', 'c']);
    expect(s.popCandidate()?.call.id).toBe('a');
  });

  it('an update moves a call ringing → talking → ended', () => {
    const s = new CallsStore();
    const a = makeCall({ id: 'a' });
    s.applySnapshot([a]);
    const talking = answered(a, T0 + 4000);
    expect(s.applyUpdate(talking)).toBe(true);
    expect(s.get('a')?.state).toBe('talking');
    expect(s.popCandidate()).toBeNull();
    expect(ids(s.live())).toEqual(['a']);
    expect(s.applyUpdate(ended(talking, 'answered', T0 + 64_000))).toBe(true);
    expect(s.live()).toEqual([]);
    expect(ids(s.recent())).toEqual(['a']);
    expect(s.get('a')?.status).toBe('answered');
  });

  it('an event newer than the snapshot wins (snapshot requested before the event)', () => {
    const s = new CallsStore();
    const mark = s.mark();
    const a = makeCall({ id: 'a', operator: '101' });
    // Event arrives while the snapshot is in flight: the call now rings ext 102.
    s.applyUpdate({ ...a, operator: '102' });
    // Snapshot answer (taken earlier on the backend) still says 101.
    expect(s.applySnapshot([a], mark)).toBe(false);
    expect(s.get('a')?.operator).toBe('102');
  });

  it('a snapshot that is further along than the events wins', () => {
    const s = new CallsStore();
    const mark = s.mark();
    const a = makeCall({ id: 'a' });
    s.applyUpdate(a);
    s.applySnapshot([ended(a, 'cancelled', T0 + 3000)], mark);
    expect(s.get('a')?.state).toBe('ended');
    expect(s.get('a')?.status).toBe('cancelled');
  });

  it('a fresh snapshot replaces same-state data written before its mark', () => {
    const s = new CallsStore();
    const a = makeCall({ id: 'a', operator: '101' });
    s.applyUpdate(a);
    const mark = s.mark(); // snapshot requested after the event
    s.applySnapshot([{ ...a, operator: '103', from: party('+7 495 123-45-67', 'ООО Ромашка') }], mark);
    expect(s.get('a')?.operator).toBe('103');
    expect(s.get('a')?.from.name).toBe('ООО Ромашка');
  });

  it('a later snapshot keeps ended calls it lacks but drops live ones (their end was missed)', () => {
    const s = new CallsStore();
    s.applyUpdate(ended(makeCall({ id: 'x' }), 'missed', T0 + 1000));
    s.applyUpdate(makeCall({ id: 'stale', startedAt: T0 + 2000 }));
    expect(s.popCandidate()?.call.id).toBe('stale');
    expect(s.applySnapshot([makeCall({ id: 'y' })], s.mark())).toBe(true);
    expect(s.get('x')?.state).toBe('ended');
    expect(s.get('stale')).toBeUndefined();
    expect(ids(s.live())).toEqual(['y']);
    expect(s.popCandidate()?.call.id).toBe('y');
  });

  it('a live call updated after the mark survives a snapshot that lacks it', () => {
    const s = new CallsStore();
    s.applyUpdate(makeCall({ id: 'old' }));
    const mark = s.mark();
    // While the snapshot is in flight: a new call starts, and the old one is answered.
    s.applyUpdate(makeCall({ id: 'new' }));
    s.applyUpdate(answered(makeCall({ id: 'old' }), T0 + 3000));
    expect(s.applySnapshot([], mark)).toBe(false);
    expect(ids(s.live()).sort()).toEqual(['new', 'old']);
  });

  it('a snapshot without a mark drops nothing', () => {
    const s = new CallsStore();
    s.applyUpdate(makeCall({ id: 'a' }));
    expect(s.applySnapshot([])).toBe(false);
    expect(s.size).toBe(1);
  });
});

describe('CallsStore: duplicates, out-of-order, ended is final', () => {
  it('duplicate updates are idempotent and do not notify', () => {
    const s = new CallsStore();
    const listener = vi.fn();
    s.subscribe(listener);
    const a = makeCall({ id: 'a' });
    expect(s.applyUpdate(a)).toBe(true);
    const viewBefore = s.view();
    expect(s.applyUpdate({ ...a, from: { ...a.from }, to: { ...a.to } })).toBe(false);
    expect(listener).toHaveBeenCalledTimes(1);
    expect(s.view()).toBe(viewBefore);
    const e = ended(a, 'missed', T0 + 20_000);
    s.applyUpdate(e);
    s.applyUpdate({ ...e });
    s.applySnapshot([e, e]);
    expect(listener).toHaveBeenCalledTimes(2);
    expect(s.size).toBe(1);
  });

  it('any differing field is a change, even one this store does not know about', () => {
    const s = new CallsStore();
    const a = makeCall({ id: 'a' });
    s.applyUpdate(a);
    expect(s.applyUpdate({ ...a, from: { ...a.from, name: 'ООО Ромашка' } })).toBe(true);
    expect(s.applyUpdate({ ...a, queue: 'sales' } as CallView)).toBe(true);
  });

  it('a late ringing after talking is ignored (out of order)', () => {
    const s = new CallsStore();
    const a = makeCall({ id: 'a' });
    s.applyUpdate(answered(a, T0 + 3000));
    expect(s.applyUpdate(a)).toBe(false);
    expect(s.get('a')?.state).toBe('talking');
    expect(s.popCandidate()).toBeNull();
  });

  it('ended is final: neither ringing nor talking brings it back, from events or snapshots', () => {
    const s = new CallsStore();
    const a = makeCall({ id: 'a' });
    const t = answered(a, T0 + 3000);
    s.applyUpdate(ended(t, 'answered', T0 + 9000));
    expect(s.applyUpdate(t)).toBe(false);
    expect(s.applyUpdate(a)).toBe(false);
    expect(s.applySnapshot([a, t], s.mark())).toBe(false);
    expect(s.get('a')?.state).toBe('ended');
    expect(s.live()).toEqual([]);
    expect(s.popCandidate()).toBeNull();
  });

  it('ignores malformed updates', () => {
    const s = new CallsStore();
    expect(s.applyUpdate({ ...makeCall({ id: 'a' }), state: 'weird' as never })).toBe(false);
    expect(s.size).toBe(0);
  });

  it('stored calls are frozen copies: mutating the input does not change the store', () => {
    const s = new CallsStore();
    const a = makeCall({ id: 'a' });
    s.applyUpdate(a);
    a.from.display = 'changed';
    expect(s.get('a')?.from.display).toBe('+7 495 123-45-67');
    expect(Object.isFrozen(s.get('a'))).toBe(true);
  });
});

describe('CallsStore: pop selection', () => {
  it('shows the newest ringing inbound call and counts the others', () => {
    const s = new CallsStore();
    s.applyUpdate(makeCall({ id: 'old', startedAt: T0 }));
    s.applyUpdate(makeCall({ id: 'new', startedAt: T0 + 2000, from: party('+7 916 000-00-02') }));
    s.applyUpdate(makeCall({ id: 'mid', startedAt: T0 + 1000 }));
    // not candidates: outbound ringing, talking inbound, ended inbound
    s.applyUpdate(makeCall({ id: 'out', direction: 'outbound', startedAt: T0 + 5000 }));
    s.applyUpdate(answered(makeCall({ id: 'talk', startedAt: T0 + 6000 }), T0 + 7000));
    s.applyUpdate(ended(makeCall({ id: 'gone', startedAt: T0 + 8000 }), 'cancelled', T0 + 9000));
    const pop = s.popCandidate();
    expect(pop?.call.id).toBe('new');
    expect(pop?.others).toBe(2);
  });

  it('when the newest is answered the next one pops; none left → null', () => {
    const s = new CallsStore();
    const a = makeCall({ id: 'a', startedAt: T0 });
    const b = makeCall({ id: 'b', startedAt: T0 + 1000 });
    s.applySnapshot([a, b]);
    expect(s.popCandidate()).toMatchObject({ call: { id: 'b' }, others: 1 });
    s.applyUpdate(answered(b, T0 + 4000));
    expect(s.popCandidate()).toMatchObject({ call: { id: 'a' }, others: 0 });
    s.applyUpdate(ended(a, 'missed', T0 + 30_000));
    expect(s.popCandidate()).toBeNull();
  });

  it('with a seat, only calls ringing at that extension (or its queue ringing it) pop', () => {
    const s = new CallsStore();
    s.applyUpdate(makeCall({ id: 'mine', startedAt: T0, operator: '101', rang: ['101'] }));
    s.applyUpdate(makeCall({ id: 'queue', startedAt: T0 + 1000, operator: null, rang: ['102', '101'] }));
    s.applyUpdate(makeCall({ id: 'theirs', startedAt: T0 + 2000, operator: '102', rang: ['102'] }));
    expect(s.popCandidate()?.call.id).toBe('theirs');
    let notified = 0;
    s.subscribe(() => notified++);
    s.setSeat('101');
    expect(notified).toBe(1);
    expect(s.popCandidate()).toMatchObject({ call: { id: 'queue' }, others: 1 });
    s.setSeat('101');
    expect(notified).toBe(1);
    s.setSeat('103');
    expect(s.popCandidate()).toBeNull();
    // The live list still shows every call.
    expect(s.live().map((c) => c.id)).toEqual(['theirs', 'queue', 'mine']);
  });

  it('same start time: the one that arrived last pops', () => {
    const s = new CallsStore();
    s.applyUpdate(makeCall({ id: 'first' }));
    s.applyUpdate(makeCall({ id: 'second' }));
    expect(s.popCandidate()?.call.id).toBe('second');
  });
});

describe('CallsStore: recent cap', () => {
  it('keeps RECENT_CAP ended calls by default', () => {
    const s = new CallsStore();
    for (let i = 0; i < RECENT_CAP + 5; i++) {
      s.applyUpdate(ended(makeCall({ id: `c${i}`, startedAt: T0 + i * 1000 }), 'answered', T0 + i * 1000 + 500));
    }
    expect(s.recent()).toHaveLength(RECENT_CAP);
    expect(s.recent()[0]?.id).toBe(`c${RECENT_CAP + 4}`);
    expect(s.recent()[RECENT_CAP - 1]?.id).toBe('c5');
  });

  it('drops the oldest ended calls, never live ones, and does not resurrect dropped ids', () => {
    const s = new CallsStore({ recentCap: 3 });
    const live = makeCall({ id: 'live', startedAt: T0 - 1_000_000 });
    s.applyUpdate(live);
    for (let i = 0; i < 5; i++) {
      s.applyUpdate(ended(makeCall({ id: `e${i}`, startedAt: T0 + i }), 'missed', T0 + 1000 * i));
    }
    expect(ids(s.recent())).toEqual(['e4', 'e3', 'e2']);
    expect(ids(s.live())).toEqual(['live']);
    expect(s.size).toBe(4);
    // late events for a dropped call are ignored
    expect(s.applyUpdate(makeCall({ id: 'e0', startedAt: T0 }))).toBe(false);
    expect(s.get('e0')).toBeUndefined();
    // an older ended call arriving later falls off at once
    s.applyUpdate(ended(makeCall({ id: 'ancient', startedAt: T0 - 5000 }), 'busy', T0 - 4000));
    expect(ids(s.recent())).toEqual(['e4', 'e3', 'e2']);
  });
});

describe('durations (time is an input)', () => {
  const a = makeCall({ id: 'a', startedAt: T0 });

  it('ringing: running ring time, no talk time', () => {
    expect(ringSecondsOf(a, T0 + 7_900)).toBe(7);
    expect(talkSecondsOf(a, T0 + 7_900)).toBeNull();
    expect(ringSecondsOf(a, T0 - 5000)).toBe(0); // clock skew never goes negative
  });

  it('talking: fixed ring time, running talk time', () => {
    const t = { ...answered(a, T0 + 12_000), ringSeconds: null };
    expect(ringSecondsOf(t, T0 + 100_000)).toBe(12);
    expect(talkSecondsOf(t, T0 + 72_000)).toBe(60);
  });

  it('ended: uses the backend numbers when given, else computes', () => {
    const e = ended(answered(a, T0 + 3000), 'answered', T0 + 63_000);
    expect(ringSecondsOf(e, T0 + 999_999)).toBe(3);
    expect(talkSecondsOf(e, T0 + 999_999)).toBe(60);
    const bare = { ...e, ringSeconds: null, talkSeconds: null };
    expect(ringSecondsOf(bare, 0)).toBe(3);
    expect(talkSecondsOf(bare, 0)).toBe(60);
    const missed = { ...ended(a, 'missed', T0 + 25_000), ringSeconds: null, talkSeconds: null };
    expect(ringSecondsOf(missed, 0)).toBe(25);
    expect(talkSecondsOf(missed, 0)).toBeNull();
  });
});
