// Sample data for running the UI in a plain browser (`npm run dev`, no Tauri).
import type { CallView, PartyView } from './backend';

function party(raw: string, display: string, name: string | null = null, e164: string | null = null): PartyView {
  return { raw, e164, display, name };
}

export function sampleCalls(now: number): CallView[] {
  const s = (secondsAgo: number) => now - secondsAgo * 1000;
  return [
    {
      id: 'sample-ringing',
      direction: 'inbound',
      from: party('84951234567', '+7 495 123-45-67', 'ООО «Ромашка»', '+74951234567'),
      to: party('101', '101'),
      state: 'ringing',
      status: null,
      operator: '101',
      startedAt: s(7),
      answeredAt: null,
      endedAt: null,
      ringSeconds: null,
      talkSeconds: null,
      hangupCause: null,
    },
    {
      id: 'sample-talking',
      direction: 'inbound',
      from: party('89161112233', '+7 916 111-22-33', null, '+79161112233'),
      to: party('102', '102'),
      state: 'talking',
      status: null,
      operator: '102',
      startedAt: s(95),
      answeredAt: s(83),
      endedAt: null,
      ringSeconds: 12,
      talkSeconds: null,
      hangupCause: null,
    },
    {
      id: 'sample-missed',
      direction: 'inbound',
      from: party('88123334455', '+7 812 333-44-55', 'Иван Петров', '+78123334455'),
      to: party('101', '101'),
      state: 'ended',
      status: 'missed',
      operator: '101',
      startedAt: s(600),
      answeredAt: null,
      endedAt: s(570),
      ringSeconds: 30,
      talkSeconds: null,
      hangupCause: 'NO_ANSWER',
    },
    {
      id: 'sample-answered',
      direction: 'outbound',
      from: party('103', '103'),
      to: party('84997654321', '+7 499 765-43-21', 'Acme Ltd', '+74997654321'),
      state: 'ended',
      status: 'answered',
      operator: '103',
      startedAt: s(1500),
      answeredAt: s(1490),
      endedAt: s(1250),
      ringSeconds: 10,
      talkSeconds: 240,
      hangupCause: 'NORMAL_CLEARING',
    },
    {
      id: 'sample-busy',
      direction: 'internal',
      from: party('104', '104'),
      to: party('105', '105'),
      state: 'ended',
      status: 'busy',
      operator: '105',
      startedAt: s(2400),
      answeredAt: null,
      endedAt: s(2398),
      ringSeconds: 2,
      talkSeconds: null,
      hangupCause: 'USER_BUSY',
    },
  ];
}
