//! The processors wired over the log. Two consumers, each with a named checkpoint:
//!
//! * `parse` reads `raw.artifact` events, fetches the bytes from the blob store, runs the
//!   format parser and appends `records.*` events (or a `deadletter` with the reason) in the
//!   same transaction that moves its checkpoint. Recordings (audio, video) go to the voice
//!   pipeline instead: their clips of speech are written to the blob store and announced as
//!   `records.recording` events — one artifact per transaction, so a crash
//!   loses nothing and duplicates nothing.
//! * `transcribe` reads `records.recording` clips and appends what was said in each as a
//!   `transcript` record (Whisper), one clip per transaction; without a Whisper model it
//!   waits at its checkpoint and catches up on a later run, like the vector consumer.
//! * `sink` materialises `records.*`, memories and forget tombstones into the record store and
//!   the search index. The index commits first (its checkpoint rides in the commit), then the
//!   store; on restart the sink resumes from the store's checkpoint and re-applies the
//!   idempotent batch to both.
//!
//! Everything here is a deterministic function of the log: replaying the same input events
//! gives the same records, ids and texts.

use avatar_identity::Identity;
use avatar_runtime::{
    BlobStore, ChunkPayload, EventLog, Offset, RecordStore, SearchIndex, StoreError, Stored,
    TextEmbedder, VectorPoint, VectorStore,
};
use avatar_schemas::{
    record_id, ArtifactReceived, DeadLetter, Envelope, ForgetTarget, Payload, Record, RecordKind,
    VoiceClip,
};
use std::collections::HashMap;

/// Consumer name of the parse stage.
pub const PARSE: &str = "processor.parse";
/// Consumer name of the transcription stage.
pub const TRANSCRIBE: &str = "processor.transcribe";
/// Consumer name of the record-store sink (the index keeps its own checkpoint).
pub const SINK: &str = "processor.sink";
/// Chunks embedded per embedder call.
const EMBED_BATCH: usize = 64;

const READ_BATCH: usize = 512;
/// Dead letters list at most this many unreadable lines of one artifact.
const MAX_WARNINGS_LISTED: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one run did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Report {
    pub artifacts: usize,
    pub records: usize,
    /// (name, reason) of every artifact that became a dead letter in this run.
    pub dead_letters: Vec<(String, String)>,
    pub forgotten: usize,
    /// Chunks embedded into the vector store.
    pub chunks: usize,
    /// Clips of speech cut from recordings.
    pub clips: usize,
    /// Clips transcribed (with or without words in them).
    pub transcribed: usize,
}

/// Where the processor is in the log, for progress bars.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    pub offset: Offset,
    pub end: Offset,
}

/// The processors over one set of stores.
pub struct Processor<'a> {
    pub log: &'a dyn EventLog,
    pub blobs: &'a dyn BlobStore,
    pub records: &'a dyn RecordStore,
    pub index: &'a dyn SearchIndex,
    /// Semantic memory: chunk -> embed -> vector store. `None` when no embedding model is
    /// installed; the vector consumer then waits and catches up on a later run.
    pub semantic: Option<Semantic<'a>>,
    /// Speech to text for recordings' clips, asked for only when a clip is waiting.
    pub transcriber: Option<&'a dyn Transcriber>,
}

/// Gives the Whisper model when a clip needs it: loading takes a moment and most runs have no
/// clips. `None` when no model is installed: clips wait at the consumer's checkpoint.
pub trait Transcriber: Sync {
    fn whisper(&self) -> Option<&avatar_transcribe::Whisper>;
}

/// The vector store and the model that fills it.
pub struct Semantic<'a> {
    pub store: &'a dyn VectorStore,
    pub embedder: &'a dyn TextEmbedder,
    pub chunking: avatar_text::chunk::ChunkConfig,
}

