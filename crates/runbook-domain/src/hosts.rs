//! Where an HTTP credential may be sent: the host patterns an admin binds to it, and the
//! origin a runbook's author wrote in an api_call's URL (as opposed to one that a
//! parameter or an earlier step's output supplies when the run renders it).

use std::fmt;
use url::{Host, Origin, Url};

/// Most host patterns one credential may carry.
pub const MAX_HOSTS: usize = 32;

/// One entry of a credential's hosts: `api.example.com`, `*.example.com` (any subdomain
/// of example.com, not example.com itself), an IP address (`10.0.0.5`, `[fd00::1]`),
/// each optionally with `:port`. Without a port, any port matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    host: PatternHost,
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PatternHost {
    Exact(Host<String>),
    /// A domain whose subdomains match, without the leading `*.`.
    Subdomains(String),
}

impl HostPattern {
    /// Parses one entry; the error says what is wrong with it.
    pub fn parse(entry: &str) -> Result<HostPattern, String> {
        let text = entry.trim().to_ascii_lowercase();
        let problem = |why: &str| format!("`{}`: {why}", entry.trim());
        if text.is_empty() {
            return Err("a host may not be empty".to_string());
        }
        if text.contains("://")
            || text.contains(['/', '?', '#', '@', '%'])
            || text.contains(char::is_whitespace)
        {
            return Err(problem(
                "give a host name or address only (no scheme, path, user or spaces), like api.example.com or *.example.com:8443",
            ));
        }
        let (host, port) = split_port(&text).map_err(|why| problem(&why))?;
        let host = match host.strip_prefix("*.") {
            Some(suffix) => {
                let domain = domain(suffix).map_err(|why| problem(&why))?;
                if !domain.contains('.') {
                    return Err(problem(
                        "a wildcard needs a domain of two labels or more, like *.example.com",
                    ));
                }
                PatternHost::Subdomains(domain)
            }
            None if host.starts_with('[') => match Host::parse(host) {
                Ok(ip @ Host::Ipv6(_)) => PatternHost::Exact(ip),
                _ => return Err(problem("not an IPv6 address")),
            },
            None => match Host::parse(host) {
                // URLs read `8443`, `010.0.0.5` or `0x0a000005` as IPv4 addresses; a
                // pattern takes only four decimal numbers, so a typo is not taken as one.
                Ok(ip @ Host::Ipv4(_)) if ip.to_string() == host => PatternHost::Exact(ip),
                Ok(Host::Ipv4(_)) => {
                    return Err(problem(
                        "write an IPv4 address as four decimal numbers, like 10.0.0.5",
                    ))
                }
                _ => PatternHost::Exact(Host::Domain(domain(host).map_err(|why| problem(&why))?)),
            },
        };
        Ok(HostPattern { host, port })
    }

    /// Whether a request to `url` goes to a host (and port) this pattern allows.
    pub fn matches(&self, url: &Url) -> bool {
        if self.port.is_some() && self.port != url.port_or_known_default() {
            return false;
        }
        match (&self.host, url.host()) {
            (PatternHost::Exact(Host::Domain(name)), Some(Host::Domain(host))) => {
                name == host.strip_suffix('.').unwrap_or(host)
            }
            (PatternHost::Exact(Host::Ipv4(pattern)), Some(Host::Ipv4(host))) => *pattern == host,
            (PatternHost::Exact(Host::Ipv6(pattern)), Some(Host::Ipv6(host))) => *pattern == host,
            (PatternHost::Subdomains(suffix), Some(Host::Domain(host))) => host
                .strip_suffix('.')
                .unwrap_or(host)
                .strip_suffix(suffix.as_str())
                .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
            _ => false,
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            PatternHost::Exact(host) => write!(f, "{host}")?,
            PatternHost::Subdomains(suffix) => write!(f, "*.{suffix}")?,
        }
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

/// `host` and its port, if it names one.
fn split_port(text: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = match text.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((_, "")) => (text, None),
            Some((address, after)) => match after.strip_prefix(':') {
                Some(port) => (&text[..address.len() + 2], Some(port)),
                None => return Err("unexpected text after the IPv6 address".to_string()),
            },
            None => return Err("an IPv6 address needs its closing `]`".to_string()),
        },
        None => match text.split_once(':') {
            Some((_, port)) if port.contains(':') => {
                return Err("write an IPv6 address in brackets, like [fd00::1]".to_string())
            }
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        },
    };
    let port = match port {
        None => None,
        Some(port) => match port.parse::<u16>() {
            Ok(number) if number > 0 && port.bytes().all(|b| b.is_ascii_digit()) => Some(number),
            _ => return Err("the port is a number from 1 to 65535".to_string()),
        },
    };
    Ok((host, port))
}

