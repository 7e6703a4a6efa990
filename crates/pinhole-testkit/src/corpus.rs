//! The shared test corpus (`/work/shared/corpus`, real VoIP signalling
//! messages; see its `MANIFEST.md`).

use std::io;
use std::path::{Component, Path, PathBuf};

/// The corpus folder, `CARGO_MANIFEST_DIR/../../../shared/corpus` resolved
/// lexically (it need not exist).
pub fn shared_dir() -> PathBuf {
    let raw = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus");
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
        assert!(dir.ends_with("shared/corpus"), "{}", dir.display());
        assert!(!dir.components().any(|c| c == Component::ParentDir));
        if dir.join("MANIFEST.md").exists() {
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
