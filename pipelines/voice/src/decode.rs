//! Any recording a family has (voice notes, videos, old CDs ripped to mp3) → mono f32 PCM.
//!
//! symphonia (pure Rust) reads wav, flac, mp3, ogg/vorbis, mp4/m4a/mov (AAC) and mkv/webm
//! (vorbis). Opus (WhatsApp voice notes, most webm) has no pure-Rust decoder in symphonia 0.5:
//! those files get a clear error that says how to convert them, and lose nothing (the artifact
//! stays in the blob store, so a later version can read it on replay).

use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{DecoderOptions, CODEC_TYPE_NULL, CODEC_TYPE_OPUS};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// Longest recording decoded in one piece: 2 h of 48 kHz mono f32 is 1.4 GB in memory.
pub const MAX_SECONDS: u64 = 2 * 3600;
/// Sample rates a real recording has; a header outside them is damaged (a fuzzed WAV claiming
/// 3.5 GHz made the resampler ask for gigabytes).
pub const RATES: std::ops::RangeInclusive<u32> = 4_000..=384_000;

/// File name endings read as recordings (audio, and video whose sound track is used).
pub const EXTENSIONS: &[&str] = &[
    "wav", "wave", "flac", "mp3", "ogg", "oga", "opus", "m4a", "aac", "mp4", "m4v", "mov", "mkv",
    "webm", "weba",
];

/// Decoded sound, downmixed to one channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    pub samples: Vec<f32>,
    pub sample_rate: u32,
    /// Channels in the file before the downmix.
    pub channels: usize,
    /// Codec as symphonia names it (`pcm_s16le`, `mp3`, `aac`, …).
    pub codec: String,
    /// Packets that could not be decoded and were skipped (a damaged stretch of a file).
    pub skipped_packets: usize,
}

impl Audio {
    pub fn duration_ms(&self) -> u64 {
        if self.sample_rate == 0 {
            return 0;
        }
        self.samples.len() as u64 * 1000 / self.sample_rate as u64
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("not a recording symphonia can read (container not recognised: {0})")]
    Unrecognised(String),
    #[error("the file holds no audio track")]
    NoAudio,
    #[error(
        "{0} audio cannot be decoded yet; convert it first, e.g. `ffmpeg -i IN -c:a flac OUT.flac`"
    )]
    UnsupportedCodec(String),
    #[error("damaged recording: {0}")]
    Damaged(String),
    #[error("longer than {max} minutes; split it first (e.g. `ffmpeg -i IN -f segment -segment_time 3600 -c copy OUT%02d.EXT`)", max = MAX_SECONDS / 60)]
    TooLong,
}

/// Whether `name`/`bytes` look like an audio or video file (by extension or magic number),
/// so the processor sends it here instead of to the text parsers.
pub fn is_recording(name: &str, bytes: &[u8]) -> bool {
    let by_name = extension(name).is_some_and(|e| EXTENSIONS.contains(&e.as_str()));
    let magic = |at: usize, m: &[u8]| bytes.get(at..at + m.len()) == Some(m);
    let by_magic = (magic(0, b"RIFF") && magic(8, b"WAVE"))
        || magic(0, b"fLaC")
        || magic(0, b"OggS")
        || magic(0, b"ID3")
        || magic(4, b"ftyp")
        || magic(0, &[0x1A, 0x45, 0xDF, 0xA3]);
    by_name || by_magic
}

fn extension(name: &str) -> Option<String> {
    let file = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let (_, ext) = file.rsplit_once('.')?;
    Some(ext.to_ascii_lowercase())
}

fn codec_name(codec: symphonia::core::codecs::CodecType) -> String {
    symphonia::default::get_codecs()
        .get_codec(codec)
        .map(|d| d.short_name.to_string())
        .unwrap_or_else(|| {
            if codec == CODEC_TYPE_OPUS {
                "opus".to_string()
            } else {
                format!("codec {codec}")
            }
        })
}

/// Decodes the first audio track of `bytes` (`name` only hints the container).
///
/// symphonia panics on some hostile inputs (an integer overflow in its mkv reader was found
/// by the `recording` fuzz target), so decoding runs under `catch_unwind` and a panic is a
/// damaged recording: one bad file must not take the processor down. Nothing is shared with
/// the closure but the input bytes, so the unwind-safety assertion holds.
pub fn decode(name: &str, bytes: &[u8]) -> Result<Audio, DecodeError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decode_inner(name, bytes))) {
        Ok(result) => result,
        Err(_) => Err(DecodeError::Damaged(
            "the decoder crashed reading it (a damaged or hostile file)".to_string(),
        )),
    }
}

