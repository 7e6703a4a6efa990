//! Two scripted SIP phones on loopback (a caller and a callee) that send
//! test RTP to whatever their peer's SDP names and count what comes back.

use std::net::{IpAddr, SocketAddr, UdpSocket};

use anyhow::{Context, Result, bail};
use pinhole_sip::Message;
use pinhole_sip::media::sdp_body;

/// A phone: its SIP socket, its RTP socket, and the media it exchanged.
pub struct Phone {
    /// Its SIP socket.
    pub sip: UdpSocket,
    /// Its RTP socket (the address its SDP names).
    pub rtp: UdpSocket,
    /// Where its RTP goes: the address the peer's SDP named.
    pub peer_media: Option<SocketAddr>,
    /// RTP payloads received, by sequence number.
    pub received: Vec<u16>,
    /// Datagrams received from somewhere other than `peer_media`.
    pub foreign: u64,
    /// Where the latest SIP message came from: answers go there.
    pub signaling_peer: Option<SocketAddr>,
}

impl Phone {
    /// A phone on `ip`, on ephemeral ports.
    pub fn new(ip: IpAddr) -> Result<Self> {
        let sip = UdpSocket::bind((ip, 0)).context("SIP socket")?;
        let rtp = UdpSocket::bind((ip, 0)).context("RTP socket")?;
        for s in [&sip, &rtp] {
            s.set_nonblocking(true)?;
        }
        Ok(Self {
            sip,
            rtp,
            peer_media: None,
            received: Vec::new(),
            foreign: 0,
            signaling_peer: None,
        })
    }

    fn sdp(&self) -> Result<String> {
        let a = self.rtp.local_addr()?;
        Ok(format!(
            "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
             m=audio {port} RTP/AVP 0\r\na=rtcp-mux\r\n",
            ip = a.ip(),
            port = a.port()
        ))
    }

    /// A request or response with `first` as its start line, the dialog's
    /// headers, and `sdp` as body when given.
    fn message(
        &self,
        first: &str,
        cseq: &str,
        to_tag: bool,
        sdp: Option<String>,
    ) -> Result<Vec<u8>> {
        let body = sdp.unwrap_or_default();
        let via = self.sip.local_addr()?;
        let to_tag = if to_tag { ";tag=callee" } else { "" };
        let ctype = if body.is_empty() {
            String::new()
        } else {
            "Content-Type: application/sdp\r\n".into()
        };
        Ok(format!(
            "{first}\r\nVia: SIP/2.0/UDP {via};branch=z9hG4bK{cseq_n}\r\n\
             From: <sip:alice@example.com>;tag=caller\r\nTo: <sip:bob@example.com>{to_tag}\r\n\
             Call-ID: embed-1\r\nCSeq: {cseq}\r\nContact: <sip:{via}>\r\nMax-Forwards: 70\r\n\
             {ctype}Content-Length: {}\r\n\r\n{body}",
            body.len(),
            cseq_n = cseq.split(' ').next().unwrap_or("1"),
        )
        .into_bytes())
    }

    /// The caller's INVITE with its offer.
    pub fn invite(&self) -> Result<Vec<u8>> {
        self.message(
            "INVITE sip:bob@example.com SIP/2.0",
            "1 INVITE",
            false,
            Some(self.sdp()?),
        )
    }

    /// The callee's 200 with its answer.
    pub fn ok_with_answer(&self) -> Result<Vec<u8>> {
        self.message("SIP/2.0 200 OK", "1 INVITE", true, Some(self.sdp()?))
    }

    /// The caller's ACK.
    pub fn ack(&self) -> Result<Vec<u8>> {
        self.message("ACK sip:bob@example.com SIP/2.0", "1 ACK", true, None)
    }

    /// The caller's BYE.
    pub fn bye(&self) -> Result<Vec<u8>> {
        self.message("BYE sip:bob@example.com SIP/2.0", "2 BYE", true, None)
    }

    /// The callee's 200 to the BYE.
    pub fn ok_to_bye(&self) -> Result<Vec<u8>> {
        self.message("SIP/2.0 200 OK", "2 BYE", true, None)
    }

    /// The next SIP message waiting, if any; its SDP teaches the phone
    /// where to send media.
    pub fn receive(&mut self) -> Result<Option<Vec<u8>>> {
        let mut buf = [0u8; 4096];
        let Ok((n, from)) = self.sip.recv_from(&mut buf) else {
            return Ok(None);
        };
        self.signaling_peer = Some(from);
        let bytes = buf[..n].to_vec();
        let msg = Message::parse(&bytes).context("the B2BUA sent unparsable SIP")?;
        if let Some(body) = sdp_body(&msg, self.sip.local_addr()?.ip())? {
            let Some(e) = body.endpoints().first() else {
                bail!("an SDP without streams");
            };
            self.peer_media = Some(e.addr);
        }
        Ok(Some(bytes))
    }

    /// Sends a SIP message to where the latest one came from.
    pub fn reply(&self, bytes: &[u8]) -> Result<()> {
        let to = self.signaling_peer.context("nobody to answer")?;
        self.sip.send_to(bytes, to)?;
        Ok(())
    }

    /// Sends RTP packet `seq` to the peer's media address.
    pub fn send_rtp(&self, seq: u16) -> Result<()> {
        let to = self.peer_media.context("no media address yet")?;
        let mut p = vec![0x80, 0x00];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&[0; 8]);
        p.extend_from_slice(b"pinhole-embed");
        self.rtp.send_to(&p, to)?;
        Ok(())
    }

    /// Reads the RTP that arrived.
    pub fn read_rtp(&mut self) {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = self.rtp.recv_from(&mut buf) {
            if Some(from) != self.peer_media || n < 4 {
                self.foreign += 1;
                continue;
            }
            self.received.push(u16::from_be_bytes([buf[2], buf[3]]));
        }
    }
}
