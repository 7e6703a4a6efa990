//! SIP: Fig. 11 with an APS in each network (sipp phones), Fig. 12 with
//! smart terminals and no APS, and a hold longer than the firewalls' UDP
//! timeout followed by a resume.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use pinhole_tests::sipp::sdp::MediaDirection;

use super::control::{intact_of, smart_ua_args};
use super::{Scenario, aps_call, basic_call, call_up, hang_up, wrap_up};
use crate::bed::{APS_IP, EXT_IP, MPR_IP, Ns, PHONE2_IP, TCP_TIMEOUT};
use crate::ctx::{
    ApsOptions, Ctx, MprOptions, SIP_PORT, SIP_WAIT, TLS_PORT, aps_metrics, aps_sip, example_bin,
    metric, mpr_addr, mpr_metrics, phone_media, rtp_line,
};

pub(crate) const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "sip::hold_longer_than_udp_timeout",
        negative_control: false,
        known_bug: None,
        run: hold_resume,
    },
    Scenario {
        name: "sip::fig11_with_aps",
        negative_control: false,
        known_bug: None,
        run: fig11,
    },
    Scenario {
        name: "sip::baresip_softphone_with_aps",
        negative_control: false,
        known_bug: None,
        run: baresip,
    },
    Scenario {
        name: "sip::tls_to_the_mpr_tcp_to_the_phones",
        negative_control: false,
        known_bug: None,
        run: tls_upstream,
    },
    Scenario {
        name: "sip::baresip_over_tls_from_the_public_side",
        negative_control: false,
        known_bug: None,
        run: baresip_tls,
    },
    Scenario {
        name: "sip::fig12_smart_terminals_over_tls",
        negative_control: false,
        known_bug: None,
        run: fig12_tls,
    },
    Scenario {
        name: "sip::fig12_smart_terminals_no_aps",
        negative_control: false,
        known_bug: None,
        run: fig12,
    },
];

/// Fig. 11: sipp phones, each behind its APS; the caller's APS reserves
/// and binds before the INVITE leaves.
fn fig11(ctx: &mut Ctx) -> Result<()> {
    ctx.start_sip_daemons()?;
    let call = basic_call(ctx, 0, "media")?;
    let m = ctx.note_relay()?;
    ensure!(
        m.contains("pinhole_signaling_total{protocol=\"sip\",event=\"sdp_rewritten\"} 2"),
        "the MPR did not rewrite both SDP bodies"
    );
    ctx.note_drops()?;
    hang_up(ctx, call)
}

