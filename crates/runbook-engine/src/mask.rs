//! Secret masking: every secret value resolved during a run is replaced by `***` in
//! what the run streams and stores, also when a value arrives split across reads.

use aho_corasick::{AhoCorasick, MatchKind};
use std::sync::Arc;

pub const MASK: &str = "***";

/// The secret values of one run; grows as steps resolve credentials.
#[derive(Clone, Default)]
pub struct Secrets {
    values: Vec<String>,
    matcher: Option<Arc<AhoCorasick>>,
}

impl Secrets {
    /// Adds values to mask (empty ones are ignored).
    pub fn add(&mut self, values: impl IntoIterator<Item = String>) {
        let before = self.values.len();
        for value in values {
            if !value.is_empty() && !self.values.contains(&value) {
                self.values.push(value);
            }
        }
        if self.values.len() != before {
            self.matcher = Some(Arc::new(
                AhoCorasick::builder()
                    .match_kind(MatchKind::LeftmostLongest)
                    .build(&self.values)
                    .expect("literal patterns always build"),
            ));
        }
    }

    /// `text` with every secret replaced.
    pub fn mask(&self, text: &str) -> String {
        match &self.matcher {
            Some(matcher) => matcher.replace_all(text, &vec![MASK; self.values.len()]),
            None => text.to_string(),
        }
    }

    /// `text`, which was cut short (a response body kept up to a bound), with every
    /// secret replaced, and an end that could be the start of a secret cut off by the
    /// bound replaced too.
    pub fn mask_cut(&self, text: &str) -> String {
        let mut stream = self.stream();
        let mut out = stream.push(text.as_bytes());
        if !stream.carry.is_empty() {
            out.extend_from_slice(MASK.as_bytes());
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// A masker for one byte stream.
    pub fn stream(&self) -> StreamMasker {
        StreamMasker {
            matcher: self.matcher.clone(),
            secrets: self.values.clone(),
            longest: self.values.iter().map(String::len).max().unwrap_or(0),
            carry: Vec::new(),
        }
    }
}

/// Masks a byte stream read in arbitrary pieces: holds back the few bytes at the
/// end of a piece that could be the start of a secret until the next piece shows.
pub struct StreamMasker {
    matcher: Option<Arc<AhoCorasick>>,
    secrets: Vec<String>,
    longest: usize,
    carry: Vec<u8>,
}

impl StreamMasker {
    /// True when there is something to mask.
    pub fn is_active(&self) -> bool {
        self.matcher.is_some()
    }

    /// Takes the next piece; returns what can be released, masked.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        let Some(matcher) = &self.matcher else {
            return bytes.to_vec();
        };
        self.carry.extend_from_slice(bytes);
        let buffer = std::mem::take(&mut self.carry);
        // Only a tail that could be the start of a secret waits for the next piece.
        let mut cut = buffer.len() - self.held_tail(&buffer);
        let mut out = Vec::with_capacity(buffer.len());
        let mut at = 0;
        for found in matcher.find_iter(&buffer) {
            if found.start() >= cut {
                break;
            }
            out.extend_from_slice(&buffer[at..found.start()]);
            out.extend_from_slice(MASK.as_bytes());
            at = found.end();
            cut = cut.max(at);
        }
        out.extend_from_slice(&buffer[at..cut]);
        self.carry = buffer[cut..].to_vec();
        out
    }

    /// Length of the longest tail of `buffer` that is a proper prefix of a secret.
    fn held_tail(&self, buffer: &[u8]) -> usize {
        let most = self.longest.saturating_sub(1).min(buffer.len());
        (1..=most)
            .rev()
            .find(|&len| {
                let tail = &buffer[buffer.len() - len..];
                self.secrets
                    .iter()
                    .any(|secret| secret.as_bytes().starts_with(tail))
            })
            .unwrap_or(0)
    }

    /// The end of the stream: releases what was held back.
    pub fn finish(&mut self) -> Vec<u8> {
        let rest = std::mem::take(&mut self.carry);
        match &self.matcher {
            Some(matcher) => {
                matcher.replace_all_bytes(&rest, &vec![MASK.as_bytes(); matcher.patterns_len()])
            }
            None => rest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(values: &[&str]) -> Secrets {
        let mut secrets = Secrets::default();
        secrets.add(values.iter().map(|v| v.to_string()));
        secrets
    }

    #[test]
    fn masks_whole_values_in_text() {
        let s = secrets(&["hunter2", "tok-123"]);
        assert_eq!(s.mask("pw=hunter2 t=tok-123!"), "pw=*** t=***!");
        assert_eq!(Secrets::default().mask("hunter2"), "hunter2");
    }

    #[test]
    fn masks_values_split_across_every_possible_boundary() {
        let s = secrets(&["s3cr3t-value", "other"]);
        let text = b"before s3cr3t-value middle s3cr3t-value+other after s3cr3t-valu";
        for size in 1..text.len() {
            let mut stream = s.stream();
            let mut out = Vec::new();
            for piece in text.chunks(size) {
                out.extend(stream.push(piece));
            }
            out.extend(stream.finish());
            assert_eq!(
                String::from_utf8(out).unwrap(),
                "before *** middle ***+*** after s3cr3t-valu",
                "pieces of {size}"
            );
        }
    }

    #[test]
    fn a_text_cut_inside_a_secret_does_not_keep_its_start() {
        let s = secrets(&["s3cr3t-value"]);
        assert_eq!(s.mask_cut("a s3cr3t-value b s3cr3t-va"), "a *** b ***");
        assert_eq!(s.mask_cut("ends with s"), "ends with ***");
        assert_eq!(s.mask_cut("nothing secret"), "nothing secret");
        assert_eq!(Secrets::default().mask_cut("s3cr3t"), "s3cr3t");
    }

    #[test]
    fn releases_at_once_what_cannot_start_a_secret() {
        let s = secrets(&["s3cr3t-value"]);
        let mut stream = s.stream();
        assert_eq!(stream.push(b"ready\n"), b"ready\n");
        assert_eq!(stream.push(b"almost s3c"), b"almost ");
        assert_eq!(stream.push(b"r3t-value!"), b"***!");
    }

    #[test]
    fn passes_bytes_through_untouched_without_secrets() {
        let mut stream = Secrets::default().stream();
        assert_eq!(stream.push(b"abc"), b"abc");
        assert!(stream.finish().is_empty());
    }
}
