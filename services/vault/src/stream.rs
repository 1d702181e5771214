//! The sealed file: a fixed header, then the archive encrypted in chunks (the STREAM construction).
//!
//! Layout (all integers little endian):
//!
//! ```text
//! 0..8    magic "AVTVAULT"
//! 8       format version (1)
//! 9       cipher (1 = AES-256-GCM)
//! 10      kdf (0 = raw 32-byte key, 1 = PBKDF2-HMAC-SHA256 over a passphrase)
//! 11      log2 of the plaintext chunk size (10..=20; 20 = 1 MiB)
//! 12..16  PBKDF2 iterations (0 for a raw key)
//! 16..32  PBKDF2 salt (random)
//! 32..48  file salt (random, fresh for every seal): HKDF(master key, file salt) = this file's key
//! 48..    chunks: every chunk but the last holds exactly `chunk size` plaintext bytes, the last
//!         one fewer (possibly none); each is ciphertext + 16-byte tag
//! ```
//!
//! Chunk `i` is sealed with nonce = 4 zero bytes ‖ `i` as u64 big endian, and AAD = the whole
//! header ‖ final flag (0 or 1). Since the key is fresh per file, a counter nonce never repeats;
//! the counter catches reordering and swapping, the final flag catches truncation at a chunk
//! boundary, the header in the AAD catches any edit of the header, and reading to EOF after the
//! final chunk catches appended bytes.

use std::io::{self, BufRead, Read, Write};
use std::num::NonZeroU32;

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::rand::{SecureRandom, SystemRandom};
use ring::{hkdf, pbkdf2};

use crate::{KeySource, VaultError};

pub(crate) const MAGIC: &[u8; 8] = b"AVTVAULT";
pub(crate) const VERSION: u8 = 1;
const CIPHER_AES_256_GCM: u8 = 1;
const KDF_RAW: u8 = 0;
const KDF_PBKDF2: u8 = 1;
pub(crate) const HEADER_LEN: usize = 48;
const TAG_LEN: usize = 16;
/// 1 MiB chunks: big enough that the tag and syscall overhead vanish, small enough to bound memory.
pub(crate) const DEFAULT_CHUNK_LOG2: u8 = 20;
const MIN_CHUNK_LOG2: u8 = 10;
/// A crafted header must not make us spin PBKDF2 for minutes.
const MAX_ITERATIONS: u32 = 10_000_000;
const HKDF_INFO: &[u8] = b"avatar-vault v1 file key (AES-256-GCM)";

/// OWASP's 2023 floor for PBKDF2-HMAC-SHA256.
pub(crate) const PRODUCTION_ITERATIONS: u32 = 600_000;
const _: () = assert!(PRODUCTION_ITERATIONS >= 600_000);
/// Tests derive many keys; the format stores the count, so this changes no code path.
#[cfg(not(test))]
pub(crate) const PBKDF2_ITERATIONS: u32 = PRODUCTION_ITERATIONS;
#[cfg(test)]
pub(crate) const PBKDF2_ITERATIONS: u32 = 1_000;

/// The key-derivation half of a header: what an open vault keeps so that resealing can reuse
/// the already-derived master key instead of running PBKDF2 again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Kdf {
    pub(crate) kind: u8,
    pub(crate) iterations: u32,
    pub(crate) salt: [u8; 16],
}

/// The 32-byte secret every file key is derived from; overwritten on drop (best effort: the
/// workspace forbids `unsafe`, so no volatile write).
pub(crate) struct MasterKey([u8; 32]);

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.0.fill(0);
        std::hint::black_box(&self.0);
    }
}

pub(crate) fn random<const N: usize>() -> Result<[u8; N], VaultError> {
    let mut out = [0u8; N];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| VaultError::Random)?;
    Ok(out)
}

impl Kdf {
    /// Fresh parameters for a new sealed directory under `key`.
    pub(crate) fn new(key: &KeySource, iterations: u32) -> Result<Self, VaultError> {
        Ok(match key {
            KeySource::Raw(_) => Kdf {
                kind: KDF_RAW,
                iterations: 0,
                salt: random()?,
            },
            KeySource::Passphrase(_) => Kdf {
                kind: KDF_PBKDF2,
                iterations,
                salt: random()?,
            },
        })
    }

