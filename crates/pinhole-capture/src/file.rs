//! The capture file formats: pcap and pcapng, parsed by `pcap-file`, with
//! what it leaves to its caller (timestamp resolution of pcapng interfaces,
//! lenient record checks, recovery from a damaged block).

use std::time::Duration;

use pcap_file::PcapError;
use pcap_file::pcap::PcapParser;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::{Block, PcapNgParser};

use crate::decode::{Decoder, LinkType};
use crate::error::CaptureError;

/// pcap file header length.
const PCAP_HEADER: usize = 24;

/// Reads every packet of `file` into `dec`.
pub(crate) fn read_into(file: &[u8], dec: &mut Decoder) -> Result<(), CaptureError> {
    let Some(magic) = file.first_chunk::<4>() else {
        return Err(CaptureError::NotACapture {
            magic: file.to_vec(),
        });
    };
    match u32::from_be_bytes(*magic) {
        0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1 => pcap(file, dec),
        0xa1b2_cd34 | 0x34cd_b2a1 => {
            Err(CaptureError::UnsupportedFormat("modified (Kuznetzov) pcap"))
        }
        0x0a0d_0d0a => pcapng(file, dec),
        _ => Err(CaptureError::NotACapture {
            magic: magic.to_vec(),
        }),
    }
}

fn pcap(file: &[u8], dec: &mut Decoder) -> Result<(), CaptureError> {
    if file.len() < PCAP_HEADER {
        return Err(CaptureError::TruncatedHeader {
            len: file.len(),
            needed: PCAP_HEADER,
        });
    }
    let (mut rest, parser) =
        PcapParser::new(file).map_err(|e| CaptureError::InvalidHeader(e.to_string()))?;
    let header = parser.header();
    let link = LinkType::from_code(u32::from(header.datalink));
    if !link.is_supported() {
        return Err(CaptureError::UnsupportedLinkType(link.code()));
    }
    let nanos = header.ts_resolution == pcap_file::TsResolution::NanoSecond;
    let mut frame = 0;
    while !rest.is_empty() {
        // Raw records: pcap-file's checked packets reject a record whose
        // original length exceeds the snap length, which is how every
        // capture cut by a snap length looks.
        match parser.next_raw_packet(rest) {
            Ok((rem, raw)) => {
                frame += 1;
                let frac = if nanos {
                    u64::from(raw.ts_frac)
                } else {
                    u64::from(raw.ts_frac) * 1000
                };
                let time = Duration::from_secs(u64::from(raw.ts_sec)) + Duration::from_nanos(frac);
                dec.packet(frame, time, link, &raw.data);
                rest = rem;
            }
            Err(e) => {
                dec.file_error(
                    frame + 1,
                    format_args!(
                        "capture ends inside record {} ({} bytes left): {e}",
                        frame + 1,
                        rest.len()
                    ),
                );
                break;
            }
        }
    }
    Ok(())
}

fn pcapng(file: &[u8], dec: &mut Decoder) -> Result<(), CaptureError> {
    let (mut rest, mut parser) = PcapNgParser::new(file).map_err(|e| match e {
        PcapError::IncompleteBuffer => CaptureError::TruncatedHeader {
            len: file.len(),
            // The smallest section header block.
            needed: 28,
        },
        e => CaptureError::InvalidHeader(e.to_string()),
    })?;
    let mut frame = 0;
    let mut supported = false;
    let mut unsupported = None;
    while !rest.is_empty() {
        let block = match parser.next_block(rest) {
            Ok((rem, block)) => {
                rest = rem;
                block
            }
            Err(PcapError::IncompleteBuffer) => {
                dec.file_error(
                    frame + 1,
                    format_args!("capture ends inside a block ({} bytes left)", rest.len()),
                );
                break;
            }
            Err(e) => {
                // The block's frame is intact but its content is not (bad
                // options, say): skip that block only.
                match parser.next_raw_block(rest) {
                    Ok((rem, raw)) => {
                        // Packet, simple packet, enhanced packet blocks.
                        if matches!(raw.type_, 2 | 3 | 6) {
                            frame += 1;
                            dec.bad_frame(frame, format_args!("damaged packet block: {e}"));
                        } else {
                            dec.file_error(
                                frame + 1,
                                format_args!("damaged block {:#x}: {e}", raw.type_),
                            );
                        }
                        rest = rem;
                        continue;
                    }
                    Err(e) => {
                        dec.file_error(
                            frame + 1,
                            format_args!(
                                "capture unreadable from here ({} bytes left): {e}",
                                rest.len()
                            ),
                        );
                        break;
                    }
                }
            }
        };
        let (interface, raw_time, data) = match &block {
            Block::EnhancedPacket(p) => (
                p.interface_id,
                // pcap-file hands the raw count over as nanoseconds,
                // whatever the interface's resolution.
                u64::try_from(p.timestamp.as_nanos()).unwrap_or(u64::MAX),
                &p.data,
            ),
            Block::Packet(p) => (u32::from(p.interface_id), p.timestamp, &p.data),
            // No timestamp in a simple packet block.
            Block::SimplePacket(p) => (0, 0, &p.data),
            Block::InterfaceDescription(i) => {
                let link = LinkType::from_code(u32::from(i.linktype));
                if link.is_supported() {
                    supported = true;
                } else {
                    unsupported.get_or_insert(link.code());
                }
                continue;
            }
            _ => continue,
        };
        frame += 1;
        let Some(idb) = parser.interfaces().get(interface as usize) else {
            dec.bad_frame(
                frame,
                format_args!("packet of interface {interface}, which no block describes"),
            );
            continue;
        };
        let link = LinkType::from_code(u32::from(idb.linktype));
        let time = timestamp(idb, raw_time);
        dec.packet(frame, time, link, data);
    }
    match unsupported {
        Some(code) if !supported => Err(CaptureError::UnsupportedLinkType(code)),
        _ => Ok(()),
    }
}

