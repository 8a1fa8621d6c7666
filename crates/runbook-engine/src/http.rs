//! api_call blocks: one HTTP request (rustls), its response captured with the body
//! bounded, a credential applied as the request's authentication.

use crate::credentials::Credential;
use encoding_rs::{CoderResult, Encoding, UTF_8};
use runbook_domain::execution::MAX_CAPTURED_BODY;
use runbook_domain::{HttpMethod, HttpResponse};
use std::collections::BTreeMap;
use std::time::Duration;

/// How long a request may take when its block sets no timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A request, rendered and ready to send.
pub struct Request {
    pub method: HttpMethod,
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub body: Option<String>,
    pub credential: Option<Credential>,
    pub timeout: Duration,
}

/// Redirects followed, at most.
const MAX_REDIRECTS: usize = 10;

/// The shared HTTP clients of an engine: one for requests without credentials, and one
/// for requests that carry one, which never follows a redirect to another origin (a
/// custom header would go along to it, and reqwest strips only its own auth headers).
#[derive(Clone)]
pub struct Clients {
    open: reqwest::Client,
    credentialed: reqwest::Client,
}

impl Clients {
    pub fn new() -> Clients {
        let build = |policy| {
            reqwest::Client::builder()
                .user_agent(concat!("runbook-studio/", env!("CARGO_PKG_VERSION")))
                .redirect(policy)
                .build()
                .expect("the HTTP client builds with the bundled TLS roots")
        };
        Clients {
            open: build(reqwest::redirect::Policy::limited(MAX_REDIRECTS)),
            credentialed: build(reqwest::redirect::Policy::custom(|attempt| {
                let first = attempt.previous().first().cloned();
                if attempt.previous().len() > MAX_REDIRECTS {
                    attempt.error("too many redirects")
                } else if first.is_some_and(|first| !same_origin(&first, attempt.url())) {
                    // The redirect itself is the response: the step sees its status.
                    attempt.stop()
                } else {
                    attempt.follow()
                }
            })),
        }
    }
}

impl Default for Clients {
    fn default() -> Self {
        Clients::new()
    }
}

/// Same scheme, host and port; an upgrade from http on port 80 to https on port 443
/// of the same host counts as the same.
fn same_origin(from: &reqwest::Url, to: &reqwest::Url) -> bool {
    let port = |url: &reqwest::Url| url.port_or_known_default();
    let same_place = from.scheme() == to.scheme() && port(from) == port(to);
    let upgrade = from.scheme() == "http"
        && to.scheme() == "https"
        && port(from) == Some(80)
        && port(to) == Some(443);
    from.host_str() == to.host_str() && (same_place || upgrade)
}

/// Sends the request; an `Err` is a transport problem, described in a sentence.
pub async fn send(clients: &Clients, request: Request) -> Result<HttpResponse, String> {
    let client = match request.credential {
        Some(_) => &clients.credentialed,
        None => &clients.open,
    };
    let method = reqwest::Method::from_bytes(request.method.as_str().as_bytes())
        .expect("every HttpMethod is a valid method");
    let mut builder = client
        .request(method, &request.url)
        .timeout(request.timeout);
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    builder = match &request.credential {
        Some(Credential::Bearer { token }) => builder.bearer_auth(token),
        Some(Credential::Basic { username, password }) => {
            builder.basic_auth(username, Some(password))
        }
        Some(Credential::Header { name, value }) => builder.header(name, value),
        Some(Credential::Secret { .. } | Credential::SshKey { .. }) => {
            return Err(
                "secret and ssh_key credentials are for commands; an HTTP request takes a bearer, basic or header credential"
                    .to_string(),
            )
        }
        None => builder,
    };
    if let Some(body) = request.body {
        builder = builder.body(body);
    }
    let mut response = builder
        .send()
        .await
        .map_err(|e| describe(&e, request.timeout))?;
    let status = response.status().as_u16();
    let headers = response.headers().iter().fold(
        BTreeMap::<String, String>::new(),
        |mut map, (name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            map.entry(name.as_str().to_string())
                .and_modify(|v| {
                    v.push_str(", ");
                    v.push_str(&value);
                })
                .or_insert(value);
            map
        },
    );
    let mut body = Vec::new();
    let mut body_bytes = 0u64;
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            // The status and headers came: what did not come in time is the body's end.
            Err(error) if error.is_timeout() => {
                return Err(format!(
                    "the response (status {status}) did not end within {} s; {body_bytes} bytes of its body came",
                    request.timeout.as_secs()
                ))
            }
            Err(error) => return Err(describe(&error, request.timeout)),
        };
        body_bytes += chunk.len() as u64;
        let room = MAX_CAPTURED_BODY.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
    let cut = body_bytes > body.len() as u64;
    let (body, shortened) = body_text(&body, cut, body_encoding(response.headers()));
    Ok(HttpResponse {
        status,
        headers,
        body,
        body_bytes,
        truncated: cut || shortened,
    })
}

