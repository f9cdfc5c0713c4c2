//! The player: rodio on its own thread, behind a handle.
//!
//! Three threads take part, and the sound card's never waits for the network:
//! - the **player thread** owns the output (a sound device, opened when first needed)
//!   and the rodio player; it takes commands from [`Player`] and reports [`PlayerState`];
//! - a **decoder thread** per recording reads the file or the growing download, decodes
//!   it and keeps about a second of samples queued ahead;
//! - the **output** (the device's callback, or our own real-time clock for a virtual
//!   output) pulls from that queue. When the queue is empty it plays silence and the
//!   state says `buffering`, instead of blocking the device.
//!
//! Position is counted in source samples taken by the output, so it is exact whatever
//! the speed; seeking is done by the decoder thread, and stale samples are dropped by a
//! generation number.

use std::collections::VecDeque;
use std::num::NonZero;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rodio::mixer::{Mixer, MixerSource};
use rodio::{ChannelCount, DeviceSinkBuilder, MixerDeviceSink, SampleRate, Source};
use serde::Serialize;

use crate::PlayerError;
use crate::decode::{self, Media, Opened};
use crate::stream::StreamStatus;

/// Playback speeds offered: slower for a fast talker, faster to skim.
pub const SPEED_RANGE: (f32, f32) = (0.75, 2.0);
/// Volume: 0 mutes, 1 is the recording as it is.
pub const VOLUME_RANGE: (f32, f32) = (0.0, 1.0);
/// Samples the decoder keeps queued ahead, in seconds of audio.
const AHEAD_SECS: u64 = 1;
/// Samples per queued chunk (a multiple of 1, 2, 4 and 6 channels).
const CHUNK: usize = 1200;
/// How often the state is refreshed while something plays.
const TICK: Duration = Duration::from_millis(20);
/// Position-only changes are reported at most this often.
const POSITION_EVERY: Duration = Duration::from_millis(250);
/// A device left unused this long is closed (it costs CPU while open).
const DEVICE_IDLE: Duration = Duration::from_secs(30);

/// Where the sound goes.
#[derive(Debug, Clone)]
pub enum Output {
    /// The system's default output device, opened on the first load. No device is
    /// an error on that load ([`PlayerError::NoDevice`]), not a crash.
    Device,
    /// A virtual device that consumes samples in real time and keeps none
    /// (tests, benches), or keeps them all when given a [`Capture`].
    Virtual {
        channels: u16,
        sample_rate: u32,
        capture: Option<Capture>,
    },
}

/// Samples a virtual output has played, for tests.
#[derive(Debug, Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<f32>>>);

impl Capture {
    /// Everything played so far, leading silence removed.
    pub fn samples(&self) -> Vec<f32> {
        let all = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let start = all.iter().position(|s| *s != 0.0).unwrap_or(all.len());
        all[start..].to_vec()
    }
}

/// What the player is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Idle,
    /// Opening the recording (waiting for its first bytes and its header).
    Loading,
    /// Playing, but the download is behind: silence until it catches up.
    Buffering,
    Playing,
    Paused,
    /// Played to the end; play starts again from the beginning.
    Ended,
    Failed,
}

/// An error as the UI shows it: a stable code for the translation, and the detail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorInfo {
    pub code: String,
    pub message: String,
}

impl From<&PlayerError> for ErrorInfo {
    fn from(e: &PlayerError) -> Self {
        Self {
            code: e.code().to_owned(),
            message: e.to_string(),
        }
    }
}

/// Everything the UI shows of the player.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlayerState {
    /// The caller's name for what is loaded (the desktop uses the call id).
    pub id: Option<String>,
    pub status: Status,
    pub position_ms: u64,
    /// Known once the header is read (MP3 needs the file size for it).
    pub duration_ms: Option<u64>,
    pub speed: f32,
    pub volume: f32,
    /// Download progress, for a streamed recording.
    pub downloaded: u64,
    pub total: Option<u64>,
    /// From the load command to the first decoded sample taken by the output.
    pub first_audio_ms: Option<u64>,
    pub error: Option<ErrorInfo>,
}

impl Default for PlayerState {
    fn default() -> Self {
        Self {
            id: None,
            status: Status::Idle,
            position_ms: 0,
            duration_ms: None,
            speed: 1.0,
            volume: 1.0,
            downloaded: 0,
            total: None,
            first_audio_ms: None,
            error: None,
        }
    }
}

