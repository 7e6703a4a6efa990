//! Proptest strategies for engine tests.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;

/// Any socket address, IPv4 or IPv6 (about half each), any port.
pub fn socket_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port)),
        (any::<[u8; 16]>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port)),
    ]
}

/// A 96-bit STUN transaction id.
pub fn transaction_id() -> impl Strategy<Value = [u8; 12]> {
    any::<[u8; 12]>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    #[test]
    fn socket_addr_yields_both_families() {
        let mut runner = TestRunner::deterministic();
        let s = socket_addr();
        let (mut v4, mut v6) = (0, 0);
        for _ in 0..200 {
            match s.new_tree(&mut runner).unwrap().current() {
                SocketAddr::V4(_) => v4 += 1,
                SocketAddr::V6(_) => v6 += 1,
            }
        }
        assert!(v4 > 20 && v6 > 20, "v4 {v4} v6 {v6}");
        let a = transaction_id().new_tree(&mut runner).unwrap().current();
        let b = transaction_id().new_tree(&mut runner).unwrap().current();
        assert_ne!(a, b);
    }
}