impl Processor<'_> {
    /// Runs both consumers until they have caught up with the end of the log.
    pub fn run(&self, progress: &mut dyn FnMut(Progress)) -> Result<Report, ProcessError> {
        let mut report = Report::default();
        let mut identities = load_identities(self.log)?;
        let mut next = self.log.checkpoint(PARSE)?;
        loop {
            let batch = self.log.read(next, READ_BATCH)?;
            if batch.is_empty() {
                break;
            }
            for stored in batch {
                match &stored.event.payload {
                    Payload::ArtifactReceived(artifact) => {
                        // Parent lookups must see exactly the records of every earlier artifact,
                        // in a crashed-and-resumed run as in a clean one.
                        self.sink_to_end(&mut identities, &mut report)?;
                        let out =
                            self.parse_artifact(&stored, artifact, &identities, &mut report)?;
                        self.log.commit(PARSE, stored.offset + 1, &out)?;
                        report.artifacts += 1;
                    }
                    Payload::AvatarCreated(_) | Payload::AliasesLinked(_) => {
                        apply_identity_event(&mut identities, &stored.event);
                    }
                    _ => {}
                }
                next = stored.offset + 1;
                progress(Progress {
                    offset: next,
                    end: self.log.end()?,
                });
            }
        }
        if next > self.log.checkpoint(PARSE)? {
            self.log.commit(PARSE, next, &[])?;
        }
        self.sink_to_end(&mut identities, &mut report)?;
        if let Some(transcriber) = self.transcriber {
            if self.transcribe_to_end(transcriber, &mut report, progress)? > 0 {
                self.sink_to_end(&mut identities, &mut report)?;
            }
        }
        if let Some(semantic) = &self.semantic {
            report.chunks += self.embed_to_end(semantic, progress)?;
        }
        Ok(report)
    }

    /// The vector consumer: for every artifact (and memory) whose records arrived after its
    /// checkpoint, chunk all of that artifact's records together (chat sessions span
    /// messages), embed and upsert; remove the chunks of forgotten records. Chunk ids come
    /// from content, so re-embedding an artifact after a crash replaces, never duplicates.
    fn embed_to_end(
        &self,
        semantic: &Semantic<'_>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<usize, ProcessError> {
        let mut next = semantic.store.checkpoint()?;
        let mut chunks_total = 0;
        loop {
            let batch = self.log.read(next, READ_BATCH)?;
            let Some(last) = batch.last() else { break };
            let batch_next = last.offset + 1;
            let mut groups: Vec<(String, String)> = Vec::new(); // (avatar, artifact)
            let mut memories: Vec<String> = Vec::new(); // record ids
            let mut forgets = false;
            for stored in &batch {
                let e = &stored.event;
                match &e.payload {
                    Payload::Message(r) | Payload::Document(r) => {
                        let key = (r.avatar.clone(), r.artifact.clone());
                        if !groups.contains(&key) {
                            groups.push(key);
                        }
                    }
                    Payload::Memory(_) => memories.push(record_id(&e.id.to_string(), 0)),
                    Payload::Forget(_) => forgets = true,
                    _ => {}
                }
            }
            let mut records_groups: Vec<Vec<Record>> = Vec::new();
            for (avatar, artifact) in &groups {
                records_groups.push(self.records.records_of_artifact(avatar, artifact)?);
            }
            for id in &memories {
                if let Some(r) = self.records.get(id)? {
                    records_groups.push(vec![r]);
                }
            }
            let count = |t: &str| semantic.embedder.count_tokens(t);
            let mut chunks = Vec::new();
            for records in records_groups.iter().filter(|g| !g.is_empty()) {
                chunks.extend(avatar_text::chunk::chunk_records(
                    records,
                    &semantic.chunking,
                    &count,
                ));
            }
            let mut points = Vec::with_capacity(chunks.len());
            for group in chunks.chunks(EMBED_BATCH) {
                let texts: Vec<&str> = group.iter().map(|c| c.text.as_str()).collect();
                let vectors = semantic.embedder.embed(&texts)?;
                for (c, vector) in group.iter().zip(vectors) {
                    points.push(VectorPoint {
                        id: c.id.clone(),
                        vector,
                        payload: ChunkPayload {
                            avatar: c.avatar.clone(),
                            record_ids: c.record_ids.clone(),
                            source: c.source.clone(),
                            author: c.author.clone(),
                            timestamp: c.timestamp.map(|t| t.timestamp()),
                            kind: c.kind.as_str().to_string(),
                            text: c.text.clone(),
                        },
                    });
                }
            }
            let deletes = if forgets {
                self.records.forgotten_since(next)?
            } else {
                Vec::new()
            };
            semantic.store.apply(batch_next, &points, &deletes)?;
            chunks_total += points.len();
            next = batch_next;
            progress(Progress {
                offset: next,
                end: self.log.end()?,
            });
        }
        Ok(chunks_total)
    }

    fn parse_artifact(
        &self,
        stored: &Stored,
        artifact: &ArtifactReceived,
        identities: &HashMap<String, Identity>,
        report: &mut Report,
    ) -> Result<Vec<Envelope>, ProcessError> {
        let event = &stored.event;
        let dead = |kind: &str, reason: String| {
            Envelope::new(
                event.avatar.clone(),
                event.source.clone(),
                Payload::DeadLetter(DeadLetter {
                    artifact: Some(artifact.sha256.clone()),
                    name: artifact.name.clone(),
                    error_kind: kind.to_string(),
                    reason,
                }),
            )
            .caused_by(event.id)
        };
        let bytes = match self.blobs.get(&artifact.sha256) {
            Ok(b) => b,
            Err(StoreError::BlobMissing(h)) => {
                let reason = format!("{}: blob {h} is missing from the blob store", artifact.name);
                report
                    .dead_letters
                    .push((artifact.name.clone(), reason.clone()));
                return Ok(vec![dead("missing", reason)]);
            }
            Err(e) => return Err(e.into()),
        };
        if avatar_voice::is_recording(&artifact.name, &bytes) {
            return self.parse_recording(stored, artifact, &bytes, report, &dead);
        }
        let parsed =
            match avatar_formats::parse(&artifact.name, artifact.format_hint.as_deref(), &bytes) {
                Ok(p) => p,
                Err(e) => {
                    // The reason names the file, so a list of dead letters reads on its own.
                    let reason = if e.message.contains(&artifact.name) {
                        e.message
                    } else {
                        format!("{}: {}", artifact.name, e.message)
                    };
                    report
                        .dead_letters
                        .push((artifact.name.clone(), reason.clone()));
                    return Ok(vec![dead(e.kind.as_str(), reason)]);
                }
            };
        let identity = identities.get(&event.avatar);
        let is_person =
            |author: Option<&str>| author.is_some_and(|a| identity.is_some_and(|i| i.is_person(a)));
        let mut texts: Vec<String> = parsed.items.iter().map(|i| i.text.clone()).collect();
        if parsed.format == "mbox" || parsed.format == "eml" {
            self.clean_mail(&parsed.items, &mut texts, &event.avatar, &is_person)?;
        }
        let mut out = Vec::with_capacity(parsed.items.len() + 1);
        let records_before = report.records;
        for (ordinal, (item, text)) in parsed.items.iter().zip(texts).enumerate() {
            let text = text.trim().to_string();
            if text.is_empty() {
                continue;
            }
            let record = Record {
                id: avatar_schemas::artifact_record_id(
                    &event.avatar,
                    &artifact.sha256,
                    ordinal as u32,
                ),
                avatar: event.avatar.clone(),
                source: event.source.clone(),
                format: parsed.format.to_string(),
                kind: item.kind,
                thread: item.thread.clone(),
                timestamp: item.timestamp,
                author: item.author.clone(),
                author_is_person: item.from_owner || is_person(item.author.as_deref()),
                text,
                title: item.title.clone(),
                message_id: item.message_id.clone(),
                in_reply_to: item.in_reply_to.clone(),
                artifact: artifact.sha256.clone(),
                ordinal: ordinal as u32,
            };
            let payload = match item.kind {
                RecordKind::Document => Payload::Document(record),
                _ => Payload::Message(record),
            };
            out.push(
                Envelope::new(event.avatar.clone(), event.source.clone(), payload)
                    .caused_by(event.id),
            );
            report.records += 1;
        }
        if !parsed.warnings.is_empty() {
            let listed: Vec<&str> = parsed
                .warnings
                .iter()
                .take(MAX_WARNINGS_LISTED)
                .map(String::as_str)
                .collect();
            let reason = format!(
                "{}: {} part(s) could not be read and were kept out (the rest was ingested): {}",
                artifact.name,
                parsed.warnings.len(),
                listed.join("; ")
            );
            report
                .dead_letters
                .push((artifact.name.clone(), reason.clone()));
            out.push(dead("partial", reason));
        } else if report.records == records_before {
            // Parsed without error but nothing to keep (e.g. a chat export whose messages are
            // all structure, a mail whose MIME tree holds no text): say so rather than let the
            // file vanish without a trace.
            let reason = format!(
                "{}: read as {} but it holds no text ({} item(s), all empty); nothing was ingested",
                artifact.name,
                parsed.format,
                parsed.items.len()
            );
            report
                .dead_letters
                .push((artifact.name.clone(), reason.clone()));
            out.push(dead("empty", reason));
        }
        Ok(out)
    }

    /// A recording → clips of speech: each clip's WAV goes to the blob store (content-addressed,
    /// so a re-run writes nothing new) and a `records.recording` event names it. A recording
    /// that cannot be decoded, or holds no usable speech, is a dead letter saying why.
    fn parse_recording(
        &self,
        stored: &Stored,
        artifact: &ArtifactReceived,
        bytes: &[u8],
        report: &mut Report,
        dead: &dyn Fn(&str, String) -> Envelope,
    ) -> Result<Vec<Envelope>, ProcessError> {
        let event = &stored.event;
        let mut refuse = |kind: &str, reason: String| {
            report
                .dead_letters
                .push((artifact.name.clone(), reason.clone()));
            Ok(vec![dead(kind, reason)])
        };
        let audio = match avatar_voice::decode(&artifact.name, bytes) {
            Ok(a) => a,
            Err(e) => {
                let kind = match e {
                    avatar_voice::DecodeError::UnsupportedCodec(_) => "unsupported",
                    avatar_voice::DecodeError::TooLong => "too-long",
                    _ => "malformed",
                };
                return refuse(kind, format!("{}: {e}", artifact.name));
            }
        };
        let config = avatar_voice::ClipConfig::default();
        let slicing = match avatar_voice::slice_clips(&audio.samples, audio.sample_rate, &config) {
            Ok(s) => s,
            Err(e) => return refuse("malformed", format!("{}: {e}", artifact.name)),
        };
        if slicing.clips.is_empty() {
            return refuse(
                "empty",
                format!(
                    "{}: no speech to keep ({})",
                    artifact.name,
                    slicing.summary()
                ),
            );
        }
        let mut out = Vec::with_capacity(slicing.clips.len() + 1);
        for (ordinal, clip) in slicing.clips.iter().enumerate() {
            let wav = avatar_voice::wav::encode_wav(&clip.samples, clip.sample_rate);
            let audio_sha = self.blobs.put(&wav)?;
            let clip = VoiceClip {
                id: avatar_schemas::artifact_record_id(
                    &event.avatar,
                    &artifact.sha256,
                    ordinal as u32,
                ),
                avatar: event.avatar.clone(),
                source: event.source.clone(),
                artifact: artifact.sha256.clone(),
                ordinal: ordinal as u32,
                start_ms: clip.start_ms,
                end_ms: clip.end_ms,
                audio: audio_sha,
                sample_rate: clip.sample_rate,
                rms_dbfs: clip.rms_dbfs,
            };
            out.push(
                Envelope::new(
                    event.avatar.clone(),
                    event.source.clone(),
                    Payload::VoiceClip(clip),
                )
                .caused_by(event.id),
            );
            report.clips += 1;
        }
        if audio.skipped_packets > 0 {
            let reason = format!(
                "{}: {} damaged audio packet(s) skipped (the rest was kept: {})",
                artifact.name,
                audio.skipped_packets,
                slicing.summary()
            );
            report
                .dead_letters
                .push((artifact.name.clone(), reason.clone()));
            out.push(dead("partial", reason));
        }
        Ok(out)
    }

    /// The transcription consumer: every clip after its checkpoint → a `transcript` record
    /// of what was said (none when Whisper hears no words). Each clip commits with its
    /// record, so a crash repeats at most one clip. Returns how many records it appended.
    fn transcribe_to_end(
        &self,
        transcriber: &dyn Transcriber,
        report: &mut Report,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<usize, ProcessError> {
        let mut next = self.log.checkpoint(TRANSCRIBE)?;
        let mut appended = 0;
        loop {
            let batch = self.log.read(next, READ_BATCH)?;
            let Some(last) = batch.last() else { break };
            let batch_next = last.offset + 1;
            for stored in &batch {
                let Payload::VoiceClip(clip) = &stored.event.payload else {
                    continue;
                };
                let Some(whisper) = transcriber.whisper() else {
                    // No model: wait here; a later run with one catches up.
                    if stored.offset > self.log.checkpoint(TRANSCRIBE)? {
                        self.log.commit(TRANSCRIBE, stored.offset, &[])?;
                    }
                    return Ok(appended);
                };
                let out = match self.transcribe_clip(whisper, clip) {
                    Ok(Some(record)) => vec![Envelope::new(
                        stored.event.avatar.clone(),
                        stored.event.source.clone(),
                        Payload::Document(record),
                    )
                    // Caused by the recording's artifact, like every record parsed from it,
                    // so a forget of the recording buries it on replay too.
                    .caused_by(stored.event.causation_id.unwrap_or(stored.event.id))],
                    Ok(None) => Vec::new(),
                    Err(reason) => {
                        let name = format!("clip {} of {}", clip.ordinal, clip.source);
                        report.dead_letters.push((name.clone(), reason.clone()));
                        vec![Envelope::new(
                            stored.event.avatar.clone(),
                            stored.event.source.clone(),
                            Payload::DeadLetter(DeadLetter {
                                artifact: Some(clip.artifact.clone()),
                                name,
                                error_kind: "transcription".into(),
                                reason,
                            }),
                        )
                        .caused_by(stored.event.id)]
                    }
                };
                appended += out.len();
                self.log.commit(TRANSCRIBE, stored.offset + 1, &out)?;
                report.transcribed += 1;
                progress(Progress {
                    offset: stored.offset + 1,
                    end: self.log.end()?,
                });
            }
            if batch_next > self.log.checkpoint(TRANSCRIBE)? {
                self.log.commit(TRANSCRIBE, batch_next, &[])?;
            }
            next = batch_next;
        }
        Ok(appended)
    }

    /// One clip's words as a record: the recording is its source and thread, the clip's
    /// place in it is the title ("0:12–0:18") and the clip id its message id, so a search hit
    /// leads back to the moment it was said. Err is a dead letter's reason.
    fn transcribe_clip(
        &self,
        whisper: &avatar_transcribe::Whisper,
        clip: &VoiceClip,
    ) -> Result<Option<Record>, String> {
        let bytes = match self.blobs.get(&clip.audio) {
            Ok(b) => b,
            Err(StoreError::BlobMissing(h)) => {
                return Err(format!(
                    "the clip's audio {h} is missing from the blob store"
                ))
            }
            Err(e) => return Err(e.to_string()),
        };
        let audio = avatar_voice::decode("clip.wav", &bytes).map_err(|e| e.to_string())?;
        let samples = avatar_voice::dsp::resample(
            &audio.samples,
            audio.sample_rate,
            avatar_transcribe::SAMPLE_RATE,
        )
        .map_err(|e| e.to_string())?;
        let transcript = whisper
            .transcribe(&samples, &avatar_transcribe::Options::default())
            .map_err(|e| e.to_string())?;
        let text = transcript.text();
        if text.is_empty() {
            return Ok(None);
        }
        let clock = |ms: u64| format!("{}:{:02}", ms / 60_000, (ms / 1000) % 60);
        let file = clip.source.rsplit('/').next().unwrap_or(&clip.source);
        Ok(Some(Record {
            id: record_id(
                &format!("{}/{}/transcript", clip.avatar, clip.artifact),
                clip.ordinal,
            ),
            avatar: clip.avatar.clone(),
            source: clip.source.clone(),
            format: "transcript".into(),
            kind: RecordKind::Transcript,
            thread: clip.source.clone(),
            timestamp: None,
            author: None,
            author_is_person: false,
            text,
            title: Some(format!(
                "{file} {}–{}",
                clock(clip.start_ms),
                clock(clip.end_ms)
            )),
            message_id: Some(clip.id.clone()),
            in_reply_to: None,
            artifact: clip.artifact.clone(),
            ordinal: clip.ordinal,
        }))
    }

    /// Mail-specific cleaning that needs context beyond one message: lines quoted from the
    /// parent message (found in this artifact or among earlier records) and the person's own
    /// recurring signature, learned from their messages in this artifact.
    fn clean_mail(
        &self,
        items: &[avatar_formats::Item],
        texts: &mut [String],
        avatar: &str,
        is_person: &dyn Fn(Option<&str>) -> bool,
    ) -> Result<(), ProcessError> {
        let by_id: HashMap<&str, usize> = items
            .iter()
            .enumerate()
            .filter_map(|(i, it)| it.message_id.as_deref().map(|m| (m, i)))
            .collect();
        let originals: Vec<String> = texts.to_vec();
        for (i, item) in items.iter().enumerate() {
            let Some(parent_id) = item.in_reply_to.as_deref() else {
                continue;
            };
            let parent_text = match by_id.get(parent_id) {
                Some(&p) if p != i => Some(originals[p].clone()),
                Some(_) => None,
                None => self
                    .records
                    .find_by_message_id(avatar, parent_id)?
                    .map(|r| r.text),
            };
            if let Some(parent) = parent_text {
                texts[i] = avatar_text::remove_parent_lines(&texts[i], &parent);
            }
        }
        let own: Vec<&str> = items
            .iter()
            .zip(texts.iter())
            .filter(|(it, _)| is_person(it.author.as_deref()))
            .map(|(_, t)| t.as_str())
            .collect();
        let signatures = avatar_text::learn_signatures(&own);
        if !signatures.is_empty() {
            for (item, text) in items.iter().zip(texts.iter_mut()) {
                if is_person(item.author.as_deref()) {
                    *text = avatar_text::strip_signatures(text, &signatures);
                }
            }
        }
        Ok(())
    }

    /// Materialises every event after the sink's checkpoint into the index and the store.
    fn sink_to_end(
        &self,
        identities: &mut HashMap<String, Identity>,
        report: &mut Report,
    ) -> Result<(), ProcessError> {
        let mut next = self.records.checkpoint(SINK)?;
        let tombstones = Tombstones::load(self.log)?;
        loop {
            let batch = self.log.read(next, READ_BATCH)?;
            let Some(last) = batch.last() else { break };
            let batch_next = last.offset + 1;
            let mut upserts: Vec<Record> = Vec::new();
            let mut deletes: Vec<String> = Vec::new();
            for stored in &batch {
                let e = &stored.event;
                match &e.payload {
                    Payload::Message(r) | Payload::Document(r) => {
                        if !tombstones.buries(e.causation_id.unwrap_or(e.id), r) {
                            upserts.push(r.clone());
                        }
                    }
                    Payload::Memory(m) => {
                        let identity = identities.get(&e.avatar);
                        let memory = Record {
                            id: record_id(&e.id.to_string(), 0),
                            avatar: e.avatar.clone(),
                            source: e.source.clone(),
                            format: "memory".into(),
                            kind: RecordKind::Memory,
                            thread: "memories".into(),
                            timestamp: Some(e.occurred_at),
                            author: m.added_by.clone(),
                            author_is_person: m
                                .added_by
                                .as_deref()
                                .is_some_and(|a| identity.is_some_and(|i| i.is_person(a))),
                            text: m.text.clone(),
                            title: m.title.clone(),
                            message_id: None,
                            in_reply_to: None,
                            artifact: String::new(),
                            ordinal: 0,
                        };
                        if !tombstones.buries(e.id, &memory) {
                            upserts.push(memory);
                        }
                    }
                    Payload::Forget(f) => {
                        let covered = forget_ids(self.records, &e.avatar, &f.target, &upserts)?;
                        upserts.retain(|r| !covered.contains(&r.id));
                        report.forgotten += covered.len();
                        deletes.extend(covered);
                    }
                    Payload::AvatarCreated(_) => {
                        apply_identity_event(identities, e);
                    }
                    Payload::AliasesLinked(l) => {
                        apply_identity_event(identities, e);
                        if l.is_person {
                            // Records already stored may now be the person's.
                            if let Some(identity) = identities.get(&e.avatar) {
                                let pending: Vec<String> =
                                    upserts.iter().map(|r| r.id.clone()).collect();
                                for r in upserts.iter_mut().filter(|r| r.avatar == e.avatar) {
                                    r.author_is_person |=
                                        r.author.as_deref().is_some_and(|a| identity.is_person(a));
                                }
                                for mut r in self.records.records(&e.avatar)? {
                                    if !r.author_is_person
                                        && !pending.contains(&r.id)
                                        && !deletes.contains(&r.id)
                                        && r.author
                                            .as_deref()
                                            .is_some_and(|a| identity.is_person(a))
                                    {
                                        r.author_is_person = true;
                                        upserts.push(r);
                                    }
                                }
                            }
                        }
                    }
                    Payload::ArtifactReceived(_)
                    | Payload::DeadLetter(_)
                    | Payload::TrainResult(_)
                    | Payload::VoiceClip(_)
                    | Payload::VoiceReference(_) => {}
                }
            }
            self.index.apply(batch_next, &upserts, &deletes)?;
            self.records.apply(SINK, batch_next, &upserts, &deletes)?;
            next = batch_next;
        }
        Ok(())
    }
}