/// Issue 13: each APS keeps one TLS connection to the MPR, opened from
/// inside through its nftables firewall (mutual TLS, certificates from
/// `pinhole certs`); the sipp phones speak SIP over TCP to their APS. A
/// call with media both ways; then the call sits idle longer than the
/// firewalls' TCP conntrack timeout, with only the APSs' CRLF keepalives
/// on the connections, which survive; then APS1's connection is killed
/// (`ss -K`): APS1 reconnects and registers again, the media goes on; then
/// fw2 forgets APS2's connection silently (its conntrack entry deleted):
/// APS2 calls it dead when its pings go unanswered, reconnects, and the
/// BYE crosses both new connections.
fn tls_upstream(ctx: &mut Ctx) -> Result<()> {
    ctx.start_mpr_with(MprOptions {
        tls: true,
        require_client_cert: true,
        ..MprOptions::default()
    })?;
    for i in 0..2 {
        ctx.start_aps(
            i,
            ApsOptions {
                tls: true,
                ..ApsOptions::default()
            },
        )?;
    }
    let idle = TCP_TIMEOUT + Duration::from_secs(5);
    let pause = idle + Duration::from_secs(25);
    let media = [ctx.media_socket(0)?, ctx.media_socket(1)?];
    let uas = ctx
        .uas(1, "uas_basic.xml", phone_media(1), pause)
        .tcp()
        .spawn()
        .context("callee sipp")?;
    let uac = ctx
        .uac(0, "uac_basic.xml", aps_sip(0), 1, phone_media(0), pause)
        .tcp()
        .spawn()
        .context("caller sipp")?;
    let call = call_up(ctx, 0, uac, uas, media)?;
    call.two_way(ctx, "over TLS and TCP", 100)?;
    let m = ctx.metrics(Ns::Inet, mpr_metrics())?;
    let inbound = metric(&m, "pinhole_stream_opened_total{direction=\"inbound\"}").unwrap_or(0.0);
    let tls_in = metric(&m, "pinhole_stream_messages_total{direction=\"in\"}").unwrap_or(0.0);
    ctx.note(format!(
        "MPR: {inbound} connections accepted, {tls_in} messages over them"
    ));
    ensure!(inbound >= 2.0, "the APSs did not connect over TLS");
    ensure!(
        metric(&m, "pinhole_sessions_open").unwrap_or(0.0) >= 1.0,
        "no call at the MPR"
    );

    // Idle past the firewalls' TCP timeout: the keepalives hold the
    // conntrack entries, so nothing reconnects.
    std::thread::sleep(idle);
    for i in 0..2 {
        let m = ctx.metrics(Ns::Corp(i), aps_metrics(i))?;
        let re = metric(&m, "pinhole_stream_reconnects_total").unwrap_or(-1.0);
        ctx.note(format!(
            "APS{}: {re} reconnects after {} s idle (TCP timeout {} s)",
            i + 1,
            idle.as_secs(),
            TCP_TIMEOUT.as_secs()
        ));
        ensure!(
            re == 0.0,
            "APS{}'s connection did not survive the idle time",
            i + 1
        );
    }
    for i in 0..2 {
        let tracked = ctx.bed.exec(
            Ns::Fw(i),
            "conntrack",
            &["-L", "-p", "tcp", "--dport", &TLS_PORT.to_string()],
        )?;
        ensure!(
            tracked.contains("ESTABLISHED"),
            "fw{} no longer tracks the TLS connection:\n{tracked}",
            i + 1
        );
    }

    // Kill APS1's connection from inside, as a crashed firewall would.
    let dport = format!("{TLS_PORT}");
    ctx.bed.exec(
        Ns::Corp(0),
        "ss",
        &["-K", "dst", &MPR_IP.to_string(), "dport", "=", &dport],
    )?;
    ctx.wait_metric(
        Ns::Corp(0),
        aps_metrics(0),
        "pinhole_stream_reconnects_total 1",
        Duration::from_secs(15),
    )
    .context("APS1 did not reconnect")?;
    ctx.wait_metric(
        Ns::Corp(0),
        aps_metrics(0),
        "pinhole_client_registered 1",
        Duration::from_secs(15),
    )?;
    call.two_way(ctx, "after the reconnect", 100)?;

    // fw2 forgets APS2's connection without a reset (its state flushed;
    // with tcp_loose 0 the connection's next segments are invalid there
    // and go nowhere): APS2 hears no pong for 2.5 keepalives, closes it,
    // opens a new one and registers over it.
    let flushed = ctx.bed.exec(
        Ns::Fw(1),
        "conntrack",
        &["-D", "-p", "tcp", "--dport", &TLS_PORT.to_string()],
    );
    ctx.note(format!(
        "fw2: conntrack -D of the TLS connection: {flushed:?}"
    ));
    ctx.wait_metric(
        Ns::Corp(1),
        aps_metrics(1),
        "pinhole_stream_reconnects_total 1",
        Duration::from_secs(20),
    )
    .context("APS2 did not notice its dead connection and reconnect")?;
    ctx.wait_metric(
        Ns::Corp(1),
        aps_metrics(1),
        "pinhole_client_registered 1",
        Duration::from_secs(15),
    )?;
    let m = ctx.metrics(Ns::Corp(1), aps_metrics(1))?;
    ctx.note(format!(
        "APS2: connection closed as idle {} time(s), reconnected",
        metric(&m, "pinhole_stream_closed_total{reason=\"idle\"}").unwrap_or(0.0)
    ));
    // The MPR closed corp2's replaced connection when the route moved: one
    // connection per network is open there.
    ctx.wait_metric(
        Ns::Inet,
        mpr_metrics(),
        "pinhole_stream_connections 2\n",
        Duration::from_secs(5),
    )
    .context("the MPR kept corp2's replaced connection")?;
    call.two_way(ctx, "after fw2 forgot the connection", 100)?;
    // The BYE (after sipp's pause) crosses both new connections.
    wrap_up(ctx, call)
}

