//! Network ranges named in configuration (trusted proxies).

use ipnet::IpNet;
use std::net::IpAddr;

/// `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a single host).
/// Not a network range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected a CIDR like 10.0.0.0/8 or an address")]
pub struct InvalidCidr;

pub fn parse_cidr(text: &str) -> Result<IpNet, InvalidCidr> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<IpAddr>().map(IpNet::from).map_err(|_| InvalidCidr)
}
