//! A run's whole console saved as a file: read from the store a page at a time, so a
//! console of gigabytes costs a page of memory, and written either as the terminal got
//! it or as plain text for an editor, `grep` or a ticket.

use crate::{Actor, CoreError, Service};
use runbook_domain::Role;
use runbook_store::Store;
use serde::Deserialize;
use std::sync::Arc;
use uuid::Uuid;

/// Console bytes read from the store at a time.
const PAGE: u64 = 1024 * 1024;

/// What becomes of the terminal's escape sequences (colours, cursor moves) in a saved
/// console.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Escapes {
    /// Removed, and line ends made `\n`: text for an editor or `grep`.
    #[default]
    Strip,
    /// Kept: the bytes as the console holds them, for `less -R` or a terminal.
    Keep,
}

/// A run's console being read out, a piece at a time, from its first byte to its end
/// when it was opened (a live run's console is not followed further). Secrets were
/// masked when the console was written.
pub struct ConsoleLog {
    /// A name to save it under, like the report's with `.log`: safe as a file name and
    /// in a header.
    pub file_name: String,
    store: Arc<dyn Store>,
    id: Uuid,
    offset: u64,
    end: u64,
    plain: Option<PlainText>,
}

impl ConsoleLog {
    /// The next piece of the file, never empty; none after the last. An error when the
    /// stored console ends before the end it had when opened: a file cut short must not
    /// look whole.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, CoreError> {
        while self.offset < self.end {
            let limit = PAGE.min(self.end - self.offset);
            let bytes = self.store.read_output(self.id, self.offset, limit).await?;
            if bytes.is_empty() {
                return Err(CoreError::Internal(format!(
                    "the stored console of run {} has no bytes at {} of its {}",
                    self.id, self.offset, self.end
                )));
            }
            self.offset += bytes.len() as u64;
            let at_end = self.offset >= self.end;
            let chunk = match &mut self.plain {
                None => bytes,
                Some(plain) => {
                    let mut text = plain.push(&bytes);
                    if at_end {
                        text.extend(plain.finish());
                    }
                    text
                }
            };
            // A page of escape sequences alone comes out empty: read on.
            if !chunk.is_empty() {
                return Ok(Some(chunk));
            }
        }
        Ok(None)
    }
}

impl Service {
    /// The run `id`'s whole console, to be saved as a file.
    pub async fn console_log(
        &self,
        actor: &Actor,
        id: Uuid,
        escapes: Escapes,
    ) -> Result<ConsoleLog, CoreError> {
        actor.require(Role::Viewer)?;
        let execution = self.get_execution(actor, id).await?;
        let end = self.store.output_length(id).await?;
        Ok(ConsoleLog {
            file_name: crate::export::file_name(&execution, "log"),
            store: self.store.clone(),
            id,
            offset: 0,
            end,
            plain: (escapes == Escapes::Strip).then(PlainText::default),
        })
    }
}

/// Terminal output made plain text as it comes, in pieces split anywhere: escape
/// sequences are dropped (one split between two pieces too); `\r\n`, a lone `\r` (a
/// progress line redrawn), a vertical tab and a form feed end a line as `\n`, and a `\r`
/// at the start of a line adds none; tabs stay; other control characters (DEL and the
/// C1 controls too) go; bytes that are not UTF-8 become U+FFFD, except a lone byte
/// from 0x80 to 0x9f, which vte reads as a C1 control (the engine stores consoles as
/// UTF-8, so only a file written otherwise has those); a character cut off at the very
/// end is dropped.
/// Memory stays bounded whatever comes: with its default features, vte keeps at most
/// 1 KiB of an unterminated OSC sequence.
#[derive(Default)]
pub(crate) struct PlainText {
    parser: vte::Parser,
    out: Lines,
}

#[derive(Default)]
struct Lines {
    text: Vec<u8>,
    /// A `\r` seen after text on its line and not yet written: a `\n` after it ends
    /// the same line.
    carriage_return: bool,
    /// Some text written since the last line end.
    in_line: bool,
}

impl Lines {
    fn end_a_returned_line(&mut self) {
        if std::mem::take(&mut self.carriage_return) {
            self.end_line();
        }
    }

    fn end_line(&mut self) {
        self.text.push(b'\n');
        self.in_line = false;
    }
}

impl vte::Perform for Lines {
    fn print(&mut self, c: char) {
        // DEL and C1 controls (vte hands over one split between two pieces as a
        // character) are no text.
        if matches!(c, '\u{7f}'..='\u{9f}') {
            return;
        }
        self.end_a_returned_line();
        let mut buf = [0; 4];
        self.text
            .extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        self.in_line = true;
    }

    fn execute(&mut self, byte: u8) {
        match byte {
            b'\n' | 0x0b | 0x0c => {
                self.carriage_return = false;
                self.end_line();
            }
            b'\r' => self.carriage_return = self.in_line,
            b'\t' => {
                self.end_a_returned_line();
                self.text.push(b'\t');
                self.in_line = true;
            }
            _ => {}
        }
    }
}

impl PlainText {
    /// The text of `bytes`, given what came before them.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.parser.advance(&mut self.out, bytes);
        std::mem::take(&mut self.out.text)
    }

    /// What is left once the output has ended: a last line ended by `\r`.
    pub(crate) fn finish(&mut self) -> Vec<u8> {
        self.out.end_a_returned_line();
        std::mem::take(&mut self.out.text)
    }

    /// All of `bytes` as text.
    pub(crate) fn of(bytes: &[u8]) -> String {
        let mut plain = PlainText::default();
        let mut text = plain.push(bytes);
        text.extend(plain.finish());
        String::from_utf8(text).expect("only whole characters are written")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONSOLE: &[u8] = b"\x1b[1;36m\xe2\x96\xb6 build\x1b[0m (command)\r\n\
        name\tstate\r\n\
        10%\r50%\r100%\n\r\
        \x1b]0;title\x07\x1b[2K\x1b[32mok\x1b[0m caf\xc3\xa9\r\n\
        page\x0cnext\x7f\xc2\x85\n\
        bad \xff and \x9b byte\x08\r";

    const PLAIN: &str = "▶ build (command)\nname\tstate\n10%\n50%\n100%\nok café\npage\nnext\n\
        bad \u{FFFD} and  byte\n";

    #[test]
    fn a_console_becomes_plain_lines() {
        assert_eq!(PlainText::of(CONSOLE), PLAIN);
        // A character cut off at the end is dropped, not shown as garbage.
        assert_eq!(PlainText::of(b"caf\xc3"), "caf");
    }

    #[test]
    fn a_console_split_anywhere_becomes_the_same_text() {
        // Every split point, so escape sequences, `\r\n` and characters are cut too.
        for cut in 0..=CONSOLE.len() {
            let mut plain = PlainText::default();
            let mut text = plain.push(&CONSOLE[..cut]);
            text.extend(plain.push(&CONSOLE[cut..]));
            text.extend(plain.finish());
            assert_eq!(String::from_utf8(text).unwrap(), PLAIN, "cut at {cut}");
        }
    }
}
