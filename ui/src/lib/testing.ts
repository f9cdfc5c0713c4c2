// Test fixtures (imported by *.test.ts only).
import type { CallView, PartyView } from './backend';

export const T0 = Date.UTC(2025, 0, 15, 9, 0, 0);

export function party(display: string, name: string | null = null): PartyView {
  const digits = display.replace(/\D/g, '');
  return { raw: digits, e164: digits.length > 6 ? `+${digits}` : null, display, name };
}

export function makeCall(over: Partial<CallView> & { id: string }): CallView {
  return {
    direction: 'inbound',
    from: party('+7 495 123-45-67'),
    to: party('101'),
    state: 'ringing',
    status: null,
    operator: '101',
    startedAt: T0,
    answeredAt: null,
    endedAt: null,
    ringSeconds: null,
    talkSeconds: null,
    hangupCause: null,
    company: null,
    queue: null,
    onHold: false,
    rang: ['101'],
    monitors: [],
    ...over,
  };
}

/** The same call moved to `talking` at `answeredAt`. */
export function answered(c: CallView, answeredAt: number): CallView {
  return { ...c, state: 'talking', answeredAt, ringSeconds: Math.floor((answeredAt - c.startedAt) / 1000) };
}

/** The same call ended with `status` at `endedAt`; like the backend, no talk time (null) if never answered. */
export function ended(c: CallView, status: CallView['status'], endedAt: number): CallView {
  const talk = c.answeredAt === null ? null : Math.floor((endedAt - c.answeredAt) / 1000);
  return {
    ...c,
    state: 'ended',
    status,
    endedAt,
    ringSeconds: c.ringSeconds ?? Math.floor((endedAt - c.startedAt) / 1000),
    talkSeconds: talk,
  };
}