fn decode_inner(name: &str, bytes: &[u8]) -> Result<Audio, DecodeError> {
    let source = MediaSourceStream::new(
        Box::new(std::io::Cursor::new(bytes.to_vec())),
        Default::default(),
    );
    let mut hint = Hint::new();
    if let Some(ext) = extension(name) {
        hint.with_extension(&ext);
    }
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            source,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(|e| DecodeError::Unrecognised(e.to_string()))?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL && t.codec_params.sample_rate.is_some())
        .ok_or(DecodeError::NoAudio)?;
    let track_id = track.id;
    let codec = track.codec_params.codec;
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|_| DecodeError::UnsupportedCodec(codec_name(codec)))?;
    let codec = codec_name(codec);
    let mut sample_rate = track.codec_params.sample_rate.unwrap_or(0);
    let mut channels = track.codec_params.channels.map(|c| c.count()).unwrap_or(0);

    let mut samples: Vec<f32> = Vec::new();
    let mut skipped_packets = 0usize;
    let mut buffer: Option<SampleBuffer<f32>> = None;
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            // A chained stream (a second Ogg logical stream): what came before is complete.
            Err(SymError::ResetRequired) => break,
            Err(e) if !samples.is_empty() => {
                // A damaged or cut-off tail: keep what decoded, count the rest as skipped.
                let _ = e;
                skipped_packets += 1;
                break;
            }
            Err(e) => return Err(DecodeError::Damaged(e.to_string())),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(d) => d,
            Err(SymError::DecodeError(_)) | Err(SymError::IoError(_)) => {
                skipped_packets += 1;
                continue;
            }
            Err(e) => return Err(DecodeError::Damaged(e.to_string())),
        };
        let spec = *decoded.spec();
        if !RATES.contains(&spec.rate) {
            return Err(DecodeError::Damaged(format!(
                "implausible sample rate {} Hz",
                spec.rate
            )));
        }
        if !samples.is_empty() && spec.rate != sample_rate {
            // A stream that changes rate midway: keep what came at the first rate.
            skipped_packets += 1;
            continue;
        }
        sample_rate = spec.rate;
        channels = spec.channels.count().max(1);
        let needed = decoded.capacity() as u64;
        let buf = match &mut buffer {
            Some(b) if b.capacity() as u64 >= needed * channels as u64 => b,
            _ => buffer.insert(SampleBuffer::<f32>::new(needed, spec)),
        };
        buf.copy_interleaved_ref(decoded);
        let inv = 1.0 / channels as f32;
        for frame in buf.samples().chunks_exact(channels) {
            samples.push(frame.iter().sum::<f32>() * inv);
        }
        if sample_rate > 0 && samples.len() as u64 > MAX_SECONDS * sample_rate as u64 {
            return Err(DecodeError::TooLong);
        }
    }
    if sample_rate == 0 || samples.is_empty() {
        return Err(DecodeError::Damaged(
            "no audio could be decoded from it".to_string(),
        ));
    }
    Ok(Audio {
        samples,
        sample_rate,
        channels,
        codec,
        skipped_packets,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::wav::encode_wav;

    fn tone(rate: u32, seconds: f32) -> Vec<f32> {
        (0..(rate as f32 * seconds) as usize)
            .map(|i| 0.5 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / rate as f32).sin())
            .collect()
    }

    #[test]
    fn a_wav_decodes_to_its_samples() {
        let samples = tone(22_050, 0.5);
        let bytes = encode_wav(&samples, 22_050);
        let audio = decode("note.wav", &bytes).unwrap();
        assert_eq!(audio.sample_rate, 22_050);
        assert_eq!(audio.channels, 1);
        assert_eq!(audio.samples.len(), samples.len());
        let max_err = audio
            .samples
            .iter()
            .zip(&samples)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            max_err < 1.0 / 16_000.0,
            "16-bit rounding only, got {max_err}"
        );
        assert_eq!(audio.duration_ms(), 500);
        // The name does not matter when the bytes say what they are.
        assert_eq!(
            decode("no-extension", &bytes).unwrap().samples.len(),
            samples.len()
        );
    }

    #[test]
    fn stereo_is_downmixed() {
        // A 2-channel 16-bit wav: left = +0.5, right = -0.25 → mono 0.125.
        let frames = 100u32;
        let mut data = Vec::new();
        for _ in 0..frames {
            data.extend_from_slice(&((0.5 * 32767.0) as i16).to_le_bytes());
            data.extend_from_slice(&((-0.25 * 32767.0) as i16).to_le_bytes());
        }
        let mut bytes = Vec::new();
        bytes.extend_from_slice(b"RIFF");
        bytes.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        bytes.extend_from_slice(b"WAVEfmt ");
        bytes.extend_from_slice(&16u32.to_le_bytes());
        bytes.extend_from_slice(&1u16.to_le_bytes());
        bytes.extend_from_slice(&2u16.to_le_bytes());
        bytes.extend_from_slice(&8000u32.to_le_bytes());
        bytes.extend_from_slice(&(8000u32 * 4).to_le_bytes());
        bytes.extend_from_slice(&4u16.to_le_bytes());
        bytes.extend_from_slice(&16u16.to_le_bytes());
        bytes.extend_from_slice(b"data");
        bytes.extend_from_slice(&(data.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&data);
        let audio = decode("stereo.wav", &bytes).unwrap();
        assert_eq!((audio.channels, audio.samples.len()), (2, 100));
        assert!(audio.samples.iter().all(|s| (s - 0.125).abs() < 1e-3));
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        assert!(matches!(
            decode("x.mp3", b"this is not audio at all"),
            Err(DecodeError::Unrecognised(_))
        ));
        // A wav header cut off in its data: what decoded is kept, or a clear error.
        let bytes = encode_wav(&tone(8000, 0.2), 8000);
        for cut in [12, 30, 44, 45, 100, bytes.len() - 1] {
            match decode("cut.wav", &bytes[..cut]) {
                Ok(a) => assert!(a.samples.len() <= 1600),
                Err(e) => assert!(!e.to_string().is_empty()),
            }
        }
        assert!(decode("empty.wav", b"").is_err());
    }

    #[test]
    fn a_decoder_panic_is_a_damaged_recording() {
        // Found by the `recording` fuzz target (its first byte picked the name `a.mp3`): an
        // EBML (mkv) element whose size underflows inside symphonia-format-mkv 0.5.5, a panic
        // with overflow checks on (as in tests and fuzzing).
        let input = include_bytes!("../testdata/mkv-size-underflow.bin");
        let panicked = std::panic::catch_unwind(|| decode_inner("a.mp3", &input[1..])).is_err();
        // Tests build dependencies with overflow checks, so the decoder does panic here.
        assert!(
            panicked || !cfg!(debug_assertions),
            "the input no longer panics symphonia"
        );
        match decode("a.mp3", &input[1..]) {
            Err(DecodeError::Damaged(m)) if panicked => assert!(m.contains("crashed"), "{m}"),
            Err(_) | Ok(_) => assert!(!panicked, "a panic must become Damaged"),
        }
    }

    #[test]
    fn an_implausible_sample_rate_is_damage_not_an_allocation() {
        // Found by the `recording` fuzz target: a WAV header claiming 3,540,000,576 Hz.
        let mut bytes = encode_wav(&tone(8000, 0.5), 8000);
        bytes[24..28].copy_from_slice(&3_540_000_576u32.to_le_bytes());
        match decode("a.wav", &bytes) {
            Err(DecodeError::Damaged(m)) => assert!(m.contains("sample rate"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn recordings_are_recognised_by_name_or_bytes() {
        assert!(is_recording("Voice note 2019.OPUS", b""));
        assert!(is_recording("holiday.mp4", b""));
        assert!(is_recording("x", &encode_wav(&[0.0; 10], 8000)));
        assert!(is_recording("x", b"\x00\x00\x00\x18ftypmp42"));
        assert!(is_recording("x", b"OggS\x00\x02"));
        assert!(!is_recording("notes.md", b"# notes"));
        assert!(!is_recording("chat.txt", b"12/01/2020, 10:00 - Ada: hi"));
    }

    #[test]
    fn the_reference_speech_decodes() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference");
        let Ok(bytes) = std::fs::read(dir.join("speech_a.wav")) else {
            eprintln!("skipping: ../shared/reference/speech_a.wav not found");
            return;
        };
        let audio = decode("speech_a.wav", &bytes).unwrap();
        assert_eq!((audio.sample_rate, audio.channels), (22_050, 1));
        assert_eq!(audio.samples.len(), (bytes.len() - 44) / 2);
    }
}