/// A domain name in ASCII (international names in their punycode form), without a
/// trailing dot: labels of letters, digits, `-` and `_`.
fn domain(text: &str) -> Result<String, String> {
    let name = match Host::parse(text) {
        Ok(Host::Domain(name)) => name,
        _ => return Err("not a host name".to_string()),
    };
    let name = name.strip_suffix('.').unwrap_or(&name).to_string();
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if valid {
        Ok(name)
    } else {
        Err(
            "not a host name (labels of letters, digits, `-` and `_`, separated by dots)"
                .to_string(),
        )
    }
}

/// A credential's host entries, checked and written in their canonical form (lower
/// case, punycode, duplicates dropped, order kept); the error names the first entry
/// that is not a host pattern.
pub fn normalize_hosts(entries: &[String]) -> Result<Vec<String>, String> {
    if entries.len() > MAX_HOSTS {
        return Err(format!("at most {MAX_HOSTS} hosts"));
    }
    let mut hosts: Vec<String> = Vec::with_capacity(entries.len());
    for entry in entries {
        let canonical = HostPattern::parse(entry)?.to_string();
        if !hosts.contains(&canonical) {
            hosts.push(canonical);
        }
    }
    Ok(hosts)
}

/// Whether any of `hosts` (canonical entries, as stored) allows a request to `url`.
pub fn host_allowed(hosts: &[String], url: &Url) -> bool {
    hosts
        .iter()
        .filter_map(|entry| HostPattern::parse(entry).ok())
        .any(|pattern| pattern.matches(url))
}

/// The origin (scheme, host, port) an api_call's URL template names in its written text,
/// before any template expression: `None` when a template could change it, as in
/// `https://{{ params.host }}/`, `{{ base }}/x` or `https://api.example.com{{ path }}`.
pub fn written_origin(template: &str) -> Option<Origin> {
    let (written, templated) = written_text(template);
    if templated {
        // The authority ends at the first `/`, `?`, `#` or `\`: it must end in the
        // written text, or what a template adds could extend the host or the port.
        let authority = written.find("://")? + 3;
        if !written[authority..].contains(['/', '?', '#', '\\']) {
            return None;
        }
    }
    let url = Url::parse(written).ok()?;
    url.host()?;
    Some(url.origin())
}

/// The scheme (lower case) an api_call's URL template writes before any template
/// expression, as in `http://{{ params.host }}/`.
pub fn written_scheme(template: &str) -> Option<String> {
    let (written, _) = written_text(template);
    let (scheme, _) = written.split_once("://")?;
    let valid = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then(|| scheme.to_ascii_lowercase())
}

