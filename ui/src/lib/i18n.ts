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
  'theme.label': 'Theme: {name} (click to change)',
  'theme.system': 'Auto',
  'theme.light': 'Light',
  'theme.dark': 'Dark',

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
  'profile.add': 'Add a profile…',

  'pop.label': 'Incoming call',
  'pop.announce': 'Incoming call from {number}, {name}',
  'pop.unknownCaller': 'Unknown caller',
  'pop.ringsExtension': 'Ringing extension {ext}',
  'pop.ringsNumber': 'Call to {number}',
  'pop.ringTime': 'Ringing for',
  'pop.moreRinging': { one: '+{n} more ringing', other: '+{n} more ringing' },
  'pop.company': 'Company',
  'pop.open': 'Open',
  'pop.reject': 'Reject',
  'pop.queue': 'Queue {queue}',
  'pop.lastCalls': 'Last calls',
  'pop.noHistory': 'First call from this number',

  'list.label': 'Calls',
  'list.live': 'Live',
  'list.recent': 'Recent',
  'list.count': { one: '{n} call', other: '{n} calls' },
  'list.empty': 'Waiting for calls…',
  'col.recording': 'Recording',
  'rec.play': 'Play the recording',
  'rec.pending': 'Recording pending',
  'rec.pendingWhy': 'Recording pending: {reason}',
  'rec.failed': 'Recording failed: {reason}',
  'player.label': 'Recording player',
  'player.title': 'Recording: {call}',
  'player.play': 'Play',
  'player.pause': 'Pause',
  'player.close': 'Close the player',
  'player.speed': 'Speed',
  'player.volume': 'Volume',
  'player.position': 'Position in the recording',
  'player.loading': 'Loading…',
  'player.buffering': 'Buffering…',
  'player.ended': 'Played to the end',
  'player.err.no_audio_device': 'No sound output device: connect speakers or headphones, or check the sound settings.',
  'player.err.unsupported_format': 'This recording\'s format cannot be played (WAV, MP3 and Ogg Vorbis can).',
  'player.err.recording_unreadable': 'The recording could not be read: {detail}',
  'player.err.recording_unavailable': 'The recording could not be fetched: {detail}',
  'player.err.recording_not_ready': 'The recording is not in the store yet; the hub keeps trying. {detail}',
  'player.err.no_recording': 'This call has no recording you can hear.',
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

  'wizard.welcome': 'Welcome to calldesk',
  'wizard.title': 'New connection profile',
  'wizard.intro': 'Choose how this desk connects to the phone system. You can add more profiles later.',
  'wizard.kind': 'Connection',
  'wizard.desc.demo': 'A built-in simulated PBX with demo calls — try the app without a phone system.',
  'wizard.desc.hub': 'The calldesk hub of your call centre: calls, caller cards and supervision for the whole team.',
  'wizard.desc.direct': 'This app talks to your Asterisk directly over AMI.',
  'wizard.name': 'Profile name',
  'wizard.url': 'Hub address',
  'wizard.tenant': 'Company (tenant)',
  'wizard.login': 'Login',
  'wizard.password': 'Password',
  'wizard.host': 'Asterisk host',
  'wizard.port': 'AMI port',
  'wizard.user': 'AMI user',
  'wizard.secret': 'AMI secret',
  'wizard.extension': 'Your extension',
  'wizard.supervisor': 'I am a supervisor (live board, listen, whisper, barge)',
  'wizard.reports': 'Also report calls, notes and dispositions to a calldesk hub',
  'wizard.keyringNote': 'The password is kept in the system keyring, never in a file.',
  'wizard.needPassword': 'Enter the password.',
  'wizard.needSecret': 'Enter the AMI secret.',
  'wizard.cancel': 'Cancel',
  'wizard.save': 'Save and connect',
  'wizard.saving': 'Connecting…',

  'ctl.title': 'Call controls',
  'ctl.noCall': 'No active call',
  'ctl.notAnswered': 'Only once the call is answered',
  'ctl.noExtension': 'This profile has no extension of yours',
  'ctl.unsupported': 'Not available on this connection',
  'ctl.onHold': 'On hold',
  'ctl.hangup': 'Hang up',
  'ctl.hangupHint': 'End your call',
  'ctl.hold': 'Hold',
  'ctl.unhold': 'Resume',
  'ctl.holdHint': 'Put the caller on hold with music',
  'ctl.recordStart': 'Record',
  'ctl.recordStop': 'Stop recording',
  'ctl.transfer': 'Transfer',
  'ctl.transferTo': 'Transfer to',
  'ctl.transferPlaceholder': 'Extension or number',
  'ctl.attended': 'Talk first (attended)',
  'ctl.colleagues': 'Colleagues',
  'ctl.dialer': 'Dialer',
  'ctl.dialNumber': 'Number to call',
  'ctl.call': 'Call',
  'ctl.callHint': 'Your phone rings first, then the number is dialled',
  'ctl.dialpad': 'Dial pad',
  'ctl.tones': 'Touch tones into the call',
  'ctl.toneHint': 'Plays this tone to the other party (a voice menu, a PIN)',
  'ctl.dtmfOff': 'Types into the number to dial. Tones into the call: {why}',
  'ctl.tonesSent': 'Tones sent: {tones}',
  'ctl.sending': 'Sending…',
  'ctl.done.hangup': 'Call ended',
  'ctl.done.hold': 'Caller on hold',
  'ctl.done.unhold': 'Caller back',
  'ctl.done.blind': 'Transferred to {to}',
  'ctl.done.attended': 'Calling {to}; hang up to join them',
  'ctl.done.recordStart': 'Recording',
  'ctl.done.recordStop': 'Recording stopped',
  'ctl.done.dial': 'Calling {to}: pick up your phone',

  'presence.idle': 'Free',
  'presence.in_use': 'On a call',
  'presence.busy': 'Busy',
  'presence.ringing': 'Ringing',
  'presence.ring_in_use': 'On a call, ringing',
  'presence.on_hold': 'On hold',
  'presence.unavailable': 'Offline',
  'presence.unknown': 'Unknown',

  'board.title': 'Operators',
  'board.operator': 'Operator',
  'board.presence': 'Phone',
  'board.call': 'Current call',
  'board.queues': 'Queues',
  'board.today': 'Today',
  'board.monitor': 'Supervise',
  'board.monitorOf': 'Supervise {ext}',
  'board.noTalk': 'No call in progress to join',
  'board.listen': 'Listen',
  'board.whisper': 'Whisper',
  'board.barge': 'Barge',
  'board.listenHint': 'Hear both sides; nobody hears you',
  'board.whisperHint': 'Only the operator hears you',
  'board.bargeHint': 'Both sides hear you',
  'board.paused': 'paused',
  'board.pausedWhy': 'Paused: {reason}',
  'board.figures': '{answered} answered · {missed} missed · AHT {aht}',
  'board.empty': 'No operators known yet',
  'board.queuePanel': 'Queues',
  'board.waiting': 'waiting: {n}',
  'board.longest': 'longest {time}',
  'board.members': 'agents: {n}, paused: {paused}',
  'tab.label': 'View',
  'tab.board': 'Board',
  'tab.calls': 'Calls',
  'tab.callbacks': 'Call back',
  'tab.callbacksOpen': '{n} open',
  'tab.history': 'History',
  'hist.label': 'Call history',
  'hist.search': 'Search: number, name, company',
  'hist.searchHint': 'Any 3 digits of a number, or part of a name, company, queue',
  'hist.period': 'Period',
  'hist.period.today': 'Today',
  'hist.period.week': '7 days',
  'hist.period.month': '30 days',
  'hist.period.all': 'All time',
  'hist.status': 'Status',
  'hist.direction': 'Direction',
  'hist.operator': 'Operator',
  'hist.any': 'Any',
  'hist.none': 'No calls match.',
  'hist.loading': 'Searching…',
  'hist.more': 'Loading more…',
  'hist.count': { one: '{n} call shown', other: '{n} calls shown' },
  'hist.detail': 'Call details',
  'hist.close': 'Close the details',
  'hist.started': 'Started',
  'hist.duration': 'Talk',
  'hist.ring': 'Ringing',
  'hist.queue': 'Queue',
  'hist.company': 'Company',
  'hist.trace': 'Call trace: comes with the call trace feature',
  'sync.label': 'Sync with the hub',
  'sync.idle': 'Synced',
  'sync.idleAt': 'Synced at {time}',
  'sync.syncing': 'Syncing…',
  'sync.progress': 'Syncing {done} of {total}',
  'sync.offline': 'Hub unreachable — changes are kept here',
  'sync.pending': { one: '{n} change waiting', other: '{n} changes waiting' },
  'sync.refused': { one: '{n} change refused by the hub', other: '{n} changes refused by the hub' },
  'sync.now': 'Sync now',
  'sync.kind.note': 'Note',
  'sync.kind.disposition': 'Disposition',
  'sync.kind.tags': 'Tags',
  'sync.kind.call': 'Call',
  'sync.kind.callback': 'Call back',

  'wl.title': 'Missed calls to return',
  'wl.empty': 'Nobody is waiting for a call back',
  'wl.missed': { one: '{n} missed call', other: '{n} missed calls' },
  'wl.last': 'last at {time}',
  'wl.takenBy': 'taken by {who}',
  'wl.takenByMe': 'taken by you',
  'wl.open': 'open',
  'wl.claim': 'Take',
  'wl.release': 'Give back',
  'wl.callBack': 'Call back',
  'wl.callBackHint': 'Takes it and calls {number} from your phone',
  'wl.close': 'Close',
  'wl.outcome': 'Outcome',
  'wl.outcome.reached': 'Reached',
  'wl.outcome.unreachable': 'Unreachable',
  'wl.outcome.not_needed': 'Not needed',
  'wl.closed': '{number} closed: {outcome}',
  'wl.refresh': 'Refresh',
  'wl.noOriginate': 'This connection cannot place calls',

  'after.title': 'After the call',
  'after.note': 'Note',
  'after.addNote': 'Add note',
  'after.noteSaved': 'Note saved',
  'after.disposition': 'Disposition',
  'after.choose': 'Choose…',
  'after.dispositionSaved': 'Disposition: {code}',
  'after.tags': 'Tags',
  'after.tagsHint': 'Words separated by commas or spaces; Enter adds them',
  'after.addTags': 'Add tags',
  'after.removeTag': 'Remove tag {tag}',
  'after.tagsSaved': 'Tags saved',
  'disp.sale': 'Sale',
  'disp.callback': 'Call back',
  'disp.info': 'Information',
  'disp.complaint': 'Complaint',
  'disp.wrong_number': 'Wrong number',
  'disp.other': 'Other',
} as const satisfies Record<string, Message>;

