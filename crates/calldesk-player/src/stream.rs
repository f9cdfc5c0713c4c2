//! A file that is read while it is still being downloaded.
//!
//! [`stream_file`] creates the file and returns both ends: the [`Download`] the network
//! code appends to, and a [`StreamReader`] (`Read + Seek`) the decoder reads from. A read
//! past the downloaded bytes waits until they arrive, the download ends, or it fails; the
//! reader never sees a short file as a complete one. The bytes go to disk, not memory, so
//! an hour-long recording costs no RAM and the finished file is the cache entry.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// How long a read waits for new bytes before it gives up (the download itself has
/// its own, shorter, network time-outs; this only guards against a silent writer).
pub const STALL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug)]
enum End {
    Open,
    Complete,
    Failed(String),
}

#[derive(Debug)]
struct Progress {
    written: u64,
    total: Option<u64>,
    end: End,
}

#[derive(Debug)]
struct Shared {
    progress: Mutex<Progress>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Progress> {
        // A panic elsewhere cannot leave `Progress` half-updated: every update is one store.
        self.progress.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The writing end: the network code appends bytes in order, then calls
/// [`Download::finish`] or [`Download::fail`]. Dropping it unfinished fails the stream,
/// so a reader never waits for a download that is gone.
#[derive(Debug)]
pub struct Download {
    shared: Arc<Shared>,
    file: File,
    done: bool,
}

/// The reading end; `Read + Seek + Send + Sync`, as decoders want.
#[derive(Debug)]
pub struct StreamReader {
    shared: Arc<Shared>,
    file: File,
    pos: u64,
    stall: Duration,
}

/// Creates (truncates) `path` and returns both ends. `total` is the expected size
/// (HTTP `Content-Length`), which lets the decoder seek and know the duration early.
pub fn stream_file(path: &Path, total: Option<u64>) -> io::Result<(Download, StreamReader)> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)?;
    let reader = File::open(path)?;
    let shared = Arc::new(Shared {
        progress: Mutex::new(Progress {
            written: 0,
            total,
            end: End::Open,
        }),
        changed: Condvar::new(),
    });
    Ok((
        Download {
            shared: Arc::clone(&shared),
            file,
            done: false,
        },
        StreamReader {
            shared,
            file: reader,
            pos: 0,
            stall: STALL_TIMEOUT,
        },
    ))
}

impl Download {
    /// Appends `bytes` and wakes the reader.
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)?;
        let mut progress = self.shared.lock();
        progress.written += bytes.len() as u64;
        if let Some(total) = progress.total
            && progress.written > total
        {
            let error = format!("the download sent more than the {total} bytes it announced");
            progress.end = End::Failed(error.clone());
            drop(progress);
            self.shared.changed.notify_all();
            self.done = true;
            return Err(io::Error::new(io::ErrorKind::InvalidData, error));
        }
        drop(progress);
        self.shared.changed.notify_all();
        Ok(())
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.shared.lock().written
    }

    /// The download is complete: flushes the file. A download shorter than announced
    /// is a failure (the connection was cut), and says so.
    pub fn finish(mut self) -> io::Result<u64> {
        self.done = true;
        let flushed = self.file.flush().and_then(|()| self.file.sync_data());
        let mut progress = self.shared.lock();
        let result = match (flushed, progress.total) {
            (Err(e), _) => {
                progress.end = End::Failed(format!("could not write the recording to disk: {e}"));
                Err(e)
            }
            (Ok(()), Some(total)) if total != progress.written => {
                let error = format!(
                    "the download stopped at {} of {total} bytes",
                    progress.written
                );
                progress.end = End::Failed(error.clone());
                Err(io::Error::new(io::ErrorKind::UnexpectedEof, error))
            }
            (Ok(()), _) => {
                progress.total = Some(progress.written);
                progress.end = End::Complete;
                Ok(progress.written)
            }
        };
        drop(progress);
        self.shared.changed.notify_all();
        result
    }

    /// The download failed: readers get `reason` as their I/O error.
    pub fn fail(mut self, reason: impl Into<String>) {
        self.done = true;
        self.set_failed(reason.into());
    }

    fn set_failed(&self, reason: String) {
        let mut progress = self.shared.lock();
        if matches!(progress.end, End::Open) {
            progress.end = End::Failed(reason);
        }
        drop(progress);
        self.shared.changed.notify_all();
    }
}

impl Drop for Download {
    fn drop(&mut self) {
        if !self.done {
            self.set_failed("the download was stopped".to_owned());
        }
    }
}

/// A view of a stream's download that outlives the reader (the decoder owns that).
#[derive(Debug, Clone)]
pub struct StreamStatus(Arc<Shared>);

impl StreamStatus {
    /// Bytes downloaded so far and the expected total, if known.
    pub fn progress(&self) -> (u64, Option<u64>) {
        let progress = self.0.lock();
        (progress.written, progress.total)
    }

    /// Why the download failed, if it did.
    pub fn failure(&self) -> Option<String> {
        match &self.0.lock().end {
            End::Failed(reason) => Some(reason.clone()),
            _ => None,
        }
    }

    pub fn is_complete(&self) -> bool {
        matches!(self.0.lock().end, End::Complete)
    }
}

impl StreamReader {
    /// A handle on the download's progress that stays valid after the reader is moved.
    pub fn status(&self) -> StreamStatus {
        StreamStatus(Arc::clone(&self.shared))
    }

    /// Bytes downloaded so far and the expected total, if known.
    pub fn progress(&self) -> (u64, Option<u64>) {
        let progress = self.shared.lock();
        (progress.written, progress.total)
    }

    /// The expected size, if the download announced it (or has finished).
    pub fn byte_len(&self) -> Option<u64> {
        self.shared.lock().total
    }