enum Command {
    Load {
        id: String,
        media: Media,
        play: bool,
        at: Instant,
    },
    Play,
    Pause,
    Seek(Duration),
    Speed(f32),
    Volume(f32),
    Unload,
    /// A decoder thread has news (format known, end reached, failure).
    Wake,
    Quit,
}

/// The handle: cheap calls that queue a command for the player thread.
#[derive(Debug)]
pub struct Player {
    tx: Sender<Command>,
    state: Arc<Mutex<PlayerState>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Load { .. } => "Load",
            Command::Play => "Play",
            Command::Pause => "Pause",
            Command::Seek(_) => "Seek",
            Command::Speed(_) => "Speed",
            Command::Volume(_) => "Volume",
            Command::Unload => "Unload",
            Command::Wake => "Wake",
            Command::Quit => "Quit",
        })
    }
}

impl Player {
    /// Starts the player thread. `on_change` is called on that thread after every
    /// change of state (position changes at most every 250 ms).
    pub fn spawn(
        output: Output,
        on_change: impl Fn(&PlayerState) + Send + 'static,
    ) -> Result<Self, PlayerError> {
        let (tx, rx) = mpsc::channel();
        let state = Arc::new(Mutex::new(PlayerState::default()));
        let shared = Arc::clone(&state);
        let wake = tx.clone();
        // The output device is opened on this thread and never leaves it.
        let thread = thread::Builder::new()
            .name("calldesk-player".to_owned())
            .spawn(move || {
                let worker = Worker {
                    output,
                    sink: None,
                    idle_since: Instant::now(),
                    track: None,
                    state: PlayerState::default(),
                    shared,
                    on_change: Box::new(on_change),
                    wake,
                    reported_at: Instant::now(),
                };
                worker.run(&rx);
            })
            .map_err(|e| PlayerError::Io(format!("cannot start the player thread: {e}")))?;
        Ok(Self {
            tx,
            state,
            thread: Some(thread),
        })
    }

    fn send(&self, command: Command) -> Result<(), PlayerError> {
        self.tx.send(command).map_err(|_| PlayerError::Stopped)
    }

