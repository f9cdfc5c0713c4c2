//! Recordings kept on disk after they were played, within a size cap.
//!
//! A file's name is a hash of the recording's storage key (plus its extension, which the
//! decoder uses as a hint), so nothing about the tenant or the caller shows in the folder.
//! Downloads are written to `*.part` files and renamed when complete: a crash or a cut
//! connection never leaves a short file that looks finished. Least recently used files
//! go first when the folder grows past the cap; using a file touches its time.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use crate::stream::{Download, StreamReader, stream_file};

/// The default cap: about 50 hours of 8 kHz mono MP3, or 8 hours of 16-bit 8 kHz WAV.
pub const DEFAULT_CAP_BYTES: u64 = 512 * 1024 * 1024;

const PART: &str = "part";

/// The cache folder.
#[derive(Debug)]
pub struct Cache {
    dir: PathBuf,
    cap: u64,
    next_part: AtomicU64,
}

/// A complete recording in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    pub path: PathBuf,
    pub len: u64,
}

/// A download into the cache; [`Pending::finish`] makes it a cache entry.
#[derive(Debug)]
pub struct Pending {
    download: Download,
    part: PathBuf,
    path: PathBuf,
}

impl Cache {
    /// Opens (creates) the folder and removes downloads a previous run left unfinished.
    pub fn open(dir: impl Into<PathBuf>, cap: u64) -> io::Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == PART) {
                fs::remove_file(&path)?;
            }
        }
        Ok(Self {
            dir,
            cap,
            next_part: AtomicU64::new(0),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn cap(&self) -> u64 {
        self.cap
    }

    /// The cached file for `key`, if complete; marks it as just used.
    pub fn get(&self, key: &str) -> Option<Cached> {
        let path = self.path_for(key);
        let file = fs::File::options().append(true).open(&path).ok()?;
        let len = file.metadata().ok()?.len();
        // Best effort: a file whose time cannot be set is only evicted a little early.
        let _ = file.set_modified(SystemTime::now());
        Some(Cached { path, len })
    }

    /// Starts downloading `key`: the returned reader can be played at once.
    pub fn start(&self, key: &str, total: Option<u64>) -> io::Result<(Pending, StreamReader)> {
        let path = self.path_for(key);
        let n = self.next_part.fetch_add(1, Ordering::Relaxed);
        let ext = extension(key);
        let part = path.with_extension(if ext.is_empty() {
            format!("{n}.{PART}")
        } else {
            format!("{ext}.{n}.{PART}")
        });
        let (download, reader) = stream_file(&part, total)?;
        Ok((
            Pending {
                download,
                part,
                path,
            },
            reader,
        ))
    }

    /// Bytes used by complete files.
    pub fn usage(&self) -> io::Result<u64> {
        Ok(self.entries()?.iter().map(|(_, len, _)| len).sum())
    }

    fn path_for(&self, key: &str) -> PathBuf {
        let digest = Sha256::digest(key.as_bytes());
        let name = hex::encode(&digest[..16]);
        let ext = extension(key);
        self.dir.join(if ext.is_empty() {
            name
        } else {
            format!("{name}.{ext}")
        })
    }

    fn entries(&self) -> io::Result<Vec<(PathBuf, u64, SystemTime)>> {
        let mut entries = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let path = entry.path();
            if path.extension().is_some_and(|e| e == PART) {
                continue;
            }
            let meta = entry.metadata()?;
            if meta.is_file() {
                entries.push((
                    path,
                    meta.len(),
                    meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                ));
            }
        }
        Ok(entries)
    }

    /// Removes least recently used files until the cache fits its cap; never `keep`.
    fn evict(&self, keep: &Path) -> io::Result<()> {
        let mut entries = self.entries()?;
        let mut used: u64 = entries.iter().map(|(_, len, _)| len).sum();
        entries.sort_by_key(|(_, _, used_at)| *used_at);
        for (path, len, _) in entries {
            if used <= self.cap {
                break;
            }
            if path == keep {
                continue;
            }
            match fs::remove_file(&path) {
                Ok(()) => used -= len,
                Err(e) if e.kind() == io::ErrorKind::NotFound => used -= len,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl Pending {
    /// Appends downloaded bytes.
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.download.append(bytes)
    }

    pub fn written(&self) -> u64 {
        self.download.written()
    }

    /// Completes the download: the file becomes the cache entry, and older entries
    /// make room for it. A short download fails and leaves no entry.
    pub fn finish(self, cache: &Cache) -> io::Result<Cached> {
        let Pending {
            download,
            part,
            path,
        } = self;
        let len = match download.finish() {
            Ok(len) => len,
            Err(e) => {
                let _ = fs::remove_file(&part);
                return Err(e);
            }
        };
        fs::rename(&part, &path)?;
        cache.evict(&path)?;
        Ok(Cached { path, len })
    }

    /// The download failed; the reader gets `reason`, the partial file is removed.
    pub fn fail(self, reason: impl Into<String>) {
        let Pending { download, part, .. } = self;
        download.fail(reason);
        // The reader keeps its open handle; the name goes now (Unix) or with it (Windows).
        let _ = fs::remove_file(part);
    }
}

/// The key's format hint ("" when it has none): the extension of its last segment.
fn extension(key: &str) -> String {
    crate::format_hint(key.rsplit('/').next().unwrap_or(key)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::time::Duration;

    fn cache_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "calldesk-player-cache-{name}-{}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn put(cache: &Cache, key: &str, bytes: &[u8]) -> io::Result<Cached> {
        let (mut pending, _reader) = cache.start(key, Some(bytes.len() as u64))?;
        pending.append(bytes)?;
        pending.finish(cache)
    }

    #[test]
    fn a_finished_download_is_found_again_and_its_reader_saw_every_byte() -> io::Result<()> {
        let cache = Cache::open(cache_dir("find"), 1024)?;
        let key = "acme/2026/11/22/call-1/rec.MP3";
        assert_eq!(cache.get(key), None);
        let (mut pending, mut reader) = cache.start(key, Some(4))?;
        pending.append(b"ID3x")?;
        let cached = pending.finish(&cache)?;
        let mut read = Vec::new();
        reader.read_to_end(&mut read)?;
        assert_eq!(read, b"ID3x");
        assert_eq!(cache.get(key), Some(cached.clone()));
        assert_eq!(cached.len, 4);
        let name = cached
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        assert!(name.ends_with(".mp3") && !name.contains("acme"), "{name}");
        Ok(())
    }

    #[test]
    fn the_least_recently_used_files_go_when_the_cap_is_passed() -> io::Result<()> {
        let cache = Cache::open(cache_dir("evict"), 25)?;
        put(&cache, "t/a.wav", &[1; 10])?;
        std::thread::sleep(Duration::from_millis(20));
        put(&cache, "t/b.wav", &[2; 10])?;
        std::thread::sleep(Duration::from_millis(20));
        // Playing `a` again makes `b` the oldest.
        assert!(cache.get("t/a.wav").is_some());
        std::thread::sleep(Duration::from_millis(20));
        put(&cache, "t/c.wav", &[3; 10])?;
        assert!(cache.get("t/a.wav").is_some());
        assert_eq!(cache.get("t/b.wav"), None);
        assert!(cache.get("t/c.wav").is_some());
        assert_eq!(cache.usage()?, 20);
        // A file bigger than the cap is still kept while it is the newest.
        put(&cache, "t/big.wav", &[4; 40])?;
        assert!(cache.get("t/big.wav").is_some());
        assert_eq!(cache.usage()?, 40);
        Ok(())
    }

    #[test]
    fn cut_downloads_leave_nothing_and_leftovers_are_cleared_on_open() -> io::Result<()> {
        let dir = cache_dir("cut");
        let cache = Cache::open(&dir, 1024)?;
        let (mut pending, _reader) = cache.start("t/x.wav", Some(10))?;
        pending.append(&[0; 4])?;
        assert!(pending.finish(&cache).is_err());
        assert_eq!(cache.get("t/x.wav"), None);
        let (pending, _reader) = cache.start("t/y.wav", None)?;
        pending.fail("network down");
        assert_eq!(cache.get("t/y.wav"), None);
        // A crash leaves a part file; the next start removes it.
        let (pending, _reader) = cache.start("t/z.wav", None)?;
        std::mem::forget(pending);
        drop(cache);
        let cache = Cache::open(&dir, 1024)?;
        assert_eq!(fs::read_dir(cache.dir())?.count(), 0);
        Ok(())
    }
}