    /// Whether every byte has arrived.
    pub fn is_complete(&self) -> bool {
        matches!(self.shared.lock().end, End::Complete)
    }

    /// Changes how long a read waits for new bytes (tests use short ones).
    pub fn with_stall_timeout(mut self, stall: Duration) -> Self {
        self.stall = stall;
        self
    }

    /// Waits until a byte at `self.pos` is readable; returns how many are, 0 at the end.
    fn wait_readable(&self) -> io::Result<u64> {
        let mut progress = self.shared.lock();
        loop {
            if progress.written > self.pos {
                return Ok(progress.written - self.pos);
            }
            match &progress.end {
                End::Complete => return Ok(0),
                End::Failed(reason) => return Err(io::Error::other(reason.clone())),
                End::Open => {}
            }
            if let Some(total) = progress.total
                && self.pos >= total
            {
                return Ok(0);
            }
            let (next, timeout) = self
                .shared
                .changed
                .wait_timeout(progress, self.stall)
                .unwrap_or_else(PoisonError::into_inner);
            progress = next;
            if timeout.timed_out()
                && progress.written <= self.pos
                && matches!(progress.end, End::Open)
            {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no recording data arrived for {} s", self.stall.as_secs()),
                ));
            }
        }
    }
}

impl Read for StreamReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let readable = self.wait_readable()?;
        if readable == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(readable).unwrap_or(usize::MAX));
        self.file.seek(SeekFrom::Start(self.pos))?;
        let n = self.file.read(&mut buf[..want])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for StreamReader {
    /// Moves the position without waiting; the next read waits for the bytes there.
    /// Seeking from the end needs the size: it waits for it if the download did not
    /// announce one.
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => {
                let total = match self.byte_len() {
                    Some(total) => total,
                    None => {
                        // Read to the end: the size is known once the download completes.
                        let saved = self.pos;
                        self.pos = u64::MAX;
                        let waited = self.wait_readable();
                        self.pos = saved;
                        waited?;
                        self.byte_len().unwrap_or(0)
                    }
                };
                total.checked_add_signed(d)
            }
        };
        let target = target
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        self.pos = target;
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    fn temp(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("calldesk-player-stream-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .map(|()| dir.join(name))
            .unwrap_or_else(|e| panic!("temp dir: {e}"))
    }

    #[test]
    fn a_read_waits_for_bytes_that_are_still_downloading() -> io::Result<()> {
        let (mut download, mut reader) = stream_file(&temp("wait"), Some(6))?;
        download.append(b"abc")?;
        let writer = thread::spawn(move || -> io::Result<u64> {
            thread::sleep(Duration::from_millis(50));
            download.append(b"def")?;
            download.finish()
        });
        let mut all = Vec::new();
        reader.read_to_end(&mut all)?;
        assert_eq!(all, b"abcdef");
        assert_eq!(
            writer
                .join()
                .map_err(|_| io::Error::other("writer panicked"))??,
            6
        );
        assert!(reader.is_complete());
        Ok(())
    }

    #[test]
    fn seeking_ahead_then_reading_waits_and_end_relative_seeks_use_the_announced_size()
    -> io::Result<()> {
        let (mut download, mut reader) = stream_file(&temp("seek"), Some(10))?;
        assert_eq!(reader.seek(SeekFrom::End(-2))?, 8);
        let writer = thread::spawn(move || -> io::Result<u64> {
            for chunk in [b"01234".as_slice(), b"56789"] {
                thread::sleep(Duration::from_millis(20));
                download.append(chunk)?;
            }
            download.finish()
        });
        let mut tail = [0u8; 2];
        reader.read_exact(&mut tail)?;
        assert_eq!(&tail, b"89");
        assert_eq!(reader.seek(SeekFrom::Start(3))?, 3);
        let mut three = [0u8; 3];
        reader.read_exact(&mut three)?;
        assert_eq!(&three, b"345");
        writer
            .join()
            .map_err(|_| io::Error::other("writer panicked"))??;
        Ok(())
    }

    #[test]
    fn a_failed_or_abandoned_download_reaches_the_reader_as_an_error() -> io::Result<()> {
        let (mut download, mut reader) = stream_file(&temp("fail"), None)?;
        download.append(b"xy")?;
        download.fail("the hub answered 502");
        let mut buf = Vec::new();
        let err = reader.read_to_end(&mut buf).err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("the hub answered 502"));
        assert_eq!(buf, b"xy");

        let (download, mut reader) = stream_file(&temp("drop"), None)?;
        drop(download);
        let err = reader.read(&mut [0u8; 4]).err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("the download was stopped"));
        Ok(())
    }

    #[test]
    fn a_short_download_is_not_a_complete_one_and_a_silent_one_times_out() -> io::Result<()> {
        let (mut download, reader) = stream_file(&temp("short"), Some(10))?;
        download.append(b"12345")?;
        let err = download.finish().err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("the download stopped at 5 of 10 bytes")
        );
        assert!(!reader.is_complete());

        let (_download, reader) = stream_file(&temp("stall"), None)?;
        let mut reader = reader.with_stall_timeout(Duration::from_millis(30));
        let err = reader.read(&mut [0u8; 4]).err().map(|e| e.kind());
        assert_eq!(err, Some(io::ErrorKind::TimedOut));
        Ok(())
    }

    #[test]
    fn more_bytes_than_announced_is_refused() -> io::Result<()> {
        let (mut download, _reader) = stream_file(&temp("long"), Some(2))?;
        let err = download.append(b"abc").err().map(|e| e.kind());
        assert_eq!(err, Some(io::ErrorKind::InvalidData));
        Ok(())
    }
}
