//! Behaviour of the simulated network and firewalls.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::{Datagram, FirewallConfig, FirewallId, MappingBehavior, Net, ZoneId, base_instant};

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn dg(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Datagram {
    Datagram {
        src,
        dst,
        payload: payload.to_vec(),
    }
}

const MPR: &str = "198.51.100.10:3478";
const OTHER: &str = "198.51.100.20:3478";
const A: &str = "10.1.0.2:6000";
const B: &str = "10.2.0.2:7000";
const FW1_IP: &str = "203.0.113.1";
const FW2_IP: &str = "203.0.113.2";

struct World {
    net: Net,
    internet: ZoneId,
    corp1: ZoneId,
    fw1: FirewallId,
    fw2: FirewallId,
}

fn world_with(seed: u64, cfg1: FirewallConfig, cfg2: FirewallConfig) -> World {
    let mut net = Net::new(base_instant(), seed);
    let internet = net.add_zone("internet");
    let corp1 = net.add_zone("corp1");
    let corp2 = net.add_zone("corp2");
    net.add_host_ip(internet, sa(MPR).ip());
    net.add_host_ip(internet, sa(OTHER).ip());
    net.add_host_ip(corp1, sa(A).ip());
    net.add_host_ip(corp2, sa(B).ip());
    let fw1 = net.add_firewall(corp1, internet, ip(FW1_IP), cfg1);
    let fw2 = net.add_firewall(corp2, internet, ip(FW2_IP), cfg2);
    World {
        net,
        internet,
        corp1,
        fw1,
        fw2,
    }
}

fn world() -> World {
    world_with(1, FirewallConfig::default(), FirewallConfig::default())
}

fn symmetric() -> FirewallConfig {
    FirewallConfig {
        mapping: MappingBehavior::AddressAndPortDependent,
        ..FirewallConfig::default()
    }
}

/// Sends and runs the network until idle; returns what was delivered.
fn exchange(net: &mut Net, d: Datagram) -> Vec<Datagram> {
    net.send(d);
    let mut out = Vec::new();
    while let Some(d) = net.step() {
        out.push(d);
    }
    out
}

/// A sends to the MPR; returns A's public address as the MPR saw it.
fn open(w: &mut World) -> SocketAddr {
    let got = exchange(&mut w.net, dg(sa(A), sa(MPR), b"reg"));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].dst, sa(MPR));
    got[0].src
}

#[test]
fn outbound_then_reply_passes() {
    let mut w = world();
    let public = open(&mut w);
    assert_eq!(public, SocketAddr::new(ip(FW1_IP), 20000));
    assert_eq!(w.net.elapsed(), Duration::from_millis(10));
    let got = exchange(&mut w.net, dg(sa(MPR), public, b"ok"));
    assert_eq!(got, vec![dg(sa(MPR), sa(A), b"ok")]);
    let c = w.net.firewall(w.fw1).counters();
    assert_eq!(
        (c.outbound, c.inbound_passed, c.mappings_created),
        (1, 1, 1)
    );
    assert_eq!(c.dropped_inbound(), 0);
    let maps = w.net.firewall(w.fw1).mappings();
    assert_eq!(maps.len(), 1);
    assert_eq!((maps[0].inside, maps[0].public), (sa(A), public));
    assert_eq!(maps[0].remotes, vec![sa(MPR)]);
    assert_eq!(
        w.net.firewall(w.fw1).public_addr(sa(A), sa(MPR)),
        Some(public)
    );
    assert_eq!(w.net.firewall(w.fw1).public_addr(sa(A), sa(OTHER)), None);
}

#[test]
fn unsolicited_inbound_is_dropped_and_counted() {
    let mut w = world();
    let target = SocketAddr::new(ip(FW1_IP), 20000);
    assert!(exchange(&mut w.net, dg(sa(MPR), target, b"hi")).is_empty());
    let c = w.net.firewall(w.fw1).counters();
    assert_eq!((c.dropped_no_mapping, c.inbound_passed), (1, 0));
    assert_eq!(w.net.drops().firewall, 1);
    assert_eq!(w.net.firewall(w.fw2).counters().dropped_inbound(), 0);
}

#[test]
fn reply_from_another_port_or_host_is_filtered() {
    let mut w = world();
    let public = open(&mut w);
    let other_port = SocketAddr::new(sa(MPR).ip(), 3479);
    assert!(exchange(&mut w.net, dg(other_port, public, b"x")).is_empty());
    assert!(exchange(&mut w.net, dg(sa(OTHER), public, b"x")).is_empty());
    assert_eq!(w.net.firewall(w.fw1).counters().dropped_filtered, 2);
    // The real remote still gets in.
    assert_eq!(exchange(&mut w.net, dg(sa(MPR), public, b"x")).len(), 1);
}

