//! SPDY/3.1 frames: what each carries, and their encoding on the wire.
//! Header blocks are compressed with one zlib stream per direction for
//! the whole session, primed with the protocol's dictionary, so a
//! [`Decoder`] and an [`Encoder`] each belong to one session.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

use crate::dictionary::HEADER_DICTIONARY;

/// The protocol version this crate speaks.
pub const VERSION: u16 = 3;

/// Bytes of a control frame's payload, at most (its header block
/// compressed, for the frames that carry one).
pub const CONTROL_FRAME_BYTES_MAX: usize = 64 << 10;

/// Bytes of a data frame's payload, at most.
pub const DATA_FRAME_BYTES_MAX: usize = 1 << 20;

/// Bytes of a header block once decompressed, at most.
pub const HEADER_BLOCK_BYTES_MAX: usize = 256 << 10;

/// Name/value pairs of a header block, at most.
pub const HEADERS_MAX: usize = 1024;

/// Bytes of a frame's fixed header.
const FRAME_HEADER_BYTES: usize = 8;

/// The flag that ends a sender's half of a stream.
const FLAG_FIN: u8 = 0x01;

/// The flag of a SYN_STREAM whose recipient may not send on it.
const FLAG_UNIDIRECTIONAL: u8 = 0x02;

/// Control frame types.
const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const SETTINGS: u16 = 4;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
const WINDOW_UPDATE: u16 = 9;

/// RST_STREAM status codes this crate sends.
pub mod reset {
    /// The stream broke the protocol.
    pub const PROTOCOL_ERROR: u32 = 1;
    /// The stream was refused before any processing (too many streams).
    pub const REFUSED_STREAM: u32 = 3;
    /// The stream is no longer needed.
    pub const CANCEL: u32 = 5;
}

/// A header block: name/value pairs, names lowercase; a name given
/// several values appears once per value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `value` to `name` (lowercased).
    #[must_use]
    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.0.push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    /// The first value of `name` (any case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every pair, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

/// A SPDY/3.1 frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Opens a stream.
    SynStream {
        /// The new stream's id (odd when the client opens it).
        stream: u32,
        /// The stream this one belongs to (0 for none).
        associated: u32,
        /// Priority, 0 (highest) to 7.
        priority: u8,
        /// The opener sends nothing more on it.
        fin: bool,
        /// The recipient may send nothing on it.
        unidirectional: bool,
        /// The stream's headers.
        headers: Headers,
    },
    /// Accepts a stream the other side opened.
    SynReply {
        /// The stream accepted.
        stream: u32,
        /// The replier sends nothing more on it.
        fin: bool,
        /// The reply's headers.
        headers: Headers,
    },
    /// Ends a stream abnormally, both halves at once.
    RstStream {
        /// The stream ended.
        stream: u32,
        /// Why (see [`reset`]).
        status: u32,
    },
    /// Session settings: `(flags, id, value)` each.
    Settings {
        /// The settings, as sent.
        entries: Vec<(u8, u32, u32)>,
    },
    /// A ping, echoed by the side that did not send it.
    Ping {
        /// The ping's id (odd from the client, even from the server).
        id: u32,
    },
    /// Ends the session: no new streams after `last_good`.
    GoAway {
        /// The last stream the sender processed.
        last_good: u32,
        /// Why (0 for a normal end).
        status: u32,
    },
    /// More headers of an open stream.
    Headers {
        /// The stream.
        stream: u32,
        /// The sender sends nothing more on it.
        fin: bool,
        /// The headers.
        headers: Headers,
    },
    /// Flow control credit (SPDY/3.1); Kubernetes' peers neither send
    /// nor honour it.
    WindowUpdate {
        /// The stream (0 for the session).
        stream: u32,
        /// Bytes of credit.
        delta: u32,
    },
    /// Bytes of a stream.
    Data {
        /// The stream.
        stream: u32,
        /// The sender sends nothing more on it.
        fin: bool,
        /// The bytes.
        data: Bytes,
    },
}