/// Fig. 12: no APS anywhere; two smart terminals register themselves, the
/// caller reserves and binds, the callee binds, media both ways.
fn fig12(ctx: &mut Ctx) -> Result<()> {
    ctx.start_mpr()?;
    fig12_calls(ctx, &[])
}

/// Fig. 12 with each smart terminal on one TLS connection to the MPR,
/// opened from inside through its nftables firewall (issue 13): its
/// Registration, CMPH reserve and SIP go up it, the MPR's SIP for it comes
/// down it; media both ways.
fn fig12_tls(ctx: &mut Ctx) -> Result<()> {
    ctx.start_mpr_with(MprOptions {
        tls: true,
        ..MprOptions::default()
    })?;
    let ca = ctx.certs()?.join("ca.pem");
    fig12_calls(
        ctx,
        &[
            "--mpr".into(),
            crate::ctx::mpr_tls().to_string(),
            "--tls-ca".into(),
            ca.display().to_string(),
        ],
    )?;
    let m = ctx.metrics(Ns::Inet, mpr_metrics())?;
    let accepted = metric(&m, "pinhole_stream_opened_total{direction=\"inbound\"}").unwrap_or(0.0);
    let msgs = metric(&m, "pinhole_stream_messages_total{direction=\"in\"}").unwrap_or(0.0);
    ctx.note(format!(
        "MPR: {accepted} TLS connections accepted, {msgs} messages in over them"
    ));
    ensure!(accepted >= 2.0, "the terminals did not connect over TLS");
    // Registrations, reserve and binds' replies, INVITE, 200, ACK, BYE...
    ensure!(msgs >= 6.0, "only {msgs} messages came over TLS");
    Ok(())
}

/// Two `sip_smart_ua` terminals (with `extra` arguments, which override
/// the defaults) call from corp1 to corp2 through a running MPR.
fn fig12_calls(ctx: &mut Ctx, extra: &[String]) -> Result<()> {
    let ua = example_bin("sip_smart_ua")?;
    let args = |i: usize, role: &[String]| {
        let mut a = smart_ua_args(i, role);
        // `extra` is option, value pairs: a given option's value replaces
        // the default's, others are added.
        for kv in extra.chunks(2) {
            match a.iter().position(|x| *x == kv[0]) {
                Some(at) if kv.len() == 2 && at + 1 < a.len() => a[at + 1].clone_from(&kv[1]),
                _ => a.extend(kv.iter().cloned()),
            }
        }
        a
    };
    ctx.bed
        .spawn("ua2", Ns::Corp(1), &ua, &args(1, &["--answer".into()]))?;
    ctx.bed
        .wait_log("ua2", "waiting for a call", Duration::from_secs(15))?;
    ctx.bed.spawn(
        "ua1",
        Ns::Corp(0),
        &ua,
        &args(0, &["--call".into(), "sip:bob@corp2.example".into()]),
    )?;
    let ok1 = ctx.bed.wait_exit("ua1", Duration::from_secs(40))?;
    let ok2 = ctx.bed.wait_exit("ua2", Duration::from_secs(10))?;
    for (i, ok) in [(1, ok1), (2, ok2)] {
        let log = ctx.bed.log(&format!("ua{i}"));
        let line = rtp_line(&log);
        ctx.note(format!("corp{i} smart terminal: {line}"));
        ensure!(ok, "sip_smart_ua in corp{i} failed:\n{log}");
        let got = intact_of(&line).ok_or_else(|| anyhow!("no intact count in {line:?}"))?;
        ensure!(
            got >= 95,
            "corp{i}'s terminal received only {got} of 100 packets"
        );
    }
    ctx.note_relay()?;
    ctx.note_drops()?;
    Ok(())
}

