//! The client's address: the peer, or the right-most untrusted hop of `X-Forwarded-For` when the peer is a
//! trusted proxy.
//!
//! Each proxy appends the address it received the request from, so only the hops added by trusted proxies
//! can be believed: walking the header from the right, the first address that is not a trusted proxy is the
//! client. Anything to its left was written by the client itself and may be forged.

use std::net::{IpAddr, Ipv4Addr};

use actix_web::dev::ServiceRequest;
use ipnet::IpNet;

/// The header proxies append the client address to.
const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The configured trusted proxies.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses addresses (`10.0.0.1`, `::1`) and CIDR blocks (`10.0.0.0/8`).
    ///
    /// # Errors
    /// A message naming `http.trusted_proxies` and the entry that is neither.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        entries
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                let entry = entry.trim();
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("http.trusted_proxies[{i}]: `{entry}` is not an IP address or CIDR block"))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client address of `req`. Without a peer address (requests made in-process, as in tests) it is the
    /// unspecified address, one bucket for all of them.
    pub fn client_ip(&self, req: &ServiceRequest) -> IpAddr {
        let Some(peer) = req.peer_addr().map(|addr| addr.ip().to_canonical()) else {
            return IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        };
        if self.0.is_empty() || !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        for value in req.headers().get_all(X_FORWARDED_FOR).rev() {
            let Ok(value) = value.to_str() else { return client };
            for hop in value.rsplit(',') {
                match hop.trim().parse::<IpAddr>() {
                    Ok(ip) => {
                        client = ip.to_canonical();
                        if !self.trusts(client) {
                            return client;
                        }
                    }
                    // A malformed hop: the last address a trusted proxy vouched for is as far as we can go.
                    Err(_) => return client,
                }
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn proxies(entries: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&entries.iter().map(|e| (*e).to_owned()).collect::<Vec<_>>()).unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = proxies(&["10.0.0.0/8", "192.168.1.1"]);
        let from = |peer: &str, xff: Option<&str>| {
            let addr = if peer.contains(':') { format!("[{peer}]:4000") } else { format!("{peer}:4000") };
            let mut req = TestRequest::default().peer_addr(addr.parse().unwrap());
            if let Some(xff) = xff {
                req = req.insert_header((X_FORWARDED_FOR, xff));
            }
            trusted.client_ip(&req.to_srv_request())
        };
        assert_eq!(from("203.0.113.9", Some("1.2.3.4")), ip("203.0.113.9"), "untrusted peer: header ignored");
        assert_eq!(from("10.1.2.3", Some("1.2.3.4")), ip("1.2.3.4"));
        assert_eq!(from("10.1.2.3", Some("6.6.6.6, 1.2.3.4, 10.9.9.9")), ip("1.2.3.4"), "right-most untrusted");
        assert_eq!(from("192.168.1.1", Some("garbage, 10.0.0.7")), ip("10.0.0.7"), "stops at a malformed hop");
        assert_eq!(from("10.1.2.3", None), ip("10.1.2.3"));
        assert_eq!(from("::ffff:10.1.2.3", Some("1.2.3.4")), ip("1.2.3.4"), "IPv4-mapped peers are canonical");
    }

    #[test]
    fn bad_entries_are_named() {
        let err = TrustedProxies::parse(&["10.0.0.0/8".into(), "10.0.0.0/33".into()]).unwrap_err();
        assert!(err.contains("http.trusted_proxies[1]") && err.contains("10.0.0.0/33"), "{err}");
        assert!(TrustedProxies::parse(&["::1".into(), "fd00::/8".into()]).is_ok());
    }
}
