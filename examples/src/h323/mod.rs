//! An H.323 terminal for one call, caller or callee, on real sockets: the
//! end-to-end tests' H.323 peer. Every PDU is encoded and decoded by rasn
//! from the ITU modules (`pinhole-h323-oracle`), a codec independent of the
//! Pinhole ALG under test.
//!
//! It follows H.225.0 and H.245 as an endpoint does:
//!
//! - **Call signalling** (H.225.0 §7): Q.931 over TCP in TPKT frames, a
//!   2-octet call reference (the flag set on the called side's messages),
//!   Bearer capability in SETUP, Cause in RELEASE COMPLETE, the
//!   `H323-UserInformation` in the User-user element. The caller sends
//!   SETUP (destination and source h323-IDs, `sourceCallSignalAddress`,
//!   `h245Address` in separate mode, `h245Tunneling`, `fastStart`) and takes
//!   CALL PROCEEDING (a proxy's and the callee's), PROGRESS, ALERTING,
//!   CONNECT and FACILITY in any order; the callee answers SETUP with CALL
//!   PROCEEDING, ALERTING and CONNECT.
//! - **H.245** ([`Mode::Separate`]: its own TCP connection;
//!   [`Mode::Tunnel`]: in `h245Control`, FACILITY with an `empty` body when
//!   no other message goes): whoever receives an `h245Address` (SETUP, CALL
//!   PROCEEDING, ALERTING, CONNECT, FACILITY startH245) and has no H.245
//!   connection opens one to it; a terminal that gave its own address
//!   accepts one on its listener; the first connection either way is the
//!   channel, a second is closed (H.225.0 §8.2.3, H.323 §8.1.7). Then
//!   TerminalCapabilitySet (G.711 µ-law) and its Ack, MasterSlaveDetermination
//!   and its Ack, OpenLogicalChannel (session 1, our RTCP) and its Ack (our
//!   RTP and RTCP); RTP goes to the `mediaChannel` of the Ack for our channel.
//! - **fastStart** ([`Mode::FastStart`], no H.245): the caller proposes a
//!   forward channel (its `mediaControlChannel`) and a reverse one (its
//!   `mediaChannel` and `mediaControlChannel`); the callee accepts both in
//!   CALL PROCEEDING, ALERTING and CONNECT (forward with its own media
//!   addresses, reverse echoing the caller's `mediaChannel`). The callee
//!   follows the caller's Setup: fastStart, tunnelling, or separate H.245.
//! - **Media**: `packets` RTP packets (160-byte PCMU payloads, [`crate::rtp`])
//!   at 50/s from the media socket, which also receives (symmetric RTP); an
//!   RTCP receiver report each second from the next port.
//! - **Release**: [`Config::hold`] after its media started, the caller sends
//!   CloseLogicalChannel and EndSessionCommand, and RELEASE COMPLETE when the
//!   callee's EndSessionCommand came back (or 2 s later); with fastStart,
//!   RELEASE COMPLETE at once. The callee answers EndSessionCommand with its
//!   own and ends on RELEASE COMPLETE.
//!
//! [`Call`] is the sans-IO core; [`run`] the async runner; the
//! `h323_terminal` binary prints the [`Report`] as one JSON line.
//!
//! ```no_run
//! # async fn f() -> anyhow::Result<()> {
//! use pinhole_examples::h323::{run, Config, Mode};
//! let callee = Config::callee("bob@corp2.example", "127.0.0.1:1720".parse()?, "127.0.0.1:5000".parse()?);
//! let report = run(Config { mode: Mode::Tunnel, ..callee }).await?;
//! println!("{}", report.to_json());
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::time::Duration;

mod call;
mod runner;
pub mod smart;
pub mod wire;

pub use call::{Call, CallConfig, Origin, Output};
pub use runner::run;

/// How H.245 runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// H.245 on its own TCP connection (`h245Address`).
    Separate,
    /// H.245 tunnelled in `h245Control` (`h245Tunneling` TRUE).
    Tunnel,
    /// fastStart in SETUP and the answers, no H.245.
    #[value(name = "faststart")]
    FastStart,
}

impl Mode {
    /// Its name in the report and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Separate => "separate",
            Self::Tunnel => "tunnel",
            Self::FastStart => "faststart",
        }
    }
}

/// Caller or callee.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Sends the SETUP.
    Caller,
    /// Answers one SETUP.
    Callee,
}

impl Role {
    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Self::Caller => "caller",
            Self::Callee => "callee",
        }
    }
}

/// Who ended the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Released {
    /// We sent RELEASE COMPLETE.
    Local,
    /// We received RELEASE COMPLETE.
    Remote,
    /// The call-signalling connection closed without one.
    Closed,
    /// The overall timeout.
    Timeout,
}

impl Released {
    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Remote => "remote",
            Self::Closed => "closed",
            Self::Timeout => "timeout",
        }
    }
}

