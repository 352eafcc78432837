//! File primitives for the vault and its local state: one resolved path per
//! vault, trusted directories, lock files that follow no symlink, atomic
//! writes, space reserved before a refresh, in-place writes for a vault that
//! is a mount point, plaintext outputs that leave nothing behind when killed,
//! and reads with a size cap whatever the input is.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write as _};
use std::os::unix::ffi::OsStringExt as _;
use std::os::unix::fs::{
    DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _,
};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::error::{EngineError, Result};

/// A temp file this old belongs to a writer that was killed (a live one
/// keeps it for milliseconds).
pub const ABANDONED_AFTER: Duration = Duration::from_secs(600);

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// 16 random hex digits, for temp file names.
pub fn random_suffix() -> String {
    let mut bytes = [0u8; 8];
    let _ = getrandom::getrandom(&mut bytes);
    hex(&bytes)
}

/// The directory `path` is in (`.` for a bare file name).
pub fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Whether a file can be created in `dir`: creates and removes a probe
/// file (what `access(2)` says can differ from what the file system
/// allows: read-only mounts, ACLs, quotas at zero), after removing probes
/// left by a process killed in between.
pub fn probe_writable_dir(dir: &Path) -> std::io::Result<()> {
    remove_leftovers(dir, ".tokvault-probe-", ABANDONED_AFTER);
    let probe = dir.join(format!(".tokvault-probe-{}", random_suffix()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// The one spelling of `path` that every lock, temp file, rename and pin
/// uses: absolute, every symlink followed (a dangling final one too) and
/// `.`/`..` removed, also for parts that do not exist yet. Two spellings of
/// one vault (a symlink, `dir/../dir/vault`) then share one lock and pin.
pub fn resolve(path: &Path) -> std::io::Result<PathBuf> {
    resolve_absolute(&std::path::absolute(path)?, 0)
}

fn resolve_absolute(path: &Path, links_followed: u32) -> std::io::Result<PathBuf> {
    // Linux's own limit on symlinks in one lookup.
    if links_followed > 40 {
        return Err(std::io::Error::other("too many levels of symbolic links"));
    }
    match std::fs::canonicalize(path) {
        Ok(resolved) => return Ok(resolved),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    // Missing: a dangling symlink (follow it), or a path not created yet.
    let parent = path.parent().unwrap_or(Path::new("/"));
    if let Ok(target) = std::fs::read_link(path) {
        return resolve_absolute(&parent.join(target), links_followed + 1);
    }
    let parent = resolve_absolute(parent, links_followed)?;
    Ok(match path.components().next_back() {
        Some(Component::Normal(name)) => parent.join(name),
        Some(Component::ParentDir) => parent.parent().map_or(parent.clone(), Path::to_path_buf),
        _ => parent,
    })
}

/// Refuses a directory that someone other than this user (or root) could
/// write: there they could swap the vault, plant its lock file or reset its
/// rollback pins.
pub fn check_trusted_dir(dir: &Path, what: &str) -> Result<()> {
    let metadata = std::fs::metadata(dir)
        .map_err(|e| EngineError::io(&format!("cannot read {what}"), dir, e))?;
    let me = rustix::process::geteuid().as_raw();
    if metadata.uid() != me && metadata.uid() != 0 {
        return Err(EngineError::untrusted(format!(
            "{what} {} belongs to uid {}, not to this user (uid {me}) or root, so its owner could \
             replace what tokvault keeps there: run tokvault as that user, or `chown {me} {}`",
            dir.display(),
            metadata.uid(),
            dir.display()
        )));
    }
    let mode = metadata.permissions().mode();
    if mode & 0o022 != 0 {
        return Err(EngineError::untrusted(format!(
            "{what} {} is writable by group or others (mode {:o}), who could replace what tokvault \
             keeps there: run chmod go-w {}",
            dir.display(),
            mode & 0o7777,
            dir.display()
        )));
    }
    Ok(())
}

/// Creates `dir` (and parents) with mode 0700 when missing.
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| EngineError::io("cannot create directory", dir, e))
}

/// An exclusive `flock` on a lock file, released on drop (and by the kernel
/// if the process dies).
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

/// Opens `path` as a lock file (created 0600; never through a symlink, and
/// only a regular file with one link) and locks it, waiting up to
/// `timeout`; `busy` words the error when it stays taken.
pub fn lock_file(
    path: &Path,
    timeout: Duration,
    busy: impl FnOnce() -> EngineError,
) -> Result<FileLock> {
    use rustix::fs::OFlags;
    let flags = OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(flags.bits() as i32)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
                EngineError::untrusted(format!(
                    "the lock file {} is a symbolic link; a lock file must be a regular file: \
                     check who made it, then remove it",
                    path.display()
                ))
            } else {
                EngineError::io("cannot open the lock file", path, e)
            }
        })?;
    let metadata = file
        .metadata()
        .map_err(|e| EngineError::io("cannot read the lock file", path, e))?;
    if !metadata.file_type().is_file() || metadata.nlink() != 1 {
        return Err(EngineError::untrusted(format!(
            "the lock file {} is not a regular file with a single link; check who made it, then remove it",
            path.display()
        )));
    }
    let started = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(FileLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < timeout => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(std::fs::TryLockError::WouldBlock) => return Err(busy()),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(EngineError::io("cannot lock", path, e));
            }
        }
    }
}