#[test]
fn mapping_expires_after_idle_timeout() {
    let mut w = world();
    let public = open(&mut w); // sent at t = 0
    let t0 = w.net.start();
    // Just under the timeout the reply passes (and refreshes the entry).
    w.net.advance_to(t0 + Duration::from_millis(29_990));
    assert_eq!(exchange(&mut w.net, dg(sa(MPR), public, b"x")).len(), 1);
    let refreshed = w.net.now() - Duration::from_millis(10); // firewall saw it at send time
    w.net.advance_to(refreshed + Duration::from_millis(29_999));
    assert_eq!(w.net.firewall(w.fw1).mappings().len(), 1);
    w.net.advance_to(refreshed + Duration::from_secs(30));
    assert!(w.net.firewall(w.fw1).mappings().is_empty());
    assert_eq!(w.net.firewall(w.fw1).counters().mappings_expired, 1);
    assert!(exchange(&mut w.net, dg(sa(MPR), public, b"late")).is_empty());
    let c = w.net.firewall(w.fw1).counters();
    assert_eq!((c.dropped_expired, c.dropped_no_mapping), (1, 0));
    // A new outbound packet opens a new mapping on the next port.
    let again = open(&mut w);
    assert_eq!(again.port(), public.port() + 1);
    assert_eq!(w.net.firewall(w.fw1).counters().mappings_created, 2);
}

#[test]
fn inbound_does_not_refresh_when_configured() {
    let cfg = FirewallConfig {
        inbound_refreshes: false,
        ..FirewallConfig::default()
    };
    let mut w = world_with(1, cfg, FirewallConfig::default());
    let public = open(&mut w);
    let t0 = w.net.start();
    w.net.advance_to(t0 + Duration::from_secs(20));
    assert_eq!(exchange(&mut w.net, dg(sa(MPR), public, b"x")).len(), 1);
    w.net.advance_to(t0 + Duration::from_secs(30));
    assert!(exchange(&mut w.net, dg(sa(MPR), public, b"x")).is_empty());
    assert_eq!(w.net.firewall(w.fw1).counters().dropped_expired, 1);
}

#[test]
fn keepalive_under_timeout_keeps_pinhole() {
    let mut w = world();
    let public = open(&mut w);
    let t0 = w.net.start();
    for i in 1..=15u32 {
        // 2/3 of the 30 s idle timeout (wire-format §5).
        w.net.advance_to(t0 + Duration::from_secs(20) * i);
        let got = exchange(&mut w.net, dg(sa(A), sa(MPR), b"ka"));
        assert_eq!(got[0].src, public);
    }
    assert_eq!(
        w.net.elapsed(),
        Duration::from_secs(300) + Duration::from_millis(10)
    );
    assert_eq!(exchange(&mut w.net, dg(sa(MPR), public, b"x")).len(), 1);
    let c = w.net.firewall(w.fw1).counters();
    assert_eq!(
        (c.mappings_created, c.mappings_expired, c.outbound),
        (1, 0, 16)
    );
}

#[test]
fn endpoint_independent_vs_symmetric_ports() {
    for (cfg, same) in [(FirewallConfig::default(), true), (symmetric(), false)] {
        let mut w = world_with(1, cfg, FirewallConfig::default());
        let p1 = open(&mut w);
        let p2 = exchange(&mut w.net, dg(sa(A), sa(OTHER), b"x"))[0].src;
        assert_eq!(p1 == p2, same, "{p1} {p2}");
        assert_eq!(
            w.net.firewall(w.fw1).mappings().len(),
            if same { 1 } else { 2 }
        );
        // Each remote gets in through its own pinhole only.
        assert_eq!(exchange(&mut w.net, dg(sa(OTHER), p2, b"x")).len(), 1);
        assert_eq!(exchange(&mut w.net, dg(sa(MPR), p1, b"x")).len(), 1);
        if !same {
            assert!(exchange(&mut w.net, dg(sa(OTHER), p1, b"x")).is_empty());
            assert_eq!(w.net.firewall(w.fw1).counters().dropped_filtered, 1);
        }
    }
}