/// Every tombstone in the log, so a record materialised after its tombstone in log order is
/// still buried. That happens on replay: the inputs (artifacts, memories, tombstones) are
/// copied first and the records are parsed from them afterwards, so the derived records come
/// after the tombstones that removed them the first time. A tombstone buries a record when it
/// was issued after the input the record came from (event ids are UUIDv7: time-ordered, and
/// kept by replay); data ingested again after a forget stays.
struct Tombstones(Vec<(uuid::Uuid, String, ForgetTarget)>);

impl Tombstones {
    fn load(log: &dyn EventLog) -> Result<Tombstones, ProcessError> {
        let mut out = Vec::new();
        for s in log.all_of_kinds(&["control.forget"])? {
            if let Payload::Forget(f) = s.event.payload {
                out.push((s.event.id, s.event.avatar, f.target));
            }
        }
        Ok(Tombstones(out))
    }

    /// Whether a tombstone issued after `cause` (the record's input event) covers `record`.
    fn buries(&self, cause: uuid::Uuid, record: &Record) -> bool {
        self.0.iter().any(|(id, avatar, target)| {
            *avatar == record.avatar && *id > cause && target.covers(record)
        })
    }
}

/// Ids of the records a tombstone covers: stored ones and ones earlier in the current batch.
fn forget_ids(
    store: &dyn RecordStore,
    avatar: &str,
    target: &ForgetTarget,
    pending: &[Record],
) -> Result<Vec<String>, ProcessError> {
    let mut ids: Vec<String> = store
        .records(avatar)?
        .iter()
        .chain(pending.iter().filter(|r| r.avatar == avatar))
        .filter(|r| target.covers(r))
        .map(|r| r.id.clone())
        .collect();
    ids.sort();
    ids.dedup();
    Ok(ids)
}

fn identity_of(c: &avatar_schemas::AvatarCreated) -> Identity {
    Identity::new(&c.name, c.aliases.iter().map(String::as_str))
}

/// Every avatar's identity, from the `identity.avatar_created` events in the log.
pub fn load_identities(log: &dyn EventLog) -> Result<HashMap<String, Identity>, StoreError> {
    let mut out = HashMap::new();
    for s in log.all_of_kinds(&["identity.avatar_created", "identity.aliases"])? {
        apply_identity_event(&mut out, &s.event);
    }
    Ok(out)
}

/// Folds an identity event into the identities: a new avatar, or aliases confirmed as the person.
fn apply_identity_event(identities: &mut HashMap<String, Identity>, e: &Envelope) {
    match &e.payload {
        Payload::AvatarCreated(c) => {
            identities.insert(c.avatar_id.clone(), identity_of(c));
        }
        Payload::AliasesLinked(l) if l.is_person => {
            if let Some(identity) = identities.get_mut(&e.avatar) {
                for a in &l.aliases {
                    identity.add(a);
                }
            }
        }
        _ => {}
    }
}
