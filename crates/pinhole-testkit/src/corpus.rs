//! The test corpus: real VoIP signalling messages and captures nobody here
//! wrote (see its `MANIFEST.md`). The repository keeps a verbatim copy in
//! `tests/corpus` (checked against its `SHA256SUMS`), so tests find it
//! wherever the clone lives; the shared original beside the project is the
//! fallback.

use std::io;
use std::path::{Component, Path, PathBuf};

/// The corpus folder: the repository's copy `tests/corpus`, or else the
/// shared original `../shared/corpus` beside the project, resolved
/// lexically (it need not exist).
pub fn shared_dir() -> PathBuf {
    let copy = lexical(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus"));
    if copy.join("MANIFEST.md").exists() {
        return copy;
    }
    lexical(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"))
}

fn lexical(raw: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The files directly in corpus sub-folder `sub` (e.g. `"sip"`) whose name
/// ends with `suffix` (e.g. `".sip"`, or `""` for all), sorted by name.
pub fn files(sub: &str, suffix: &str) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(shared_dir().join(sub))? {
        let entry = entry?;
        if entry.file_type()?.is_file() && entry.file_name().to_string_lossy().ends_with(suffix) {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_dir_is_resolved_and_listed() {
        let dir = shared_dir();
        assert!(dir.is_absolute());
        assert!(dir.ends_with("corpus"), "{}", dir.display());
        assert!(!dir.components().any(|c| c == Component::ParentDir));
        // The repository's copy is always there.
        assert!(dir.join("MANIFEST.md").exists(), "{}", dir.display());
        {
            let sdp = files("sdp", ".sdp").unwrap();
            assert!(!sdp.is_empty());
            assert!(sdp.windows(2).all(|w| w[0] < w[1]));
            assert!(
                sdp.iter()
                    .all(|p| p.extension().is_some_and(|e| e == "sdp"))
            );
        }
    }
}
