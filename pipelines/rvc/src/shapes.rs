//! Every weight an inference-only RVC checkpoint holds, with its shape, derived from the
//! config: for building random models (benchmarks) and for checking files are complete.

use crate::config::{ResBlockKind, SynthConfig, Version};
use crate::text_encoder::PITCH_BINS;

/// `(name, shape)` of every (weight-norm-folded) tensor `Synthesizer::new` reads.
pub fn weight_shapes(cfg: &SynthConfig, version: Version, f0: bool) -> Vec<(String, Vec<usize>)> {
    let mut out: Vec<(String, Vec<usize>)> = Vec::new();
    let mut add = |name: String, shape: &[usize]| out.push((name, shape.to_vec()));
    let (h, inter, gin) = (cfg.hidden_channels, cfg.inter_channels, cfg.gin_channels);
    add("emb_g.weight".into(), &[cfg.spk_embed_dim, gin]);

    // enc_p
    add("enc_p.emb_phone.weight".into(), &[h, version.feature_dim()]);
    add("enc_p.emb_phone.bias".into(), &[h]);
    if f0 {
        add("enc_p.emb_pitch.weight".into(), &[PITCH_BINS, h]);
    }
    let kc = h / cfg.n_heads.max(1);
    for i in 0..cfg.n_layers {
        let a = format!("enc_p.encoder.attn_layers.{i}");
        for c in ["conv_q", "conv_k", "conv_v", "conv_o"] {
            add(format!("{a}.{c}.weight"), &[h, h, 1]);
            add(format!("{a}.{c}.bias"), &[h]);
        }
        add(format!("{a}.emb_rel_k"), &[1, 21, kc]);
        add(format!("{a}.emb_rel_v"), &[1, 21, kc]);
        for n in ["norm_layers_1", "norm_layers_2"] {
            add(format!("enc_p.encoder.{n}.{i}.gamma"), &[h]);
            add(format!("enc_p.encoder.{n}.{i}.beta"), &[h]);
        }
        let f = format!("enc_p.encoder.ffn_layers.{i}");
        add(
            format!("{f}.conv_1.weight"),
            &[cfg.filter_channels, h, cfg.kernel_size],
        );
        add(format!("{f}.conv_1.bias"), &[cfg.filter_channels]);
        add(
            format!("{f}.conv_2.weight"),
            &[h, cfg.filter_channels, cfg.kernel_size],
        );
        add(format!("{f}.conv_2.bias"), &[h]);
    }
    add("enc_p.proj.weight".into(), &[2 * inter, h, 1]);
    add("enc_p.proj.bias".into(), &[2 * inter]);

    // flow: 4 coupling layers at even indices, WN with 3 layers of kernel 5.
    for i in 0..4 {
        let p = format!("flow.flows.{}", 2 * i);
        add(format!("{p}.pre.weight"), &[h, inter / 2, 1]);
        add(format!("{p}.pre.bias"), &[h]);
        add(format!("{p}.enc.cond_layer.weight"), &[6 * h, gin, 1]);
        add(format!("{p}.enc.cond_layer.bias"), &[6 * h]);
        for j in 0..3 {
            add(format!("{p}.enc.in_layers.{j}.weight"), &[2 * h, h, 5]);
            add(format!("{p}.enc.in_layers.{j}.bias"), &[2 * h]);
            let o = if j < 2 { 2 * h } else { h };
            add(format!("{p}.enc.res_skip_layers.{j}.weight"), &[o, h, 1]);
            add(format!("{p}.enc.res_skip_layers.{j}.bias"), &[o]);
        }
        add(format!("{p}.post.weight"), &[inter / 2, h, 1]);
        add(format!("{p}.post.bias"), &[inter / 2]);
    }

    // dec
    let c0 = cfg.upsample_initial_channel;
    add("dec.conv_pre.weight".into(), &[c0, inter, 7]);
    add("dec.conv_pre.bias".into(), &[c0]);
    add("dec.cond.weight".into(), &[c0, gin, 1]);
    add("dec.cond.bias".into(), &[c0]);
    let n_up = cfg.upsample_rates.len();
    let nk = cfg.resblock_kernel_sizes.len();
    for (i, &k) in cfg.upsample_kernel_sizes.iter().enumerate() {
        let (ci, co) = (c0 >> i, c0 >> (i + 1));
        add(format!("dec.ups.{i}.weight"), &[ci, co, k]);
        add(format!("dec.ups.{i}.bias"), &[co]);
        if f0 {
            let nk_noise = if i + 1 < n_up {
                2 * cfg.upsample_rates[i + 1..].iter().product::<usize>()
            } else {
                1
            };
            add(format!("dec.noise_convs.{i}.weight"), &[co, 1, nk_noise]);
            add(format!("dec.noise_convs.{i}.bias"), &[co]);
        }
        for (j, (&rk, d)) in cfg
            .resblock_kernel_sizes
            .iter()
            .zip(&cfg.resblock_dilation_sizes)
            .enumerate()
        {
            let r = format!("dec.resblocks.{}", i * nk + j);
            let groups: &[&str] = match cfg.resblock {
                ResBlockKind::One => &["convs1", "convs2"],
                ResBlockKind::Two => &["convs"],
            };
            for g in groups {
                for m in 0..d.len() {
                    add(format!("{r}.{g}.{m}.weight"), &[co, co, rk]);
                    add(format!("{r}.{g}.{m}.bias"), &[co]);
                }
            }
        }
    }
    add("dec.conv_post.weight".into(), &[1, c0 >> n_up, 7]);
    if f0 {
        add("dec.m_source.l_linear.weight".into(), &[1, 1]);
        add("dec.m_source.l_linear.bias".into(), &[1]);
    }
    out
}
