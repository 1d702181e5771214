//! Training an RVC v2 voice model in candle.
pub mod adamw;
pub mod discriminator;
pub mod error;
pub mod export;
pub mod generator;
pub mod loss;
pub mod mel;
pub mod ops;
pub mod params;
/// The seeded generator (shared with avatar-rvc's index builder).
pub use avatar_rvc::rng;
pub mod train;

pub use error::{Result, TrainError};
pub use train::{Example, Losses, TrainConfig, Trainer};