export type MessageKey = keyof typeof en;

/** Every language must define every key; plural keys stay plural, plain keys stay plain. */
export type Dictionary = {
  [K in MessageKey]: (typeof en)[K] extends string ? string : PluralForms;
};

const ru: Dictionary = {
  'lang.switch': 'Язык',
  'theme.label': 'Тема: {name} (нажмите, чтобы сменить)',
  'theme.system': 'Авто',
  'theme.light': 'Светлая',
  'theme.dark': 'Тёмная',

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
  'profile.add': 'Добавить профиль…',

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
  'pop.company': 'Компания',
  'pop.open': 'Открыть',
  'pop.reject': 'Отклонить',
  'pop.queue': 'Очередь {queue}',
  'pop.lastCalls': 'Последние звонки',
  'pop.noHistory': 'Первый звонок с этого номера',

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
  'col.recording': 'Запись',
  'rec.play': 'Прослушать запись',
  'rec.pending': 'Запись ожидается',
  'rec.pendingWhy': 'Запись ожидается: {reason}',
  'rec.failed': 'Запись не сохранена: {reason}',
  'player.label': 'Проигрыватель записей',
  'player.title': 'Запись: {call}',
  'player.play': 'Воспроизвести',
  'player.pause': 'Пауза',
  'player.close': 'Закрыть проигрыватель',
  'player.speed': 'Скорость',
  'player.volume': 'Громкость',
  'player.position': 'Позиция в записи',
  'player.loading': 'Загрузка…',
  'player.buffering': 'Буферизация…',
  'player.ended': 'Прослушано до конца',
  'player.err.no_audio_device': 'Нет устройства вывода звука: подключите колонки или наушники либо проверьте настройки звука.',
  'player.err.unsupported_format': 'Формат этой записи не поддерживается (поддерживаются WAV, MP3 и Ogg Vorbis).',
  'player.err.recording_unreadable': 'Запись не удалось прочитать: {detail}',
  'player.err.recording_unavailable': 'Запись не удалось загрузить: {detail}',
  'player.err.recording_not_ready': 'Запись ещё не сохранена в хранилище; хаб повторяет попытки. {detail}',
  'player.err.no_recording': 'У этого звонка нет записи, доступной вам.',
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

  'wizard.welcome': 'Добро пожаловать в calldesk',
  'wizard.title': 'Новый профиль подключения',
  'wizard.intro': 'Выберите, как это рабочее место подключается к телефонии. Другие профили можно добавить позже.',
  'wizard.kind': 'Подключение',
  'wizard.desc.demo': 'Встроенная учебная АТС с демо-звонками — попробовать приложение без телефонии.',
  'wizard.desc.hub': 'Хаб calldesk вашего колл-центра: звонки, карточки клиентов и контроль для всей команды.',
  'wizard.desc.direct': 'Приложение подключается к вашему Asterisk напрямую по AMI.',
  'wizard.name': 'Название профиля',
  'wizard.url': 'Адрес хаба',
  'wizard.tenant': 'Компания (тенант)',
  'wizard.login': 'Логин',
  'wizard.password': 'Пароль',
  'wizard.host': 'Сервер Asterisk',
  'wizard.port': 'Порт AMI',
  'wizard.user': 'Пользователь AMI',
  'wizard.secret': 'Пароль AMI',
  'wizard.extension': 'Ваш внутренний номер',
  'wizard.supervisor': 'Я супервизор (панель операторов, прослушивание, суфлирование, вмешательство)',
  'wizard.reports': 'Также отправлять звонки, заметки и результаты в хаб calldesk',
  'wizard.keyringNote': 'Пароль хранится в системной связке ключей, а не в файле.',
  'wizard.needPassword': 'Введите пароль.',
  'wizard.needSecret': 'Введите пароль AMI.',
  'wizard.cancel': 'Отмена',
  'wizard.save': 'Сохранить и подключиться',
  'wizard.saving': 'Подключение…',

  'ctl.title': 'Управление звонком',
  'ctl.noCall': 'Нет активного звонка',
  'ctl.notAnswered': 'Только после ответа на звонок',
  'ctl.noExtension': 'В этом профиле не указан ваш внутренний номер',
  'ctl.unsupported': 'Недоступно при этом подключении',
  'ctl.onHold': 'На удержании',
  'ctl.hangup': 'Завершить',
  'ctl.hangupHint': 'Завершить ваш звонок',
  'ctl.hold': 'Удержание',
  'ctl.unhold': 'Вернуть',
  'ctl.holdHint': 'Поставить абонента на удержание с музыкой',
  'ctl.recordStart': 'Запись',
  'ctl.recordStop': 'Остановить запись',
  'ctl.transfer': 'Перевести',
  'ctl.transferTo': 'Перевести на',
  'ctl.transferPlaceholder': 'Внутренний или телефон',
  'ctl.attended': 'С консультацией',
  'ctl.colleagues': 'Коллеги',
  'ctl.dialer': 'Набор номера',
  'ctl.dialNumber': 'Номер для звонка',
  'ctl.call': 'Позвонить',
  'ctl.callHint': 'Сначала зазвонит ваш телефон, затем наберётся номер',
  'ctl.dialpad': 'Клавиатура',
  'ctl.tones': 'Тоновый набор в разговор',
  'ctl.toneHint': 'Отправить этот тон собеседнику (голосовое меню, PIN-код)',
  'ctl.dtmfOff': 'Набирает номер для звонка. Тоны в разговор: {why}',
  'ctl.tonesSent': 'Отправлены тоны: {tones}',
  'ctl.sending': 'Отправка…',
  'ctl.done.hangup': 'Звонок завершён',
  'ctl.done.hold': 'Абонент на удержании',
  'ctl.done.unhold': 'Абонент снова на линии',
  'ctl.done.blind': 'Переведён на {to}',
  'ctl.done.attended': 'Звоним {to}; положите трубку, чтобы соединить',
  'ctl.done.recordStart': 'Идёт запись',
  'ctl.done.recordStop': 'Запись остановлена',
  'ctl.done.dial': 'Звоним {to}: снимите трубку',

  'presence.idle': 'Свободен',
  'presence.in_use': 'Разговаривает',
  'presence.busy': 'Занят',
  'presence.ringing': 'Звонит',
  'presence.ring_in_use': 'Разговаривает, звонок',
  'presence.on_hold': 'На удержании',
  'presence.unavailable': 'Не в сети',
  'presence.unknown': 'Неизвестно',

  'board.title': 'Операторы',
  'board.operator': 'Оператор',
  'board.presence': 'Телефон',
  'board.call': 'Текущий звонок',
  'board.queues': 'Очереди',
  'board.today': 'Сегодня',
  'board.monitor': 'Контроль',
  'board.monitorOf': 'Контроль {ext}',
  'board.noTalk': 'Нет разговора, к которому можно подключиться',
  'board.listen': 'Слушать',
  'board.whisper': 'Суфлёр',
  'board.barge': 'Вмешаться',
  'board.listenHint': 'Слышите обе стороны; вас не слышит никто',
  'board.whisperHint': 'Вас слышит только оператор',
  'board.bargeHint': 'Вас слышат обе стороны',
  'board.paused': 'пауза',
  'board.pausedWhy': 'Пауза: {reason}',
  'board.figures': 'принято {answered} · пропущено {missed} · ср. {aht}',
  'board.empty': 'Операторы пока неизвестны',
  'board.queuePanel': 'Очереди',
  'board.waiting': 'ждут: {n}',
  'board.longest': 'дольше всех {time}',
  'board.members': 'агентов: {n}, на паузе: {paused}',
  'tab.label': 'Вид',
  'tab.board': 'Панель',
  'tab.calls': 'Звонки',
  'tab.callbacks': 'Перезвонить',
  'tab.callbacksOpen': 'ждут: {n}',
  'tab.history': 'История',
  'hist.label': 'История звонков',
  'hist.search': 'Поиск: номер, имя, компания',
  'hist.searchHint': 'Любые 3 цифры номера или часть имени, компании, очереди',
  'hist.period': 'Период',
  'hist.period.today': 'Сегодня',
  'hist.period.week': '7 дней',
  'hist.period.month': '30 дней',
  'hist.period.all': 'Всё время',
  'hist.status': 'Статус',
  'hist.direction': 'Направление',
  'hist.operator': 'Оператор',
  'hist.any': 'Любой',
  'hist.none': 'Подходящих звонков нет.',
  'hist.loading': 'Ищем…',
  'hist.more': 'Загружаем ещё…',
  'hist.count': { one: 'Показан {n} звонок', few: 'Показано {n} звонка', many: 'Показано {n} звонков', other: 'Показано {n} звонка' },
  'hist.detail': 'Подробности звонка',
  'hist.close': 'Закрыть подробности',
  'hist.started': 'Начало',
  'hist.duration': 'Разговор',
  'hist.ring': 'Дозвон',
  'hist.queue': 'Очередь',
  'hist.company': 'Компания',
  'hist.trace': 'Трассировка звонка: появится вместе с трассировкой',
  'sync.label': 'Синхронизация с хабом',
  'sync.idle': 'Синхронизировано',
  'sync.idleAt': 'Синхронизировано в {time}',
  'sync.syncing': 'Синхронизация…',
  'sync.progress': 'Синхронизация: {done} из {total}',
  'sync.offline': 'Хаб недоступен — изменения сохранены здесь',
  'sync.pending': { one: 'Ждёт отправки: {n} изменение', few: 'Ждут отправки: {n} изменения', many: 'Ждут отправки: {n} изменений', other: 'Ждут отправки: {n} изменения' },
  'sync.refused': { one: 'Хаб отклонил {n} изменение', few: 'Хаб отклонил {n} изменения', many: 'Хаб отклонил {n} изменений', other: 'Хаб отклонил {n} изменения' },
  'sync.now': 'Синхронизировать сейчас',
  'sync.kind.note': 'Заметка',
  'sync.kind.disposition': 'Результат',
  'sync.kind.tags': 'Метки',
  'sync.kind.call': 'Звонок',
  'sync.kind.callback': 'Перезвонить',

  'wl.title': 'Пропущенные: кому перезвонить',
  'wl.empty': 'Никто не ждёт обратного звонка',
  'wl.missed': { one: '{n} пропущенный', few: '{n} пропущенных', many: '{n} пропущенных', other: '{n} пропущенного' },
  'wl.last': 'последний в {time}',
  'wl.takenBy': 'взял(а) {who}',
  'wl.takenByMe': 'взято вами',
  'wl.open': 'свободно',
  'wl.claim': 'Взять',
  'wl.release': 'Вернуть',
  'wl.callBack': 'Перезвонить',
  'wl.callBackHint': 'Возьмёт звонок и наберёт {number} с вашего телефона',
  'wl.close': 'Закрыть',
  'wl.outcome': 'Результат',
  'wl.outcome.reached': 'Дозвонились',
  'wl.outcome.unreachable': 'Не дозвонились',
  'wl.outcome.not_needed': 'Не нужно',
  'wl.closed': '{number} закрыт: {outcome}',
  'wl.refresh': 'Обновить',
  'wl.noOriginate': 'Это подключение не умеет звонить',

  'after.title': 'После звонка',
  'after.note': 'Заметка',
  'after.addNote': 'Добавить заметку',
  'after.noteSaved': 'Заметка сохранена',
  'after.disposition': 'Итог звонка',
  'after.choose': 'Выберите…',
  'after.dispositionSaved': 'Итог: {code}',
  'after.tags': 'Метки',
  'after.tagsHint': 'Слова через запятую или пробел; Enter добавляет',
  'after.addTags': 'Добавить метки',
  'after.removeTag': 'Убрать метку {tag}',
  'after.tagsSaved': 'Метки сохранены',
  'disp.sale': 'Продажа',
  'disp.callback': 'Перезвонить',
  'disp.info': 'Консультация',
  'disp.complaint': 'Жалоба',
  'disp.wrong_number': 'Ошиблись номером',
  'disp.other': 'Другое',
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
