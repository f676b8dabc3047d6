//! The outbound HTTP gate: every `wasi:http` request a plugin makes passes
//! through [`HttpGate::send_request`], which checks the effective grant,
//! resolves the host itself and refuses loopback, private, link-local and
//! other non-global addresses unless the operator allowed private networks.
//!
//! For `http://` the request is then sent to the address that was checked,
//! so DNS rebinding cannot swap it. For `https://` the TLS name check needs
//! the original host, so the connection resolves again; a rebinding attack
//! would also have to present a valid certificate for the granted host.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::http::{Request, Response, Uri};
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

use super::grant::EffectiveGrant;
use super::manifest::Effect;

type HttpError = wasmtime_wasi_http::Error;
type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;
type SendFuture =
    Box<dyn Future<Output = Result<(Response<WasiBody>, IoFuture), HttpError>> + Send>;

pub struct HttpGate {
    grant: Arc<EffectiveGrant>,
    effect: Effect,
    call_id: String,
    /// No single phase of a request may outlast the call itself.
    timeout: Duration,
}

impl HttpGate {
    pub fn new(
        grant: Arc<EffectiveGrant>,
        effect: Effect,
        call_id: String,
        timeout: Duration,
    ) -> Self {
        Self {
            grant,
            effect,
            call_id,
            timeout,
        }
    }
}

impl WasiHttpHooks for HttpGate {
    fn send_request(
        &mut self,
        mut request: Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_done: IoFuture,
    ) -> SendFuture {
        let grant = self.grant.clone();
        let call_id = self.call_id.clone();
        let effect_ok =
            super::state::require_effect(self.effect, Effect::External, "outbound HTTP");
        let cap = |t: Option<Duration>, limit: Duration| Some(t.map_or(limit, |t| t.min(limit)));
        let options = options.unwrap_or_default();
        let options = RequestOptions {
            connect_timeout: cap(options.connect_timeout, self.timeout),
            first_byte_timeout: cap(options.first_byte_timeout, self.timeout),
            between_bytes_timeout: cap(options.between_bytes_timeout, self.timeout),
        };
        Box::new(async move {
            let uri = request.uri().clone();
            // Queries can carry credentials: never log them.
            let shown = format!(
                "{}://{}{}",
                uri.scheme_str().unwrap_or("?"),
                uri.authority().map_or("?", |a| a.as_str()),
                uri.path()
            );
            let deny = |why: String| {
                tracing::warn!(plugin = grant.plugin_id(), call = %call_id, "plugin HTTP request denied: {why}");
                HttpError::HttpRequestDenied
            };
            effect_ok.map_err(|d| deny(d.to_string()))?;
            let (scheme, host, port) =
                target(&uri).ok_or_else(|| deny(format!("unusable URI {shown}")))?;
            grant
                .check_http(scheme, &host, port)
                .map_err(|d| deny(d.to_string()))?;
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|_| HttpError::DestinationNotFound)?
                .collect();
            if addrs.is_empty() {
                return Err(HttpError::DestinationNotFound);
            }
            if !grant.allow_private_networks
                && let Some(bad) = addrs.iter().find(|a| !is_global(a.ip()))
            {
                tracing::warn!(
                    plugin = grant.plugin_id(), call = %call_id,
                    "plugin HTTP request to {host} denied: it resolves to {} (private networks are not granted)",
                    bad.ip()
                );
                return Err(HttpError::DestinationIpProhibited);
            }
            if scheme == "http" {
                pin_to(&mut request, addrs[0]).map_err(|_| HttpError::HttpRequestUriInvalid)?;
            }
            tracing::debug!(plugin = grant.plugin_id(), call = %call_id, "plugin HTTP request to {shown}");
            let (response, io) =
                wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as IoFuture,
            ))
        })
    }
}

/// (scheme, lower-case host, port) of an absolute URI.
fn target(uri: &Uri) -> Option<(&'static str, String, u16)> {
    let scheme = match uri.scheme_str()? {
        "http" => "http",
        "https" => "https",
        _ => return None,
    };
    let host = uri
        .host()?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let port = uri
        .port_u16()
        .unwrap_or(if scheme == "http" { 80 } else { 443 });
    Some((scheme, host, port))
}

/// Points the request at `addr` while keeping its `Host` header.
fn pin_to(request: &mut Request<WasiBody>, addr: SocketAddr) -> Result<(), hyper::http::Error> {
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let uri = Uri::builder()
        .scheme("http")
        .authority(addr.to_string())
        .path_and_query(path)
        .build()?;
    *request.uri_mut() = uri;
    Ok(())
}

/// Whether an address is on the public internet.
pub fn is_global(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_global_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_global_v4(v4),
            None => is_global_v6(v6),
        },
    }
}

fn is_global_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240)
}

fn is_global_v6(ip: Ipv6Addr) -> bool {
    let seg = ip.segments();
    let first = seg[0];
    // Forms that embed an IPv4 address are judged by that address:
    // NAT64 (64:ff9b::/96, 64:ff9b:1::/48), 6to4 (2002::/16) and the
    // deprecated IPv4-compatible ::a.b.c.d.
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if first == 0x64 && seg[1] == 0xff9b && seg[2] == 1 {
        return false; // local-use NAT64: translates to anything
    }
    if first == 0x64 && seg[1] == 0xff9b {
        return is_global_v4(v4(seg[6], seg[7]));
    }
    if first == 0x2002 {
        return is_global_v4(v4(seg[1], seg[2]));
    }
    if seg[..6].iter().all(|s| *s == 0) && !ip.is_loopback() && !ip.is_unspecified() {
        return is_global_v4(v4(seg[6], seg[7]));
    }
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link local
        || (first & 0xffc0) == 0xfec0 // site local (deprecated)
        || first == 0x2001 && ip.segments()[1] == 0x0db8) // documentation
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_not_global() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_global(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "1.1.1.1",
            "93.184.216.34",
            "2606:4700::1111",
            "64:ff9b::101:101",
        ] {
            assert!(is_global(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn targets_default_their_ports() {
        let t = |s: &str| target(&s.parse().unwrap());
        assert_eq!(
            t("https://API.example.com/x"),
            Some(("https", "api.example.com".into(), 443))
        );
        assert_eq!(
            t("http://127.0.0.1:8080/"),
            Some(("http", "127.0.0.1".into(), 8080))
        );
        assert_eq!(t("ftp://x/"), None);
    }
}
