import { invoke } from '@tauri-apps/api/core';
import { listen } from '@tauri-apps/api/event';
import {
  toBackendError,
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

/** Runs a Tauri command; a rejection becomes a BackendError. */
async function call<T>(cmd: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(cmd, args);
  } catch (e) {
    throw toBackendError(e);
  }
}

/** Backend of the desktop app: Tauri commands and events (the table in src-tauri/src/main.rs). */
export class TauriBackend implements Backend {
  callsSnapshot(): Promise<CallView[]> {
    return call('calls_snapshot');
  }

  connectionStatus(): Promise<ConnectionStatus> {
    return call('connection_status');
  }

  identity(): Promise<Identity> {
    return call('identity');
  }

  capabilities(): Promise<Capabilities> {
    return call('capabilities');
  }

  presence(): Promise<PresenceView[]> {
    return call('presence');
  }

  callerHistory(number: string): Promise<CallView[]> {
    return call('caller_history', { number });
  }

  callControl(spec: ControlSpec): Promise<string | null> {
    return call('call_control', { spec });
  }

  afterCall(callId: string): Promise<AfterCall> {
    return call('after_call', { call: callId });
  }

  addNote(callId: string, text: string): Promise<CallNote> {
    return call('add_note', { call: callId, text });
  }

  setDisposition(callId: string, code: string): Promise<void> {
    return call('set_disposition', { call: callId, code });
  }

  dispositionCodes(): Promise<string[]> {
    return call('disposition_codes');
  }

  setTags(callId: string, tags: string[]): Promise<string[]> {
    return call('set_tags', { call: callId, tags });
  }

  historySearch(query: HistoryQuery): Promise<HistoryPage> {
    return call('history_search', { query });
  }

  syncStatus(): Promise<SyncStatus> {
    return call('sync_status');
  }

  syncNow(): Promise<void> {
    return call('sync_now');
  }

  syncRefused(): Promise<RefusedChange[]> {
    return call('sync_refused');
  }

  onSyncChanged(cb: (s: SyncStatus) => void): Promise<() => void> {
    return listen<SyncStatus>('sync-changed', (ev) => cb(ev.payload));
  }

  onHistoryChanged(cb: () => void): Promise<() => void> {
    return listen<null>('history-changed', () => cb());
  }

  callbacks(): Promise<CallbackView[]> {
    return call('callbacks');
  }

  claimCallback(number: string, claim: boolean): Promise<CallbackView | null> {
    return call('claim_callback', { number, claim });
  }

  closeCallback(number: string, outcome: CallbackOutcome): Promise<void> {
    return call('close_callback', { number, outcome });
  }

  figuresSince(since: number): Promise<OperatorFigures[]> {
    return call('figures_since', { since });
  }

  operators(): Promise<OperatorInfo[]> {
    return call('operators');
  }

  reportPopLatency(ms: number): Promise<void> {
    return call('pop_painted', { ms: Math.max(0, Math.round(ms)) });
  }

  profilesList(): Promise<ProfileList> {
    return call('profiles_list');
  }

  profileSave(profile: Profile, secret: string | null, hubSecret: string | null = null): Promise<void> {
    return call('profile_save', { profile, secret, hubSecret });
  }

  profileActivate(id: string): Promise<void> {
    return call('profile_activate', { id });
  }

  profileDelete(id: string): Promise<void> {
    return call('profile_delete', { id });
  }

  onCallUpdated(cb: (call: CallView) => void): Promise<() => void> {
    return listen<CallView>('call-updated', (ev) => cb(ev.payload));
  }

  onConnectionChanged(cb: (s: ConnectionStatus) => void): Promise<() => void> {
    return listen<ConnectionStatus>('connection-changed', (ev) => cb(ev.payload));
  }

  onIdentityChanged(cb: (i: Identity) => void): Promise<() => void> {
    return listen<Identity>('identity-changed', (ev) => cb(ev.payload));
  }

  onPresenceChanged(cb: (p: PresenceView) => void): Promise<() => void> {
    return listen<PresenceView>('presence-changed', (ev) => cb(ev.payload));
  }

  recordingPlay(callId: string, name?: string | null): Promise<void> {
    return call('recording_play', { call: callId, name: name ?? null });
  }

  playerControl(action: PlayerAction): Promise<void> {
    return call('player_control', { action });
  }

  playerState(): Promise<PlayerState> {
    return call('player_state');
  }

  onPlayerState(cb: (s: PlayerState) => void): Promise<() => void> {
    return listen<PlayerState>('player-state', (ev) => cb(ev.payload));
  }

  onWaveform(cb: (w: Waveform) => void): Promise<() => void> {
    return listen<Waveform>('player-waveform', (ev) => cb(ev.payload));
  }

  onCallbacksChanged(cb: () => void): Promise<() => void> {
    return listen<null>('callbacks-changed', () => cb());
  }

  onDialRequest(cb: (number: string) => void): Promise<() => void> {
    return listen<string>('dial-request', (ev) => cb(ev.payload));
  }

  onHotkey(cb: (action: HotkeyAction) => void): Promise<() => void> {
    return listen<HotkeyAction>('hotkey', (ev) => cb(ev.payload));
  }

  pendingDial(): Promise<string | null> {
    return call('pending_dial');
  }

  showMain(): Promise<void> {
    return call('show_main');
  }

  uiReady(marks: StartMarks): Promise<void> {
    return call('ui_ready', { marks });
  }
}
