//! `avatar`: the one binary. It parses the command line, opens the data directory and runs
//! the command; errors are reported once, readably, with a non-zero exit code.

mod app;
mod commands;
mod config;
mod connectors;
mod demo;
mod distributed;
mod email;
mod forget;
mod json_file;
mod llm;
mod privacy;
mod query_router;
mod semantic;
mod serve;
mod trainer_service;
mod voice;
mod voice_train;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Avatar builds a digital representation of one person from what they leave behind:
/// their mail, chats, notes and memories, searchable with citations and replayable from an
/// event log.
///
/// Start with `avatar demo`, or:
///
///   avatar init --name "Ada Lovelace" --alias ada@example.org
///   avatar ingest ~/Takeout/Mail/All\ mail.mbox ~/WhatsApp/chat.txt
///   avatar search "analytical engine"
#[derive(Parser, Debug)]
#[command(
    name = "avatar",
    version,
    about,
    long_about,
    max_term_width = 100,
    verbatim_doc_comment
)]
pub struct Cli {
    /// Data directory holding the event log, blobs, records, index and datasets.
    /// Defaults to the per-user data directory (e.g. ~/.local/share/avatar).
    #[arg(long, global = true, env = "AVATAR_DATA")]
    pub data: Option<PathBuf>,

    /// Which avatar (person) to work on; defaults to the only one when there is one.
    #[arg(long, global = true, env = "AVATAR_ID")]
    pub avatar: Option<String>,

    /// The event log: `sqlite:` (the default, inside the data directory) or
    /// `kafka://HOST:PORT[,HOST:PORT…][/TOPIC][?partitions=N]` (distributed mode: `ingest`
    /// only emits events, `avatar serve processor` instances process them).
    #[arg(long, global = true, env = "AVATAR_LOG")]
    pub log: Option<String>,

    /// Where artifacts (the raw files) are kept: `DIR/blobs` by default, or object storage
    /// shared by every service: `s3://BUCKET[/PREFIX][?endpoint=URL&region=R&allow_http=true]`
    /// (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) or `file:///PATH`.
    #[arg(long, global = true, env = "AVATAR_BLOBS")]
    pub blobs: Option<String>,

    /// No progress bars (they are hidden anyway when stderr is not a terminal).
    #[arg(long, short, global = true)]
    pub quiet: bool,

    /// A TOML file with the services' settings (data, log, and [processor], [trainer], [query],
    /// [ingest] tables of their flags); the environment and flags win over it.
    #[arg(long, global = true, env = "AVATAR_CONFIG")]
    pub config: Option<PathBuf>,

