import { describe, expect, it } from 'vitest';
import {
  LANG_STORAGE_KEY,
  detectLang,
  dictionaries,
  initialLang,
  saveLang,
  t,
  tn,
  type PluralForms,
} from './i18n';

function memoryStorage(init: Record<string, string> = {}) {
  const m = new Map(Object.entries(init));
  return {
    getItem: (k: string) => m.get(k) ?? null,
    setItem: (k: string, v: string) => void m.set(k, v),
    map: m,
  };
}

// Same keys and same kind (text / plural) per key are enforced by the `Dictionary` type.
describe('dictionaries', () => {
  it('every message uses the same placeholders in both languages', () => {
    const placeholders = (m: string | PluralForms) =>
      [...new Set((typeof m === 'string' ? m : Object.values(m).join(' ')).match(/\{\w+\}/g) ?? [])].sort();
    for (const key of Object.keys(dictionaries.en) as Array<keyof typeof dictionaries.en>) {
      expect(placeholders(dictionaries.ru[key]), key).toEqual(placeholders(dictionaries.en[key]));
    }
  });

  it('plural messages cover every plural category the language uses', () => {
    for (const lang of ['en', 'ru'] as const) {
      const categories = new Intl.PluralRules(lang).resolvedOptions().pluralCategories;
      for (const [key, msg] of Object.entries(dictionaries[lang])) {
        if (typeof msg === 'string') continue;
        for (const c of categories) expect(msg[c], `${lang} ${key} ${c}`).toBeTruthy();
      }
    }
  });
});

describe('t / tn', () => {
  it('interpolates named params and leaves unknown ones visible', () => {
    expect(t('en', 'pop.ringsExtension', { ext: '101' })).toBe('Ringing extension 101');
    expect(t('ru', 'pop.ringsExtension', { ext: '205' })).toBe('Звонок на доб. 205');
    expect(t('en', 'pop.ringsExtension')).toBe('Ringing extension {ext}');
  });

  it.each([
    [1, 'Ещё 1 звонок'],
    [2, 'Ещё 2 звонка'],
    [5, 'Ещё 5 звонков'],
    [11, 'Ещё 11 звонков'],
    [21, 'Ещё 21 звонок'],
    [22, 'Ещё 22 звонка'],
    [25, 'Ещё 25 звонков'],
    [104, 'Ещё 104 звонка'],
    [111, 'Ещё 111 звонков'],
  ])('RU "more ringing" plural for %i', (n, expected) => {
    expect(tn('ru', 'pop.moreRinging', n)).toBe(expected);
  });

  it.each([
    [1, '1 звонок'],
    [2, '2 звонка'],
    [5, '5 звонков'],
    [11, '11 звонков'],
    [21, '21 звонок'],
    [22, '22 звонка'],
    [25, '25 звонков'],
  ])('RU count plural for %i', (n, expected) => {
    expect(tn('ru', 'list.count', n)).toBe(expected);
  });

  it.each([
    [1, '1 call', '+1 more ringing'],
    [2, '2 calls', '+2 more ringing'],
    [21, '21 calls', '+21 more ringing'],
    [0, '0 calls', '+0 more ringing'],
  ])('EN plurals for %i', (n, count, more) => {
    expect(tn('en', 'list.count', n)).toBe(count);
    expect(tn('en', 'pop.moreRinging', n)).toBe(more);
  });
});

describe('language choice', () => {
  it('follows the system language', () => {
    expect(detectLang('ru-RU')).toBe('ru');
    expect(detectLang('ru')).toBe('ru');
    expect(detectLang('RU')).toBe('ru');
    expect(detectLang('en-US')).toBe('en');
    expect(detectLang('uk-UA')).toBe('en');
    expect(detectLang('')).toBe('en');
    expect(detectLang(undefined)).toBe('en');
  });

  it('remembered choice wins over the system language; junk is ignored', () => {
    expect(initialLang(memoryStorage({ [LANG_STORAGE_KEY]: 'en' }), 'ru-RU')).toBe('en');
    expect(initialLang(memoryStorage({ [LANG_STORAGE_KEY]: 'ru' }), 'en-US')).toBe('ru');
    expect(initialLang(memoryStorage({ [LANG_STORAGE_KEY]: 'de' }), 'ru-RU')).toBe('ru');
    expect(initialLang(null, 'ru-RU')).toBe('ru');
  });

  it('saves under calldesk.lang and survives broken storage', () => {
    const s = memoryStorage();
    saveLang(s, 'ru');
    expect(s.map.get('calldesk.lang')).toBe('ru');
    const broken = {
      getItem: () => {
        throw new Error('denied');
      },
      setItem: () => {
        throw new Error('denied');
      },
    };
    expect(() => saveLang(broken, 'en')).not.toThrow();
    expect(initialLang(broken, 'ru-RU')).toBe('ru');
  });
});
