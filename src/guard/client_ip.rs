//! Which address a request really comes from: the TCP peer, or — only when the peer is a trusted
//! proxy — the right-most X-Forwarded-For entry that is not itself a trusted proxy. The left-most
//! entries are whatever the client wrote and buy nothing.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv6Addr};

pub use crate::domain::parse_cidr;

/// IPv4-mapped IPv6 (`::ffff:1.2.3.4`) is the IPv4 address it carries.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// Every `X-Forwarded-For` field line of a request as one list, in order (RFC 9110 §5.3): a proxy
/// that appends its own line instead of merging must not leave the client's line the only one read.
pub fn forwarded_for(headers: &http::HeaderMap) -> Option<String> {
    let mut lines = headers.get_all("x-forwarded-for").iter();
    let first = lines.next()?;
    let mut joined = String::from_utf8_lossy(first.as_bytes()).into_owned();
    for line in lines {
        joined.push(',');
        joined.push_str(&String::from_utf8_lossy(line.as_bytes()));
    }
    Some(joined)
}

/// Whether a request says it was forwarded (any of the headers proxies add).
pub fn carries_forwarding(headers: &http::HeaderMap) -> bool {
    ["x-forwarded-for", "forwarded", "x-real-ip", "x-forwarded-host", "x-forwarded-proto"]
        .iter()
        .any(|name| headers.contains_key(*name))
}

pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    let peer = canonical(peer);
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let Some(header) = forwarded_for else {
        return peer;
    };
    let mut last_trusted = peer;
    for entry in header.rsplit(',') {
        match entry.trim().parse::<IpAddr>().map(canonical) {
            Ok(ip) if is_trusted(&ip) => last_trusted = ip,
            Ok(ip) => return ip,
            // A malformed hop: everything left of it is unverifiable; blame the proxy that passed it.
            Err(_) => return last_trusted,
        }
    }
    last_trusted
}

/// The rate-limit key of an address: IPv4 as is, IPv6 by its /64 (one subscriber's prefix; a
/// visitor rotating through it must not get a fresh bucket per address).
pub fn ip_key(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            format!("{}/64", Ipv6Addr::from(bits))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| parse_cidr(s).unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(client_ip(ip("203.0.113.9"), Some("1.1.1.1"), &trusted), ip("203.0.113.9"));
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_hop_is_the_client() {
        let trusted = nets(&["10.0.0.0/8", "192.0.2.1"]);
        let header = "6.6.6.6, 198.51.100.7, 192.0.2.1";
        assert_eq!(client_ip(ip("10.1.2.3"), Some(header), &trusted), ip("198.51.100.7"));
    }

    #[test]
    fn a_forged_leftmost_entry_never_changes_the_key() {
        let trusted = nets(&["10.0.0.0/8"]);
        for forged in ["1.2.3.4", "5.6.7.8", "garbage", "::1"] {
            let header = format!("{forged}, 198.51.100.7");
            assert_eq!(client_ip(ip("10.0.0.1"), Some(&header), &trusted), ip("198.51.100.7"));
        }
    }

    #[test]
    fn every_forwarded_for_line_counts_in_order() {
        let mut headers = http::HeaderMap::new();
        headers.append("x-forwarded-for", "6.6.6.6".parse().unwrap());
        headers.append("x-forwarded-for", "198.51.100.7, 10.0.0.5".parse().unwrap());
        let joined = forwarded_for(&headers).unwrap();
        assert_eq!(joined, "6.6.6.6,198.51.100.7, 10.0.0.5");
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(client_ip(ip("10.0.0.1"), Some(&joined), &trusted), ip("198.51.100.7"));
        assert!(carries_forwarding(&headers) && !carries_forwarding(&http::HeaderMap::new()));
    }

    #[test]
    fn malformed_or_missing_headers_fall_back_to_the_proxy() {
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(client_ip(ip("10.0.0.1"), None, &trusted), ip("10.0.0.1"));
        assert_eq!(client_ip(ip("10.0.0.1"), Some("1.2.3.4, junk"), &trusted), ip("10.0.0.1"));
        assert_eq!(client_ip(ip("10.0.0.1"), Some("10.0.0.2"), &trusted), ip("10.0.0.2"));
    }

    #[test]
    fn ipv6_is_grouped_by_slash_64_and_mapped_v4_is_v4() {
        assert_eq!(ip_key(ip("2001:db8:1:2:aaaa::1")), "2001:db8:1:2::/64");
        assert_eq!(ip_key(ip("2001:db8:1:2:ffff::9")), "2001:db8:1:2::/64");
        assert_eq!(ip_key(ip("::ffff:198.51.100.7")), "198.51.100.7");
        assert!(parse_cidr("nope").is_err());
    }
}
