//! Compressed request bodies: `Content-Encoding: gzip` and `zstd` are decoded, never beyond the
//! body limit, so a small bomb cannot inflate into memory; any other coding gets 415.
//!
//! The limit applies twice: to the bytes on the wire (before this module) and to the decoded
//! body, which is what is checked, signed and stored. Decoding stops one byte past the limit, so
//! at most `limit + 1` bytes are ever inflated.

use std::io::Read;

use axum::body::Bytes;
use axum::http::{HeaderMap, header};

use crate::error::IngestError;

/// A body coding ingest decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    /// No coding (`identity`, or no header).
    Identity,
    /// `gzip` (also `x-gzip`), one or more members.
    Gzip,
    /// `zstd`.
    Zstd,
}

impl Coding {
    /// The request's coding, or 415 naming what is not supported. Only one coding is accepted:
    /// senders compress once.
    pub fn of(headers: &HeaderMap) -> Result<Self, IngestError> {
        let mut codings = headers
            .get_all(header::CONTENT_ENCODING)
            .iter()
            .flat_map(|value| value.to_str().unwrap_or("\u{fffd}").split(','))
            .map(|coding| coding.trim().to_ascii_lowercase())
            .filter(|coding| !coding.is_empty() && coding != "identity");
        let first = codings.next();
        if let Some(second) = codings.next() {
            let first = first.unwrap_or_default();
            return Err(IngestError::UnsupportedEncoding(format!(
                "{first}, {second}"
            )));
        }
        match first.as_deref() {
            None => Ok(Self::Identity),
            Some("gzip" | "x-gzip") => Ok(Self::Gzip),
            Some("zstd") => Ok(Self::Zstd),
            Some(other) => Err(IngestError::UnsupportedEncoding(other.to_owned())),
        }
    }

    /// Decodes `body`, refusing with 413 a decoded body over `limit` bytes and with 400 a body
    /// that is not valid in its coding.
    pub fn decode(self, body: Bytes, limit: usize) -> Result<Bytes, IngestError> {
        let invalid = |name: &str, error: std::io::Error| {
            IngestError::InvalidEncoding(format!("the body is not valid {name}: {error}"))
        };
        match self {
            Self::Identity => Ok(body),
            Self::Gzip => read_within(flate2::read::MultiGzDecoder::new(&body[..]), limit)
                .map_err(|error| error.map_invalid(|e| invalid("gzip", e))),
            Self::Zstd => {
                let mut decoder =
                    zstd::stream::read::Decoder::new(&body[..]).map_err(|e| invalid("zstd", e))?;
                // The window a frame asks for is allocated up front, and a frame may ask for
                // far more than its content needs. RFC 9659 bounds the window of HTTP's zstd
                // coding to 8 MiB, which is what any compressor's default levels use; more is
                // refused. Decoding runs on the request's thread, so the windows in memory at
                // once are at most one per runtime worker.
                decoder
                    .window_log_max(window_log(limit).max(HTTP_WINDOW_LOG))
                    .map_err(|e| invalid("zstd", e))?;
                read_within(decoder, limit)
                    .map_err(|error| error.map_invalid(|e| invalid("zstd", e)))
            }
        }
    }
}

/// Why a decoded body could not be had.
enum ReadError {
    /// Over the limit.
    TooLarge(usize),
    /// Not valid in its coding.
    Invalid(std::io::Error),
}

impl ReadError {
    fn map_invalid(self, invalid: impl FnOnce(std::io::Error) -> IngestError) -> IngestError {
        match self {
            Self::TooLarge(limit) => IngestError::PayloadTooLarge(limit),
            Self::Invalid(error) => invalid(error),
        }
    }
}

/// Reads all of `decoder`, but never more than `limit + 1` bytes.
fn read_within(decoder: impl Read, limit: usize) -> Result<Bytes, ReadError> {
    let mut decoded = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    decoder
        .take(cap)
        .read_to_end(&mut decoded)
        .map_err(ReadError::Invalid)?;
    if decoded.len() > limit {
        return Err(ReadError::TooLarge(limit));
    }
    Ok(Bytes::from(decoded))
}

/// The largest zstd window RFC 9659 lets HTTP senders use: 8 MiB.
const HTTP_WINDOW_LOG: u32 = 23;

