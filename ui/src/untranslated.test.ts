// @vitest-environment jsdom
// Every screen in Russian shows no English: no text, tooltip, label or placeholder that is an
// English message of the dictionary (or a fragment of one between its placeholders), and no
// Latin word outside the names and data the screen shows on purpose.
import { cleanup, fireEvent, render, screen, within } from '@testing-library/svelte';
import { tick } from 'svelte';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import App from './App.svelte';
import type { ProfileList } from './lib/backend';
import { MemoryBackend } from './lib/backend-memory';
import { dictionaries } from './lib/i18n';
import { answered, ended, makeCall, party } from './lib/testing';

const NOW = Date.UTC(2025, 0, 15, 9, 0, 30);

async function settle() {
  for (let i = 0; i < 6; i++) {
    await Promise.resolve();
    await tick();
  }
}

/** English fragments that must not show in Russian: each message's text between placeholders. */
const englishFragments: string[] = (() => {
  const out = new Set<string>();
  for (const [key, en] of Object.entries(dictionaries.en)) {
    const ru = (dictionaries.ru as Record<string, unknown>)[key];
    const forms = typeof en === 'string' ? [en] : Object.values(en);
    const ruForms = typeof ru === 'string' ? [ru] : Object.values(ru as object);
    for (const form of forms) {
      if (ruForms.includes(form)) continue; // the same in both (a name, a symbol)
      for (const piece of form.split(/\{\w+\}/)) {
        const p = piece.trim();
        // Fragments with a real English word: long enough not to hit data by chance.
        if (p.length >= 4 && /[A-Za-z]{3}/.test(p)) out.add(p);
      }
    }
  }
  return [...out];
})();

/** Latin words a Russian screen may show: the product, protocol and data names. */
const ALLOWED_LATIN = new Set([
  'calldesk', 'English', 'Asterisk', 'Mango', 'Office', 'SIP', 'PBX', 'AMI', 'DTMF', 'PIN',
  // Key names, as printed on the keys.
  'Enter', 'Ctrl', 'Alt', 'Shift', 'Tab', 'Esc',
]);

/** Whether `text` holds `fragment` as whole words (not "call" inside "calldesk"). */
function holds(text: string, fragment: string): boolean {
  for (let at = text.indexOf(fragment); at >= 0; at = text.indexOf(fragment, at + 1)) {
    const before = text[at - 1] ?? ' ';
    const after = text[at + fragment.length] ?? ' ';
    if (!/[A-Za-z]/.test(before) && !/[A-Za-z]/.test(after)) return true;
  }
  return false;
}

/** Every text a user can see or hear on the page, with where it came from. */
function visibleTexts(): Array<{ where: string; text: string }> {
  const out: Array<{ where: string; text: string }> = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    // Text marked as another language on purpose (the "English" language button).
    if (el?.closest('[lang]:not([lang="ru"])')) continue;
    if (el?.closest('script,style')) continue;
    const text = n.textContent?.trim();
    if (text) out.push({ where: `<${el?.tagName.toLowerCase()} data-testid=${el?.dataset.testid ?? '-'}>`, text });
  }
  for (const el of document.body.querySelectorAll<HTMLElement>('[title],[aria-label],[placeholder],[alt]')) {
    if (el.closest('[lang]:not([lang="ru"])')) continue;
    for (const attr of ['title', 'aria-label', 'placeholder', 'alt']) {
      const text = el.getAttribute(attr)?.trim();
      if (text) out.push({ where: `${attr} of <${el.tagName.toLowerCase()} data-testid=${el.dataset.testid ?? '-'}>`, text });
    }
  }
  return out;
}

function englishOnScreen(screenName: string): string[] {
  const found: string[] = [];
  for (const { where, text } of visibleTexts()) {
    // The longest English message fragment it holds, if any.
    const fragment = englishFragments.filter((f) => holds(text, f)).sort((a, b) => b.length - a.length)[0];
    if (fragment) found.push(`${screenName}: ${where} "${text}" holds the English "${fragment}"`);
    // Host names and addresses (examples in placeholders) are not words.
    const words = text.replace(/\b[\w-]+:\/\/\S*|\b[\w-]+(\.[\w-]+)+\b/g, ' ');
    for (const word of words.match(/[A-Za-z]{3,}/g) ?? []) {
      if (!ALLOWED_LATIN.has(word)) found.push(`${screenName}: ${where} "${text}" holds the Latin word "${word}"`);
    }
  }
  return found;
}

