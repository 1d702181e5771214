//! Any recording a family has (voice notes, videos, old CDs ripped to mp3) → mono f32 PCM.
//!
//! symphonia (pure Rust) reads wav, flac, mp3, ogg/vorbis, mp4/m4a/mov (AAC) and mkv/webm
//! (vorbis). Opus (WhatsApp voice notes, most webm) has no decoder in symphonia 0.5: Ogg Opus
//! files go to opus-pure (a pure-Rust libopus port with its own Ogg reader, which applies the
//! pre-skip and end trim), and Opus tracks in webm/mkv are demuxed by symphonia and decoded
//! packet by packet with the same decoder. Any other codec gets a clear error that says how to
//! convert the file, and loses nothing (the artifact stays in the blob store, so a later
//! version can read it on replay).

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

/// Whether the bytes are an Ogg stream whose first packet is an Opus header.
fn is_ogg_opus(bytes: &[u8]) -> bool {
    bytes.starts_with(b"OggS") && bytes.get(28..36) == Some(b"OpusHead".as_slice())
}

/// Adds interleaved frames, downmixed to mono, to `out`; false once it is over the cap.
fn push_mono(out: &mut Vec<f32>, interleaved: &[f32], channels: usize, rate: u32) -> bool {
    let channels = channels.max(1);
    let inv = 1.0 / channels as f32;
    for frame in interleaved.chunks_exact(channels) {
        out.push(frame.iter().sum::<f32>() * inv);
    }
    out.len() as u64 <= MAX_SECONDS * rate as u64
}

/// The decoded recording, or the error for a file nothing could be decoded from.
fn finish(
    samples: Vec<f32>,
    sample_rate: u32,
    channels: usize,
    codec: String,
    skipped_packets: usize,
) -> Result<Audio, DecodeError> {
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

/// An Ogg Opus file (`.opus`, WhatsApp's `.ogg`/`.opus` voice notes), decoded at 48 kHz.
fn decode_ogg_opus(bytes: &[u8]) -> Result<Audio, DecodeError> {
    use opus_pure::{OggOpusReader, Trim, MAX_PACKET_SAMPLES};
    const RATE: u32 = 48_000;
    let damaged = |e: opus_pure::Error| DecodeError::Damaged(format!("Ogg Opus: {e}"));
    let mut reader = OggOpusReader::new(std::io::Cursor::new(bytes)).map_err(damaged)?;
    let head = reader.head().clone();
    let channels = head.channel_count as usize;
    if head.mapping_family != 0 {
        return Err(DecodeError::UnsupportedCodec(format!(
            "surround Opus (channel mapping family {})",
            head.mapping_family
        )));
    }
    let mut decoder = head.decoder(RATE as i32).map_err(damaged)?;
    let mut trim = Trim::new(&head, RATE as i32, channels).map_err(damaged)?;
    let mut block = vec![0f32; MAX_PACKET_SAMPLES * channels.max(1)];
    let mut samples = Vec::new();
    let mut skipped_packets = 0;
    loop {
        let packet = match reader.read_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            // A cut-off or damaged tail: keep what decoded.
            Err(_) if !samples.is_empty() => {
                skipped_packets += 1;
                break;
            }
            Err(e) => return Err(damaged(e)),
        };
        match decoder.decode(&packet.data, MAX_PACKET_SAMPLES, &mut block) {
            Ok(n) => {
                let kept = trim.keep(&packet, &block[..(n * channels).min(block.len())]);
                if !push_mono(&mut samples, kept, channels, RATE) {
                    return Err(DecodeError::TooLong);
                }
            }
            Err(_) => skipped_packets += 1,
        }
    }
    finish(samples, RATE, channels, "opus".to_string(), skipped_packets)
}

/// Opus packets from symphonia's demuxer (webm, mkv) → mono 48 kHz. The codec private data
/// is the OpusHead (RFC 7845), whose pre-skip is taken off the front.
fn decode_opus_track(
    format: &mut dyn symphonia::core::formats::FormatReader,
    track_id: u32,
    params: &symphonia::core::codecs::CodecParameters,
) -> Result<Audio, DecodeError> {
    const RATE: u32 = 48_000;
    let head = params.extra_data.as_deref().unwrap_or(&[]);
    let (channels, pre_skip) = if head.starts_with(b"OpusHead") && head.len() >= 19 {
        (
            head[9] as usize,
            u16::from_le_bytes([head[10], head[11]]) as usize,
        )
    } else {
        (params.channels.map(|c| c.count()).unwrap_or(1), 312)
    };
    if !(1..=2).contains(&channels) {
        return Err(DecodeError::UnsupportedCodec(format!(
            "{channels}-channel Opus"
        )));
    }
    let mut decoder = opus_pure::OpusDecoder::new(RATE as i32, channels)
        .map_err(|e| DecodeError::Damaged(format!("Opus: {e}")))?;
    let mut block = vec![0f32; opus_pure::MAX_PACKET_SAMPLES * channels];
    let mut samples = Vec::new();
    let mut skipped_packets = 0;
    let mut to_skip = pre_skip;
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(_) if !samples.is_empty() => {
                skipped_packets += 1;
                break;
            }
            Err(e) => return Err(DecodeError::Damaged(e.to_string())),
        };
        if packet.track_id() != track_id {
            continue;
        }
        match decoder.decode(&packet.data, opus_pure::MAX_PACKET_SAMPLES, &mut block) {
            Ok(n) => {
                let frames = &block[..(n * channels).min(block.len())];
                let skip = (to_skip * channels).min(frames.len());
                to_skip -= skip / channels;
                if !push_mono(&mut samples, &frames[skip..], channels, RATE) {
                    return Err(DecodeError::TooLong);
                }
            }
            Err(_) => skipped_packets += 1,
        }
    }
    finish(samples, RATE, channels, "opus".to_string(), skipped_packets)
}