#[test]
fn symmetric_port_exhaustion_drops_outbound() {
    let cfg = FirewallConfig {
        port_range: (40000, 40001),
        ..symmetric()
    };
    let mut w = world_with(1, cfg, FirewallConfig::default());
    open(&mut w);
    assert_eq!(exchange(&mut w.net, dg(sa(A), sa(OTHER), b"x")).len(), 1);
    let third = SocketAddr::new(sa(OTHER).ip(), 9);
    assert!(exchange(&mut w.net, dg(sa(A), third, b"x")).is_empty());
    assert_eq!(w.net.firewall(w.fw1).counters().dropped_ports_exhausted, 1);
    assert_eq!(w.net.drops().firewall, 1);
}

#[test]
fn double_traversal_corp1_to_corp2() {
    let mut w = world();
    let a_pub = open(&mut w);
    let b_pub = exchange(&mut w.net, dg(sa(B), sa(MPR), b"reg"))[0].src;
    assert_eq!(b_pub.ip(), ip(FW2_IP));
    // A's first packet opens fw1 but fw2 filters it: B never sent to A_pub.
    assert!(exchange(&mut w.net, dg(sa(A), b_pub, b"a1")).is_empty());
    assert_eq!(w.net.firewall(w.fw2).counters().dropped_filtered, 1);
    // B's packet crosses fw2 out and fw1 in (A sent to B_pub).
    let got = exchange(&mut w.net, dg(sa(B), a_pub, b"b1"));
    assert_eq!(got, vec![dg(b_pub, sa(A), b"b1")]);
    // Two 10 ms registrations, then two hops (corp2 → internet → corp1); the
    // dropped packet never advanced the clock.
    assert_eq!(w.net.elapsed(), Duration::from_millis(10 + 10 + 20));
    // Now both pinholes are open both ways.
    let got = exchange(&mut w.net, dg(sa(A), b_pub, b"a2"));
    assert_eq!(got, vec![dg(a_pub, sa(B), b"a2")]);
    assert_eq!(w.net.firewall(w.fw1).counters().inbound_passed, 1);
    assert_eq!(w.net.firewall(w.fw2).counters().inbound_passed, 1);
    // Private addresses of the other corp are not routable.
    assert!(exchange(&mut w.net, dg(sa(A), sa(B), b"x")).is_empty());
    assert_eq!(w.net.drops().unroutable, 1);
}

#[test]
fn unknown_addresses_are_unroutable() {
    let mut w = world();
    assert!(exchange(&mut w.net, dg(sa("192.0.2.9:1"), sa(MPR), b"x")).is_empty());
    assert!(exchange(&mut w.net, dg(sa(MPR), sa("192.0.2.9:1"), b"x")).is_empty());
    assert_eq!(w.net.drops().unroutable, 2);
    // Inside one zone delivery is direct.
    let got = exchange(&mut w.net, dg(sa(MPR), sa(OTHER), b"x"));
    assert_eq!(got, vec![dg(sa(MPR), sa(OTHER), b"x")]);
}

#[test]
fn hairpin_through_own_firewall() {
    let mut w = world();
    let a_pub = open(&mut w);
    let second = sa("10.1.0.2:6002");
    // A's second socket sends to A_pub: out through fw1, back in; filtered
    // because A never sent to fw1's own public address from :6000.
    assert!(exchange(&mut w.net, dg(second, a_pub, b"x")).is_empty());
    assert_eq!(w.net.firewall(w.fw1).counters().dropped_filtered, 1);
}

#[test]
fn loss_probability() {
    for (p, lo, hi) in [(1.0, 10_000, 10_000), (0.0, 0, 0), (0.3, 2_800, 3_200)] {
        let mut w = world_with(7, FirewallConfig::default(), FirewallConfig::default());
        w.net.set_loss(w.corp1, w.internet, p);
        for i in 0..10_000u32 {
            w.net.send(dg(sa(A), sa(MPR), &i.to_be_bytes()));
        }
        let mut delivered = 0;
        while w.net.step().is_some() {
            delivered += 1;
        }
        let lost = w.net.drops().lost;
        assert!((lo..=hi).contains(&lost), "p = {p}: lost {lost}");
        assert_eq!(lost + delivered, 10_000);
        // Lost before reaching the firewall.
        assert_eq!(w.net.firewall(w.fw1).counters().outbound, delivered);
        // The reverse direction is not lossy.
        if delivered > 0 {
            let public = w.net.firewall(w.fw1).public_addr(sa(A), sa(MPR)).unwrap();
            assert_eq!(exchange(&mut w.net, dg(sa(MPR), public, b"x")).len(), 1);
        }
    }
}