/// Whether a write failure is one that a `rename` onto a mount point gives
/// (the vault is a single-file bind mount): then it is written in place.
pub fn is_busy(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::ResourceBusy | std::io::ErrorKind::CrossesDevices
    )
}

/// Whether the file at `path` is a mount point (a single-file bind mount,
/// `docker -v vault.tokvault:/...`), which `rename` cannot replace. `path`
/// must be resolved ([`resolve`]).
pub fn is_mount_point(path: &Path) -> bool {
    let (Ok(file), Ok(dir)) = (std::fs::metadata(path), std::fs::metadata(parent_of(path))) else {
        return false;
    };
    if file.dev() != dir.dev() {
        return true;
    }
    // A bind mount within one file system keeps the device: ask the kernel.
    let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    table
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .any(|mount_point| unescape_mountinfo(mount_point) == path)
}

/// mountinfo writes space, tab, newline and backslash as `\NNN` (octal).
fn unescape_mountinfo(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(digits) => {
                let value = digits.iter().fold(0u32, |v, d| v * 8 + u32::from(d - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    PathBuf::from(OsString::from_vec(out))
}

/// Writes `bytes` to `path` atomically with mode 0600. With `overwrite`
/// false an existing file is never replaced (link, not rename).
pub fn write_atomic(path: &Path, bytes: &[u8], overwrite: bool) -> Result<()> {
    write_atomic_mode(path, bytes, overwrite, 0o600)
}

/// [`write_atomic`] with another mode (metrics are read by other users).
pub fn write_atomic_mode(path: &Path, bytes: &[u8], overwrite: bool, mode: u32) -> Result<()> {
    write_atomic_io(path, bytes, overwrite, mode).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            EngineError::failure(format!(
                "{} already exists; refusing to overwrite it",
                path.display()
            ))
        } else {
            EngineError::io("cannot write", path, e)
        }
    })
}

/// Temp files of `path` are `.NAME.tmp-RANDOM` beside it.
pub fn temp_prefix(path: &Path) -> String {
    let name = path
        .file_name()
        .map_or_else(|| "vault".into(), |n| n.to_string_lossy().into_owned());
    format!(".{name}.tmp-")
}