/// A call, media, then a hold (re-INVITE a=sendonly) during which no RTP
/// flows at all for longer than the UDP timeout (only the APSs'
/// keepalives cross the firewalls), then a resume with media both ways
/// through the same media pinholes.
fn hold_resume(ctx: &mut Ctx) -> Result<()> {
    ctx.start_sip_daemons()?;
    let timeout = ctx.udp_timeout();
    // Each sipp pause (after the first ACK, on hold, after the resume).
    let pause = (timeout * 4 / 5).max(Duration::from_secs(5));
    let mut call = aps_call(ctx, 0, ("uac_hold.xml", "uas_hold.xml"), pause)?;
    call.two_way(ctx, "before hold", 50)?;
    let silent_since = Instant::now();
    let pinholes = media_pinholes(ctx)?;
    for (i, p) in pinholes.iter().enumerate() {
        ctx.note(format!("fw{}: media pinholes before hold: {p:?}", i + 1));
    }
    // The resume is the third offer the callee gets (call, hold, resume).
    let offers = call.uas.wait_received_sdps(3, pause * 3 + SIP_WAIT)?;
    let answers = call.uac.wait_received_sdps(3, SIP_WAIT)?;
    let hold_offer = &offers[1];
    ensure!(
        hold_offer.sdp.audio_direction() == Some(MediaDirection::SendOnly),
        "the second offer is not a hold (a=sendonly): {:?}",
        hold_offer.sdp.audio_direction()
    );
    let to_callee = answers[2]
        .audio_addr()
        .context("resume answer: no audio address")?;
    let to_caller = offers[2]
        .audio_addr()
        .context("resume offer: no audio address")?;
    // Let the resume's ACK through before the media.
    std::thread::sleep(Duration::from_millis(300));
    let silent = silent_since.elapsed();
    ctx.note(format!(
        "hold: no RTP either way for {:.1} s (UDP timeout {} s); resume names {to_caller} / {to_callee}",
        silent.as_secs_f64(),
        timeout.as_secs()
    ));
    ensure!(
        silent > timeout,
        "the hold ({silent:?}) was not longer than the UDP timeout"
    );
    let after = media_pinholes(ctx)?;
    for (i, p) in after.iter().enumerate() {
        ctx.note(format!("fw{}: media pinholes after hold: {p:?}", i + 1));
        ensure!(
            pinholes[i].iter().all(|m| p.contains(m)),
            "fw{}: a media pinhole closed during the hold: before {:?}, after {p:?}",
            i + 1,
            pinholes[i]
        );
    }
    call.to = [to_callee, to_caller];
    call.two_way(ctx, "after resume", 100)?;
    wrap_up(ctx, call)
}

/// Each firewall's conntrack mappings of the APS's media ports toward the
/// MPR (`APS:port → public mapping`).
fn media_pinholes(ctx: &Ctx) -> Result<[Vec<String>; 2]> {
    let mut out: [Vec<String>; 2] = Default::default();
    for (i, o) in out.iter_mut().enumerate() {
        *o = ctx
            .bed
            .conntrack(i)?
            .into_iter()
            .filter(|e| {
                e.src.ip() == APS_IP[i]
                    && e.dst.ip() == mpr_addr().ip()
                    && e.src.port() != SIP_PORT
                    && e.dst.port() != SIP_PORT
            })
            .map(|e| format!("{} → {} as {}", e.src, e.dst, e.mapped))
            .collect();
        o.sort();
    }
    Ok(out)
}

