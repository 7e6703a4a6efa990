//! What a call through Pinhole must show at the OTP peers, checked the
//! same way wherever the peers run (the daemons on loopback, the
//! namespaces behind real firewalls): the MGC saw each MG at a gateway
//! port of its own on the MPR, the Add replies name relay addresses, both
//! Subtracts were answered, and each MG's RTP came from where Pinhole put
//! it (an APS's port B, or the relay itself when the MG opens its own
//! pinholes), nearly all of it, intact.
//!
//! ```
//! use std::net::IpAddr;
//! use pinhole_tests::megaco::through::Span;
//!
//! let relay = Span::new("127.0.0.80".parse::<IpAddr>().unwrap(), 46000..=46199);
//! assert!(relay.contains("127.0.0.80:46010".parse().unwrap()));
//! assert!(!relay.contains("127.0.0.81:46010".parse().unwrap()));
//! ```

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;

use super::{MgReport, MgcReport};

/// Addresses on one IP within a port range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    /// The IP.
    pub ip: IpAddr,
    /// The ports.
    pub ports: RangeInclusive<u16>,
}

impl Span {
    /// `ip` with `ports`.
    pub fn new(ip: IpAddr, ports: RangeInclusive<u16>) -> Self {
        Self { ip, ports }
    }

    /// Whether `a` is one of them.
    pub fn contains(&self, a: SocketAddr) -> bool {
        a.ip() == self.ip && self.ports.contains(&a.port())
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}-{}", self.ip, self.ports.start(), self.ports.end())
    }
}

/// What one call between MG1 and MG2 through Pinhole must show.
#[derive(Clone, Debug)]
pub struct Expect {
    /// The MGs' mIds (MG1, MG2).
    pub mids: [String; 2],
    /// The MPR's gateway ports: where the MGC must see the MGs.
    pub gateway_ports: Span,
    /// The MPR's relay ports: the Add replies' Local.
    pub relay: Span,
    /// Where each MG's Remote points and its RTP comes from.
    pub media_from: [Span; 2],
    /// RTP packets each MG sends.
    pub packets: u32,
    /// Least share of them that must arrive, in percent.
    pub min_percent: u32,
}

impl Expect {
    /// Checks the MGC's report and both MGs' (already
    /// `ensure_success`ed); the report lines for the test's output, or
    /// what is wrong.
    pub fn check(&self, mgc: &MgcReport, mgs: &[MgReport; 2]) -> Result<Vec<String>, String> {
        let mut notes = Vec::new();
        let mut peers = Vec::new();
        for n in 1..=2u8 {
            let want = &self.mids[usize::from(n) - 1];
            let sc = mgc
                .service_change(n)
                .ok_or_else(|| format!("the MGC saw no ServiceChange from MG{n}"))?;
            ensure(&sc.mid == want, || {
                format!("MG{n}'s mId: {sc:?}, want {want}")
            })?;
            ensure(sc.method == "restart", || format!("MG{n}: {sc:?}"))?;
            ensure(self.gateway_ports.contains(sc.peer), || {
                format!(
                    "the MGC sees MG{n} at {}, not a gateway port of {}",
                    sc.peer, self.gateway_ports
                )
            })?;
            peers.push(sc.peer);
        }
        ensure(peers[0] != peers[1], || {
            format!("one gateway port for both MGs: {peers:?}")
        })?;
        ensure(mgc.done_calls == Some(1), || {
            format!("calls done: {:?}", mgc.done_calls)
        })?;
        let mut locals = Vec::new();
        for n in 1..=2u8 {
            let add = mgc
                .add(1, n)
                .ok_or_else(|| format!("no Add reply from MG{n}"))?;
            ensure(self.relay.contains(add.local), || {
                format!(
                    "MG{n}'s Add reply names {}, not a relay address of {}",
                    add.local, self.relay
                )
            })?;
            locals.push(add.local);
        }
        ensure(locals[0] != locals[1], || {
            format!("one relay address for both MGs: {locals:?}")
        })?;
        ensure(mgc.subtracts.len() == 2, || {
            format!("Subtract replies: {:?}", mgc.subtracts)
        })?;
        notes.push(format!(
            "MGC saw MG1 at {} and MG2 at {} (gateway ports), Add replies' Local {} and {} (relay), 2 Subtracts answered",
            peers[0], peers[1], locals[0], locals[1]
        ));
        for (i, r) in mgs.iter().enumerate() {
            let who = format!("MG{} ({})", i + 1, self.mids[i]);
            let from = &self.media_from[i];
            let res = r
                .results
                .first()
                .ok_or_else(|| format!("{who}: no RESULT"))?;
            let remote = res.remote.ok_or_else(|| format!("{who}: no Remote"))?;
            ensure(from.contains(remote), || {
                format!("{who}: Remote {remote}, not in {from}: {res:?}")
            })?;
            ensure(res.rtp_sent == self.packets, || format!("{who}: {res:?}"))?;
            ensure(res.rtp_bad == 0, || format!("{who}: damaged RTP: {res:?}"))?;
            ensure(
                res.rtp_received * 100 >= self.packets * self.min_percent,
                || {
                    format!(
                        "{who} got {} of {} RTP packets: {res:?}",
                        res.rtp_received, self.packets
                    )
                },
            )?;
            ensure(res.from.iter().all(|f| from.contains(*f)), || {
                format!("{who}: RTP from outside {from}: {res:?}")
            })?;
            ensure(res.subtracted, || format!("{who}: not subtracted: {res:?}"))?;
            notes.push(format!(
                "{who}: sent {} and received {} of {} RTP packets intact, Remote {remote}, from {:?}",
                res.rtp_sent, res.rtp_received, self.packets, res.from
            ));
        }
        Ok(notes)
    }
}