#[test]
fn default_loss_applies_per_hop() {
    let mut w = world();
    w.net.set_default_loss(1.0);
    w.net.set_loss(w.corp1, w.internet, 0.0);
    assert!(exchange(&mut w.net, dg(sa(MPR), sa(OTHER), b"x")).is_empty());
    assert_eq!(exchange(&mut w.net, dg(sa(A), sa(MPR), b"x")).len(), 1);
    assert_eq!(w.net.drops().lost, 1);
}

/// Runs a lossy, multi-latency scenario; returns (delivery offset, datagram).
fn trace(seed: u64) -> Vec<(Duration, Datagram)> {
    let mut w = world_with(seed, FirewallConfig::default(), symmetric());
    w.net.set_default_loss(0.2);
    w.net
        .set_link_latency(w.corp1, w.internet, Duration::from_millis(3));
    let pub_a = open(&mut w);
    let mut out = Vec::new();
    for i in 0..200u32 {
        let p = i.to_be_bytes();
        w.net.send(dg(sa(A), sa(MPR), &p));
        w.net.send(dg(sa(B), sa(MPR), &p));
        w.net.send(dg(sa(MPR), pub_a, &p));
        w.net.send(dg(sa(OTHER), sa(MPR), &p));
        w.net
            .advance_by(Duration::from_millis(1 + u64::from(i % 3)));
        while let Some(d) = w.net.poll_delivery() {
            out.push((w.net.elapsed(), d));
        }
    }
    while let Some(d) = w.net.step() {
        out.push((w.net.elapsed(), d));
    }
    out
}

#[test]
fn delivery_order_is_deterministic_per_seed() {
    let a = trace(42);
    assert_eq!(a, trace(42));
    assert_ne!(a, trace(43));
    assert!(a.len() > 400, "{}", a.len());
    // Same-time deliveries keep send order; latency differences reorder.
    let mut w = world();
    w.net
        .set_link_latency(w.corp1, w.internet, Duration::from_millis(3));
    w.net.send(dg(sa(OTHER), sa(MPR), b"1"));
    w.net.send(dg(sa(A), sa(MPR), b"2"));
    w.net.send(dg(sa(OTHER), sa(MPR), b"3"));
    let order: Vec<Vec<u8>> = std::iter::from_fn(|| w.net.step())
        .map(|d| d.payload)
        .collect();
    assert_eq!(order, vec![b"2".to_vec(), b"1".to_vec(), b"3".to_vec()]);
}

#[test]
fn partition_blocks_for_a_while() {
    let mut w = world();
    let public = open(&mut w);
    w.net.block(w.corp1, w.internet);
    assert!(exchange(&mut w.net, dg(sa(A), sa(MPR), b"x")).is_empty());
    assert!(exchange(&mut w.net, dg(sa(MPR), public, b"x")).is_empty());
    assert_eq!(w.net.drops().blocked, 2);
    w.net.unblock(w.internet, w.corp1);
    assert_eq!(exchange(&mut w.net, dg(sa(MPR), public, b"x")).len(), 1);
    w.net.block_for(w.internet, w.corp1, Duration::from_secs(5));
    assert!(exchange(&mut w.net, dg(sa(A), sa(MPR), b"x")).is_empty());
    w.net.advance_by(Duration::from_secs(5));
    assert_eq!(exchange(&mut w.net, dg(sa(A), sa(MPR), b"x")).len(), 1);
    assert_eq!(w.net.drops().blocked, 3);
}

#[test]
fn firewall_reboot_forgets_pinholes() {
    let mut w = world();
    let public = open(&mut w);
    w.net.firewall_mut(w.fw1).clear();
    assert!(exchange(&mut w.net, dg(sa(MPR), public, b"x")).is_empty());
    assert_eq!(w.net.firewall(w.fw1).counters().dropped_expired, 1);
}

#[test]
fn clock_never_goes_backwards() {
    let mut w = world();
    w.net.advance_by(Duration::from_secs(3));
    w.net.advance_to(w.net.start());
    assert_eq!(w.net.elapsed(), Duration::from_secs(3));
    assert_eq!(w.net.next_event_time(), None);
    w.net.send(dg(sa(MPR), sa(OTHER), b"x"));
    assert_eq!(
        w.net.next_event_time(),
        Some(w.net.now() + Duration::from_millis(10))
    );
    assert_eq!(w.net.poll_delivery(), None, "not due yet");
    assert_eq!(w.net.in_flight(), 1);
}