/// A real softphone: baresip (headless: a sine source, no sound card,
/// `sndfile` dumping the decoded audio) as corp1's second phone, with APS1
/// as its outbound proxy, calls corp2's sipp phone through APS2. corp2's
/// test socket checks baresip's RTP (one SSRC, PCMU, in sequence) and sends
/// RTP back; baresip's decoded-audio dump shows it arrived.
fn baresip(ctx: &mut Ctx) -> Result<()> {
    ctx.start_sip_daemons()?;
    let phone = Baresip {
        ns: Ns::Corp(0),
        ip: PHONE2_IP[0],
        account: format!(
            "<sip:alice@corp1.example>;regint=0;outbound=\"sip:{}\";audio_codecs=PCMU",
            aps_sip(0)
        ),
        extra: String::new(),
        label: "baresip (corp1)",
    };
    baresip_calls_corp2(ctx, &phone)?;
    ctx.note_relay()?;
    ctx.note_drops()?;
    Ok(())
}

/// Issue 13: baresip as a public phone on the internet, speaking SIP over
/// TLS to the MPR (verifying its certificate against the test CA), calls
/// corp2's sipp phone behind APS2. Its INVITE, ACK and BYE cross TLS (the
/// MPR record-routes twice: TLS toward baresip, UDP toward corp2); media
/// both ways.
fn baresip_tls(ctx: &mut Ctx) -> Result<()> {
    ctx.start_mpr_with(MprOptions {
        tls: true,
        ..MprOptions::default()
    })?;
    ctx.start_aps(1, ApsOptions::default())?;
    let certs = ctx.certs()?;
    let phone = Baresip {
        ns: Ns::Ext,
        ip: EXT_IP,
        account: format!(
            "<sip:carol@example.net;transport=tls>;regint=0;outbound=\"sip:{MPR_IP}:{TLS_PORT};transport=tls\";audio_codecs=PCMU"
        ),
        extra: format!("sip_cafile {}/ca.pem\n", certs.display()),
        label: "baresip (public, TLS)",
    };
    baresip_calls_corp2(ctx, &phone)?;
    let m = ctx.metrics(Ns::Inet, mpr_metrics())?;
    let accepted = metric(&m, "pinhole_stream_opened_total{direction=\"inbound\"}").unwrap_or(0.0);
    let msgs = metric(&m, "pinhole_stream_messages_total{direction=\"in\"}").unwrap_or(0.0);
    ctx.note(format!(
        "MPR: {accepted} TLS connections accepted, {msgs} messages in over them"
    ));
    ensure!(accepted >= 1.0, "baresip did not connect over TLS");
    // INVITE, ACK and BYE at least.
    ensure!(msgs >= 3.0, "only {msgs} messages came over TLS");
    ctx.note_relay()?;
    ctx.note_drops()?;
    Ok(())
}

/// A baresip phone: where it runs and its account line.
struct Baresip {
    ns: Ns,
    ip: std::net::Ipv4Addr,
    account: String,
    extra: String,
    label: &'static str,
}

