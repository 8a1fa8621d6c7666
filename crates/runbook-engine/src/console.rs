//! A run's console: output is decoded to whole UTF-8 characters, streamed as events
//! at once, and handed to the sink in batches (by size or age) so memory stays bounded
//! and a crash loses at most one flush interval of output.

use crate::events::Announcer;
use crate::recorder::Recorder;
use crate::{EngineInner, ExecutionEvent};
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

pub struct Console {
    inner: Arc<EngineInner>,
    events: Announcer,
    recorder: Recorder,
    execution_id: Uuid,
    /// Bytes written so far: the offset of the next byte.
    offset: u64,
    /// Bytes not yet handed to the sink; they start at `offset - pending.len()`.
    pending: Vec<u8>,
    last_flush: Instant,
}

impl Console {
    pub fn new(
        inner: Arc<EngineInner>,
        events: Announcer,
        recorder: Recorder,
        execution_id: Uuid,
    ) -> Self {
        Console {
            inner,
            events,
            recorder,
            execution_id,
            offset: 0,
            pending: Vec::new(),
            last_flush: Instant::now(),
        }
    }

    /// Appends text to the console on behalf of `block_id`; returns its length in bytes.
    pub async fn write(&mut self, block_id: &str, text: &str) -> u64 {
        if text.is_empty() {
            return 0;
        }
        if self.events.is_heard() {
            self.events.send(ExecutionEvent::Output {
                execution_id: self.execution_id,
                block_id: block_id.to_string(),
                offset: self.offset,
                text: text.to_string(),
            });
        }
        self.pending.extend_from_slice(text.as_bytes());
        self.offset += text.len() as u64;
        if self.pending.len() >= self.inner.config.flush_bytes
            || self.last_flush.elapsed() >= self.inner.config.flush_interval
        {
            self.flush().await;
        }
        text.len() as u64
    }

    /// Hands buffered output to the writer.
    pub async fn flush(&mut self) {
        self.last_flush = Instant::now();
        if self.pending.is_empty() {
            return;
        }
        let start = self.offset - self.pending.len() as u64;
        let batch = std::mem::take(&mut self.pending);
        self.recorder.output(start, batch).await;
    }
}

/// Turns a byte stream into whole UTF-8 characters, holding back a character split
/// across reads; invalid bytes become U+FFFD.
#[derive(Default)]
pub struct Utf8Stream {
    carry: Vec<u8>,
}

impl Utf8Stream {
    pub fn decode(&mut self, bytes: &[u8]) -> String {
        if self.carry.is_empty() {
            if let Ok(text) = std::str::from_utf8(bytes) {
                return text.to_string();
            }
        }
        self.carry.extend_from_slice(bytes);
        let complete = match std::str::from_utf8(&self.carry) {
            Ok(_) => self.carry.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => incomplete_tail_start(&self.carry),
        };
        let text = String::from_utf8_lossy(&self.carry[..complete]).into_owned();
        self.carry.drain(..complete);
        text
    }

    /// Whatever is left at end of stream.
    pub fn finish(&mut self) -> String {
        let text = String::from_utf8_lossy(&self.carry).into_owned();
        self.carry.clear();
        text
    }
}

/// Where a possibly incomplete character at the end of `bytes` starts (or `len` if none).
pub fn incomplete_tail_start(bytes: &[u8]) -> usize {
    let len = bytes.len();
    for back in 1..=3.min(len) {
        let b = bytes[len - back];
        if b & 0b1100_0000 != 0b1000_0000 {
            let needed = match b {
                0xC0..=0xDF => 2,
                0xE0..=0xEF => 3,
                0xF0..=0xF7 => 4,
                _ => 1,
            };
            return if needed > back { len - back } else { len };
        }
    }
    len
}

#[cfg(test)]
mod tests {
    use super::Utf8Stream;

    #[test]
    fn holds_back_a_character_split_across_reads() {
        let bytes = "héllo €".as_bytes();
        let mut stream = Utf8Stream::default();
        let mut text = String::new();
        for byte in bytes {
            text += &stream.decode(std::slice::from_ref(byte));
        }
        text += &stream.finish();
        assert_eq!(text, "héllo €");
    }

    #[test]
    fn replaces_invalid_bytes_without_losing_the_rest() {
        let mut stream = Utf8Stream::default();
        let mut text = stream.decode(b"ok\xFFok\xE2\x82");
        text += &stream.decode(b"\xAC");
        assert_eq!(text, "ok\u{FFFD}ok€");
    }
}