/// A pcapng timestamp in an interface's units (`if_tsresol`, default
/// microseconds), plus its `if_tsoffset` seconds.
fn timestamp(idb: &InterfaceDescriptionBlock<'_>, raw: u64) -> Duration {
    let mut resol = 6u8;
    let mut offset = 0i64;
    for opt in &idb.options {
        match opt {
            InterfaceDescriptionOption::IfTsResol(r) => resol = *r,
            // A signed number of seconds, stored in an unsigned field.
            InterfaceDescriptionOption::IfTsOffset(o) => offset = *o as i64,
            _ => {}
        }
    }
    let exp = u32::from(resol & 0x7F);
    let per_sec: Option<u128> = if resol & 0x80 != 0 {
        1u128.checked_shl(exp)
    } else {
        10u128.checked_pow(exp)
    };
    let Some(per_sec) = per_sec.filter(|&p| p > 0) else {
        return Duration::ZERO;
    };
    let raw = u128::from(raw);
    let secs = u64::try_from(raw / per_sec).unwrap_or(u64::MAX);
    let frac = raw % per_sec;
    let nanos = if per_sec >= 1_000_000_000 {
        frac / (per_sec / 1_000_000_000)
    } else {
        frac * 1_000_000_000 / per_sec
    };
    let nanos = u32::try_from(nanos.min(999_999_999)).unwrap_or(0);
    let secs = secs.saturating_add_signed(offset);
    Duration::new(secs, nanos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_file::DataLink;

    fn idb(
        options: Vec<InterfaceDescriptionOption<'static>>,
    ) -> InterfaceDescriptionBlock<'static> {
        InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen: 0,
            options,
        }
    }

    #[test]
    fn pcapng_timestamp_resolutions() {
        // Default: microseconds.
        assert_eq!(
            timestamp(&idb(vec![]), 1_500_000_123_456),
            Duration::new(1_500_000, 123_456_000)
        );
        assert_eq!(
            timestamp(
                &idb(vec![InterfaceDescriptionOption::IfTsResol(9)]),
                2_000_000_007
            ),
            Duration::new(2, 7)
        );
        // 2^-10 seconds: 1536 units is 1.5 s.
        assert_eq!(
            timestamp(
                &idb(vec![InterfaceDescriptionOption::IfTsResol(0x8A)]),
                1536
            ),
            Duration::new(1, 500_000_000)
        );
        assert_eq!(
            timestamp(
                &idb(vec![
                    InterfaceDescriptionOption::IfTsResol(3),
                    InterfaceDescriptionOption::IfTsOffset(100)
                ]),
                2500
            ),
            Duration::new(102, 500_000_000)
        );
        // Nonsense resolutions do not panic.
        assert_eq!(
            timestamp(
                &idb(vec![InterfaceDescriptionOption::IfTsResol(0x7F)]),
                u64::MAX
            ),
            Duration::ZERO
        );
        let _ = timestamp(
            &idb(vec![InterfaceDescriptionOption::IfTsResol(0xFF)]),
            u64::MAX,
        );
    }
}