/// `phone` (headless: a sine source, no sound card, `sndfile` dumping the
/// decoded audio) calls corp2's sipp phone through APS2. corp2's test
/// socket checks baresip's RTP (one SSRC, PCMU, in sequence) and sends RTP
/// back; baresip's decoded-audio dump shows it arrived.
fn baresip_calls_corp2(ctx: &mut Ctx, phone: &Baresip) -> Result<()> {
    let bin = which("baresip")
        .ok_or_else(|| anyhow!("baresip not found (apt-get install baresip-core)"))?;
    let dir = ctx.bed.dir.join("baresip");
    std::fs::create_dir_all(&dir)?;
    let config = format!(
        "poll_method epoll\nsip_listen {}:5060\naudio_player aufile,/dev/null\naudio_source ausine,440\n\
         ausrc_srate 48000\nauplay_srate 48000\nausrc_channels 2\nauplay_channels 2\n\
         rtp_ports 47000-47010\nmodule_path /usr/lib/baresip/modules\nmodule g711.so\n\
         module ausine.so\nmodule aufile.so\nmodule sndfile.so\nmodule_app account.so\n\
         module_app menu.so\nsnd_path {}\n{}",
        phone.ip,
        dir.display(),
        phone.extra
    );
    std::fs::write(dir.join("config"), config)?;
    std::fs::write(dir.join("accounts"), format!("{}\n", phone.account))?;
    let media = ctx.media_socket(1)?;
    let mut uas = ctx
        .uas(1, "uas_basic.xml", phone_media(1), Duration::from_secs(1))
        .spawn()
        .context("callee sipp")?;
    ctx.bed.spawn(
        "baresip",
        phone.ns,
        &bin,
        &[
            "-f".into(),
            dir.display().to_string(),
            "-t".into(),
            "8".into(),
            "-e".into(),
            "/dial sip:service@corp2.example".into(),
        ],
    )?;
    let offer = uas.wait_received_sdps(1, SIP_WAIT)?.remove(0);
    let to = offer
        .audio_addr()
        .context("the offer has no audio address")?;
    ctx.note(format!(
        "SIP: {} at {} called corp2's sipp phone; the offer it got names {to}",
        phone.label, phone.ip
    ));
    // Two seconds of our RTP toward baresip while taking its RTP.
    media.set_read_timeout(Some(Duration::from_millis(20)))?;
    let start = Instant::now();
    let (mut sent, mut got, mut bad) = (0u16, 0u32, 0u32);
    let mut ssrcs = Vec::new();
    let mut last_seq: Option<u16> = None;
    let mut gaps = 0u32;
    let mut buf = [0u8; 2048];
    while start.elapsed() < Duration::from_secs(4) {
        if sent < 100 && start.elapsed() >= Duration::from_millis(20) * u32::from(sent) {
            media.send_to(&pinhole_tests::rtp::packet(0xba5e_0001, sent), to)?;
            sent += 1;
        }
        if let Ok((n, _)) = media.recv_from(&mut buf) {
            let p = buf.get(..n).unwrap_or_default();
            match p {
                [0x80, pt, s0, s1, _, _, _, _, c0, c1, c2, c3, ..]
                    if *pt & 0x7f == 0 && n == 172 =>
                {
                    got += 1;
                    let ssrc = u32::from_be_bytes([*c0, *c1, *c2, *c3]);
                    if !ssrcs.contains(&ssrc) {
                        ssrcs.push(ssrc);
                    }
                    let seq = u16::from_be_bytes([*s0, *s1]);
                    if last_seq.is_some_and(|l| seq != l.wrapping_add(1)) {
                        gaps += 1;
                    }
                    last_seq = Some(seq);
                }
                _ => bad += 1,
            }
        }
    }
    let ok = ctx.bed.wait_exit("baresip", Duration::from_secs(15))?;
    let outcome = uas.wait()?;
    let dec = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().ends_with("-dec.wav"))
        .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .unwrap_or(0);
    // 44-byte WAV header, then 16-bit mono samples at 8 kHz: 320 bytes per packet.
    let decoded_packets = dec.saturating_sub(44) / 320;
    ctx.note(format!(
        "corp2 phone: received {got} PCMU packets from baresip (SSRCs {ssrcs:x?}, {gaps} sequence gaps, {bad} other datagrams)"
    ));
    ctx.note(format!(
        "corp2 phone sent {sent} packets; baresip decoded {decoded_packets} packets' worth of audio"
    ));
    ensure!(ok, "baresip failed:\n{}", ctx.bed.log("baresip"));
    outcome.ensure_success().context("callee sipp")?;
    ensure!(
        got >= 100 && ssrcs.len() == 1 && gaps <= 2 && bad == 0,
        "baresip's media did not arrive intact"
    );
    ensure!(
        decoded_packets >= 80,
        "baresip decoded only {decoded_packets} of {sent} packets"
    );
    Ok(())
}

fn which(tool: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}