    /// Derives the master key; refuses a key of the other kind with a message that says so.
    pub(crate) fn master_key(&self, key: &KeySource) -> Result<MasterKey, VaultError> {
        match (self.kind, key) {
            (KDF_RAW, KeySource::Raw(raw)) => Ok(MasterKey(*raw)),
            (KDF_PBKDF2, KeySource::Passphrase(pass)) => {
                let iterations = NonZeroU32::new(self.iterations)
                    .filter(|n| n.get() <= MAX_ITERATIONS)
                    .ok_or(VaultError::Corrupt("PBKDF2 iteration count out of range"))?;
                let mut out = [0u8; 32];
                pbkdf2::derive(
                    pbkdf2::PBKDF2_HMAC_SHA256,
                    iterations,
                    &self.salt,
                    pass.as_bytes(),
                    &mut out,
                );
                Ok(MasterKey(out))
            }
            (KDF_RAW, KeySource::Passphrase(_)) => Err(VaultError::KeyKind {
                sealed_with: "a raw 32-byte hex key",
                given: "a passphrase",
            }),
            (KDF_PBKDF2, KeySource::Raw(_)) => Err(VaultError::KeyKind {
                sealed_with: "a passphrase",
                given: "a raw 32-byte hex key",
            }),
            _ => Err(VaultError::Corrupt("unknown key derivation")),
        }
    }
}

/// A parsed header plus its raw bytes (which go into every chunk's AAD).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Header {
    pub(crate) kdf: Kdf,
    chunk_log2: u8,
    file_salt: [u8; 16],
    bytes: [u8; HEADER_LEN],
}

impl Header {
    pub(crate) fn new(kdf: Kdf, chunk_log2: u8) -> Result<Self, VaultError> {
        let file_salt: [u8; 16] = random()?;
        let mut bytes = [0u8; HEADER_LEN];
        bytes[0..8].copy_from_slice(MAGIC);
        bytes[8] = VERSION;
        bytes[9] = CIPHER_AES_256_GCM;
        bytes[10] = kdf.kind;
        bytes[11] = chunk_log2;
        bytes[12..16].copy_from_slice(&kdf.iterations.to_le_bytes());
        bytes[16..32].copy_from_slice(&kdf.salt);
        bytes[32..48].copy_from_slice(&file_salt);
        Ok(Header {
            kdf,
            chunk_log2,
            file_salt,
            bytes,
        })
    }

    /// Parses and checks a header (pure: no key needed yet).
    pub(crate) fn parse(bytes: &[u8; HEADER_LEN]) -> Result<Self, VaultError> {
        if &bytes[0..8] != MAGIC {
            return Err(VaultError::NotSealedFile);
        }
        if bytes[8] != VERSION {
            return Err(VaultError::UnsupportedVersion(bytes[8]));
        }
        if bytes[9] != CIPHER_AES_256_GCM {
            return Err(VaultError::Corrupt("unknown cipher"));
        }
        let chunk_log2 = bytes[11];
        if !(MIN_CHUNK_LOG2..=DEFAULT_CHUNK_LOG2).contains(&chunk_log2) {
            return Err(VaultError::Corrupt("chunk size out of range"));
        }
        let mut iter = [0u8; 4];
        iter.copy_from_slice(&bytes[12..16]);
        let mut salt = [0u8; 16];
        salt.copy_from_slice(&bytes[16..32]);
        let mut file_salt = [0u8; 16];
        file_salt.copy_from_slice(&bytes[32..48]);
        let kdf = Kdf {
            kind: bytes[10],
            iterations: u32::from_le_bytes(iter),
            salt,
        };
        if kdf.kind != KDF_RAW && kdf.kind != KDF_PBKDF2 {
            return Err(VaultError::Corrupt("unknown key derivation"));
        }
        Ok(Header {
            kdf,
            chunk_log2,
            file_salt,
            bytes: *bytes,
        })
    }

    pub(crate) fn read(r: &mut impl Read) -> Result<Self, VaultError> {
        let mut bytes = [0u8; HEADER_LEN];
        r.read_exact(&mut bytes).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => VaultError::NotSealedFile,
            _ => VaultError::Io(e),
        })?;
        Self::parse(&bytes)
    }

    pub(crate) fn chunk_log2(&self) -> u8 {
        self.chunk_log2
    }

    fn chunk_len(&self) -> usize {
        1usize << self.chunk_log2
    }

    fn file_key(&self, master: &MasterKey) -> Result<LessSafeKey, VaultError> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &self.file_salt).extract(&master.0);
        let okm = prk
            .expand(&[HKDF_INFO], &AES_256_GCM)
            .map_err(|_| VaultError::Corrupt("key derivation failed"))?;
        Ok(LessSafeKey::new(UnboundKey::from(okm)))
    }

    fn aad(&self, last: bool) -> [u8; HEADER_LEN + 1] {
        let mut aad = [0u8; HEADER_LEN + 1];
        aad[..HEADER_LEN].copy_from_slice(&self.bytes);
        aad[HEADER_LEN] = u8::from(last);
        aad
    }
}