/// Why bytes are not a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A frame of another protocol version.
    #[error("SPDY version {0} is not spoken here (only {VERSION})")]
    UnsupportedVersion(u16),
    /// A frame larger than the limit of its kind.
    #[error("a frame of {length} bytes is larger than the {limit} allowed")]
    TooLarge {
        /// The frame's length.
        length: usize,
        /// The limit for its kind.
        limit: usize,
    },
    /// A frame whose fields do not fit its kind.
    #[error("malformed {kind} frame: {reason}")]
    Malformed {
        /// The frame's kind.
        kind: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A header block zlib could not inflate, or inflating past its limit.
    #[error("header block: {0}")]
    HeaderBlock(String),
}

fn malformed(kind: &'static str, reason: impl Into<String>) -> FrameError {
    FrameError::Malformed { kind, reason: reason.into() }
}

/// Reads the frames of one direction of a session.
pub struct Decoder {
    inflate: Decompress,
}

impl Default for Decoder {
    fn default() -> Self {
        Self { inflate: Decompress::new(true) }
    }
}

impl Decoder {
    /// A decoder for a new session.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next whole frame at the start of `buf`, removed from it; `None`
    /// when `buf` holds less than a frame (room for the rest is reserved).
    /// Control frames of unknown types are skipped, as SPDY/3 says.
    ///
    /// # Errors
    /// A frame of another version, over its size limit, or malformed; the
    /// session cannot go on after one.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        loop {
            if buf.len() < FRAME_HEADER_BYTES {
                buf.reserve(FRAME_HEADER_BYTES);
                return Ok(None);
            }
            let first = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
            let flags = buf[4];
            let length = usize::from(buf[5]) << 16 | usize::from(buf[6]) << 8 | usize::from(buf[7]);
            let control = first & 0x8000_0000 != 0;
            let limit = if control { CONTROL_FRAME_BYTES_MAX } else { DATA_FRAME_BYTES_MAX };
            if length > limit {
                return Err(FrameError::TooLarge { length, limit });
            }
            if control {
                let version = ((first >> 16) & 0x7fff) as u16;
                if version != VERSION {
                    return Err(FrameError::UnsupportedVersion(version));
                }
            }
            if buf.len() < FRAME_HEADER_BYTES + length {
                buf.reserve(FRAME_HEADER_BYTES + length - buf.len());
                return Ok(None);
            }
            buf.advance(FRAME_HEADER_BYTES);
            let payload = buf.split_to(length).freeze();
            if !control {
                let stream = first & 0x7fff_ffff;
                if stream == 0 {
                    return Err(malformed("DATA", "stream 0"));
                }
                return Ok(Some(Frame::Data { stream, fin: flags & FLAG_FIN != 0, data: payload }));
            }
            let kind = (first & 0xffff) as u16;
            if let Some(frame) = self.control(kind, flags, payload)? {
                return Ok(Some(frame));
            }
        }
    }

    fn control(&mut self, kind: u16, flags: u8, mut payload: Bytes) -> Result<Option<Frame>, FrameError> {
        let fin = flags & FLAG_FIN != 0;
        let need = |payload: &Bytes, name: &'static str, bytes: usize| {
            if payload.len() < bytes {
                return Err(malformed(name, format!("{} bytes, at least {bytes} expected", payload.len())));
            }
            Ok(())
        };
        let exactly = |payload: &Bytes, name: &'static str, bytes: usize| {
            if payload.len() != bytes {
                return Err(malformed(name, format!("{} bytes, {bytes} expected", payload.len())));
            }
            Ok(())
        };
        let stream_of = |payload: &mut Bytes, name: &'static str| {
            let stream = payload.get_u32() & 0x7fff_ffff;
            if stream == 0 {
                return Err(malformed(name, "stream 0"));
            }
            Ok(stream)
        };
        let frame = match kind {
            SYN_STREAM => {
                need(&payload, "SYN_STREAM", 10)?;
                let stream = stream_of(&mut payload, "SYN_STREAM")?;
                let associated = payload.get_u32() & 0x7fff_ffff;
                let priority = payload.get_u8() >> 5;
                let _slot = payload.get_u8();
                let headers = self.headers(&payload)?;
                let unidirectional = flags & FLAG_UNIDIRECTIONAL != 0;
                Frame::SynStream { stream, associated, priority, fin, unidirectional, headers }
            }
            SYN_REPLY | HEADERS => {
                let name = if kind == SYN_REPLY { "SYN_REPLY" } else { "HEADERS" };
                need(&payload, name, 4)?;
                let stream = stream_of(&mut payload, name)?;
                let headers = self.headers(&payload)?;
                if kind == SYN_REPLY {
                    Frame::SynReply { stream, fin, headers }
                } else {
                    Frame::Headers { stream, fin, headers }
                }
            }
            RST_STREAM => {
                exactly(&payload, "RST_STREAM", 8)?;
                let stream = stream_of(&mut payload, "RST_STREAM")?;
                Frame::RstStream { stream, status: payload.get_u32() }
            }
            SETTINGS => {
                need(&payload, "SETTINGS", 4)?;
                let count = payload.get_u32() as usize;
                if payload.len() != count.saturating_mul(8) {
                    return Err(malformed("SETTINGS", format!("{count} entries in {} bytes", payload.len())));
                }
                let entries = (0..count)
                    .map(|_| {
                        let flags_and_id = payload.get_u32();
                        ((flags_and_id >> 24) as u8, flags_and_id & 0x00ff_ffff, payload.get_u32())
                    })
                    .collect();
                Frame::Settings { entries }
            }
            PING => {
                exactly(&payload, "PING", 4)?;
                Frame::Ping { id: payload.get_u32() }
            }
            GOAWAY => {
                exactly(&payload, "GOAWAY", 8)?;
                Frame::GoAway { last_good: payload.get_u32() & 0x7fff_ffff, status: payload.get_u32() }
            }
            WINDOW_UPDATE => {
                exactly(&payload, "WINDOW_UPDATE", 8)?;
                Frame::WindowUpdate { stream: payload.get_u32() & 0x7fff_ffff, delta: payload.get_u32() & 0x7fff_ffff }
            }
            _ => return Ok(None),
        };
        Ok(Some(frame))
    }

    /// Inflates and parses a header block.
    fn headers(&mut self, compressed: &[u8]) -> Result<Headers, FrameError> {
        let raw = self.inflate(compressed)?;
        parse_headers(&raw)
    }

    fn inflate(&mut self, input: &[u8]) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::with_capacity((input.len() * 4).clamp(64, HEADER_BLOCK_BYTES_MAX));
        let mut consumed = 0;
        loop {
            let (before_in, before_out) = (self.inflate.total_in(), out.len());
            match self.inflate.decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync) {
                Ok(_) => {}
                Err(error) if error.needs_dictionary().is_some() => {
                    self.inflate
                        .set_dictionary(HEADER_DICTIONARY)
                        .map_err(|e| FrameError::HeaderBlock(e.to_string()))?;
                }
                Err(error) => return Err(FrameError::HeaderBlock(error.to_string())),
            }
            let read = usize::try_from(self.inflate.total_in() - before_in).unwrap_or(usize::MAX);
            consumed = consumed.saturating_add(read).min(input.len());
            if out.len() > HEADER_BLOCK_BYTES_MAX {
                return Err(FrameError::HeaderBlock(format!("inflates past {HEADER_BLOCK_BYTES_MAX} bytes")));
            }
            if out.len() < out.capacity() {
                if consumed == input.len() {
                    return Ok(out);
                }
                if read == 0 && out.len() == before_out {
                    return Err(FrameError::HeaderBlock("the compressed bytes end within a block".into()));
                }
            } else {
                out.reserve(out.capacity().max(256));
            }
        }
    }
}

