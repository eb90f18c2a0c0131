//! How the store packs record bodies: every `doc` and `payload` is one zstd frame. JSON records
//! and payloads shrink to a third or less, which is most of what a record costs on disk.

use super::StoreError;

/// zstd's level: 3 is its default, a good ratio at a few hundred MB/s, far above what the store is
/// fed.
const LEVEL: i32 = 3;

/// `bytes` as one zstd frame.
pub fn pack(bytes: &[u8]) -> Result<Vec<u8>, StoreError> {
    zstd::bulk::compress(bytes, LEVEL).map_err(StoreError::Codec)
}

/// The bytes of a frame [`pack`] made.
pub fn unpack(frame: &[u8]) -> Result<Vec<u8>, StoreError> {
    zstd::stream::decode_all(frame).map_err(StoreError::Codec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_json_shrinks() {
        let json = include_bytes!("../../../tests/fixtures/payloads/github-push.json");
        let frame = pack(json).unwrap();
        assert!(
            frame.len() * 2 < json.len(),
            "{} of {}",
            frame.len(),
            json.len()
        );
        assert_eq!(unpack(&frame).unwrap(), json);
        assert_eq!(unpack(&pack(b"").unwrap()).unwrap(), b"");
        assert!(unpack(b"not a frame").is_err());
    }
}