fn nonce(counter: u64) -> Nonce {
    let mut n = [0u8; aead::NONCE_LEN];
    n[4..].copy_from_slice(&counter.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

/// Encrypts everything written to it; `finish` seals the final chunk. Dropping it without
/// `finish` leaves a file that fails authentication, which is the point.
pub(crate) struct StreamWriter<W: Write> {
    out: W,
    key: LessSafeKey,
    header: Header,
    buf: Vec<u8>,
    counter: u64,
}

impl<W: Write> StreamWriter<W> {
    pub(crate) fn new(mut out: W, header: Header, master: &MasterKey) -> Result<Self, VaultError> {
        let key = header.file_key(master)?;
        out.write_all(&header.bytes)?;
        Ok(StreamWriter {
            out,
            key,
            buf: Vec::with_capacity(header.chunk_len() + TAG_LEN),
            header,
            counter: 0,
        })
    }

    fn seal_chunk(&mut self, last: bool) -> io::Result<()> {
        let aad = self.header.aad(last);
        self.key
            .seal_in_place_append_tag(nonce(self.counter), Aad::from(&aad), &mut self.buf)
            .map_err(|_| io::Error::other("AES-GCM seal failed"))?;
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        self.counter = self
            .counter
            .checked_add(1)
            .ok_or_else(|| io::Error::other("too many chunks"))?;
        Ok(())
    }

    /// Seals the (short, possibly empty) final chunk and returns the inner writer.
    pub(crate) fn finish(mut self) -> Result<W, VaultError> {
        self.seal_chunk(true)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for StreamWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = self.header.chunk_len() - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        // A full chunk is never the last one: the last always holds fewer bytes.
        if self.buf.len() == self.header.chunk_len() {
            self.seal_chunk(false)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Decrypts and authenticates chunk by chunk; yields plaintext only from authenticated chunks
/// and reports EOF only after the final chunk authenticated and the input ended.
pub(crate) struct StreamReader<R: Read> {
    inp: R,
    key: LessSafeKey,
    header: Header,
    buf: Vec<u8>,
    /// Plaintext of the current chunk is `buf[pos..plain_len]`.
    pos: usize,
    plain_len: usize,
    counter: u64,
    done: bool,
}

impl<R: Read> StreamReader<R> {
    /// Reads the header from `inp` and derives the key (PBKDF2 runs here).
    pub(crate) fn open(mut inp: R, key: &KeySource) -> Result<(Self, MasterKey), VaultError> {
        let header = Header::read(&mut inp)?;
        let master = header.kdf.master_key(key)?;
        let reader = Self::with_master(inp, header, &master)?;
        Ok((reader, master))
    }

    pub(crate) fn with_master(
        inp: R,
        header: Header,
        master: &MasterKey,
    ) -> Result<Self, VaultError> {
        Ok(StreamReader {
            inp,
            key: header.file_key(master)?,
            buf: vec![0u8; header.chunk_len() + TAG_LEN],
            header,
            pos: 0,
            plain_len: 0,
            counter: 0,
            done: false,
        })
    }

    pub(crate) fn header(&self) -> &Header {
        &self.header
    }

    fn next_chunk(&mut self) -> Result<(), VaultError> {
        let full = self.header.chunk_len() + TAG_LEN;
        let mut n = 0;
        while n < full {
            match self.inp.read(&mut self.buf[n..full]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(VaultError::Io(e)),
            }
        }
        // Exactly full: a middle chunk. Shorter: the input ended, so this must be the last.
        let last = n < full;
        let aad = self.header.aad(last);
        let plain = self
            .key
            .open_in_place(nonce(self.counter), Aad::from(&aad), &mut self.buf[..n])
            .map_err(|_| VaultError::Authentication)?;
        self.plain_len = plain.len();
        self.pos = 0;
        self.counter = self
            .counter
            .checked_add(1)
            .ok_or(VaultError::Corrupt("too many chunks"))?;
        self.done = last;
        Ok(())
    }
}

impl<R: Read> BufRead for StreamReader<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.pos == self.plain_len && !self.done {
            self.next_chunk().map_err(io::Error::other)?;
        }
        Ok(&self.buf[self.pos..self.plain_len])
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.plain_len);
    }
}

impl<R: Read> Read for StreamReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn raw() -> KeySource {
        KeySource::Raw([7u8; 32])
    }

    fn seal_bytes(plain: &[u8], key: &KeySource, chunk_log2: u8) -> Vec<u8> {
        let kdf = Kdf::new(key, PBKDF2_ITERATIONS).unwrap();
        let master = kdf.master_key(key).unwrap();
        let header = Header::new(kdf, chunk_log2).unwrap();
        let mut w = StreamWriter::new(Vec::new(), header, &master).unwrap();
        w.write_all(plain).unwrap();
        w.finish().unwrap()
    }

    fn open_bytes(sealed: &[u8], key: &KeySource) -> Result<Vec<u8>, VaultError> {
        let (mut r, _) = StreamReader::open(sealed, key)?;
        let mut out = Vec::new();
        r.read_to_end(&mut out).map_err(VaultError::from)?;
        Ok(out)
    }

    #[test]
    fn round_trips_at_every_size_around_chunk_boundaries() {
        for len in [0usize, 1, 1023, 1024, 1025, 2048, 3000] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let sealed = seal_bytes(&plain, &raw(), 10);
            // header + one tag per chunk, and a final (short or empty) chunk always exists
            assert_eq!(sealed.len(), HEADER_LEN + len + (len / 1024 + 1) * TAG_LEN);
            assert_eq!(open_bytes(&sealed, &raw()).unwrap(), plain, "len {len}");
        }
    }

    #[test]
    fn reordered_swapped_or_dropped_chunks_fail() {
        let plain = vec![0x5au8; 3 * 1024 + 100];
        let sealed = seal_bytes(&plain, &raw(), 10);
        let c = 1024 + TAG_LEN;
        let chunk = |i: usize| &sealed[HEADER_LEN + i * c..HEADER_LEN + (i + 1) * c];
        let mut swapped = sealed[..HEADER_LEN].to_vec();
        swapped.extend_from_slice(chunk(1));
        swapped.extend_from_slice(chunk(0));
        swapped.extend_from_slice(&sealed[HEADER_LEN + 2 * c..]);
        assert!(matches!(
            open_bytes(&swapped, &raw()),
            Err(VaultError::Authentication)
        ));
        let mut dropped = sealed[..HEADER_LEN + c].to_vec();
        dropped.extend_from_slice(&sealed[HEADER_LEN + 2 * c..]);
        assert!(matches!(
            open_bytes(&dropped, &raw()),
            Err(VaultError::Authentication)
        ));
        // Chunks of another file sealed under the same key do not splice in (fresh file key).
        let other = seal_bytes(&plain, &raw(), 10);
        let mut spliced = sealed[..HEADER_LEN + c].to_vec();
        spliced.extend_from_slice(&other[HEADER_LEN + c..]);
        assert!(matches!(
            open_bytes(&spliced, &raw()),
            Err(VaultError::Authentication)
        ));
    }

    #[test]
    fn header_edits_are_refused() {
        let sealed = seal_bytes(b"hello", &raw(), 10);
        let mut bad = sealed.clone();
        bad[0] ^= 1;
        assert!(matches!(
            open_bytes(&bad, &raw()),
            Err(VaultError::NotSealedFile)
        ));
        let mut bad = sealed.clone();
        bad[8] = 9;
        assert!(matches!(
            open_bytes(&bad, &raw()),
            Err(VaultError::UnsupportedVersion(9))
        ));
        assert!(matches!(
            open_bytes(&sealed[..10], &raw()),
            Err(VaultError::NotSealedFile)
        ));
        // A passphrase on a raw-key file says what is wrong instead of grinding PBKDF2.
        assert!(matches!(
            open_bytes(&sealed, &KeySource::Passphrase("x".into())),
            Err(VaultError::KeyKind { .. })
        ));
    }

    #[test]
    fn passphrase_key_uses_stored_iterations() {
        let key = KeySource::Passphrase("correct horse".into());
        let sealed = seal_bytes(b"data", &key, 12);
        assert_eq!(
            u32::from_le_bytes(sealed[12..16].try_into().unwrap()),
            PBKDF2_ITERATIONS
        );
        assert_eq!(open_bytes(&sealed, &key).unwrap(), b"data");
        let wrong = KeySource::Passphrase("correct horsf".into());
        assert!(matches!(
            open_bytes(&sealed, &wrong),
            Err(VaultError::Authentication)
        ));
    }
}
