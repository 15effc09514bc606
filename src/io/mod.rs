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

#[cfg(test)]
mod tests {
    /// The file is replaced whole; a link is followed, not replaced; an unwritable place names the path.
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
