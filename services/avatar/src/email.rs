//! `avatar serve email`: answers questions mailed to the avatar's address.

use crate::commands::Ctx;
use anyhow::Result;

#[derive(clap::Args, Debug)]
pub struct EmailArgs {}

pub fn run(_ctx: &Ctx, _args: EmailArgs) -> Result<()> {
    anyhow::bail!("not built yet")
}
