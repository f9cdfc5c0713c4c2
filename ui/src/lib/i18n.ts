// Tiny typed i18n: two dictionaries with exactly the same keys (enforced by the
// `Dictionary` type below), `{name}` placeholders, and plural forms chosen by
// Intl.PluralRules.

export type Lang = 'en' | 'ru';
export const LANG_STORAGE_KEY = 'calldesk.lang';

/**
 * The language switch, in display order. `name` is the language's own name, used
 * as the button's accessible name together with `lang`, so it is read correctly.
 */
export const LANGS: ReadonlyArray<{ lang: Lang; short: string; name: string }> = [
  { lang: 'ru', short: 'RU', name: 'Русский' },
  { lang: 'en', short: 'EN', name: 'English' },
];

/** Plural message: one text per Intl plural category the language uses. */
export type PluralForms = Partial<Record<Intl.LDMLPluralRule, string>> & { other: string };
type Message = string | PluralForms;

const en = {
  'lang.switch': 'Language',

  'conn.label': 'PBX connection',
  'conn.connecting': 'Connecting…',
  'conn.resyncing': 'Reading live calls…',
  'conn.connected': 'Connected',
  'conn.degraded': 'Connected, catching up…',
  'conn.reconnecting': 'Reconnecting…',
  'conn.disconnected': 'Disconnected',
  'profile.label': 'Profile',
  'profile.demo': 'Demo',
  'profile.direct': 'Direct connection',
  'profile.hub': 'Via hub',

  'pop.label': 'Incoming call',
  'pop.announce': 'Incoming call from {number}, {name}',
  'pop.unknownCaller': 'Unknown caller',
  'pop.ringsExtension': 'Ringing extension {ext}',
  'pop.ringsNumber': 'Call to {number}',
  'pop.ringTime': 'Ringing for',
  'pop.moreRinging': { one: '+{n} more ringing', other: '+{n} more ringing' },

  'list.label': 'Calls',
  'list.live': 'Live',
  'list.recent': 'Recent',
  'list.count': { one: '{n} call', other: '{n} calls' },
  'list.empty': 'Waiting for calls…',
  'col.status': 'Status',
  'col.direction': 'Direction',
  'col.number': 'Number',
  'col.operator': 'Operator',
  'col.ring': 'Ring time',
  'col.talk': 'Talk time',
  'col.started': 'Started',

  'state.ringing': 'Ringing',
  'state.talking': 'Talking',
  'state.ended': 'Ended',

  'status.answered': 'Answered',
  'status.missed': 'Missed',
  'status.no_answer': 'No answer',
  'status.busy': 'Busy',
  'status.failed': 'Failed',
  'status.cancelled': 'Cancelled',

  'dir.inbound': 'Inbound',
  'dir.outbound': 'Outbound',
  'dir.internal': 'Internal',
} as const satisfies Record<string, Message>;

export type MessageKey = keyof typeof en;

/** Every language must define every key; plural keys stay plural, plain keys stay plain. */
export type Dictionary = {
  [K in MessageKey]: (typeof en)[K] extends string ? string : PluralForms;
};