/// [`write_atomic_mode`] with the system's error.
pub fn write_atomic_io(
    path: &Path,
    bytes: &[u8],
    overwrite: bool,
    mode: u32,
) -> std::io::Result<()> {
    let dir = parent_of(path);
    let prefix = temp_prefix(path);
    remove_leftovers(&dir, &prefix, ABANDONED_AFTER);
    let temp = dir.join(format!("{prefix}{}", random_suffix()));
    let result = (|| -> std::io::Result<()> {
        let mut file = create_private(&temp, mode)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        if overwrite {
            std::fs::rename(&temp, path)?;
        } else {
            std::fs::hard_link(&temp, path)?;
            std::fs::remove_file(&temp)?;
        }
        sync_dir(&dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// A new file, exactly `mode` whatever the umask (systemd units often set
/// 0077), never through a symlink.
fn create_private(path: &Path, mode: u32) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    Ok(file)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes plaintext (`export -o`, `keygen`) to a new file `path`, 0600,
/// never replacing one. The data goes to an unnamed file (`O_TMPFILE`) that
/// gets its name only when complete, so a process killed midway leaves no
/// plaintext behind. Where the file system has no unnamed files, it is
/// written at `path` directly and removed on a failure.
pub fn write_new_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let fail = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            EngineError::failure(format!(
                "{} already exists; refusing to overwrite it",
                path.display()
            ))
        } else {
            EngineError::io("cannot write", path, e)
        }
    };
    if std::fs::symlink_metadata(path).is_ok() {
        return Err(fail(std::io::ErrorKind::AlreadyExists.into()));
    }
    match write_unnamed_then_link(path, bytes) {
        Ok(()) => Ok(()),
        Err(Unnamed::Unsupported) => {
            let result = (|| {
                let mut file = create_private(path, 0o600)?;
                file.write_all(bytes)?;
                file.sync_all()?;
                sync_dir(&parent_of(path))
            })();
            if let Err(e) = result {
                if e.kind() != std::io::ErrorKind::AlreadyExists {
                    let _ = std::fs::remove_file(path);
                }
                return Err(fail(e));
            }
            Ok(())
        }
        Err(Unnamed::Failed(e)) => Err(fail(e)),
    }
}

enum Unnamed {
    /// No `O_TMPFILE` here (file system, kernel, or no `/proc`).
    Unsupported,
    Failed(std::io::Error),
}

fn write_unnamed_then_link(path: &Path, bytes: &[u8]) -> std::result::Result<(), Unnamed> {
    use rustix::fs::{AtFlags, CWD, Mode, OFlags};
    use std::os::fd::AsRawFd as _;
    let dir = parent_of(path);
    let fd = rustix::fs::openat(
        CWD,
        &dir,
        OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|e| match e {
        rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::ISDIR | rustix::io::Errno::INVAL => {
            Unnamed::Unsupported
        }
        e => Unnamed::Failed(e.into()),
    })?;
    let mut file = File::from(fd);
    let written = (|| {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    written.map_err(Unnamed::Failed)?;
    let source = format!("/proc/self/fd/{}", file.as_raw_fd());
    match rustix::fs::linkat(CWD, &source, CWD, path, AtFlags::SYMLINK_FOLLOW) {
        Ok(()) => {}
        Err(rustix::io::Errno::NOENT) if !Path::new("/proc/self/fd").is_dir() => {
            return Err(Unnamed::Unsupported);
        }
        Err(e) => return Err(Unnamed::Failed(e.into())),
    }
    sync_dir(&dir).map_err(Unnamed::Failed)
}

/// Removes files in `dir` named `prefix…` last modified at least
/// `older_than` ago: what killed writers left behind. Pins, health files
/// and metrics are written without the vault's lock, so there age
/// ([`ABANDONED_AFTER`]), not the lock, tells an abandoned file from one
/// being written.
pub fn remove_leftovers(dir: &Path, prefix: &str, older_than: Duration) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let abandoned = entry.file_name().to_string_lossy().starts_with(prefix)
            && (older_than.is_zero()
                || entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|at| at.elapsed().is_ok_and(|age| age >= older_than)));
        if abandoned {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Space for the next version of a file, taken before anything that must
/// not be lost is created (a token request): a ballast file beside the
/// target, filled to the expected size with incompressible bytes and
/// fsynced, so a full disk or a quota shows now, not at the write. Dropping
/// it (when a write needs the room, or at the end) removes it.
#[derive(Debug)]
pub struct Reservation {
    temp: PathBuf,
}

impl Reservation {
    /// Takes `size` bytes beside `target`.
    pub fn new(target: &Path, size: u64) -> std::io::Result<Self> {
        let temp = parent_of(target).join(format!("{}{}", temp_prefix(target), random_suffix()));
        let mut file = create_private(&temp, 0o600)?;
        let reservation = Self { temp };
        // Random, so that a compressing file system cannot shrink it.
        let mut chunk = vec![0u8; 64 * 1024];
        let mut left = size;
        while left > 0 {
            let n = usize::try_from(left.min(chunk.len() as u64)).unwrap_or(chunk.len());
            getrandom::getrandom(&mut chunk[..n]).map_err(std::io::Error::other)?;
            file.write_all(&chunk[..n])?;
            left -= n as u64;
        }
        file.sync_all()?;
        Ok(reservation)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.temp);
    }
}

/// Overwrites the existing file `path` in place (for a mount point, which
/// cannot be renamed over): not atomic, so the caller keeps a copy of
/// `bytes` elsewhere until this returns.
pub fn write_in_place(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use rustix::fs::OFlags;
    let mut file = OpenOptions::new()
        .write(true)
        .custom_flags((OFlags::NOFOLLOW | OFlags::CLOEXEC).bits() as i32)
        .open(path)?;
    file.write_all(bytes)?;
    file.set_len(bytes.len() as u64)?;
    file.sync_all()
}

/// Whether `path` can be opened for writing without changing it.
pub fn check_writable_in_place(path: &Path) -> std::io::Result<()> {
    OpenOptions::new().write(true).open(path).map(drop)
}

/// Reads all of `reader` into a zeroizing buffer, at most `cap` bytes
/// (`None` beyond), whatever it is: a file, a FIFO, stdin, `/dev/zero`.
/// The buffer grows by copying into a larger zeroizing one, so no
/// reallocation leaves an unwiped copy.
pub fn read_capped(
    mut reader: impl Read,
    cap: usize,
    size_hint: usize,
) -> std::io::Result<Option<Zeroizing<Vec<u8>>>> {
    let mut buffer = Zeroizing::new(Vec::with_capacity(size_hint.min(cap).saturating_add(1)));
    let mut chunk = Zeroizing::new([0u8; 8192]);
    loop {
        let n = match reader.read(&mut chunk[..]) {
            Ok(0) => return Ok(Some(buffer)),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buffer.len() + n > cap {
            return Ok(None);
        }
        if buffer.len() + n > buffer.capacity() {
            let wanted = (buffer.capacity() * 2).max(buffer.len() + n).min(cap);
            let mut bigger = Zeroizing::new(Vec::with_capacity(wanted));
            bigger.extend_from_slice(&buffer);
            buffer = bigger;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_aged(dir: &Path, name: &str, age: Duration) -> PathBuf {
        let path = dir.join(name);
        let file = File::create(&path).expect("create");
        let at = std::time::SystemTime::now()
            .checked_sub(age)
            .expect("a time in the past");
        file.set_modified(at).expect("set mtime");
        path
    }

    #[test]
    fn a_write_removes_what_killed_writers_of_that_file_left_behind() {
        let dir = tempfile::tempdir().expect("temp dir");
        let old = Duration::from_secs(3600);
        let abandoned = file_aged(dir.path(), ".pin.tmp-abandoned", old);
        let in_flight = file_aged(dir.path(), ".pin.tmp-in-flight", Duration::ZERO);
        let other_file = file_aged(dir.path(), ".health.tmp-old", old);
        write_atomic(&dir.path().join("pin"), b"pinned", true).expect("write");
        assert!(
            !abandoned.exists(),
            "an hour-old temp file of the same file stays"
        );
        assert!(in_flight.exists(), "a temp file being written was removed");
        assert!(other_file.exists(), "another file's temp file was removed");
        assert_eq!(
            std::fs::read(dir.path().join("pin")).expect("read"),
            b"pinned"
        );
    }

    #[test]
    fn every_spelling_of_a_path_resolves_to_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        std::fs::create_dir(root.join("real")).expect("mkdir");
        std::fs::write(root.join("real/vault"), b"v").expect("write");
        std::os::unix::fs::symlink(root.join("real/vault"), root.join("link")).expect("symlink");
        std::os::unix::fs::symlink("real", root.join("dirlink")).expect("symlink");
        std::os::unix::fs::symlink(root.join("real/new"), root.join("dangling")).expect("symlink");
        let vault = root.join("real/vault");
        for spelling in [
            root.join("link"),
            root.join("real/../real/vault"),
            root.join("dirlink/vault"),
            root.join("./real/./vault"),
        ] {
            assert_eq!(resolve(&spelling).expect("resolves"), vault, "{spelling:?}");
        }
        // Not created yet: the target of a dangling symlink, and `..` in
        // parts that do not exist.
        assert_eq!(
            resolve(&root.join("dangling")).expect("resolves"),
            root.join("real/new")
        );
        assert_eq!(
            resolve(&root.join("dirlink/missing/../vault2")).expect("resolves"),
            root.join("real/vault2")
        );
        std::os::unix::fs::symlink(root.join("loop"), root.join("loop")).expect("symlink");
        assert!(resolve(&root.join("loop")).is_err(), "a symlink loop ends");
    }

    #[test]
    fn untrusted_directories_are_refused_with_a_chmod_hint() {
        let dir = tempfile::tempdir().expect("temp dir");
        check_trusted_dir(dir.path(), "the directory").expect("0700, ours");
        for mode in [0o770, 0o707, 0o777, 0o1777] {
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(mode))
                .expect("chmod");
            let error = check_trusted_dir(dir.path(), "the directory").expect_err("refused");
            assert!(
                error.to_string().contains("chmod go-w"),
                "{mode:o}: {error}"
            );
        }
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        check_trusted_dir(dir.path(), "the directory").expect("0755 is fine");
    }

    #[test]
    fn a_lock_file_is_never_a_symlink_or_another_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let target = dir.path().join("victim");
        std::fs::write(&target, b"precious").expect("write");
        let lock = dir.path().join("vault.lock");
        std::os::unix::fs::symlink(&target, &lock).expect("symlink");
        let busy = || EngineError::temporary("busy");
        let error = lock_file(&lock, Duration::ZERO, busy).expect_err("a symlink is refused");
        assert!(error.to_string().contains("symbolic link"), "{error}");
        std::fs::remove_file(&lock).expect("rm");
        std::fs::hard_link(&target, &lock).expect("link");
        let error = lock_file(&lock, Duration::ZERO, busy).expect_err("a second link is refused");
        assert!(error.to_string().contains("single link"), "{error}");
        std::fs::remove_file(&lock).expect("rm");
        let missing_target = dir.path().join("created-through-the-link");
        std::os::unix::fs::symlink(&missing_target, &lock).expect("symlink");
        assert!(lock_file(&lock, Duration::ZERO, busy).is_err());
        assert!(
            !missing_target.exists(),
            "the lock was created through a symlink"
        );
        std::fs::remove_file(&lock).expect("rm");
        let held = lock_file(&lock, Duration::ZERO, busy).expect("a fresh lock");
        let error = lock_file(&lock, Duration::from_millis(50), busy).expect_err("taken");
        assert_eq!(error.to_string(), "busy");
        drop(held);
        assert_eq!(std::fs::read(&target).expect("read"), b"precious");
    }

    #[test]
    fn reads_stop_at_the_cap_whatever_the_input() {
        let zeros = std::fs::File::open("/dev/zero").expect("/dev/zero");
        assert!(read_capped(zeros, 1024 * 1024, 0).expect("reads").is_none());
        let data = vec![7u8; 100_000];
        let read = read_capped(&data[..], 100_000, 0)
            .expect("reads")
            .expect("fits");
        assert_eq!(&read[..], &data[..]);
        assert!(read_capped(&data[..], 99_999, 0).expect("reads").is_none());
    }

    #[test]
    fn plaintext_outputs_leave_no_named_temp_file_and_never_overwrite() {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = dir.path().join("token.json");
        write_new_private(&out, b"secret").expect("written");
        assert_eq!(std::fs::read(&out).expect("read"), b"secret");
        assert_eq!(
            std::fs::metadata(&out).expect("stat").permissions().mode() & 0o777,
            0o600
        );
        assert!(write_new_private(&out, b"other").is_err());
        assert_eq!(std::fs::read(&out).expect("read"), b"secret");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, [std::ffi::OsString::from("token.json")]);
    }

    #[test]
    fn a_reservation_holds_its_space_until_dropped() {
        let dir = tempfile::tempdir().expect("temp dir");
        let target = dir.path().join("vault");
        let reservation = Reservation::new(&target, 100_000).expect("reserved");
        assert_eq!(crate_temp_files(dir.path()), 1);
        let taken: u64 = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").metadata().expect("stat").len())
            .sum();
        assert_eq!(taken, 100_000);
        drop(reservation);
        assert_eq!(crate_temp_files(dir.path()), 0, "the reservation stays");
    }

    fn crate_temp_files(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .expect("list")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            })
            .count()
    }

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(
            unescape_mountinfo(r"/srv/my\040vault\134x"),
            PathBuf::from(r"/srv/my vault\x")
        );
        assert_eq!(unescape_mountinfo(r"/a\9b"), PathBuf::from(r"/a\9b"));
    }
}
