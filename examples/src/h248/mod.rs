//! The smart H.248 media gateway of Fig. 14 (no APS) on real sockets
//! (`h248_smart_mg`): a plain media gateway ([`mg`], sans-IO) with
//! `pinhole_h248`'s ALG in its smart gateway mode
//! ([`pinhole_h248::alg::ApsConfig::terminal`]) beside it in the same
//! process ([`smart`]), as the simulated Fig. 14 has them on one host.
//! The ALG's socket is registered with the MPR; the gateway's own socket
//! talks only to the ALG; the media pinholes open from the gateway's RTP
//! ports before its Add reply leaves.
//!
//! ```
//! use pinhole_core::ports::PortRange;
//! use pinhole_examples::h248::mg::{Gateway, MgConfig, MgEvent};
//!
//! let mut mg = Gateway::new(MgConfig {
//!     mid: "<mg1.example>".into(),
//!     media_ip: "10.1.0.10".parse().unwrap(),
//!     media_ports: PortRange::new(4000, 4099).unwrap(),
//!     first_transaction: 7,
//! });
//! assert!(mg.service_change().starts_with(b"MEGACO/1 <mg1.example>\r\nTransaction = 7"));
//! let add = b"MEGACO/1 [192.0.2.5]:2944\r\nTransaction = 3 {\r\n  Context = $ {\r\n    \
//!     Add = $ {\r\n      Media {\r\n        Local {\r\nv=0\r\nc=IN IP4 $\r\nm=audio $ RTP/AVP 0\r\n        }\r\n      }\r\n    }\r\n  }\r\n}\r\n";
//! let reply = mg.handle(add).unwrap();
//! let text = String::from_utf8(reply).unwrap();
//! assert!(text.contains("Reply = 3 {"));
//! assert!(text.contains("Add = rtp/1"));
//! assert!(text.contains("m=audio 4000 RTP/AVP 0"));
//! assert!(matches!(mg.poll_event(), Some(MgEvent::Added { call: 1, context: 1, remote: None, .. })));
//! ```

pub mod mg;
pub mod smart;