const ru: Dictionary = {
  'lang.switch': 'Язык',

  'conn.label': 'Связь с АТС',
  'conn.connecting': 'Подключение…',
  'conn.resyncing': 'Загрузка текущих звонков…',
  'conn.connected': 'Подключено',
  'conn.degraded': 'Подключено, догоняем события…',
  'conn.reconnecting': 'Переподключение…',
  'conn.disconnected': 'Нет связи',
  'profile.label': 'Профиль',
  'profile.demo': 'Демо',
  'profile.direct': 'Прямое подключение',
  'profile.hub': 'Через хаб',

  'pop.label': 'Входящий звонок',
  'pop.announce': 'Входящий звонок с номера {number}, {name}',
  'pop.unknownCaller': 'Неизвестный абонент',
  'pop.ringsExtension': 'Звонок на доб. {ext}',
  'pop.ringsNumber': 'Звонок на номер {number}',
  'pop.ringTime': 'Ожидание',
  'pop.moreRinging': {
    one: 'Ещё {n} звонок',
    few: 'Ещё {n} звонка',
    many: 'Ещё {n} звонков',
    other: 'Ещё {n} звонка',
  },

  'list.label': 'Звонки',
  'list.live': 'Текущие',
  'list.recent': 'Недавние',
  'list.count': {
    one: '{n} звонок',
    few: '{n} звонка',
    many: '{n} звонков',
    other: '{n} звонка',
  },
  'list.empty': 'Ожидание звонков…',
  'col.status': 'Статус',
  'col.direction': 'Направление',
  'col.number': 'Номер',
  'col.operator': 'Оператор',
  'col.ring': 'Ожидание',
  'col.talk': 'Разговор',
  'col.started': 'Начало',

  'state.ringing': 'Вызов',
  'state.talking': 'Разговор',
  'state.ended': 'Завершён',

  'status.answered': 'Отвечен',
  'status.missed': 'Пропущен',
  'status.no_answer': 'Нет ответа',
  'status.busy': 'Занято',
  'status.failed': 'Ошибка',
  'status.cancelled': 'Отменён',

  'dir.inbound': 'Входящий',
  'dir.outbound': 'Исходящий',
  'dir.internal': 'Внутренний',
};

export const dictionaries: Readonly<Record<Lang, Dictionary>> = { en, ru };

/** Keys whose message is a plural form set. */
export type PluralKey = {
  [K in MessageKey]: Dictionary[K] extends PluralForms ? K : never;
}[MessageKey];
/** Keys whose message is a plain string. */
export type TextKey = Exclude<MessageKey, PluralKey>;

export type Params = Record<string, string | number>;

function interpolate(text: string, params?: Params): string {
  if (!params) return text;
  return text.replace(/\{(\w+)\}/g, (m, name: string) =>
    Object.prototype.hasOwnProperty.call(params, name) ? String(params[name]) : m,
  );
}

/** Plain message. */
export function t(lang: Lang, key: TextKey, params?: Params): string {
  const msg = dictionaries[lang][key] as string;
  return interpolate(msg, params);
}

const pluralRules = new Map<Lang, Intl.PluralRules>();
function rulesFor(lang: Lang): Intl.PluralRules {
  let r = pluralRules.get(lang);
  if (!r) {
    r = new Intl.PluralRules(lang);
    pluralRules.set(lang, r);
  }
  return r;
}

/** Plural message for count `n` (available as `{n}`). */
export function tn(lang: Lang, key: PluralKey, n: number, params?: Params): string {
  const forms = dictionaries[lang][key] as PluralForms;
  const category = rulesFor(lang).select(n);
  const text = forms[category] ?? forms.other;
  return interpolate(text, { ...params, n });
}

/** RU when the system language starts with "ru", else EN. */
export function detectLang(navigatorLanguage: string | undefined | null): Lang {
  return (navigatorLanguage ?? '').toLowerCase().startsWith('ru') ? 'ru' : 'en';
}

export function isLang(v: unknown): v is Lang {
  return v === 'en' || v === 'ru';
}

type StorageLike = Pick<Storage, 'getItem' | 'setItem'>;

/** Remembered choice first, then the system language. Storage errors are ignored. */
export function initialLang(storage: StorageLike | null | undefined, navigatorLanguage: string | undefined | null): Lang {
  try {
    const saved = storage?.getItem(LANG_STORAGE_KEY);
    if (isLang(saved)) return saved;
  } catch {
    // storage unavailable (private mode, sandbox): fall through
  }
  return detectLang(navigatorLanguage);
}

export function saveLang(storage: StorageLike | null | undefined, lang: Lang): void {
  try {
    storage?.setItem(LANG_STORAGE_KEY, lang);
  } catch {
    // not fatal: the choice just isn't remembered
  }
}