/// Parses an inflated header block: a count, then each name and value
/// with its 32-bit length; values joined by NUL are separate values.
fn parse_headers(mut raw: &[u8]) -> Result<Headers, FrameError> {
    let bad = |reason: &str| FrameError::HeaderBlock(reason.to_owned());
    let field = |raw: &mut &[u8], what: &str| -> Result<String, FrameError> {
        if raw.len() < 4 {
            return Err(bad(&format!("a {what} length is cut short")));
        }
        let length = raw.get_u32() as usize;
        if raw.len() < length {
            return Err(bad(&format!("a {what} of {length} bytes is cut short")));
        }
        let (text, rest) = raw.split_at(length);
        *raw = rest;
        String::from_utf8(text.to_vec()).map_err(|_| bad(&format!("a {what} is not UTF-8")))
    };
    if raw.len() < 4 {
        return Err(bad("the pair count is cut short"));
    }
    let count = raw.get_u32() as usize;
    if count > HEADERS_MAX {
        return Err(bad(&format!("{count} pairs, more than the {HEADERS_MAX} allowed")));
    }
    let mut headers = Headers::new();
    for _ in 0..count {
        let name = field(&mut raw, "name")?;
        if name.is_empty() {
            return Err(bad("an empty name"));
        }
        let value = field(&mut raw, "value")?;
        for value in value.split('\0') {
            headers = headers.with(&name, value);
        }
    }
    if !raw.is_empty() {
        return Err(bad("bytes after the last pair"));
    }
    Ok(headers)
}

