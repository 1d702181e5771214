//! Whose voice is it: family recordings hold several speakers, and only the person's clips may
//! train their voice. Clips are grouped by speaker embedding (average-linkage agglomerative
//! clustering on cosine similarity: no number of speakers to guess), and the group of the one
//! clip the user confirms as the person is theirs.

use crate::speaker::{cosine, normalize_volume, SpeakerEncoder, SpeakerError, SAMPLE_RATE};

/// Clips whose average similarity is at least this are one speaker. resemblyzer puts clean
/// utterances of one speaker mostly above 0.8; not calibrated here on real multi-speaker family
/// recordings (none are available), hence the `--threshold` flag.
pub const DEFAULT_THRESHOLD: f32 = 0.80;

/// A clip's embedding as resemblyzer computes it: 16 kHz, volume to −30 dBFS (raised only).
pub fn embed_clip(
    encoder: &SpeakerEncoder,
    samples: &[f32],
    sample_rate: u32,
) -> Result<Vec<f32>, SpeakerError> {
    let at16k = crate::dsp::resample(samples, sample_rate, SAMPLE_RATE)
        .map_err(|e| SpeakerError::Audio(e.to_string()))?;
    encoder.embed_utterance(&normalize_volume(&at16k, -30.0, true))
}

/// Speaker labels (0, 1, …, in order of first appearance) for `embeddings`.
pub fn cluster(embeddings: &[Vec<f32>], threshold: f32) -> Vec<usize> {
    let n = embeddings.len();
    let mut groups: Vec<Vec<usize>> = (0..n).map(|i| vec![i]).collect();
    let sim: Vec<Vec<f32>> = (0..n)
        .map(|i| {
            (0..n)
                .map(|j| cosine(&embeddings[i], &embeddings[j]))
                .collect()
        })
        .collect();
    let linkage = |a: &[usize], b: &[usize]| -> f32 {
        let total: f32 = a
            .iter()
            .flat_map(|&i| b.iter().map(move |&j| (i, j)))
            .map(|(i, j)| sim[i][j])
            .sum();
        total / (a.len() * b.len()) as f32
    };
    loop {
        let mut best: Option<(usize, usize, f32)> = None;
        for i in 0..groups.len() {
            for j in i + 1..groups.len() {
                let s = linkage(&groups[i], &groups[j]);
                if s >= threshold && best.is_none_or(|(_, _, b)| s > b) {
                    best = Some((i, j, s));
                }
            }
        }
        let Some((i, j, _)) = best else { break };
        let merged = groups.remove(j);
        groups[i].extend(merged);
    }
    // Label groups by their earliest clip, so labels read in recording order.
    groups.sort_by_key(|g| g.iter().copied().min().unwrap_or(usize::MAX));
    let mut labels = vec![0; n];
    for (label, g) in groups.iter().enumerate() {
        for &i in g {
            labels[i] = label;
        }
    }
    labels
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn clips_group_by_speaker_without_knowing_how_many() {
        // Two speakers along different axes with some spread, a third alone.
        let e = vec![
            unit(&[1.0, 0.1, 0.0]),
            unit(&[0.0, 1.0, 0.1]),
            unit(&[0.95, 0.2, 0.05]),
            unit(&[0.1, 0.9, 0.0]),
            unit(&[0.0, 0.0, 1.0]),
            unit(&[1.0, 0.0, 0.1]),
        ];
        assert_eq!(cluster(&e, 0.9), vec![0, 1, 0, 1, 2, 0]);
        // A lax threshold merges everyone; a strict one keeps every clip apart.
        assert_eq!(cluster(&e, -1.0), vec![0; 6]);
        assert_eq!(cluster(&e, 0.99999), vec![0, 1, 2, 3, 4, 5]);
        assert!(cluster(&[], 0.8).is_empty());
    }
}