/// A terminal's configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Our h323-ID, e.g. `alice@corp1.example`.
    pub alias: String,
    /// Our call-signalling address: the callee listens on it; the caller
    /// names it in `sourceCallSignalAddress`, listens on it too and
    /// connects from its IP.
    pub signal: SocketAddr,
    /// Caller: the h323-ID to call.
    pub call: Option<String>,
    /// Caller: where the SETUP goes (a proxy, or the callee itself).
    pub via: Option<SocketAddr>,
    /// Our H.245 listener in separate mode; `None`: the signal IP, an
    /// ephemeral port.
    pub h245: Option<SocketAddr>,
    /// Caller, separate mode: name our H.245 listener in SETUP. `false`
    /// waits for an `h245Address` from the callee or a proxy.
    pub offer_h245: bool,
    /// Our RTP address (fixed port); RTCP on the next port.
    pub media: SocketAddr,
    /// How H.245 runs (a callee follows the SETUP).
    pub mode: Mode,
    /// RTP packets to send, 50 per second.
    pub packets: u32,
    /// Caller: how long the call stays up after our media started.
    pub hold: Duration,
    /// The whole run's bound.
    pub timeout: Duration,
    /// Seeds the call reference, the call and conference GUIDs, the MSD
    /// number and the SSRC.
    pub seed: u64,
}

impl Config {
    /// A callee's configuration with the defaults (separate mode, 100
    /// packets, 30 s timeout).
    pub fn callee(alias: &str, signal: SocketAddr, media: SocketAddr) -> Self {
        Self {
            alias: alias.into(),
            signal,
            call: None,
            via: None,
            h245: None,
            offer_h245: true,
            media,
            mode: Mode::Separate,
            packets: 100,
            hold: Duration::from_secs(3),
            timeout: Duration::from_secs(30),
            seed: u64::from(media.port()) << 16 | u64::from(signal.port()),
        }
    }

    /// A caller's configuration with the defaults: calls `target` by
    /// sending the SETUP to `via`.
    pub fn caller(
        alias: &str,
        signal: SocketAddr,
        media: SocketAddr,
        target: &str,
        via: SocketAddr,
    ) -> Self {
        Self {
            call: Some(target.into()),
            via: Some(via),
            ..Self::callee(alias, signal, media)
        }
    }

    /// Caller when it has a target.
    pub fn role(&self) -> Role {
        if self.call.is_some() {
            Role::Caller
        } else {
            Role::Callee
        }
    }
}

/// What a terminal did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Caller or callee.
    pub role: Role,
    /// The mode in effect (a callee's follows the SETUP).
    pub mode: Mode,
    /// Our h323-ID.
    pub alias: String,
    /// RTP packets sent.
    pub sent: u64,
    /// Datagrams received on the RTP port.
    pub received: u64,
    /// Intact test RTP packets among them.
    pub intact: u64,
    /// Their source addresses, in order of first arrival.
    pub rtp_sources: Vec<SocketAddr>,
    /// RTCP packets sent and received.
    pub rtcp_sent: u64,
    /// RTCP datagrams received on the RTCP port.
    pub rtcp_received: u64,
    /// Where our RTP went.
    pub media_dest: Option<SocketAddr>,
    /// Who ended the call (`None`: it never started).
    pub released_by: Option<Released>,
    /// The messages in order (see [`Call::messages`]).
    pub messages: Vec<String>,
}

fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn json_list<T>(v: &[T], f: impl Fn(&T) -> String) -> String {
    format!(
        "[{}]",
        v.iter()
            .map(|x| json_str(&f(x)))
            .collect::<Vec<_>>()
            .join(",")
    )
}

impl Report {
    /// One JSON line.
    pub fn to_json(&self) -> String {
        let opt = |o: Option<String>| o.map_or_else(|| "null".into(), |s| json_str(&s));
        format!(
            concat!(
                "{{\"role\":{},\"mode\":{},\"alias\":{},\"sent\":{},\"received\":{},",
                "\"intact\":{},\"rtp_sources\":{},\"rtcp_sent\":{},\"rtcp_received\":{},",
                "\"media_dest\":{},\"released_by\":{},\"messages\":{}}}"
            ),
            json_str(self.role.name()),
            json_str(self.mode.name()),
            json_str(&self.alias),
            self.sent,
            self.received,
            self.intact,
            json_list(&self.rtp_sources, |a| a.to_string()),
            self.rtcp_sent,
            self.rtcp_received,
            opt(self.media_dest.map(|a| a.to_string())),
            opt(self.released_by.map(|r| r.name().to_owned())),
            json_list(&self.messages, Clone::clone),
        )
    }

    /// The messages that start with `prefix` (`"> "`, `"< "`, `"> h245 "` …),
    /// the prefix removed.
    pub fn messages_with(&self, prefix: &str) -> Vec<&str> {
        self.messages
            .iter()
            .filter_map(|m| m.strip_prefix(prefix))
            .collect()
    }
}

#[cfg(test)]
mod tests;
