//! Reading the small files a user names (bearer tokens, PEM certificates and keys) with a bound,
//! so a wrong path (a disk image, `/dev/zero`) is refused in one line instead of read into memory
//! until the process dies.

use std::io::Read;
use std::path::Path;

/// The most `--auth-token-file` holds: thousands of tokens.
pub const MAX_TOKEN_FILE_BYTES: u64 = 1 << 20;

/// The most a PEM file holds: a system CA bundle is ~200 KiB.
pub const MAX_PEM_FILE_BYTES: u64 = 16 << 20;

/// The whole of `path`, unless it holds more than `max` bytes (an `InvalidData` error that says
/// so). The size is checked as it is read: `/dev/zero` and pipes report none.
pub fn read_bounded(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("it is larger than {} MiB", max >> 20),
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_past_the_bound_is_refused_without_reading_it_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, vec![b'a'; (1 << 20) + 1]).unwrap();
        let err = read_bounded(&path, 1 << 20).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert_eq!(err.to_string(), "it is larger than 1 MiB");
        std::fs::write(&path, vec![b'a'; 1 << 20]).unwrap();
        assert_eq!(read_bounded(&path, 1 << 20).unwrap().len(), 1 << 20);
        #[cfg(unix)]
        assert!(read_bounded(Path::new("/dev/zero"), 1 << 20).is_err());
    }
}
