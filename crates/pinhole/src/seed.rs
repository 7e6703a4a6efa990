//! Engine seeds from the operating system.

use std::io::Read;

/// 32 random bytes from `/dev/urandom`, mixed with the time and process id
/// should it be unreadable (it is on every supported system).
pub(crate) fn os_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .is_ok();
    if !ok {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        seed[..16].copy_from_slice(&t.to_le_bytes());
        seed[16..20].copy_from_slice(&std::process::id().to_le_bytes());
    }
    seed
}