/// Writes the frames of one direction of a session.
pub struct Encoder {
    deflate: Compress,
}

impl Default for Encoder {
    fn default() -> Self {
        let mut deflate = Compress::new(Compression::default(), true);
        deflate.set_dictionary(HEADER_DICTIONARY).expect("a new zlib stream takes a dictionary");
        Self { deflate }
    }
}

impl Encoder {
    /// An encoder for a new session.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `frame` to `out`.
    ///
    /// # Errors
    /// A frame over its size limit, or a stream id of more than 31 bits.
    pub fn encode(&mut self, frame: &Frame, out: &mut BytesMut) -> Result<(), FrameError> {
        let flag = |set: bool, flag: u8| if set { flag } else { 0 };
        let mut payload = BytesMut::new();
        let (kind, flags) = match frame {
            Frame::Data { stream, fin, data } => {
                if data.len() > DATA_FRAME_BYTES_MAX {
                    return Err(FrameError::TooLarge { length: data.len(), limit: DATA_FRAME_BYTES_MAX });
                }
                out.reserve(FRAME_HEADER_BYTES + data.len());
                out.put_u32(stream_id(*stream, "DATA")?);
                out.put_u32(u32::from(flag(*fin, FLAG_FIN)) << 24 | data.len() as u32);
                out.put_slice(data);
                return Ok(());
            }
            Frame::SynStream { stream, associated, priority, fin, unidirectional, headers } => {
                payload.put_u32(stream_id(*stream, "SYN_STREAM")?);
                payload.put_u32(*associated & 0x7fff_ffff);
                payload.put_u8((priority & 0x07) << 5);
                payload.put_u8(0);
                self.compress(headers, &mut payload);
                (SYN_STREAM, flag(*fin, FLAG_FIN) | flag(*unidirectional, FLAG_UNIDIRECTIONAL))
            }
            Frame::SynReply { stream, fin, headers } | Frame::Headers { stream, fin, headers } => {
                let kind = if matches!(frame, Frame::SynReply { .. }) { SYN_REPLY } else { HEADERS };
                payload.put_u32(stream_id(*stream, "SYN_REPLY")?);
                self.compress(headers, &mut payload);
                (kind, flag(*fin, FLAG_FIN))
            }
            Frame::RstStream { stream, status } => {
                payload.put_u32(stream_id(*stream, "RST_STREAM")?);
                payload.put_u32(*status);
                (RST_STREAM, 0)
            }
            Frame::Settings { entries } => {
                payload.put_u32(entries.len() as u32);
                for (flags, id, value) in entries {
                    payload.put_u32(u32::from(*flags) << 24 | (id & 0x00ff_ffff));
                    payload.put_u32(*value);
                }
                (SETTINGS, 0)
            }
            Frame::Ping { id } => {
                payload.put_u32(*id);
                (PING, 0)
            }
            Frame::GoAway { last_good, status } => {
                payload.put_u32(last_good & 0x7fff_ffff);
                payload.put_u32(*status);
                (GOAWAY, 0)
            }
            Frame::WindowUpdate { stream, delta } => {
                payload.put_u32(stream & 0x7fff_ffff);
                payload.put_u32(delta & 0x7fff_ffff);
                (WINDOW_UPDATE, 0)
            }
        };
        if payload.len() > CONTROL_FRAME_BYTES_MAX {
            return Err(FrameError::TooLarge { length: payload.len(), limit: CONTROL_FRAME_BYTES_MAX });
        }
        out.reserve(FRAME_HEADER_BYTES + payload.len());
        out.put_u16(0x8000 | VERSION);
        out.put_u16(kind);
        out.put_u32(u32::from(flags) << 24 | payload.len() as u32);
        out.put_slice(&payload);
        Ok(())
    }

