//! RVC's losses (`losses.py`): least-squares GAN, feature matching, KL, and the mel L1.

use candle_core::Tensor;

use crate::discriminator::DiscOut;
use crate::error::Result;

/// Σ_d mean((1 - D(real))²) + mean(D(fake)²).
pub fn discriminator_loss(real: &DiscOut, fake: &DiscOut) -> Result<Tensor> {
    let mut total: Option<Tensor> = None;
    for (r, g) in real.scores.iter().zip(&fake.scores) {
        let l = ((1.0 - r)?.sqr()?.mean_all()? + g.sqr()?.mean_all()?)?;
        total = Some(match total {
            Some(t) => (t + l)?,
            None => l,
        });
    }
    Ok(total.unwrap_or(Tensor::new(0f32, &candle_core::Device::Cpu)?))
}

/// Σ_d mean((1 - D(fake))²).
pub fn generator_loss(fake: &DiscOut) -> Result<Tensor> {
    let parts = fake
        .scores
        .iter()
        .map(|g| (1.0 - g)?.sqr()?.mean_all())
        .collect::<candle_core::Result<Vec<_>>>()?;
    Ok(Tensor::stack(&parts, 0)?.sum_all()?)
}

/// 2 Σ mean|real − fake| over every feature map (real detached).
pub fn feature_loss(real: &DiscOut, fake: &DiscOut) -> Result<Tensor> {
    let mut parts = Vec::new();
    for (rs, gs) in real.fmaps.iter().zip(&fake.fmaps) {
        for (r, g) in rs.iter().zip(gs) {
            parts.push((r.detach() - g)?.abs()?.mean_all()?);
        }
    }
    Ok((Tensor::stack(&parts, 0)?.sum_all()? * 2.0)?)
}

/// VITS's KL between the flowed posterior sample and the prior; RVC divides by the mask
/// sum, i.e. by batch × frames (not channels).
pub fn kl_loss(z_p: &Tensor, logs_q: &Tensor, m_p: &Tensor, logs_p: &Tensor) -> Result<Tensor> {
    let (b, _, t) = z_p.dims3()?;
    let kl = ((logs_p - logs_q)? - 0.5)?;
    let kl = (kl + (((z_p - m_p)?.sqr()? * (logs_p * -2.0)?.exp()?)? * 0.5)?)?;
    Ok((kl.sum_all()? / (b * t) as f64)?)
}
