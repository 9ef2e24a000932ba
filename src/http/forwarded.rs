//! Behind a reverse proxy: how clients address modelreg, and who they are.
//!
//! Absolute URLs (DataRobot's `next`/`previous` and `Location`, Octomil's
//! signed URLs) must name the address the client used, scheme included: a
//! client that reached nginx over https and is told `http://…` fails. The
//! operator says it with `serve --public-url`, or trusts the proxy's
//! `X-Forwarded-Proto`/`X-Forwarded-Host`/`X-Forwarded-For` with
//! `--trusted-proxy`. Headers from any other peer are ignored: a client
//! must not be able to choose the URLs other clients are sent, nor the
//! address the access log blames.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::OnceLock;

/// An address or a CIDR block of them (`10.0.0.0/8`, `::1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let network: IpAddr = addr.trim().parse().map_err(|_| format!("{s:?} is not an IP address or CIDR block"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| format!("{s:?} has a prefix length over {max}"))?,
        };
        Ok(Cidr { network, prefix })
    }
}

impl Cidr {
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = match addr {
            // An IPv4 peer on a dual-stack socket arrives as ::ffff:a.b.c.d.
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(addr),
            v4 => v4,
        };
        let (net, addr, bits) = match (self.network, addr) {
            (IpAddr::V4(n), IpAddr::V4(a)) => (u32::from(n) as u128, u32::from(a) as u128, 32),
            (IpAddr::V6(n), IpAddr::V6(a)) => (u128::from(n), u128::from(a), 128),
            _ => return false,
        };
        let shift = bits - self.prefix as u32;
        shift >= bits || (net >> shift) == (addr >> shift)
    }
}

/// The proxies this process trusts, for the transport's per-address
/// connection limit, which takes a plain `fn`: every client of a reverse
/// proxy arrives from the proxy's one address, and must not share its 64.
static TRUSTED: OnceLock<Vec<Cidr>> = OnceLock::new();

/// Records `serve`'s trusted proxies for `is_trusted_proxy` (once per process).
pub fn remember_trusted_proxies(trusted: &[Cidr]) {
    let _ = TRUSTED.set(trusted.to_vec());
}

pub fn is_trusted_proxy(ip: IpAddr) -> bool {
    TRUSTED.get().is_some_and(|trusted| trusted.iter().any(|c| c.contains(ip)))
}

/// The operator's settings: `--public-url` and `--trusted-proxy`.
#[derive(Clone, Debug, Default)]
pub struct Proxying {
    /// `https://models.example.com`, without a trailing slash.
    pub public_url: Option<String>,
    pub trusted: Vec<Cidr>,
}

impl Proxying {
    /// Checks `--public-url`: an absolute http(s) URL, kept without its
    /// trailing slash so that paths can be appended.
    pub fn parse_public_url(url: &str) -> Result<String, String> {
        let trimmed = url.trim().trim_end_matches('/');
        let rest = trimmed
            .strip_prefix("https://")
            .or_else(|| trimmed.strip_prefix("http://"))
            .ok_or_else(|| format!("--public-url {url:?} must start with http:// or https://"))?;
        if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_graphic()) || rest.contains(['?', '#']) {
            return Err(format!("--public-url {url:?} must be a scheme, a host and optionally a path"));
        }
        Ok(trimmed.to_string())
    }

    fn trusts(&self, peer: Option<SocketAddr>) -> bool {
        peer.is_some_and(|p| self.trusted.iter().any(|c| c.contains(p.ip())))
    }

    /// `scheme://host[:port][/prefix]` that the client used to reach us.
    pub fn base_url<'a>(&self, peer: Option<SocketAddr>, header: impl Fn(&str) -> Option<&'a str>) -> String {
        if let Some(url) = &self.public_url {
            return url.clone();
        }
        let valid_host = |h: &&str| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic() && b != b'/' && b != b'@');
        let (mut scheme, mut host) = ("http", header("Host").map(str::trim).filter(valid_host));
        if self.trusts(peer) {
            // A proxy chain appends: the first value is what the client sent.
            let first = |name| header(name).and_then(|v: &'a str| v.split(',').next()).map(str::trim);
            match first("X-Forwarded-Proto").map(str::to_ascii_lowercase).as_deref() {
                Some("https") => scheme = "https",
                Some("http") => scheme = "http",
                _ => {}
            }
            if let Some(h) = first("X-Forwarded-Host").filter(valid_host) {
                host = Some(h);
            }
        }
        // HTTP/1.1 requires Host; an HTTP/1.0 client without one gets
        // links relative to localhost.
        format!("{scheme}://{}", host.unwrap_or("localhost"))
    }

    /// The client's address: the peer, or, when the peer is a trusted
    /// proxy, the nearest address in `X-Forwarded-For` that is not one.
    pub fn client_addr<'a>(&self, peer: Option<SocketAddr>, header: impl Fn(&str) -> Option<&'a str>) -> String {
        let Some(peer) = peer else { return String::new() };
        if !self.trusts(Some(peer)) {
            return peer.to_string();
        }
        let chain = header("X-Forwarded-For").unwrap_or("");
        for hop in chain.rsplit(',').map(str::trim) {
            match hop.parse::<IpAddr>() {
                Ok(ip) if self.trusted.iter().any(|c| c.contains(ip)) => continue,
                Ok(ip) => return ip.to_string(),
                // Garbage in the chain: stop at what we can vouch for.
                Err(_) => break,
            }
        }
        peer.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> + 'a {
        move |name| pairs.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| *v)
    }

    #[test]
    fn cidr_blocks_match_their_addresses() {
        let block: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(block.contains("10.1.200.3".parse().unwrap()));
        assert!(!block.contains("10.2.0.1".parse().unwrap()));
        assert!(block.contains("::ffff:10.1.0.9".parse().unwrap()));
        let one: Cidr = "::1".parse().unwrap();
        assert!(one.contains("::1".parse().unwrap()) && !one.contains("::2".parse().unwrap()));
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains("8.8.8.8".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err() && "proxy".parse::<Cidr>().is_err());
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let proxying = Proxying { public_url: None, trusted: vec!["127.0.0.1".parse().unwrap()] };
        let sent = [("Host", "127.0.0.1:8420"), ("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "models.example.com"), ("X-Forwarded-For", "203.0.113.7, 127.0.0.1")];
        let proxy = Some("127.0.0.1:5000".parse().unwrap());
        let stranger = Some("192.0.2.1:5000".parse().unwrap());
        assert_eq!(proxying.base_url(proxy, headers(&sent)), "https://models.example.com");
        assert_eq!(proxying.client_addr(proxy, headers(&sent)), "203.0.113.7");
        assert_eq!(proxying.base_url(stranger, headers(&sent)), "http://127.0.0.1:8420");
        assert_eq!(proxying.client_addr(stranger, headers(&sent)), "192.0.2.1:5000");
    }

    #[test]
    fn a_public_url_wins_and_is_checked() {
        let proxying = Proxying { public_url: Some(Proxying::parse_public_url("https://m.example.com/registry/").unwrap()), trusted: vec![] };
        assert_eq!(proxying.base_url(None, headers(&[("Host", "evil")])), "https://m.example.com/registry");
        assert!(Proxying::parse_public_url("m.example.com").is_err());
        assert!(Proxying::parse_public_url("https://").is_err());
    }
}