/// The text of a template before its first expression or statement, and whether it
/// has one.
fn written_text(template: &str) -> (&str, bool) {
    match ["{{", "{%"]
        .iter()
        .filter_map(|start| template.find(start))
        .min()
    {
        Some(end) => (&template[..end], true),
        None => (template, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn entries_are_checked_and_written_one_way() {
        let entries: Vec<String> = [
            " API.Example.com ",
            "*.Example.COM:8443",
            "10.0.0.5",
            "[FD00::1]:9000",
            "api.example.com.",
            "bücher.example",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            normalize_hosts(&entries).unwrap(),
            [
                "api.example.com",
                "*.example.com:8443",
                "10.0.0.5",
                "[fd00::1]:9000",
                "xn--bcher-kva.example"
            ]
        );
        for bad in [
            "",
            "https://api.example.com",
            "api.example.com/v1",
            "user@api.example.com",
            "api example.com",
            "*.com",
            "*",
            "a.*.example.com",
            "api.example.com:0",
            "api.example.com:70000",
            "api.example.com:+80",
            "8443",
            "010.0.0.5",
            "0x0a000005",
            "10.1",
            "fd00::1",
            "[fd00::1",
            "[fd00::1]x",
            "[nope]",
            "api..example.com",
            "ex%41mple.com",
        ] {
            assert!(
                HostPattern::parse(bad).is_err(),
                "`{bad}` was taken as a host"
            );
        }
        let too_many: Vec<String> = (0..=MAX_HOSTS)
            .map(|i| format!("h{i}.example.com"))
            .collect();
        assert!(normalize_hosts(&too_many).is_err());
    }

    #[test]
    fn patterns_match_hosts_and_ports() {
        let hosts: Vec<String> = [
            "api.example.com",
            "*.internal.example:8443",
            "10.0.0.5",
            "[fd00::1]",
        ]
        .map(String::from)
        .to_vec();
        let allowed = |u: &str| host_allowed(&hosts, &url(u));
        assert!(allowed("https://api.example.com/v1"));
        assert!(allowed("http://API.example.com:8080/"));
        assert!(allowed("https://api.example.com./"));
        assert!(allowed("https://grafana.internal.example:8443/"));
        assert!(allowed("https://a.b.internal.example:8443/"));
        assert!(allowed("https://10.0.0.5/"));
        assert!(allowed("https://[fd00::1]:9/"));
        assert!(
            !allowed("https://internal.example:8443/"),
            "a wildcard is not the apex"
        );
        assert!(
            !allowed("https://grafana.internal.example/"),
            "port 443 is not 8443"
        );
        assert!(!allowed("https://evilinternal.example:8443/"));
        assert!(!allowed("https://api.example.com.evil.net/"));
        assert!(!allowed("https://evil.net/api.example.com"));
        assert!(!allowed("https://api.example.com@evil.net/"));
        assert!(!allowed("https://10.0.0.6/"));
        assert!(!allowed("https://0x0a000006/"));
        assert!(
            allowed("https://0x0a000005/"),
            "the URL's own notation for 10.0.0.5"
        );
        assert!(!host_allowed(&[], &url("https://api.example.com/")));
    }

    #[test]
    fn the_written_origin_is_the_one_no_template_can_change() {
        let origin = |t: &str| written_origin(t).map(|o| o.ascii_serialization());
        assert_eq!(
            origin("https://api.example.com/v1"),
            Some("https://api.example.com".into())
        );
        assert_eq!(
            origin("https://api.example.com:8443/v1/{{ params.path }}"),
            Some("https://api.example.com:8443".into())
        );
        assert_eq!(
            origin("https://api.example.com?q={{ q }}"),
            Some("https://api.example.com".into())
        );
        assert_eq!(
            origin("https://api.example.com/{% if x %}a{% endif %}"),
            Some("https://api.example.com".into())
        );
        assert_eq!(
            written_scheme("HTTP://{{ params.host }}/"),
            Some("http".into())
        );
        assert_eq!(
            written_scheme("https://api.example.com/"),
            Some("https".into())
        );
        assert_eq!(written_scheme("{{ params.base }}/v1"), None);
        assert_eq!(written_scheme("ht{{ s }}tp://api.example.com/"), None);
        assert_eq!(written_scheme("/x://{{ y }}"), None);
        for templated in [
            "https://{{ params.host }}/v1",
            "{{ params.base }}/v1",
            "https://api.example.com{{ params.path }}",
            "https://api.example.com:{{ params.port }}/",
            "https://{{ user }}@api.example.com/",
            "not a url/{{ x }}",
            "/relative/{{ x }}",
        ] {
            assert_eq!(origin(templated), None, "{templated}");
        }
    }
}
