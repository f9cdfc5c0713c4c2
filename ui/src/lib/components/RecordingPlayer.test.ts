// @vitest-environment jsdom
// Recordings in the calls list and the player bar, against the in-memory backend's player.
import { cleanup, fireEvent, render, screen, within } from '@testing-library/svelte';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import App from '../../App.svelte';
import { BackendError, IDLE_PLAYER } from '../backend';
import { MemoryBackend } from '../backend-memory';
import { answered, ended, makeCall, party } from '../testing';
import { rowOf, settle as settleRounds } from '../testing-dom';

const settle = () => settleRounds(6);

const NOW = Date.UTC(2025, 0, 15, 9, 0, 30);



function calls() {
  const base = (id: string, at: number) =>
    ended(answered(makeCall({ id, startedAt: NOW - at, operator: '101', rang: ['101'], from: party(`+7 495 000-00-0${id.length}`) }), NOW - at + 5000), 'answered', NOW - at + 60_000);
  return [
    { ...base('stored', 300_000), from: party('+7 495 123-45-67'), recordings: [{ name: '1.mp3', state: 'stored' as const, error: null }] },
    { ...base('pend', 200_000), recordings: [{ name: '2.mp3', state: 'pending' as const, error: 'Mango answered 404' }] },
    { ...base('bad', 100_000), recordings: [{ name: '3.wav', state: 'failed' as const, error: 'no such file /var/spool/asterisk/monitor/3.wav' }] },
    base('none', 50_000),
  ];
}