/// The base-2 logarithm of the smallest zstd window that holds `limit` bytes, within zstd's
/// bounds (10 to 31).
fn window_log(limit: usize) -> u32 {
    let bits = usize::BITS - limit.max(1).saturating_sub(1).leading_zeros();
    bits.clamp(10, 31)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use axum::http::HeaderValue;

    use super::*;

    fn headers(encoding: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_str(encoding).unwrap(),
        );
        headers
    }

    fn gzip(data: &[u8]) -> Bytes {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(data).unwrap();
        Bytes::from(encoder.finish().unwrap())
    }

    fn zstd(data: &[u8]) -> Bytes {
        Bytes::from(zstd::stream::encode_all(data, 19).unwrap())
    }

    #[test]
    fn names_the_codings_it_decodes_and_refuses_others() {
        assert_eq!(Coding::of(&HeaderMap::new()).unwrap(), Coding::Identity);
        assert_eq!(Coding::of(&headers("identity")).unwrap(), Coding::Identity);
        assert_eq!(Coding::of(&headers("GZip")).unwrap(), Coding::Gzip);
        assert_eq!(Coding::of(&headers("x-gzip")).unwrap(), Coding::Gzip);
        assert_eq!(Coding::of(&headers("zstd")).unwrap(), Coding::Zstd);
        for refused in ["br", "deflate", "compress", "gzip, gzip", "gzip, zstd"] {
            let error = Coding::of(&headers(refused)).unwrap_err();
            assert_eq!(error.code(), "unsupported_encoding", "{refused}");
            assert_eq!(error.status().as_u16(), 415, "{refused}");
        }
    }

    #[test]
    fn decodes_gzip_and_zstd_within_the_limit() {
        let json = br#"{"hello": "world"}"#;
        for (coding, body) in [(Coding::Gzip, gzip(json)), (Coding::Zstd, zstd(json))] {
            assert_eq!(&coding.decode(body, 1024).unwrap()[..], json, "{coding:?}");
        }
        assert_eq!(
            &Coding::Identity
                .decode(Bytes::from_static(json), 1024)
                .unwrap()[..],
            json
        );
    }

    #[test]
    fn a_decompression_bomb_is_refused_without_inflating_past_the_limit() {
        // 64 MiB of zeros compress to a few kilobytes.
        let bomb = vec![0u8; 64 << 20];
        for (coding, body) in [(Coding::Gzip, gzip(&bomb)), (Coding::Zstd, zstd(&bomb))] {
            assert!(
                body.len() < 256 << 10,
                "{coding:?} bomb is {} bytes",
                body.len()
            );
            let error = coding.decode(body, 1 << 20).unwrap_err();
            assert_eq!(error.code(), "payload_too_large", "{coding:?}");
        }
        // Exactly at the limit passes; one byte more does not.
        let exact = vec![b' '; 1000];
        assert!(Coding::Gzip.decode(gzip(&exact), 1000).is_ok());
        assert!(Coding::Gzip.decode(gzip(&exact), 999).is_err());
    }

    #[test]
    fn a_body_that_is_not_what_its_coding_says_gets_400() {
        for coding in [Coding::Gzip, Coding::Zstd] {
            let error = coding
                .decode(Bytes::from_static(br#"{"plain": "json"}"#), 1024)
                .unwrap_err();
            assert_eq!(error.code(), "invalid_encoding", "{coding:?}");
            assert_eq!(error.status().as_u16(), 400);
        }
    }

    #[test]
    fn a_zstd_frame_asking_for_a_huge_window_is_refused() {
        // A tiny body whose frame asks the decoder for a 128 MiB window, beyond RFC 9659's
        // 8 MiB: refused before that window is allocated, although its content is tiny.
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        encoder.window_log(27).unwrap();
        encoder.write_all(b"{}").unwrap();
        let body = Bytes::from(encoder.finish().unwrap());
        assert!(zstd::stream::decode_all(&body[..]).is_ok(), "a valid frame");
        let error = Coding::Zstd.decode(body, 1 << 20).unwrap_err();
        assert_eq!(error.code(), "invalid_encoding", "{error}");
    }

    #[test]
    fn window_logs_cover_the_limit() {
        assert_eq!(window_log(1 << 20), 20);
        assert_eq!(window_log((1 << 20) + 1), 21);
        assert_eq!(window_log(1), 10);
        assert_eq!(window_log(usize::MAX), 31);
    }
}
