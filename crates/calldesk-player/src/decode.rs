//! Decoding without a sound device: whole files to samples, and waveform overviews.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rodio::decoder::DecoderError;
use rodio::{Decoder, Source};

use crate::PlayerError;
use crate::stream::{StreamReader, StreamStatus};

/// What to play or decode.
#[derive(Debug)]
pub enum Media {
    /// A complete file (a cache hit, a local recording).
    File(PathBuf),
    /// A download in progress; `hint` is the file extension ("mp3", "wav", "ogg").
    Stream {
        reader: StreamReader,
        hint: Option<String>,
    },
}

impl Media {
    /// A short name for logs: the extension, never the path.
    pub(crate) fn kind(&self) -> String {
        match self {
            Media::File(path) => hint_of(path).unwrap_or_default(),
            Media::Stream { hint, .. } => hint.clone().unwrap_or_default(),
        }
    }
}

/// One `Read + Seek` type for both kinds of media, as the decoder is generic.
#[derive(Debug)]
pub(crate) enum Input {
    File(BufReader<File>),
    Stream(StreamReader),
}

impl Read for Input {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Input::File(f) => f.read(buf),
            Input::Stream(s) => s.read(buf),
        }
    }
}

impl Seek for Input {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        match self {
            Input::File(f) => f.seek(to),
            Input::Stream(s) => s.seek(to),
        }
    }
}

/// An opened decoder, with the download it reads from (if any).
pub(crate) struct Opened {
    pub decoder: Decoder<Input>,
    pub stream: Option<StreamStatus>,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

fn hint_of(path: &Path) -> Option<String> {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(crate::format_hint)
}

/// Opens a decoder on `media`; for a stream this waits for the header bytes.
pub(crate) fn open(media: Media) -> Result<Opened, PlayerError> {
    let (input, byte_len, hint, stream) = match media {
        Media::File(path) => {
            let file = File::open(&path)
                .map_err(|e| PlayerError::Io(format!("cannot open the recording: {e}")))?;
            let len = file.metadata().map(|m| m.len()).ok();
            (Input::File(BufReader::new(file)), len, hint_of(&path), None)
        }
        Media::Stream { reader, hint } => {
            let status = reader.status();
            let len = reader.byte_len();
            (Input::Stream(reader), len, hint, Some(status))
        }
    };
    if hint.as_deref() == Some("opus") {
        return Err(PlayerError::Format(
            "Opus (no Opus decoder in this build)".to_owned(),
        ));
    }
    let mut builder = Decoder::builder()
        .with_data(input)
        .with_seekable(true)
        .with_gapless(true);
    if let Some(len) = byte_len {
        builder = builder.with_byte_len(len);
    }
    if let Some(hint) = hint.as_deref() {
        builder = builder.with_hint(hint);
    }
    let decoder = builder
        .build()
        .map_err(|e| decoder_error(e, stream.as_ref()))?;
    Ok(Opened { decoder, stream })
}

pub(crate) fn decoder_error(error: DecoderError, stream: Option<&StreamStatus>) -> PlayerError {
    if let Some(reason) = stream.and_then(StreamStatus::failure) {
        return PlayerError::Io(reason);
    }
    match error {
        DecoderError::UnrecognizedFormat => {
            PlayerError::Format("not WAV, MP3 or Ogg Vorbis".to_owned())
        }
        DecoderError::IoError(reason) => PlayerError::Io(reason),
        other => PlayerError::Format(other.to_string()),
    }
}

/// Every sample of a recording, interleaved.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub channels: u16,
    pub sample_rate: u32,
    pub samples: Vec<f32>,
}

impl Decoded {
    pub fn duration(&self) -> Duration {
        let frames = self.samples.len() as u64 / u64::from(self.channels.max(1));
        Duration::from_millis(frames * 1000 / u64::from(self.sample_rate.max(1)))
    }
}

/// Decodes all of `media` (the decode-only path: no sound device needed). A download
/// that fails half-way is an error, not a short recording.
pub fn decode(media: Media) -> Result<Decoded, PlayerError> {
    let Opened { decoder, stream } = open(media)?;
    let channels = decoder.channels().get();
    let sample_rate = decoder.sample_rate().get();
    let samples: Vec<f32> = decoder.collect();
    if let Some(reason) = stream.as_ref().and_then(StreamStatus::failure) {
        return Err(PlayerError::Io(reason));
    }
    Ok(Decoded {
        channels,
        sample_rate,
        samples,
    })
}

/// A recording's loudness over time, for the seek bar: `peaks[i]` is the loudest
/// sample (0..=1) of the i-th of `buckets` equal slices.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Waveform {
    pub peaks: Vec<f32>,
    pub duration_ms: u64,
}

/// Frames per first-pass slice: 10 ms at 8 kHz, 2.7 ms at 48 kHz.
const SLICE_FRAMES: usize = 80;

/// Computes the waveform overview of `media` (decoding it once, without a device).
pub fn waveform(media: Media, buckets: usize) -> Result<Waveform, PlayerError> {
    let Opened { decoder, stream } = open(media)?;
    let channels = usize::from(decoder.channels().get());
    let rate = u64::from(decoder.sample_rate().get());
    let slice = SLICE_FRAMES * channels;
    let mut slices: Vec<f32> = Vec::new();
    let mut peak = 0f32;
    let mut n = 0usize;
    let mut total = 0u64;
    for sample in decoder {
        peak = peak.max(sample.abs());
        n += 1;
        total += 1;
        if n == slice {
            slices.push(peak);
            peak = 0.0;
            n = 0;
        }
    }
    if n > 0 {
        slices.push(peak);
    }
    if let Some(reason) = stream.as_ref().and_then(StreamStatus::failure) {
        return Err(PlayerError::Io(reason));
    }
    let buckets = buckets.max(1);
    let peaks = (0..buckets)
        .map(|b| {
            let from = b * slices.len() / buckets;
            let to = ((b + 1) * slices.len() / buckets)
                .max(from + 1)
                .min(slices.len());
            slices
                .get(from..to)
                .map_or(0.0, |s| s.iter().copied().fold(0.0, f32::max))
                .min(1.0)
        })
        .collect();
    let frames = total / channels.max(1) as u64;
    Ok(Waveform {
        peaks,
        duration_ms: frames * 1000 / rate.max(1),
    })
}