    /// Appends `headers`, serialized and compressed (sync-flushed, so the
    /// peer can inflate it at once), to `out`.
    fn compress(&mut self, headers: &Headers, out: &mut BytesMut) {
        let mut raw = Vec::new();
        raw.put_u32(headers.0.len() as u32);
        for (name, value) in &headers.0 {
            raw.put_u32(name.len() as u32);
            raw.put_slice(name.as_bytes());
            raw.put_u32(value.len() as u32);
            raw.put_slice(value.as_bytes());
        }
        let mut compressed = Vec::with_capacity(raw.len() + 64);
        let mut consumed = 0;
        loop {
            let before = self.deflate.total_in();
            self.deflate
                .compress_vec(&raw[consumed..], &mut compressed, FlushCompress::Sync)
                .expect("deflating into a growing buffer does not fail");
            consumed += usize::try_from(self.deflate.total_in() - before).unwrap_or(usize::MAX);
            if consumed >= raw.len() && compressed.len() < compressed.capacity() {
                break;
            }
            compressed.reserve(compressed.capacity().max(256));
        }
        out.put_slice(&compressed);
    }
}

fn stream_id(stream: u32, kind: &'static str) -> Result<u32, FrameError> {
    if stream == 0 || stream > 0x7fff_ffff {
        return Err(malformed(kind, format!("stream id {stream} is not within 1..2^31")));
    }
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn headers() -> impl Strategy<Value = Headers> {
        proptest::collection::vec(("[a-z][a-z0-9-]{0,20}", "[ -~]{0,40}"), 0..8)
            .prop_map(|pairs| pairs.iter().fold(Headers::new(), |h, (n, v)| h.with(n, v)))
    }

    fn frame() -> impl Strategy<Value = Frame> {
        let stream = 1u32..0x7fff_ffff;
        prop_oneof![
            (stream.clone(), 0u32..0x7fff_ffff, 0u8..8, any::<bool>(), any::<bool>(), headers()).prop_map(
                |(stream, associated, priority, fin, unidirectional, headers)| Frame::SynStream {
                    stream,
                    associated,
                    priority,
                    fin,
                    unidirectional,
                    headers
                }
            ),
            (stream.clone(), any::<bool>(), headers()).prop_map(|(stream, fin, headers)| Frame::SynReply {
                stream,
                fin,
                headers
            }),
            (stream.clone(), any::<bool>(), headers()).prop_map(|(stream, fin, headers)| Frame::Headers {
                stream,
                fin,
                headers
            }),
            (stream.clone(), any::<u32>()).prop_map(|(stream, status)| Frame::RstStream { stream, status }),
            proptest::collection::vec((any::<u8>(), 0u32..0x00ff_ffff, any::<u32>()), 0..4)
                .prop_map(|entries| Frame::Settings { entries }),
            any::<u32>().prop_map(|id| Frame::Ping { id }),
            (0u32..0x7fff_ffff, any::<u32>()).prop_map(|(last_good, status)| Frame::GoAway { last_good, status }),
            (0u32..0x7fff_ffff, 0u32..0x7fff_ffff).prop_map(|(stream, delta)| Frame::WindowUpdate { stream, delta }),
            (stream, any::<bool>(), proptest::collection::vec(any::<u8>(), 0..3000))
                .prop_map(|(stream, fin, data)| Frame::Data { stream, fin, data: data.into() }),
        ]
    }

    proptest! {
        #[test]
        fn frames_survive_the_wire_in_any_cut(frames in proptest::collection::vec(frame(), 1..12), cut in 1usize..97) {
            // Goal: what one encoder writes, one decoder reads back frame
            // for frame, the compressed header blocks depending on the
            // ones before them, however the bytes arrive.
            let mut encoder = Encoder::new();
            let mut wire = BytesMut::new();
            for frame in &frames {
                encoder.encode(frame, &mut wire).expect("encodes");
            }
            let mut decoder = Decoder::new();
            let mut buf = BytesMut::new();
            let mut read = Vec::new();
            for chunk in wire.chunks(cut) {
                buf.extend_from_slice(chunk);
                while let Some(frame) = decoder.decode(&mut buf).expect("decodes") {
                    read.push(frame);
                }
            }
            prop_assert!(buf.is_empty());
            prop_assert_eq!(read, frames);
        }

        #[test]
        fn arbitrary_bytes_are_refused_or_awaited_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            // Goal: whatever a peer sends, decoding answers a frame, a
            // wait for more, or an error.
            let mut decoder = Decoder::new();
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = decoder.decode(&mut buf) {}
        }
    }

    #[test]
    fn header_blocks_carry_repeated_names_and_refuse_bombs() {
        // Goal: a value joined by NUL reads as several values; a block
        // inflating past the limit, or a frame past its size, is refused.
        let mut encoder = Encoder::new();
        let mut wire = BytesMut::new();
        let headers = Headers::new().with("StreamType", "data").with("port", "80");
        encoder.encode(&Frame::SynReply { stream: 1, fin: false, headers }, &mut wire).expect("encodes");
        let mut decoder = Decoder::new();
        let Some(Frame::SynReply { headers, .. }) = decoder.decode(&mut wire).expect("decodes") else {
            panic!("a SYN_REPLY")
        };
        assert_eq!((headers.get("streamtype"), headers.get("PORT")), (Some("data"), Some("80")));
        assert_eq!(parse_headers(b"\0\0\0\x01\0\0\0\x01a\0\0\0\x03x\0y").expect("parses").iter().count(), 2);
        assert!(parse_headers(b"\0\0\0\x02\0\0\0\x01a\0\0\0\x00").is_err());

        let huge = "v".repeat(HEADER_BLOCK_BYTES_MAX);
        let mut wire = BytesMut::new();
        let headers = Headers::new().with("big", &huge);
        Encoder::new().encode(&Frame::SynReply { stream: 1, fin: false, headers }, &mut wire).expect("compresses");
        assert!(matches!(Decoder::new().decode(&mut wire), Err(FrameError::HeaderBlock(_))));

        let mut wire = BytesMut::from(&[0x80, 0x03, 0x00, 0x01, 0x00, 0xff, 0xff, 0xff][..]);
        assert!(matches!(Decoder::new().decode(&mut wire), Err(FrameError::TooLarge { .. })));
        let mut wire = BytesMut::from(&[0x80, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00][..]);
        assert_eq!(Decoder::new().decode(&mut wire), Err(FrameError::UnsupportedVersion(2)));
    }

    #[test]
    fn the_dictionary_is_spdy3s() {
        // Goal: the dictionary is the protocol's, byte for byte (its length
        // and zlib's checksum of it, which a compressed block names).
        assert_eq!(HEADER_DICTIONARY.len(), 1423);
        let mut deflate = Compress::new(Compression::default(), true);
        let adler = deflate.set_dictionary(HEADER_DICTIONARY).expect("dictionary");
        assert_eq!(adler, 0xe3c6_a7c2);
    }
}
