//! File formats shared by the CLI, the C API and the tests.
pub mod npy;

use crate::error::{Error, Result};
use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so readers never
/// see a half-written file. A `path` that is a symbolic link has its target written (the link stays a
/// link), as a plain write would.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let resolved;
    let path = match std::fs::read_link(path) {
        Ok(target) => {
            resolved = path.parent().map_or(target.clone(), |dir| dir.join(&target));
            &resolved
        }
        Err(_) => path,
    };
    remove_stale_temporaries(path);
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

/// Removes `NAME.<pid>.tmp` files next to `path` left by writers that were killed mid-write (a process that
/// no longer exists): each can be as large as the file, and nothing else would ever delete them. Writers
/// that are still running keep theirs. Where liveness cannot be checked (no /proc), nothing is removed.
fn remove_stale_temporaries(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else { return };
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(pid) = file.to_str().and_then(|f| f.strip_prefix(name)).and_then(|r| r.strip_prefix('.')).and_then(|r| r.strip_suffix(".tmp")) else {
            continue;
        };
        if pid.parse::<u32>().is_ok_and(|p| p != std::process::id() && !Path::new(&format!("/proc/{p}")).exists()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    /// The file is replaced whole; a link is followed, not replaced; an unwritable place names the path.
    /// A temporary left by a writer that no longer exists is removed by the next write of the same file; one
    /// of a live process (this one's parent) and unrelated files stay.
    #[test]
    #[cfg(target_os = "linux")]
    fn stale_temporaries_of_dead_writers_are_removed() {
        let dir = std::env::temp_dir().join(format!("rateclust_stale_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // A pid that is not running: beyond the kernel's pid_max.
        let dead = dir.join("out.npy.4194305.tmp");
        let live = dir.join(format!("out.npy.{}.tmp", std::os::unix::process::parent_id()));
        let other = dir.join("other.npy.4194305.tmp");
        for f in [&dead, &live, &other] {
            std::fs::write(f, b"partial").unwrap();
        }
        super::write_atomically(&dir.join("out.npy"), b"whole").unwrap();
        assert!(!dead.exists(), "the dead writer's temporary is still there");
        assert!(live.exists() && other.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn atomic_write_replaces_files_and_follows_links() {
        let dir = std::env::temp_dir().join(format!("rateclust_atomic_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("target.txt");
        super::write_atomically(&target, b"one").unwrap();
        super::write_atomically(&target, b"two").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"two");
        #[cfg(unix)]
        {
            let link = dir.join("link.txt");
            std::os::unix::fs::symlink("target.txt", &link).unwrap();
            super::write_atomically(&link, b"three").unwrap();
            assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
            assert_eq!(std::fs::read(&target).unwrap(), b"three");
        }
        let e = super::write_atomically(&dir.join("missing/x.txt"), b"x").unwrap_err();
        assert!(e.to_string().contains("missing/x.txt"), "{e}");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), if cfg!(unix) { 2 } else { 1 }, "no temporary file left");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
