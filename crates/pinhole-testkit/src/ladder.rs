//! Checking a figure's message ladder: the numbered steps of a patent
//! figure found, in order, among the datagrams a [`World`] recorded.

use std::net::SocketAddr;

use crate::World;

/// One numbered step of a figure.
pub struct Step {
    /// The figure's step number.
    pub number: u16,
    /// Who sends (a name `check_ladder`'s `name` gives).
    pub from: &'static str,
    /// Who receives.
    pub to: &'static str,
    /// How the rung's text starts.
    pub what: &'static str,
}

/// A step.
pub const fn step(number: u16, from: &'static str, to: &'static str, what: &'static str) -> Step {
    Step {
        number,
        from,
        to,
        what,
    }
}

/// Finds the steps in the ladder in order, naming each end with `name`.
pub fn check_ladder(
    w: &World,
    name: &dyn Fn(SocketAddr) -> String,
    steps: &[Step],
) -> Result<Vec<usize>, String> {
    let lines: Vec<(String, String, String)> = w
        .ladder()
        .iter()
        .map(|r| (name(r.src), name(r.dst), r.what.clone()))
        .collect();
    let mut at = 0;
    let mut found = Vec::new();
    for s in steps {
        let hit = lines
            .iter()
            .enumerate()
            .skip(at)
            .find(|(_, (f, t, what))| f == s.from && t == s.to && what.starts_with(s.what));
        match hit {
            Some((i, _)) => {
                found.push(i);
                at = i + 1;
            }
            None => {
                let text: Vec<String> = lines
                    .iter()
                    .map(|(f, t, w)| format!("{f} -> {t}: {w}"))
                    .collect();
                return Err(format!(
                    "step {} ({} -> {}: {}) not found after line {at}:\n{}",
                    s.number,
                    s.from,
                    s.to,
                    s.what,
                    text.join("\n")
                ));
            }
        }
    }
    Ok(found)
}

/// The lines of `d` that differ from `orig`'s (same number of lines).
pub fn changed_lines(orig: &[u8], d: &[u8]) -> Vec<String> {
    let o: Vec<&[u8]> = orig.split(|&b| b == b'\n').collect();
    let n: Vec<&[u8]> = d.split(|&b| b == b'\n').collect();
    assert_eq!(o.len(), n.len(), "same number of lines");
    o.iter()
        .zip(&n)
        .filter(|(x, y)| x != y)
        .map(|(_, y)| String::from_utf8_lossy(y).trim_end().to_owned())
        .collect()
}
