import { invoke } from '@tauri-apps/api/core';
import { listen } from '@tauri-apps/api/event';
import { toBackendError, type Backend, type CallView, type ConnectionStatus } from './backend';

/** Backend of the desktop app: Tauri commands and events. */
export class TauriBackend implements Backend {
  async callsSnapshot(): Promise<CallView[]> {
    try {
      return await invoke<CallView[]>('calls_snapshot');
    } catch (e) {
      throw toBackendError(e);
    }
  }

  async connectionStatus(): Promise<ConnectionStatus> {
    try {
      return await invoke<ConnectionStatus>('connection_status');
    } catch (e) {
      throw toBackendError(e);
    }
  }

  onCallUpdated(cb: (call: CallView) => void): Promise<() => void> {
    return listen<CallView>('call-updated', (ev) => cb(ev.payload));
  }

  onConnectionChanged(cb: (s: ConnectionStatus) => void): Promise<() => void> {
    return listen<ConnectionStatus>('connection-changed', (ev) => cb(ev.payload));
  }
}