/// The encoding a response's body is in: the `charset` its Content-Type names, by the
/// labels browsers know (`iso-8859-1`, `latin1`, `windows-1252`, `shift_jis`, `utf-16le`…),
/// else UTF-8 (JSON's own, and the likeliest for a charset unnamed or unknown). A byte
/// order mark at the body's start wins over both, as in browsers. The parameter is
/// found leniently (any case, spaces around it, quoted or not), and the charsets
/// browsers refuse to decode at all (ISO-2022-KR, HZ…) are read as UTF-8 too rather
/// than as one U+FFFD.
fn body_encoding(headers: &reqwest::header::HeaderMap) -> &'static Encoding {
    headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| charset(value.as_bytes()))
        .and_then(Encoding::for_label_no_replacement)
        .unwrap_or(UTF_8)
}

/// The value of the `charset` parameter of a Content-Type, without quotes.
fn charset(content_type: &[u8]) -> Option<&[u8]> {
    content_type
        .split(|b| *b == b';')
        .skip(1)
        .find_map(|parameter| {
            let at = parameter.iter().position(|b| *b == b'=')?;
            let (name, value) = (
                parameter[..at].trim_ascii(),
                parameter[at + 1..].trim_ascii(),
            );
            name.eq_ignore_ascii_case(b"charset").then(|| {
                value
                    .strip_prefix(b"\"")
                    .and_then(|quoted| quoted.strip_suffix(b"\""))
                    .unwrap_or(value)
            })
        })
}

/// The captured bytes of a body, in `encoding`, as text within [`MAX_CAPTURED_BODY`]
/// bytes, and whether the text had to be shortened for it: invalid bytes become U+FFFD,
/// three bytes each, and a body in a single-byte encoding may take up to three times
/// its size. A character the bound cut in two (`cut`) is left out rather than shown as
/// U+FFFD.
fn body_text(bytes: &[u8], cut: bool, encoding: &'static Encoding) -> (String, bool) {
    let mut decoder = encoding.new_decoder();
    let mut text = String::new();
    let mut rest = bytes;
    loop {
        let room = decoder
            .max_utf8_buffer_length(rest.len())
            .unwrap_or(rest.len());
        text.reserve(room.max(4));
        // Not the last bytes of a cut body: a character they begin is held back.
        let (result, read, _) = decoder.decode_to_string(rest, &mut text, !cut);
        rest = &rest[read..];
        if result == CoderResult::InputEmpty {
            break;
        }
    }
    if text.len() <= MAX_CAPTURED_BODY {
        text.shrink_to_fit();
        return (text, false);
    }
    let mut end = MAX_CAPTURED_BODY;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.shrink_to_fit();
    (text, true)
}

/// A transport error in one sentence, without the request's URL (which may hold
/// values the operator did not mean to show).
fn describe(error: &reqwest::Error, timeout: Duration) -> String {
    if error.is_timeout() {
        return format!("no response within {} s", timeout.as_secs());
    }
    if error.is_redirect() {
        return "too many redirects".to_string();
    }
    if error.is_builder() {
        return "the request is invalid (check the URL and headers)".to_string();
    }
    let mut reason = String::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(error);
    while let Some(cause) = source {
        reason = cause.to_string();
        source = cause.source();
    }
    if error.is_connect() {
        format!("could not connect: {reason}")
    } else if reason.is_empty() {
        "the request failed".to_string()
    } else {
        format!("the request failed: {reason}")
    }
}

#[cfg(test)]
mod tests {
    use super::same_origin;

    #[test]
    fn a_credentialed_redirect_stays_at_its_origin() {
        let same = |from: &str, to: &str| same_origin(&from.parse().unwrap(), &to.parse().unwrap());
        assert!(same(
            "https://api.example.com/a",
            "https://api.example.com:443/b"
        ));
        assert!(same(
            "http://api.example.com/a",
            "https://api.example.com/b"
        ));
        assert!(same(
            "http://api.example.com:8080/a",
            "http://api.example.com:8080/b"
        ));
        assert!(!same(
            "http://api.example.com:8080/a",
            "https://api.example.com:9443/"
        ));
        assert!(!same(
            "http://api.example.com:8080/a",
            "https://api.example.com/"
        ));
        assert!(!same(
            "https://api.example.com/a",
            "http://api.example.com/"
        ));
        assert!(!same(
            "https://api.example.com/a",
            "https://api.example.com:8443/"
        ));
        assert!(!same(
            "https://api.example.com/a",
            "https://www.example.com/"
        ));
    }
}