    /// Loads `media` under the name `id` (replacing what was loaded) and, if `play`,
    /// starts playing as soon as the first samples are decoded.
    pub fn load(&self, id: impl Into<String>, media: Media, play: bool) -> Result<(), PlayerError> {
        let id = id.into();
        // The state says so at once: a caller reading it next never sees the previous one.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        *state = PlayerState {
            id: Some(id.clone()),
            status: Status::Loading,
            speed: state.speed,
            volume: state.volume,
            ..PlayerState::default()
        };
        self.send(Command::Load {
            id,
            media,
            play,
            at: Instant::now(),
        })
    }

    pub fn play(&self) -> Result<(), PlayerError> {
        self.send(Command::Play)
    }

    pub fn pause(&self) -> Result<(), PlayerError> {
        self.send(Command::Pause)
    }

    /// Moves to `position` (clamped to the recording's length).
    pub fn seek(&self, position: Duration) -> Result<(), PlayerError> {
        self.send(Command::Seek(position))
    }

    /// Sets the speed, 0.75× to 2×.
    pub fn set_speed(&self, speed: f32) -> Result<(), PlayerError> {
        if !(SPEED_RANGE.0..=SPEED_RANGE.1).contains(&speed) {
            return Err(PlayerError::Speed(speed));
        }
        self.send(Command::Speed(speed))
    }

    /// Sets the volume, 0 to 1.
    pub fn set_volume(&self, volume: f32) -> Result<(), PlayerError> {
        if !(VOLUME_RANGE.0..=VOLUME_RANGE.1).contains(&volume) {
            return Err(PlayerError::Volume(volume));
        }
        self.send(Command::Volume(volume))
    }

    /// Stops and forgets the loaded recording.
    pub fn unload(&self) -> Result<(), PlayerError> {
        self.send(Command::Unload)
    }

    /// The latest state.
    pub fn state(&self) -> PlayerState {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        let _ = self.tx.send(Command::Quit);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Samples between the decoder thread and the output.
#[derive(Debug, Default)]
struct Queue {
    chunks: VecDeque<(u64, Vec<f32>)>,
    queued: usize,
    /// A seek the decoder thread has still to do: (generation, target).
    seek: Option<(u64, Duration)>,
}

#[derive(Debug)]
struct Format {
    channels: ChannelCount,
    rate: SampleRate,
    duration: Option<Duration>,
}

#[derive(Debug)]
struct FeedShared {
    queue: Mutex<Queue>,
    /// Wakes the decoder thread: room in the queue, a seek, or stop.
    room: Condvar,
    generation: AtomicU64,
    /// Source samples taken by the output since the start of the recording.
    consumed: AtomicU64,
    underruns: AtomicU64,
    /// The decoder reached the end of the current generation.
    decoded_all: AtomicBool,
    /// The current generation's samples have all been taken by the output.
    drained: AtomicBool,
    stop: AtomicBool,
    format: OnceLock<Format>,
    first_audio: OnceLock<Instant>,
    error: Mutex<Option<PlayerError>>,
}

impl FeedShared {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fail(&self, error: PlayerError) {
        *self.error.lock().unwrap_or_else(PoisonError::into_inner) = Some(error);
    }

    fn error(&self) -> Option<PlayerError> {
        self.error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _guard = self.queue();
        self.room.notify_all();
    }
}

/// The source rodio plays: takes decoded chunks, or plays silence when there are none.
struct Feed {
    shared: Arc<FeedShared>,
    chunk: Vec<f32>,
    at: usize,
    generation: u64,
    silence: u16,
    channels: ChannelCount,
    rate: SampleRate,
    duration: Option<Duration>,
}

impl Iterator for Feed {
    type Item = f32;

    fn next(&mut self) -> Option<f32> {
        if self.shared.stop.load(Ordering::Relaxed) {
            return None;
        }
        if self.silence > 0 {
            self.silence -= 1;
            return Some(0.0);
        }
        let generation = self.shared.generation.load(Ordering::Acquire);
        if generation != self.generation {
            self.generation = generation;
            self.chunk.clear();
            self.at = 0;
        }
        if self.at >= self.chunk.len() {
            let mut queue = self.shared.queue();
            loop {
                match queue.chunks.pop_front() {
                    Some((g, samples)) => {
                        queue.queued -= samples.len();
                        if g == self.generation && !samples.is_empty() {
                            self.chunk = samples;
                            self.at = 0;
                            break;
                        }
                    }
                    None => {
                        drop(queue);
                        self.shared.room.notify_all();
                        if self.shared.decoded_all.load(Ordering::Acquire) {
                            self.shared.drained.store(true, Ordering::Release);
                        } else {
                            self.shared.underruns.fetch_add(1, Ordering::Relaxed);
                        }
                        // Silence in whole frames, so the channels stay in step.
                        self.silence = self.channels.get() - 1;
                        return Some(0.0);
                    }
                }
            }
            drop(queue);
            self.shared.room.notify_all();
        }
        let sample = self.chunk[self.at];
        self.at += 1;
        self.shared.consumed.fetch_add(1, Ordering::Relaxed);
        self.shared.first_audio.get_or_init(Instant::now);
        Some(sample)
    }
}

impl Source for Feed {
    fn current_span_len(&self) -> Option<usize> {
        None
    }

    fn channels(&self) -> ChannelCount {
        self.channels
    }

    fn sample_rate(&self) -> SampleRate {
        self.rate
    }

    fn total_duration(&self) -> Option<Duration> {
        self.duration
    }
}

/// The decoder thread's body.
fn decode_loop(opened: Opened, shared: &FeedShared, wake: &Sender<Command>) {
    let Opened {
        mut decoder,
        stream,
    } = opened;
    let channels = decoder.channels();
    let ahead = usize::try_from(
        u64::from(decoder.sample_rate().get()) * u64::from(channels.get()) * AHEAD_SECS,
    )
    .unwrap_or(usize::MAX)
    .max(CHUNK);
    let mut generation = 0u64;
    let mut at_end = false;
    loop {
        // Wait for room, a seek or stop; at the end, only for a seek or stop.
        let seek = {
            let mut queue = shared.queue();
            loop {
                if shared.stop.load(Ordering::SeqCst) {
                    return;
                }
                if let Some(seek) = queue.seek.take() {
                    break Some(seek);
                }
                if !at_end && queue.queued < ahead {
                    break None;
                }
                queue = shared
                    .room
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        if let Some((to_generation, position)) = seek {
            if let Err(e) = decoder.try_seek(position) {
                tracing::warn!(error = %e, "seek in the recording failed; playing on from where it is");
            }
            generation = to_generation;
            at_end = false;
            shared.decoded_all.store(false, Ordering::Release);
            shared.drained.store(false, Ordering::Release);
        }
        let mut chunk = Vec::with_capacity(CHUNK);
        for sample in decoder.by_ref() {
            chunk.push(sample);
            if chunk.len() == CHUNK {
                break;
            }
        }
        if chunk.len() < CHUNK {
            at_end = true;
        }
        {
            let mut queue = shared.queue();
            if queue.seek.is_none() && shared.generation.load(Ordering::Acquire) == generation {
                queue.queued += chunk.len();
                queue.chunks.push_back((generation, chunk));
            }
        }
        if at_end {
            if let Some(reason) = stream.as_ref().and_then(StreamStatus::failure) {
                shared.fail(PlayerError::Io(reason));
            }
            shared.decoded_all.store(true, Ordering::Release);
            let _ = wake.send(Command::Wake);
        }
    }
}

struct Track {
    id: String,
    shared: Arc<FeedShared>,
    stream: Option<StreamStatus>,
    rodio: Option<rodio::Player>,
    play: bool,
    at: Instant,
    underruns_seen: u64,
}

enum Sink {
    Device(MixerDeviceSink),
    Virtual { mixer: Mixer, stop: Arc<AtomicBool> },
}

impl Sink {
    fn mixer(&self) -> &Mixer {
        match self {
            Sink::Device(device) => device.mixer(),
            Sink::Virtual { mixer, .. } => mixer,
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if let Sink::Virtual { stop, .. } = self {
            stop.store(true, Ordering::SeqCst);
        }
    }
}

/// A real-time clock pulling from a mixer, in 10 ms steps.
fn virtual_output(
    channels: u16,
    sample_rate: u32,
    capture: Option<Capture>,
) -> Result<Sink, PlayerError> {
    let channels = NonZero::new(channels).ok_or(PlayerError::NoDevice(
        "a virtual output with 0 channels".into(),
    ))?;
    let rate = NonZero::new(sample_rate)
        .ok_or(PlayerError::NoDevice("a virtual output at 0 Hz".into()))?;
    let (mixer, source) = rodio::mixer::mixer(channels, rate);
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    let step = usize::try_from(sample_rate / 100).unwrap_or(80) * usize::from(channels.get());
    thread::Builder::new()
        .name("calldesk-player-out".to_owned())
        .spawn(move || pull(source, step, &stopped, capture.as_ref()))
        .map_err(|e| PlayerError::NoDevice(format!("cannot start the virtual output: {e}")))?;
    Ok(Sink::Virtual { mixer, stop })
}

fn pull(mut source: MixerSource, step: usize, stop: &AtomicBool, capture: Option<&Capture>) {
    let start = Instant::now();
    let mut steps = 0u32;
    while !stop.load(Ordering::SeqCst) {
        let samples = source.by_ref().take(step);
        match capture {
            Some(capture) => capture
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend(samples),
            None => samples.for_each(drop),
        }
        steps += 1;
        let due = start + Duration::from_millis(10) * steps;
        thread::sleep(due.saturating_duration_since(Instant::now()));
    }
}

struct Worker {
    output: Output,
    sink: Option<Sink>,
    idle_since: Instant,
    track: Option<Track>,
    state: PlayerState,
    shared: Arc<Mutex<PlayerState>>,
    on_change: Box<dyn Fn(&PlayerState) + Send>,
    wake: Sender<Command>,
    reported_at: Instant,
}

impl Worker {
    fn run(mut self, rx: &mpsc::Receiver<Command>) {
        loop {
            let busy = self.track.is_some()
                && !matches!(
                    self.state.status,
                    Status::Paused | Status::Ended | Status::Failed
                );
            let timeout = if busy { TICK } else { POSITION_EVERY };
            match rx.recv_timeout(timeout) {
                Ok(Command::Quit) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(command) => self.handle(command),
                Err(RecvTimeoutError::Timeout) => {}
            }
            self.refresh();
        }
        self.unload();
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Load {
                id,
                media,
                play,
                at,
            } => self.load(id, media, play, at),
            Command::Play => self.play(),
            Command::Pause => {
                if let Some(track) = &mut self.track {
                    track.play = false;
                    if let Some(rodio) = &track.rodio {
                        rodio.pause();
                    }
                    if matches!(self.state.status, Status::Playing | Status::Buffering) {
                        self.state.status = Status::Paused;
                    }
                }
            }
            Command::Seek(position) => self.seek(position),
            Command::Speed(speed) => {
                self.state.speed = speed;
                if let Some(rodio) = self.track.as_ref().and_then(|t| t.rodio.as_ref()) {
                    rodio.set_speed(speed);
                }
            }
            Command::Volume(volume) => {
                self.state.volume = volume;
                if let Some(rodio) = self.track.as_ref().and_then(|t| t.rodio.as_ref()) {
                    rodio.set_volume(volume);
                }
            }
            Command::Unload => {
                self.unload();
                self.state = PlayerState {
                    speed: self.state.speed,
                    volume: self.state.volume,
                    ..PlayerState::default()
                };
            }
            Command::Wake | Command::Quit => {}
        }
    }

    fn load(&mut self, id: String, media: Media, play: bool, at: Instant) {
        self.unload();
        tracing::info!(kind = %media.kind(), "loading a recording");
        let stream = match &media {
            Media::Stream { reader, .. } => Some(reader.status()),
            Media::File(_) => None,
        };
        let shared = Arc::new(FeedShared {
            queue: Mutex::new(Queue::default()),
            room: Condvar::new(),
            generation: AtomicU64::new(0),
            consumed: AtomicU64::new(0),
            underruns: AtomicU64::new(0),
            decoded_all: AtomicBool::new(false),
            drained: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            format: OnceLock::new(),
            first_audio: OnceLock::new(),
            error: Mutex::new(None),
        });
        self.state = PlayerState {
            id: Some(id.clone()),
            status: Status::Loading,
            speed: self.state.speed,
            volume: self.state.volume,
            ..PlayerState::default()
        };
        let decoding = Arc::clone(&shared);
        let wake = self.wake.clone();
        let spawned = thread::Builder::new()
            .name("calldesk-player-decode".to_owned())
            .spawn(move || match decode::open(media) {
                Ok(opened) => {
                    let _ = decoding.format.set(Format {
                        channels: opened.decoder.channels(),
                        rate: opened.decoder.sample_rate(),
                        duration: opened.decoder.total_duration(),
                    });
                    let _ = wake.send(Command::Wake);
                    decode_loop(opened, &decoding, &wake);
                }
                Err(e) => {
                    decoding.fail(e);
                    let _ = wake.send(Command::Wake);
                }
            });
        if let Err(e) = spawned {
            self.fail(PlayerError::Io(format!(
                "cannot start the decoder thread: {e}"
            )));
            return;
        }
        self.track = Some(Track {
            id,
            shared,
            stream,
            rodio: None,
            play,
            at,
            underruns_seen: 0,
        });
    }

    fn play(&mut self) {
        if matches!(self.state.status, Status::Ended) {
            self.seek(Duration::ZERO);
        }
        let Some(track) = &mut self.track else { return };
        track.play = true;
        if let Some(rodio) = &track.rodio {
            rodio.play();
            if matches!(self.state.status, Status::Paused | Status::Ended) {
                self.state.status = Status::Playing;
            }
        }
    }

    fn seek(&mut self, position: Duration) {
        let Some(track) = &self.track else { return };
        let Some(format) = track.shared.format.get() else {
            return;
        };
        let position = format.duration.map_or(position, |d| position.min(d));
        let frames = position.as_millis() as u64 * u64::from(format.rate.get()) / 1000;
        let mut queue = track.shared.queue();
        let generation = track.shared.generation.load(Ordering::Acquire) + 1;
        queue.seek = Some((generation, position));
        queue.chunks.clear();
        queue.queued = 0;
        track.shared.generation.store(generation, Ordering::Release);
        track
            .shared
            .consumed
            .store(frames * u64::from(format.channels.get()), Ordering::Release);
        track.shared.decoded_all.store(false, Ordering::Release);
        track.shared.drained.store(false, Ordering::Release);
        drop(queue);
        track.shared.room.notify_all();
        self.state.position_ms = position.as_millis() as u64;
        if matches!(self.state.status, Status::Ended) {
            self.state.status = Status::Paused;
        }
    }

    fn unload(&mut self) {
        if let Some(track) = self.track.take() {
            track.shared.stop();
            // Dropping the rodio player stops its queue on the output.
            drop(track.rodio);
            self.idle_since = Instant::now();
        }
    }

    fn fail(&mut self, error: PlayerError) {
        tracing::warn!(code = error.code(), error = %error, "the recording cannot be played");
        self.state.error = Some(ErrorInfo::from(&error));
        self.state.status = Status::Failed;
        self.unload();
    }

    fn sink(&mut self) -> Result<&Sink, PlayerError> {
        if self.sink.is_none() {
            let sink = match &self.output {
                Output::Device => {
                    let mut device =
                        DeviceSinkBuilder::open_default_sink().map_err(device_error)?;
                    device.log_on_drop(false);
                    Sink::Device(device)
                }
                Output::Virtual {
                    channels,
                    sample_rate,
                    capture,
                } => virtual_output(*channels, *sample_rate, capture.clone())?,
            };
            self.sink = Some(sink);
        }
        self.sink.as_ref().ok_or(PlayerError::Stopped)
    }

    /// Brings the state up to date with the decoder and the output, and reports it.
    fn refresh(&mut self) {
        if let Some(track) = &self.track {
            if let Some(error) = track.shared.error() {
                // A failure after the last sample was decoded still plays what there is.
                if track.rodio.is_none() || track.shared.drained.load(Ordering::Acquire) {
                    self.fail(error);
                }
            } else if track.rodio.is_none() && track.shared.format.get().is_some() {
                self.start_output();
            }
        }
        if let Some(track) = &mut self.track {
            let shared = &track.shared;
            if let Some(format) = shared.format.get() {
                let per_sec = u64::from(format.rate.get()) * u64::from(format.channels.get());
                self.state.position_ms =
                    shared.consumed.load(Ordering::Acquire) * 1000 / per_sec.max(1);
                self.state.duration_ms = format.duration.map(|d| d.as_millis() as u64);
            }
            if let Some(stream) = &track.stream {
                (self.state.downloaded, self.state.total) = stream.progress();
            }
            if self.state.first_audio_ms.is_none()
                && let Some(first) = shared.first_audio.get()
            {
                self.state.first_audio_ms =
                    Some(first.saturating_duration_since(track.at).as_millis() as u64);
            }
            let underruns = shared.underruns.load(Ordering::Relaxed);
            let starved = underruns != track.underruns_seen;
            track.underruns_seen = underruns;
            if let Some(rodio) = &track.rodio {
                if shared.drained.load(Ordering::Acquire) && track.play {
                    rodio.pause();
                    track.play = false;
                    self.state.status = Status::Ended;
                    if let Some(duration) = self.state.duration_ms {
                        self.state.position_ms = duration.max(self.state.position_ms);
                    }
                } else if track.play {
                    self.state.status = if starved || shared.first_audio.get().is_none() {
                        Status::Buffering
                    } else {
                        Status::Playing
                    };
                }
            }
            self.idle_since = Instant::now();
        } else if self.sink.is_some() && self.idle_since.elapsed() > DEVICE_IDLE {
            tracing::debug!("closing the idle sound output");
            self.sink = None;
        }
        self.report();
    }

    fn start_output(&mut self) {
        let (speed, volume) = (self.state.speed, self.state.volume);
        let mixer = match self.sink() {
            Ok(sink) => sink.mixer().clone(),
            Err(e) => return self.fail(e),
        };
        let Some(track) = &mut self.track else { return };
        let Some(format) = track.shared.format.get() else {
            return;
        };
        let feed = Feed {
            shared: Arc::clone(&track.shared),
            chunk: Vec::new(),
            at: 0,
            generation: track.shared.generation.load(Ordering::Acquire),
            silence: 0,
            channels: format.channels,
            rate: format.rate,
            duration: format.duration,
        };
        let (rodio, queue) = rodio::Player::new();
        rodio.set_speed(speed);
        rodio.set_volume(volume);
        if !track.play {
            rodio.pause();
        }
        rodio.append(feed);
        mixer.add(queue);
        track.rodio = Some(rodio);
        self.state.status = if track.play {
            Status::Buffering
        } else {
            Status::Paused
        };
        tracing::debug!(id = %track.id, "recording output started");
    }

    fn report(&mut self) {
        let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        if *shared == self.state {
            return;
        }
        // A load the handle announced and this thread has not taken yet: keep its state.
        if shared.status == Status::Loading && shared.id != self.state.id {
            return;
        }
        let only_position = PlayerState {
            position_ms: shared.position_ms,
            downloaded: shared.downloaded,
            ..self.state.clone()
        } == *shared;
        if only_position && self.reported_at.elapsed() < POSITION_EVERY {
            return;
        }
        *shared = self.state.clone();
        drop(shared);
        self.reported_at = Instant::now();
        (self.on_change)(&self.state);
    }
}

fn device_error(e: rodio::DeviceSinkError) -> PlayerError {
    let detail = match &e {
        rodio::DeviceSinkError::NoDevice => "the system has none".to_owned(),
        other => {
            let source = std::error::Error::source(other)
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            format!("{other}{source}")
        }
    };
    PlayerError::NoDevice(detail)
}