fn ensure(ok: bool, why: impl FnOnce() -> String) -> Result<(), String> {
    if ok { Ok(()) } else { Err(why()) }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

    use super::*;

    const MGC: &str = "\
EVENT servicechange mg=1 mid=[127.0.0.84]:29504 peer=127.0.0.80:29510 method=restart reason=901
EVENT servicechange mg=2 mid=<mg2> peer=127.0.0.80:29511 method=restart reason=901
EVENT add_reply call=1 mg=1 context=1 termination=rtp/1 local=127.0.0.80:46000
EVENT add_reply call=1 mg=2 context=1 termination=rtp/1 local=127.0.0.80:46002 remote=127.0.0.80:46000
EVENT subtract_reply call=1 mg=1 context=1 request=rtp/1 terminations=rtp/1
EVENT subtract_reply call=1 mg=2 context=1 request=* terminations=rtp/1
EVENT done calls=1
";

    fn mg(received: u32, from: &str) -> MgReport {
        let line = format!(
            "RESULT call=1 context=1 termination=rtp/1 rtp_sent=50 rtp_received={received} \
             rtp_bad=0 remote={from} from={from} subtracted=true\n"
        );
        MgReport::parse("mg", &line, "", ExitStatus::from_raw(0)).expect("a RESULT line")
    }

    fn expect() -> Expect {
        let ip = |s: &str| s.parse::<IpAddr>().expect("literal");
        Expect {
            mids: ["[127.0.0.84]:29504".into(), "<mg2>".into()],
            gateway_ports: Span::new(ip("127.0.0.80"), 29510..=29519),
            relay: Span::new(ip("127.0.0.80"), 46000..=46199),
            media_from: [
                Span::new(ip("127.0.0.81"), 46200..=46299),
                Span::new(ip("127.0.0.82"), 46300..=46399),
            ],
            packets: 50,
            min_percent: 90,
        }
    }

    #[test]
    fn a_call_through_pinhole_passes_and_its_faults_are_named() {
        let mgc = MgcReport::parse(MGC, "", ExitStatus::from_raw(0)).expect("parses");
        let good = [mg(49, "127.0.0.81:46200"), mg(50, "127.0.0.82:46300")];
        let notes = expect().check(&mgc, &good).expect("passes");
        assert_eq!(notes.len(), 3);
        assert!(notes[1].contains("received 49 of 50"), "{notes:?}");

        let few = [mg(44, "127.0.0.81:46200"), mg(50, "127.0.0.82:46300")];
        let e = expect().check(&mgc, &few).expect_err("44 of 50 is too few");
        assert!(e.contains("got 44 of 50"), "{e}");

        let around = [mg(50, "127.0.0.81:46200"), mg(50, "127.0.0.80:46000")];
        let e = expect()
            .check(&mgc, &around)
            .expect_err("media around the APS");
        assert!(e.contains("not in 127.0.0.82:46300-46399"), "{e}");

        let direct = MGC.replace("peer=127.0.0.80:29511", "peer=127.0.0.85:29505");
        let mgc2 = MgcReport::parse(&direct, "", ExitStatus::from_raw(0)).expect("parses");
        let e = expect()
            .check(&mgc2, &good)
            .expect_err("MG2 reached the MGC directly");
        assert!(e.contains("not a gateway port"), "{e}");
    }
}
