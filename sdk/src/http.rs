//! Outbound HTTP through `wasi:http`. Only hosts listed in plugin.toml
//! `[capabilities] http_hosts` *and* granted by the operator are reachable;
//! anything else fails with [`HostError::Denied`].

use wasip2::http::outgoing_handler;
use wasip2::http::types::{ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasip2::io::streams::StreamError;

use crate::HostError;

/// Largest response body read into memory.
pub const MAX_RESPONSE_BYTES: usize = 8 << 20;

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn get(url: &str) -> Result<Response, HostError> {
    send("GET", url, &[], None)
}

/// Sends one request and reads the whole response (at most
/// [`MAX_RESPONSE_BYTES`]). `headers` must not include hop-by-hop headers
/// or `host`; the host sets those.
pub fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<Response, HostError> {
    let invalid = |m: String| HostError::Invalid(m);
    let (scheme, rest) = if let Some(r) = url.strip_prefix("https://") {
        (Scheme::Https, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (Scheme::Http, r)
    } else {
        return Err(invalid(format!(
            "unsupported URL (need http:// or https://): {url}"
        )));
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.is_empty() || authority.contains('@') {
        return Err(invalid(format!("bad host in URL: {url}")));
    }
    let mut path = &rest[end..];
    if let Some(i) = path.find('#') {
        path = &path[..i];
    }
    let path = match path {
        "" => "/".to_owned(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_owned(),
    };
    let method = match method.to_ascii_uppercase().as_str() {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "PATCH" => Method::Patch,
        "HEAD" => Method::Head,
        "OPTIONS" => Method::Options,
        m => Method::Other(m.to_owned()),
    };
    let entries: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_bytes().to_vec()))
        .collect();
    let fields =
        Fields::from_list(&entries).map_err(|e| invalid(format!("header rejected: {e:?}")))?;
    let request = OutgoingRequest::new(fields);
    request
        .set_method(&method)
        .map_err(|()| invalid("invalid method".into()))?;
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| invalid("invalid scheme".into()))?;
    request
        .set_authority(Some(authority))
        .map_err(|()| invalid("invalid authority".into()))?;
    request
        .set_path_with_query(Some(&path))
        .map_err(|()| invalid("invalid path".into()))?;

    let out_body = request
        .body()
        .map_err(|()| invalid("request body already taken".into()))?;
    let future = outgoing_handler::handle(request, None).map_err(|e| http_error(url, &e))?;
    {
        let stream = out_body
            .write()
            .map_err(|()| invalid("request stream already taken".into()))?;
        for chunk in body.unwrap_or_default().chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| HostError::Unavailable(format!("sending body: {e:?}")))?;
        }
    }
    OutgoingBody::finish(out_body, None).map_err(|e| http_error(url, &e))?;

    let response = loop {
        match future.get() {
            None => future.subscribe().block(),
            Some(Ok(Ok(r))) => break r,
            Some(Ok(Err(e))) => return Err(http_error(url, &e)),
            Some(Err(())) => return Err(HostError::Unavailable("response already taken".into())),
        }
    };
    let status = response.status();
    let headers = response.headers().entries();
    let in_body = response
        .consume()
        .map_err(|()| HostError::Unavailable("response body already taken".into()))?;
    let mut data = Vec::new();
    {
        let stream = in_body
            .stream()
            .map_err(|()| HostError::Unavailable("response stream already taken".into()))?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => data.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(HostError::Unavailable(format!(
                        "reading body: {}",
                        e.to_debug_string()
                    )));
                }
            }
            if data.len() > MAX_RESPONSE_BYTES {
                return Err(HostError::LimitExceeded(format!(
                    "response larger than {MAX_RESPONSE_BYTES} bytes"
                )));
            }
        }
    }
    Ok(Response {
        status,
        headers,
        body: data,
    })
}

fn http_error(url: &str, e: &ErrorCode) -> HostError {
    match e {
        ErrorCode::HttpRequestDenied | ErrorCode::DestinationIpProhibited => {
            HostError::Denied(format!(
                "HTTP request to {url} denied: its host is not in this plugin's granted http_hosts, \
             or it resolves to a private address (run `warden plugin check` to see the grant)"
            ))
        }
        ErrorCode::DnsError(_) | ErrorCode::DnsTimeout | ErrorCode::DestinationNotFound => {
            HostError::Unavailable(format!("cannot resolve the host of {url}"))
        }
        ErrorCode::ConnectionRefused | ErrorCode::ConnectionTimeout => {
            HostError::Unavailable(format!("cannot connect to {url}: {e:?}"))
        }
        other => HostError::Unavailable(format!("HTTP error for {url}: {other:?}")),
    }
}