describe('recordings', () => {
  beforeEach(() => {
    localStorage.clear();
    vi.spyOn(navigator, 'language', 'get').mockReturnValue('en-US');
  });
  afterEach(() => {
    vi.restoreAllMocks();
    cleanup();
  });

  it('the calls list shows a play button for stored recordings and why the others are not there', async () => {
    render(App, { props: { backend: new MemoryBackend(calls()), clock: () => NOW } });
    await settle();
    expect(within(rowOf('stored')).getByTestId('call-play').getAttribute('aria-label')).toBe('Play the recording');
    const pending = within(rowOf('pend')).getByTestId('call-recording');
    expect(pending.dataset.state).toBe('pending');
    expect(pending.textContent).toBe('Recording pending: Mango answered 404');
    const failed = within(rowOf('bad')).getByTestId('call-recording');
    expect(failed.textContent).toBe('Recording failed: no such file /var/spool/asterisk/monitor/3.wav');
    expect(within(rowOf('none')).queryByTestId('call-play')).toBeNull();
    expect(within(rowOf('none')).queryByTestId('call-recording')).toBeNull();
    expect(screen.queryByTestId('player')).toBeNull();
  });

  it('play opens the player; pause, seek, speed, volume and close reach the app player', async () => {
    const backend = new MemoryBackend(calls());
    render(App, { props: { backend, clock: () => NOW } });
    await settle();
    await fireEvent.click(within(rowOf('stored')).getByTestId('call-play'));
    await settle();
    expect(backend.played).toEqual([{ call: 'stored', name: null }]);
    const player = screen.getByTestId('player');
    expect(player.dataset.status).toBe('playing');
    expect(screen.getByTestId('player-title').textContent).toBe('Recording: +7 495 123-45-67');
    expect(screen.getByTestId('player-time').textContent).toBe('0:00 / 1:05');
    expect(screen.getByTestId('player-wave').querySelectorAll('rect')).toHaveLength(40);

    await fireEvent.click(screen.getByTestId('player-toggle'));
    await settle();
    expect(screen.getByTestId('player').dataset.status).toBe('paused');
    expect(screen.getByTestId('player-toggle').getAttribute('aria-label')).toBe('Play');

    await fireEvent.change(screen.getByTestId('player-position'), { target: { value: '30000' } });
    await fireEvent.change(screen.getByTestId('player-speed'), { target: { value: '1.5' } });
    await fireEvent.input(screen.getByTestId('player-volume'), { target: { value: '0.5' } });
    await settle();
    expect(screen.getByTestId('player-time').textContent).toBe('0:30 / 1:05');
    // Bars up to the position are drawn as played.
    expect(screen.getByTestId('player-wave').querySelectorAll('rect.played')).toHaveLength(18);

    await fireEvent.click(screen.getByTestId('player-close'));
    await settle();
    expect(backend.playerActions).toEqual([
      { action: 'pause' },
      { action: 'seek', ms: 30000 },
      { action: 'speed', value: 1.5 },
      { action: 'volume', value: 0.5 },
      { action: 'stop' },
    ]);
    expect(screen.queryByTestId('player')).toBeNull();
  });

  it('a machine without a sound device is told what to do, in Russian too', async () => {
    const backend = new MemoryBackend(calls());
    render(App, { props: { backend, clock: () => NOW } });
    await settle();
    await fireEvent.click(within(rowOf('stored')).getByTestId('call-play'));
    await settle();
    const noDevice = { code: 'no_audio_device', message: 'no sound output device (the system has none); connect speakers…' };
    backend.emitPlayerState({ ...IDLE_PLAYER, id: 'stored', status: 'failed', error: noDevice });
    await settle();
    const error = screen.getByTestId('player-error');
    expect(error.dataset.code).toBe('no_audio_device');
    expect(error.textContent).toBe('No sound output device: connect speakers or headphones, or check the sound settings.');
    expect((screen.getByTestId('player-toggle') as HTMLButtonElement).disabled).toBe(true);

    cleanup();
    localStorage.setItem('calldesk.lang', 'ru');
    render(App, { props: { backend, clock: () => NOW } });
    await settle();
    await fireEvent.click(within(rowOf('stored')).getByTestId('call-play'));
    await settle();
    backend.emitPlayerState({ ...IDLE_PLAYER, id: 'stored', status: 'failed', error: noDevice });
    await settle();
    expect(screen.getByTestId('player-error').textContent).toBe(
      'Нет устройства вывода звука: подключите колонки или наушники либо проверьте настройки звука.',
    );
  });

  it('a refused play says why (the hub has not stored it yet), and the list can play it again', async () => {
    const backend = new MemoryBackend(calls());
    backend.failRecording = new BackendError(
      'recording_not_ready',
      'the recording 1.mp3 is not stored yet (pending: S3 answered 503); it is retried by itself',
    );
    render(App, { props: { backend, clock: () => NOW } });
    await settle();
    await fireEvent.click(within(rowOf('stored')).getByTestId('call-play'));
    await settle();
    const error = screen.getByTestId('player-error');
    expect(error.dataset.code).toBe('recording_not_ready');
    expect(error.textContent).toBe(
      'The recording is not in the store yet; the hub keeps trying. the recording 1.mp3 is not stored yet (pending: S3 answered 503); it is retried by itself',
    );
    backend.failRecording = null;
    await fireEvent.click(within(rowOf('stored')).getByTestId('call-play'));
    await settle();
    expect(screen.queryByTestId('player-error')).toBeNull();
    expect(screen.getByTestId('player').dataset.status).toBe('playing');
    expect(backend.played).toHaveLength(2);

    // While it plays, another call's recording is refused: the bar names that call.
    const pend = calls().find((c) => c.id === 'pend');
    if (!pend) throw new Error('no pending call in the fixture');
    backend.emitCall({ ...pend, recordings: [{ name: '2.mp3', state: 'stored', error: null }] });
    await settle();
    backend.failRecording = new BackendError('recording_unavailable', 'the recording store answered 503');
    await fireEvent.click(within(rowOf('pend')).getByTestId('call-play'));
    await settle();
    expect(screen.getByTestId('player-title').textContent).toBe(`Recording: ${pend.from.display}`);
    expect(screen.getByTestId('player-error').textContent).toBe('The recording could not be fetched: the recording store answered 503');
  });
});
