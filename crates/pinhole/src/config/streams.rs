//! `[streams]` (both roles): the limits of TCP and TLS signaling
//! connections; `[tls]` of the MPR (its certificate, mutual TLS, trust for
//! connections it opens) and of the APS (trust in the MPR, its client
//! certificate). Paths are as written: relative ones from the daemon's
//! working directory.

use std::path::PathBuf;
use std::time::Duration;

use pinhole_core::types::Transport;
use pinhole_net::stream::StreamLimits;
use serde::Deserialize;

use super::{Invalid, invalid, secs};

/// `[streams]`: what one TCP or TLS signaling connection may take.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct StreamsSection {
    /// Connections open at once, inbound and outbound. Default 1024.
    pub(crate) max_connections: usize,
    /// Inbound connections from one IP address. Default 64.
    pub(crate) max_per_ip: usize,
    /// TCP connect and TLS handshake, together. Default 10.
    pub(crate) handshake_timeout_secs: u64,
    /// A connection with no whole message or keepalive for this long is
    /// closed. Default 120 (an APS pings every 25 s).
    pub(crate) idle_timeout_secs: u64,
    /// A message must arrive whole this long after its first byte (slow
    /// senders). Default 10.
    pub(crate) message_timeout_secs: u64,
    /// Unsent bytes per connection before it is closed (a peer that does
    /// not read). Default 262144.
    pub(crate) max_write_queue_bytes: usize,
}

impl Default for StreamsSection {
    fn default() -> Self {
        let l = StreamLimits::default();
        Self {
            max_connections: l.max_connections,
            max_per_ip: l.max_per_ip,
            handshake_timeout_secs: l.handshake_timeout.as_secs(),
            idle_timeout_secs: l.idle_timeout.as_secs(),
            message_timeout_secs: l.message_timeout.as_secs(),
            max_write_queue_bytes: l.max_write_queue,
        }
    }
}

impl StreamsSection {
    pub(super) fn validate(&self) -> Result<StreamLimits, Invalid> {
        if !(1..=1_000_000).contains(&self.max_connections) {
            return Err(invalid("streams.max_connections", "must be 1 to 1000000"));
        }
        if !(1..=self.max_connections).contains(&self.max_per_ip) {
            return Err(invalid(
                "streams.max_per_ip",
                "must be 1 to streams.max_connections",
            ));
        }
        // The largest SIP message (64 KiB of headers) must fit.
        if !(65_536..=64 * 1024 * 1024).contains(&self.max_write_queue_bytes) {
            return Err(invalid(
                "streams.max_write_queue_bytes",
                "must be 65536 to 67108864",
            ));
        }
        Ok(StreamLimits {
            max_connections: self.max_connections,
            max_per_ip: self.max_per_ip,
            handshake_timeout: secs(
                "streams.handshake_timeout_secs",
                self.handshake_timeout_secs,
            )?,
            idle_timeout: secs("streams.idle_timeout_secs", self.idle_timeout_secs)?,
            message_timeout: secs("streams.message_timeout_secs", self.message_timeout_secs)?,
            max_write_queue: self.max_write_queue_bytes,
        })
    }
}

/// `[tls]` of the MPR. Without it the MPR listens for no TLS.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct MprTlsSection {
    /// The MPR's certificate chain (PEM). Required.
    pub(crate) cert: PathBuf,
    /// Its private key (PEM). Required.
    pub(crate) key: PathBuf,
    /// CA of the APSs' client certificates (PEM): offered ones are
    /// verified against it. Default none.
    #[serde(default)]
    pub(crate) client_ca: Option<PathBuf>,
    /// Refuse a TLS connection without a client certificate from
    /// `client_ca` (mutual TLS; the network's credential still
    /// authenticates the Registration). Default false.
    #[serde(default)]
    pub(crate) require_client_cert: bool,
    /// Trust for TLS connections the MPR opens toward public peers
    /// (`sips:` URIs): their certificates must chain to it and name their
    /// IP address. Default none: no such connection is opened.
    #[serde(default)]
    pub(crate) ca: Option<PathBuf>,
}

impl MprTlsSection {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        if self.require_client_cert && self.client_ca.is_none() {
            return Err(invalid(
                "tls.require_client_cert",
                "needs tls.client_ca (the CA the APS certificates chain to)",
            ));
        }
        Ok(())
    }
}

/// `[tls]` of the APS: how it trusts the MPR over `upstream = "tls"`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApsTlsSection {
    /// The CA the MPR's certificate chains to (PEM); the certificate must
    /// name the MPR's IP address. Required.
    pub(crate) ca: PathBuf,
    /// The APS's client certificate (PEM), for an MPR that asks for one.
    #[serde(default)]
    pub(crate) cert: Option<PathBuf>,
    /// Its private key (PEM); with `cert`.
    #[serde(default)]
    pub(crate) key: Option<PathBuf>,
}

impl ApsTlsSection {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        if self.cert.is_some() != self.key.is_some() {
            return Err(invalid("tls.cert", "tls.cert and tls.key go together"));
        }
        Ok(())
    }
}

/// A transport as written in the file.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum TransportName {
    /// UDP datagrams.
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
}

impl From<TransportName> for Transport {
    fn from(t: TransportName) -> Self {
        match t {
            TransportName::Udp => Self::Udp,
            TransportName::Tcp => Self::Tcp,
            TransportName::Tls => Self::Tls,
        }
    }
}

/// The APS's keepalive on its connection to the MPR.
pub(super) fn keepalive(key: &str, v: u64) -> Result<Duration, Invalid> {
    secs(key, v)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::super::testing::{APS_MIN, MPR_MIN, aps_err, mpr_err};

    #[test]
    fn bad_values_name_the_key() {
        let cases = [
            (
                format!("{MPR_MIN}[streams]\nmax_connections = 0\n"),
                "streams.max_connections: must be 1 to 1000000",
            ),
            (
                format!("{MPR_MIN}[streams]\nmax_connections = 10\nmax_per_ip = 11\n"),
                "streams.max_per_ip: must be 1 to streams.max_connections",
            ),
            (
                format!("{MPR_MIN}[streams]\nmax_write_queue_bytes = 100\n"),
                "streams.max_write_queue_bytes: must be 65536 to 67108864",
            ),
            (
                format!("{MPR_MIN}[streams]\nidle_timeout_secs = 0\n"),
                "streams.idle_timeout_secs: must be at least 1 second",
            ),
            (
                format!(
                    "{MPR_MIN}[tls]\ncert = \"a.pem\"\nkey = \"a.key\"\nrequire_client_cert = true\n"
                ),
                "tls.require_client_cert: needs tls.client_ca",
            ),
        ];
        for (text, want) in cases {
            let got = mpr_err(&text);
            assert!(got.contains(want), "{want:?} not in {got:?}");
        }
        let cases = [
            (
                format!("{APS_MIN}upstream = \"tls\"\n"),
                "upstream: \"tls\" needs a [tls] section",
            ),
            (
                format!("{APS_MIN}[tls]\nca = \"ca.pem\"\ncert = \"a.pem\"\n"),
                "tls.cert: tls.cert and tls.key go together",
            ),
        ];
        for (text, want) in cases {
            let got = aps_err(&text);
            assert!(got.contains(want), "{want:?} not in {got:?}");
        }
    }
}
