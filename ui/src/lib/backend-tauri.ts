import { invoke } from '@tauri-apps/api/core';
import { listen } from '@tauri-apps/api/event';
import { toBackendError, type Backend, type CallView, type ConnectionStatus } from './backend';

/** Runs a Tauri command; a rejection becomes a BackendError. */
async function call<T>(cmd: string): Promise<T> {
  try {
    return await invoke<T>(cmd);
  } catch (e) {
    throw toBackendError(e);
  }
}

/** Backend of the desktop app: Tauri commands and events. */
export class TauriBackend implements Backend {
  callsSnapshot(): Promise<CallView[]> {
    return call('calls_snapshot');
  }

  connectionStatus(): Promise<ConnectionStatus> {
    return call('connection_status');
  }

  onCallUpdated(cb: (call: CallView) => void): Promise<() => void> {
    return listen<CallView>('call-updated', (ev) => cb(ev.payload));
  }

  onConnectionChanged(cb: (s: ConnectionStatus) => void): Promise<() => void> {
    return listen<ConnectionStatus>('connection-changed', (ev) => cb(ev.payload));
  }
}