describe('Russian screens', () => {
  beforeEach(() => {
    localStorage.clear();
    localStorage.setItem('calldesk.lang', 'ru');
    vi.spyOn(navigator, 'language', 'get').mockReturnValue('ru-RU');
  });
  afterEach(() => {
    cleanup();
    vi.restoreAllMocks();
  });

  it('the dictionary check itself finds English', () => {
    expect(englishFragments).toContain('Call back');
    document.body.innerHTML = '<p title="Перезвонить">Call back later</p>';
    const found = englishOnScreen('probe');
    expect(found[0]).toContain('holds the English "Call back"');
    expect(found.filter((f) => f.includes('Latin word'))).toHaveLength(3);
    document.body.innerHTML = '';
  });

  it('the operator and supervisor screens, the pop, the worklist, the history and the after-call panel hold no English', async () => {
    const caller = party('+7 495 123-45-67', 'Остап Бендер');
    const ringing = makeCall({ id: 'r1', startedAt: NOW - 3_000, from: caller, company: 'Рога и копыта', queue: 'продажи' });
    const talking = answered(makeCall({ id: 't1', startedAt: NOW - 60_000, operator: '102', rang: ['102'], from: party('+7 916 000-00-01') }), NOW - 50_000);
    const missed = ended(makeCall({ id: 'm1', startedAt: Date.now() - 60_000, from: party('+7 495 765-43-21', 'Киса') }), 'missed', Date.now() - 40_000);
    const done = ended(answered(makeCall({ id: 'd1', startedAt: NOW - 600_000, from: caller }), NOW - 590_000), 'answered', NOW - 500_000);
    const profiles: ProfileList = {
      active: 'demo',
      profiles: [{ id: 'demo', name: 'Демо', settings: { kind: 'demo', extension: '101', supervisor: true } }],
    };
    const backend = new MemoryBackend([ringing, talking, missed, done], { state: 'connected', profile: 'demo', detail: null }, {
      identity: { profile: 'demo', tenant: null, login: null, name: null, extension: '101', supervisor: true },
      profiles,
      presence: [
        { extension: '101', queue: null, device: 'ringing', paused: false, reason: null },
        { extension: '102', queue: null, device: 'in_use', paused: false, reason: null },
        { extension: '103', queue: 'продажи', device: 'idle', paused: true, reason: 'обед' },
      ],
    });
    render(App, { props: { backend, clock: () => NOW } });
    await settle();
    const problems: string[] = [];
    // Each screen is the one meant: the pop, the after-call panel, the board, the worklist.
    expect(screen.getByTestId('call-pop')).toBeTruthy();
    expect(screen.getByTestId('after-disposition')).toBeTruthy();
    problems.push(...englishOnScreen('calls + pop'));
    await fireEvent.click(screen.getByTestId('tab-board'));
    await settle();
    expect(screen.getAllByTestId('board-row').map((r) => r.dataset.extension)).toContain('102');
    problems.push(...englishOnScreen('board'));
    await fireEvent.click(screen.getByTestId('tab-callbacks'));
    await settle();
    expect(screen.getAllByTestId('wl-item')).toHaveLength(1);
    problems.push(...englishOnScreen('worklist'));
    backend.setSync({ state: 'offline', pending: 12, refused: 1, done: 0, total: 0, lastSyncedAt: null, error: null });
    await fireEvent.click(screen.getByTestId('tab-history'));
    await new Promise((r) => setTimeout(r, 200));
    await settle();
    expect(screen.getByTestId('sync-status').dataset.state).toBe('offline');
    await fireEvent.click(screen.getAllByTestId('history-row')[0]!);
    await settle();
    expect(screen.getByTestId('history-detail')).toBeTruthy();
    problems.push(...englishOnScreen('history + sync'));
    await fireEvent.click(screen.getByTestId('profile'));
    await settle();
    problems.push(...englishOnScreen('profile menu'));
    await fireEvent.click(screen.getByTestId('profile-add'));
    await settle();
    expect(screen.getByTestId('wizard')).toBeTruthy();
    for (const kind of ['hub', 'direct', 'demo']) {
      await fireEvent.click(within(screen.getByTestId(`wizard-kind-${kind}`)).getByRole('radio'));
      await settle();
      problems.push(...englishOnScreen(`wizard (${kind})`));
    }
    // Saving with nothing filled in: the errors are Russian too.
    await fireEvent.click(within(screen.getByTestId('wizard-kind-hub')).getByRole('radio'));
    await fireEvent.click(screen.getByTestId('wizard-save'));
    await settle();
    expect(screen.getByTestId('wizard-error')).toBeTruthy();
    problems.push(...englishOnScreen('wizard error'));
    expect(problems).toEqual([]);
  });
});
