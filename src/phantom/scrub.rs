//! The real key never comes back: an upstream that echoes what it received (a debugging
//! endpoint, an error message quoting the header, a gateway's request log) would otherwise hand
//! it to the command through the proxy. Responses are relayed with every occurrence of the real
//! key replaced by the stand-in, which has the same length, so `Content-Length` and chunk sizes
//! stay right. A stream arrives in pieces, so the only bytes held back are a tail that could be
//! the start of the key; server-sent events, which end in a blank line, are not delayed.
//!
//! Compressed bodies are not looked into: an upstream that compresses an echo of the key still
//! returns it. API error bodies are not compressed unless the client asks for it.

/// Replaces `real` with `standin` in a stream fed piece by piece.
pub(super) struct Scrub<'a> {
    real: &'a [u8],
    standin: &'a [u8],
    held: Vec<u8>,
}

impl<'a> Scrub<'a> {
    /// `real` and `standin` must have the same length (a stand-in is made that way).
    pub fn new(real: &'a [u8], standin: &'a [u8]) -> Scrub<'a> {
        debug_assert_eq!(real.len(), standin.len());
        Scrub {
            real,
            standin,
            held: Vec::new(),
        }
    }

    /// The bytes of `input` (after any held back before) that can be passed on now, scrubbed.
    pub fn feed(&mut self, input: &[u8]) -> Vec<u8> {
        let mut buf = std::mem::take(&mut self.held);
        buf.extend_from_slice(input);
        if self.real.is_empty() || self.real.len() != self.standin.len() {
            return buf;
        }
        let finder = memchr::memmem::Finder::new(self.real);
        let mut at = 0;
        while let Some(i) = finder.find(&buf[at..]) {
            let start = at + i;
            buf[start..start + self.real.len()].copy_from_slice(self.standin);
            at = start + self.real.len();
        }
        // Hold back the longest tail that is a proper prefix of the key.
        let longest = (self.real.len() - 1).min(buf.len() - at);
        let keep = (1..=longest)
            .rev()
            .find(|&k| buf.ends_with(&self.real[..k]))
            .unwrap_or(0);
        self.held = buf.split_off(buf.len() - keep);
        buf
    }

    /// What is still held back: at the end of the stream it cannot be the key.
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_replaced_wherever_the_stream_is_cut() {
        let real = b"sk-ant-api03-REALREALsk-REALAA";
        let standin = b"sk-ant-api03-standinxsk-xxxxAA";
        let text = [
            &b"HTTP/1.1 401\r\n\r\n{\"error\":\"bad key sk-ant-api03-REALREALsk-REALAA, again "[..],
            real,
            b" and sk-ant-api03-REAL (a prefix) and sk-\"}",
        ]
        .concat();
        let want = [
            &b"HTTP/1.1 401\r\n\r\n{\"error\":\"bad key sk-ant-api03-standinxsk-xxxxAA, again "[..],
            standin,
            b" and sk-ant-api03-REAL (a prefix) and sk-\"}",
        ]
        .concat();
        for a in 0..text.len() {
            for b in a..text.len() {
                let mut s = Scrub::new(real, standin);
                let mut out = s.feed(&text[..a]);
                out.extend(s.feed(&text[a..b]));
                out.extend(s.feed(&text[b..]));
                out.extend(s.finish());
                assert_eq!(out, want, "cut at {a} and {b}");
            }
        }
    }

    #[test]
    fn an_event_stream_is_not_held_back() {
        let mut s = Scrub::new(b"sk-ant-REALAA", b"sk-ant-fakeAA");
        assert_eq!(s.feed(b"data: {}\n\n"), b"data: {}\n\n");
        assert_eq!(s.feed(b"data: s"), b"data: ");
        assert_eq!(s.feed(b"k-x\n\n"), b"sk-x\n\n");
    }
}