fn decode_inner(name: &str, bytes: &[u8]) -> Result<Audio, DecodeError> {
    if is_ogg_opus(bytes) {
        return decode_ogg_opus(bytes);
    }
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
    if codec == CODEC_TYPE_OPUS {
        let params = track.codec_params.clone();
        return decode_opus_track(format.as_mut(), track_id, &params);
    }
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
        if !push_mono(&mut samples, buf.samples(), channels, sample_rate) {
            return Err(DecodeError::TooLong);
        }
    }
    finish(samples, sample_rate, channels, codec, skipped_packets)
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

    /// An Ogg Opus file as a voice-note app writes it: 48 kHz, 20 ms frames, VoIP mode.
    fn ogg_opus(samples: &[f32], channels: usize, bitrate: i32) -> Vec<u8> {
        use opus_pure::{Application, OggOpusWriter, OpusEncoder, OpusHead, MAX_PACKET_BYTES};
        let mut enc = OpusEncoder::new(48_000, channels, Application::Voip).unwrap();
        enc.bitrate_bps = bitrate;
        let head = OpusHead::for_encoder(&enc, 48_000);
        let mut w = OggOpusWriter::new(Vec::new(), head).unwrap();
        let mut packet = vec![0u8; MAX_PACKET_BYTES];
        let frame = 960;
        let mut padded = samples.to_vec();
        padded.resize(
            samples.len().div_ceil(frame * channels) * frame * channels,
            0.0,
        );
        for block in padded.chunks_exact(frame * channels) {
            let n = enc.encode(block, frame, &mut packet).unwrap();
            w.write_packet(&packet[..n]).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn ogg_opus_voice_notes_decode() {
        // 4 s of a 220 Hz voice-like tone with harmonics (several Ogg pages).
        let tone: Vec<f32> = (0..4 * 48_000)
            .map(|i| {
                let t = i as f32 / 48_000.0;
                (1..5)
                    .map(|h| 0.2 / h as f32 * (std::f32::consts::TAU * 220.0 * h as f32 * t).sin())
                    .sum()
            })
            .collect();
        let bytes = ogg_opus(&tone, 1, 24_000);
        assert!(is_recording("PTT-20240101-WA0001.opus", &bytes));
        assert!(is_recording("voice", &bytes));
        let audio = decode("PTT-20240101-WA0001.opus", &bytes).unwrap();
        assert_eq!((audio.sample_rate, audio.channels), (48_000, 1));
        assert_eq!(audio.codec, "opus");
        assert_eq!(audio.skipped_packets, 0);
        // The pre-skip is taken off: the stream is as long as what went in (within a frame).
        assert!(
            (audio.samples.len() as i64 - 4 * 48_000).abs() <= 960,
            "{}",
            audio.samples.len()
        );
        // Lossy, but the same sound: high correlation in the middle (the codec's delay is
        // compensated by the pre-skip, so no lag search is needed beyond a few samples).
        let best = (0..8)
            .map(|lag| {
                let (a, b) = (
                    &tone[10_000..40_000],
                    &audio.samples[10_000 + lag..40_000 + lag],
                );
                let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
                let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
                let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
                dot / (na * nb)
            })
            .fold(f32::MIN, f32::max);
        assert!(best > 0.95, "correlation {best}");
        // Stereo is downmixed like any other stereo file.
        let stereo: Vec<f32> = tone.iter().flat_map(|&x| [x, x]).collect();
        let audio = decode("x.opus", &ogg_opus(&stereo, 2, 48_000)).unwrap();
        assert_eq!(audio.channels, 2);
        // A truncated upload keeps what arrived; a header-only file is an error, not a panic.
        let cut = decode("x.opus", &bytes[..bytes.len() * 2 / 3]).unwrap();
        assert!(
            cut.samples.len() > 48_000 && cut.samples.len() < 3 * 48_000,
            "{}",
            cut.samples.len()
        );
        assert!(decode("x.opus", &bytes[..60]).is_err());
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
