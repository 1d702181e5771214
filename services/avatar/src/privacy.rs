//! `avatar privacy report`: what redaction removed from the training set.

use crate::commands::Ctx;
use anyhow::Result;

pub fn report(_ctx: &Ctx, _json: bool) -> Result<()> {
    anyhow::bail!("not built yet")
}