    /// Key of a sealed (encrypted) data directory: a file holding a passphrase or 64 hex
    /// digits. Also AVATAR_KEY_FILE, or the key itself in AVATAR_KEY.
    #[arg(long, global = true)]
    pub key_file: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create an avatar for one person, with the names, addresses, numbers and handles they used.
    ///
    /// Example: avatar init --name "Ada Lovelace" --alias ada@example.org --alias "+44 7700 900123"
    Init {
        /// The person's name.
        #[arg(long)]
        name: String,
        /// Another name, email address, phone number or handle of the person (repeatable).
        #[arg(long = "alias")]
        aliases: Vec<String>,
        /// Avatar id (default: a slug of the name).
        #[arg(long)]
        id: Option<String>,
    },
    /// Ingest files, folders (Maildir included) and .zip exports; the format is sniffed.
    ///
    /// Re-ingesting the same bytes is a no-op. Files that cannot be read become dead letters
    /// (see `avatar status`) and the rest goes on.
    Ingest {
        /// Files or folders to ingest.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Force a format instead of sniffing: mbox, eml, whatsapp, telegram, text, markdown.
        #[arg(long)]
        format: Option<String>,
    },
    /// List the normalised records.
    Records {
        /// One JSON object per line: id, source, format, thread, timestamp, author,
        /// author_is_person, text (and kind, title, message_id, in_reply_to).
        #[arg(long)]
        json: bool,
        /// Only records the person wrote.
        #[arg(long)]
        mine: bool,
        /// At most this many records.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Search everything the avatar knows, by words and by meaning, with citations.
    ///
    /// Examples: avatar search "bernoulli numbers" --json
    ///           avatar search "how she felt about gambling" --mode vector -k 5
    ///           avatar search engine --author "Charles Babbage <charles@example.org>" --since 2024-03-01
    #[command(verbatim_doc_comment)]
    Search {
        /// The query (words; "quoted phrases", +must, -not work in BM25).
        query: String,
        /// Print the hits as JSON lines.
        #[arg(long)]
        json: bool,
        /// Number of hits.
        #[arg(short = 'k', long, default_value_t = 10)]
        k: usize,
        /// bm25 (words), vector (meaning; needs the embedding model) or hybrid (both, fused).
        #[arg(long, default_value = "hybrid")]
        mode: String,
        /// Only records from this source URI (a file, or an archive and everything in it).
        #[arg(long)]
        source: Option<String>,
        /// Only records by this author, exactly as `records` shows it.
        #[arg(long)]
        author: Option<String>,
        /// Only records written on or after this date (YYYY-MM-DD or RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Only records written on or before this date (YYYY-MM-DD or RFC 3339).
        #[arg(long)]
        until: Option<String>,
    },
    /// Measure retrieval quality: recall@10 and MRR of bm25, vector and hybrid search.
    Eval {
        #[command(subcommand)]
        command: EvalCommand,
    },
    /// Say TEXT out loud into a WAV file, in the person's voice when they have a voice model.
    ///
    /// The base TTS voice (Piper's en_US-joe-medium from `infra/fetch-models.sh piper` when
    /// installed, else espeak-ng) says the text; an RVC voice model (`--voice MODEL.pth`, or
    /// the avatar's own at DATA/models/AVATAR/voice/model.pth) converts it into their voice,
    /// its pitch moved to the median of their clips. Conversion needs the HuBERT content
    /// encoder, which no package ships: put RVC's hubert_base.pt into
    /// ~/.cache/avatar/models/hubert/. Without a voice model it is the base voice, and it says so.
    ///
    /// Example: avatar speak "Always finish what you start." -o advice.wav --voice grandma.pth
    Speak {
        /// What to say.
        text: String,
        /// The WAV file to write.
        #[arg(long, short)]
        output: PathBuf,
        /// An RVC voice model (.pth from RVC WebUI or Applio) instead of the avatar's own.
        #[arg(long)]
        voice: Option<PathBuf>,
        /// The voice model's feature index (.index); retrieval blends its features in.
        #[arg(long)]
        index: Option<PathBuf>,
        /// How much of each frame comes from the index (0–1).
        #[arg(long, default_value_t = 0.75)]
        index_rate: f32,
        /// Base TTS front end: auto (Piper when installed, else espeak-ng), piper or espeak.
        #[arg(long, default_value = "auto")]
        tts: String,
        /// espeak-ng voice of the base TTS (`espeak-ng --voices` lists them).
        #[arg(long, default_value = "en-us")]
        tts_voice: String,
        #[arg(long, default_value_t = avatar_voice::speakers::DEFAULT_THRESHOLD)]
        threshold: f32,
    },
    /// Write down what is said in recordings (Whisper, on this machine), with times.
    ///
    /// Any audio or video file `avatar ingest` reads. Ingested recordings are transcribed
    /// anyway (their clips become searchable `transcript` records); this prints a transcript
    /// without ingesting. The model is `AVATAR_WHISPER` (a CTranslate2 or Hugging Face Whisper
    /// folder), else whisper-tiny.en from `infra/fetch-models.sh whisper-tiny.en`; for other
    /// languages use whisper-base (`infra/fetch-models.sh whisper-base`).
    ///
    /// Example: avatar transcribe "voice note.m4a" --json
    Transcribe {
        /// Recordings to transcribe.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print one JSON object per file ({file, language, segments: [{start, end, text}]}).
        #[arg(long)]
        json: bool,
        /// Language code for multilingual models (en, de, fr, …); detected when left out.
        #[arg(long)]
        language: Option<String>,
        /// A Whisper model folder instead of AVATAR_WHISPER / whisper-tiny.en.
        #[arg(long)]
        model: Option<PathBuf>,
    },
    /// The person's voice: the clips of speech cut from their recordings.
    ///
    /// Recordings (wav, flac, mp3, ogg/vorbis, m4a/aac, mp4/mov/mkv video) go in with
    /// `avatar ingest` like any other file; each becomes 2–12 s clips of speech, high-passed and
    /// loudness-normalised, with silence, clipping and music rejected.
    Voice {
        #[command(subcommand)]
        command: VoiceCommand,
    },
    /// Memories: stories, advice and how-tos added by hand.
    Memory {
        #[command(subcommand)]
        command: MemoryCommand,
    },
    /// Rebuild every store in a fresh data directory from this one's log.
    Replay {
        /// The new data directory (must not exist or be empty).
        #[arg(long, required_unless_present = "reset_group")]
        into: Option<PathBuf>,
        /// Only inputs at or after this log offset (avatars and aliases are always kept).
        #[arg(long, conflicts_with = "since")]
        from_offset: Option<u64>,
        /// Only inputs logged at or after this time (YYYY-MM-DD or RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Kafka log only: instead of copying, move consumer group `avatar.NAME`'s offsets on
        /// every partition to --from-offset / --since (0 without either), so that consumer
        /// (a data team's job, or a processor) reads again from there.
        #[arg(long, value_name = "NAME", conflicts_with = "into")]
        reset_group: Option<String>,
    },
    /// Counts per format, dead letters and log offsets.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Who is who across sources: the participants found in the records and their aliases.
    ///
    /// `avatar identity` lists them; `avatar identity link "Ada King" "+44 7700 900123" --person`
    /// says those aliases are the person (their records then count as the person's);
    /// without `--person` it joins aliases of someone else into one participant.
    Identity {
        #[command(subcommand)]
        command: Option<IdentityCommand>,
        #[arg(long)]
        json: bool,
    },
    /// The personal model's training data: conversations built from the records.
    ///
    /// `avatar dataset build` writes DIR/datasets/<avatar>/sft.parquet; `avatar dataset show --json`
    /// prints one example per line: {"id", "split", "messages": [{"role", "content"}], …}.
    Dataset {
        #[command(subcommand)]
        command: DatasetCommand,
    },
    /// Train the avatar's models (`avatar train llm`).
    Train {
        #[command(subcommand)]
        command: TrainCommand,
    },
    /// Export the finetuned model: merged weights as a Hugging Face folder and/or a GGUF file
    /// for llama.cpp and Ollama.
    ///
    /// Example: avatar export llm --merged ./ada-merged --gguf ./ada.gguf --dtype q8_0
    Export {
        #[command(subcommand)]
        command: ExportCommand,
    },
    /// Ask the avatar one question; it answers as the person, grounded in their records.
    ///
    /// Example: avatar ask "What did you think of the Analytical Engine?" --json
    /// Uses the finetuned model when `avatar train llm` has run, else the base model (with a note).
    Ask {
        question: String,
        #[command(flatten)]
        opts: AskOpts,
    },
    /// Talk with the avatar in the terminal (empty line or Ctrl-D ends).
    Chat {
        #[command(flatten)]
        opts: AskOpts,
    },
    /// Everything in one process: process what is pending in the log, then serve the HTTP API
    /// (OpenAI-compatible chat, search, memories) and the web UI until Ctrl-C.
    ///
    /// Example: avatar up --addr 127.0.0.1:8377, then `avatar token create --role owner`.
    Up {
        /// Address to listen on (use 0.0.0.0:PORT to serve other machines).
        #[arg(long, default_value = DEFAULT_ADDR)]
        addr: std::net::SocketAddr,
        /// Base model for answers (default: SmolLM2-135M-Instruct from infra/fetch-models.sh).
        #[arg(long)]
        base: Option<String>,
    },
    /// Run one service on its own: `avatar serve query` serves the API over this data directory.
    Serve {
        #[command(subcommand)]
        command: ServeCommand,
    },
    /// API tokens, each granting one role on one avatar (stored hashed in DIR/auth.db).
    ///
    /// Roles: viewer (ask, chat, search, read), editor (viewer + add/delete memories), owner.
    /// Example: avatar token create --avatar ada-lovelace --role viewer
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Show or set the avatar's persona card: who they were, how they wrote, and the line the
    /// avatar starts with when asked whether it is the real person.
    ///
    /// Example: avatar persona --about "Mathematician in London" --style "Long, warm letters"
    Persona {
        /// Who they were: life, work, people, places.
        #[arg(long)]
        about: Option<String>,
        /// How they wrote: tone, length, habits, phrases.
        #[arg(long)]
        style: Option<String>,
        /// The disclosure line (default: "I am an avatar of NAME, built from what they left
        /// behind — not NAME themself.").
        #[arg(long)]
        disclosure: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Forget part of what the avatar knows, everywhere: records, index, vectors, datasets,
    /// the log and the raw files; a personal model trained on it is removed for retraining.
    ///
    /// Examples: avatar forget --participant bob@example.org --reason "Bob asked to be removed"
    ///           avatar forget --source ~/exports/old-chat.txt
    ///           avatar forget --before 2015-01-01
    #[command(verbatim_doc_comment)]
    Forget(ForgetArgs),
    /// Who asked what, and when: every API access (allowed or denied) and every local search,
    /// ask, export and forget, in an append-only, hash-chained log (DIR/audit.db).
    ///
    /// Examples: avatar audit --limit 20
    ///           avatar audit --verify
    #[command(verbatim_doc_comment)]
    Audit {
        /// The newest N entries (of --avatar, or all).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Check the hash chain instead: exits non-zero when the log was altered.
        #[arg(long)]
        verify: bool,
        #[arg(long)]
        json: bool,
    },
    /// Encrypt the data directory at rest: everything becomes one authenticated-encrypted file
    /// (DIR/sealed.avatar). Later commands decrypt it into memory (/dev/shm) with the key, work
    /// there and seal the result again, so the disk only holds ciphertext.
    ///
    /// Example: AVATAR_KEY_FILE=~/.avatar.key avatar seal   (the file: a passphrase or 64 hex digits)
    Seal,
    /// Decrypt a sealed data directory back into plain files.
    Unseal,
    /// What privacy protection did: the third parties' data redacted from the training set,
    /// by kind and by source.
    ///
    /// Example: avatar privacy report --json
    Privacy {
        #[command(subcommand)]
        command: PrivacyCommand,
    },
    /// The main job end to end on samples shipped with Avatar: init, ingest, search, replay.
    Demo {
        /// Keep the demo's data directory here instead of a temporary one.
        #[arg(long)]
        keep: Option<PathBuf>,
        /// LoRA steps for the demo's personal model (0 skips the model part).
        #[arg(long, default_value_t = 30)]
        train_steps: usize,
    },
}

/// Where `avatar up` and `avatar serve query` listen by default (loopback only).
pub const DEFAULT_ADDR: &str = "127.0.0.1:8377";

#[derive(Subcommand, Debug)]
pub enum ServeCommand {
    /// The query API and web UI (no log processing; run `avatar up` for everything).
    Query {
        #[arg(long, default_value = DEFAULT_ADDR, env = "AVATAR_QUERY_ADDR")]
        addr: std::net::SocketAddr,
        #[arg(long, env = "AVATAR_QUERY_BASE")]
        base: Option<String>,
    },
    /// Answer questions mailed to the avatar's address: read new mail over IMAP, reply over
    /// SMTP with the answer and its citations. Only senders named with --allow (an address or
    /// @domain; required) get answers: a reply reveals what the avatar knows.
    ///
    /// Example: avatar serve email --imap imap.example.org:993 --smtp smtp.example.org:465
    ///          --user ada-avatar@example.org --password-env MAIL_PASSWORD --allow @example.org
    #[command(verbatim_doc_comment)]
    Email(Box<crate::email::EmailArgs>),
    /// Process a Kafka log (distributed mode): join the consumer group, process the partitions
    /// the broker assigns, write their stores under DIR/kafka/<topic>/p<N>/. Run several to
    /// scale; a dead one's partitions move to the others.
    ///
    /// Example: avatar --log kafka://127.0.0.1:9092 --data /srv/avatar serve processor
    ///          --health 0.0.0.0:9100
    #[command(verbatim_doc_comment)]
    Processor(crate::distributed::ProcessorArgs),
    /// Keep sources flowing in: file-drop folders, recordings folders, git repositories and
    /// IMAP folders, polled
    /// every interval; only what is new since the last pass is read (positions are kept in
    /// DIR/connectors/state.json). With a Kafka log it only emits; embedded, it also processes.
    ///
    /// Example connectors file (avatar serve ingest --connectors ingest.toml):
    ///
    ///   interval = "60s"            # AVATAR_INGEST_INTERVAL overrides
    ///   [[inbox]]
    ///   avatar = "ada"
    ///   path = "/srv/drop/ada"
    ///   [[recordings]]              # audio/video only, once unchanged for `settle`
    ///   avatar = "ada"
    ///   path = "/srv/family/ada/voice-notes"
    ///   settle = "10s"
    ///   [[git]]
    ///   avatar = "ada"
    ///   repo = "https://git.example.org/ada/engine.git"
    ///   [[imap]]
    ///   avatar = "ada"
    ///   server = "imap.example.org:993"
    ///   user = "ada@example.org"
    ///   password_env = "ADA_IMAP_PASSWORD"
    ///   folders = ["INBOX", "Sent"]
    #[command(verbatim_doc_comment)]
    Ingest(crate::connectors::IngestArgs),
    /// Retrain personal models when they are due: enough new records by the person
    /// (--min-new), a forget that made the model stale, or a schedule (--every). One run per
    /// avatar at a time; each run is a TrainResult event. Training needs the base model.
    ///
    /// Example: avatar serve trainer --min-new 200 --every 24h
    #[command(verbatim_doc_comment)]
    Trainer(crate::trainer_service::TrainerArgs),
}

/// What `avatar forget` removes and how.
#[derive(clap::Args, Debug)]
pub struct ForgetArgs {
    /// A source as ingested: a path (or file:// URI); an archive covers everything in it.
    #[arg(long)]
    pub source: Option<String>,
    /// One record, by the id `avatar records --json` or a citation shows.
    #[arg(long)]
    pub record: Option<String>,
    /// Everything written before this date (YYYY-MM-DD or RFC 3339).
    #[arg(long)]
    pub before: Option<String>,
    /// Everything by this participant (a name, address or handle as `records` shows it).
    #[arg(long)]
    pub participant: Option<String>,
    /// Why (kept in the tombstone; never the forgotten content).
    #[arg(long)]
    pub reason: Option<String>,
    /// When a personal model was trained on what is forgotten, train it again right away
    /// (same settings, on what remains) instead of leaving that to `avatar train llm`.
    #[arg(long)]
    pub retrain: bool,
    /// Only list what would be forgotten; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum PrivacyCommand {
    /// What was redacted from the training set (built by `avatar dataset build`), by kind and source.
    Report {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a token for the avatar (--avatar ID, or the only one) and print it once.
    Create {
        /// viewer, editor or owner.
        #[arg(long)]
        role: String,
    },
    /// List tokens (their ids, never the tokens).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by the id `token list` shows.
    Revoke { id: String },
}

#[derive(clap::Args, Debug)]
pub struct AskOpts {
    /// Print {"answer", "citations": [{"record", …}]} instead of streaming text.
    #[arg(long)]
    pub json: bool,
    /// Records retrieved as context (0 turns retrieval off).
    #[arg(short = 'k', long, default_value_t = 4)]
    pub k: usize,
    /// Longest answer, in tokens.
    #[arg(long, default_value_t = 200)]
    pub max_tokens: usize,
    /// Sampling temperature (0 = greedy, deterministic).
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f64,
    /// Base model: a GGUF file, a Hugging Face folder, or a model id (needs the `hub` feature).
    /// Default: SmolLM2-135M-Instruct from `infra/fetch-models.sh smollm2`.
    #[arg(long)]
    pub base: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum ExportCommand {
    /// The personal language model with its adapter merged into the base weights.
    Llm {
        /// Write config.json + model.safetensors + tokenizer files into this folder.
        #[arg(long)]
        merged: Option<PathBuf>,
        /// Write a GGUF file (llama.cpp, Ollama).
        #[arg(long)]
        gguf: Option<PathBuf>,
        /// Tensor type of the GGUF's matrices: f32, f16 or q8_0.
        #[arg(long, default_value = "f16")]
        dtype: String,
        #[arg(long)]
        base: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum DatasetCommand {
    /// Build the training conversations from the records and write them as Parquet.
    Build {
        /// Base model whose tokenizer counts the token budgets (default: the demo model when installed).
        #[arg(long)]
        base: Option<String>,
        #[arg(long)]
        json: bool,
        /// Keep other people's personal data (addresses, numbers, cards, keys) in the training
        /// set instead of redacting it. Not recommended.
        #[arg(long)]
        keep_pii: bool,
        /// Also replace third parties' names with consistent placeholders ([PERSON_1], …).
        #[arg(long)]
        redact_names: bool,
    },
    /// Print the training conversations.
    Show {
        #[arg(long)]
        json: bool,
        /// Only `train` or `heldout` examples.
        #[arg(long)]
        split: Option<String>,
        #[arg(long)]
        limit: Option<usize>,
    },
}

#[derive(Subcommand, Debug)]
pub enum TrainCommand {
    /// Finetune the personal language model (LoRA on every projection of the base model).
    ///
    /// Resumable: a killed run continues from its last checkpoint when started again with the
    /// same settings. Example: avatar train llm --steps 60
    Llm {
        /// Optimiser steps.
        #[arg(long, default_value_t = 60)]
        steps: usize,
        /// Base model: GGUF file, Hugging Face folder, or model id (with the `hub` feature).
        #[arg(long)]
        base: Option<String>,
        /// LoRA rank (alpha = 2 × rank).
        #[arg(long, default_value_t = 16)]
        rank: usize,
        #[arg(long, default_value_t = 1e-3)]
        lr: f64,
        /// Tokens per packed training row.
        #[arg(long, default_value_t = 256)]
        seq_len: usize,
        /// Rows per micro-batch.
        #[arg(long, default_value_t = 4)]
        batch: usize,
        /// Micro-batches per optimiser step.
        #[arg(long, default_value_t = 1)]
        grad_accum: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Save a checkpoint every N steps.
        #[arg(long, default_value_t = 10)]
        checkpoint_every: usize,
        /// Ignore an existing checkpoint and start over.
        #[arg(long)]
        fresh: bool,
        #[arg(long)]
        json: bool,
    },
    /// Train the person's voice model (RVC v2) from their clips, for `avatar speak`.
    ///
    /// Extracts content features (HuBERT, needs hubert_base.pt in MODELS/hubert/) and pitch
    /// from every clip in the person's voice, then trains RVC's synthesiser against its
    /// discriminators (mel, KL, feature-matching and adversarial losses). Writes
    /// DATA/models/AVATAR/voice/model.pth (loads in RVC WebUI and Applio) with model.index,
    /// model.safetensors + model.json, checkpoints and a sample wav per checkpoint under
    /// voice/train/. Resumable: run it again to continue. Starts from RVC's pretrained
    /// f0G40k.pth/f0D40k.pth when they are in MODELS/rvc/pretrained_v2/ (or --pretrained-g).
    ///
    /// A standard step (batch 4) costs ~25 CPU-seconds in candle (RVC's PyTorch: ~11) and a voice
    /// takes thousands: train real voices on a GPU (build with --features cuda); on a CPU use it
    /// for short fine-tunes or `--size tiny` to try it out.
    /// RVC recommends 10–50 minutes of clean speech.
    ///
    /// Example: avatar train voice --steps 200 --checkpoint-every 50
    Voice(crate::voice_train::VoiceTrainArgs),
}

#[derive(Subcommand, Debug)]
pub enum EvalCommand {
    /// Run a queries file (JSON lines `{"query": "…", "relevant": ["record id", …]}`; default:
    /// the demo corpus's set, samples/eval/retrieval.jsonl) in every mode.
    Retrieval {
        #[arg(long)]
        queries: Option<PathBuf>,
        #[arg(short = 'k', long, default_value_t = 10)]
        k: usize,
        #[arg(long)]
        json: bool,
    },
    /// Base against finetuned: held-out perplexity, style statistics, sample replies.
    Llm {
        /// Conversations to generate sample replies for.
        #[arg(long, default_value_t = 6)]
        samples: usize,
        #[arg(long)]
        base: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum IdentityCommand {
    /// List participants and their aliases (the default).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Join aliases into one participant.
    Link {
        /// Two or more aliases as they appear in the records (names, addresses, numbers, handles).
        #[arg(required = true, num_args = 1..)]
        aliases: Vec<String>,
        /// These aliases are the avatar's person.
        #[arg(long)]
        person: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum VoiceCommand {
    /// List the clips of speech: which recording, where in it, how long, and whose voice (clips
    /// are grouped by speaker; once `avatar voice person` named one clip, only theirs are
    /// listed).
    ///
    /// Example: avatar voice clips --export ~/clips   (writes each clip as a WAV to listen to)
    Clips {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Also write every clip's WAV into this folder, named by recording and time.
        #[arg(long, value_name = "DIR")]
        export: Option<PathBuf>,
        /// Every speaker's clips, not only the person's (once a clip was named theirs).
        #[arg(long)]
        all: bool,
        /// How alike (cosine of speaker embeddings, 0–1) clips must be to count as one voice.
        #[arg(long, default_value_t = avatar_voice::speakers::DEFAULT_THRESHOLD)]
        threshold: f32,
    },
    /// How close speech is to the person's real voice: speaker similarity (resemblyzer) of their
    /// clips to each other (the ceiling), of the base TTS voice and, once trained, of their voice
    /// model; median pitch. Needs espeak-ng and the speaker encoder.
    Eval {
        #[arg(long)]
        json: bool,
        /// An RVC voice model to measure instead of the avatar's own.
        #[arg(long)]
        voice: Option<PathBuf>,
        /// Base TTS front end: auto (Piper when installed, else espeak-ng), piper or espeak.
        #[arg(long, default_value = "auto")]
        tts: String,
        /// espeak-ng voice of the base TTS.
        #[arg(long, default_value = "en-us")]
        tts_voice: String,
        #[arg(long, default_value_t = avatar_voice::speakers::DEFAULT_THRESHOLD)]
        threshold: f32,
    },
    /// Say which clip is the person speaking: clips in the same voice are theirs, the others
    /// (family, friends, the TV) are kept out of their voice.
    ///
    /// Example: avatar voice person 4341c42c3809476c21991a253103b2fa
    Person {
        /// A clip id from `avatar voice clips`.
        clip: String,
        #[arg(long, default_value_t = avatar_voice::speakers::DEFAULT_THRESHOLD)]
        threshold: f32,
    },
}

#[derive(Subcommand, Debug)]
pub enum MemoryCommand {
    /// Add a memory: `avatar memory add "Grandpa always fixed bikes on Sundays"`.
    Add {
        text: String,
        #[arg(long)]
        title: Option<String>,
        /// Who is adding it (the person themself, or e.g. "granddaughter Maria").
        #[arg(long)]
        by: Option<String>,
    },
    /// List the memories.
    List {
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if let Err(e) = config::apply(&args) {
        eprintln!("error: {e:#}");
        return ExitCode::FAILURE;
    }
    let cli = Cli::parse();
    // The stores read the blob location from the environment (as they do AVATAR_QDRANT_URL),
    // so a flag sets it for this process and the commands it runs in-process.
    if let Some(blobs) = &cli.blobs {
        std::env::set_var("AVATAR_BLOBS", blobs);
    }
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
