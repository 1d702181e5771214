use candle_core::{Device, Tensor};
use std::time::Instant;
fn main() {
    let dev = Device::Cpu;
    let len: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1600);
    let d = avatar_rvc_train::discriminator::Discriminator::new(1, &dev).unwrap();
    let y = candle_core::Var::from_tensor(&Tensor::randn(0f32, 0.3, (2, 1, len), &dev).unwrap())
        .unwrap();
    for frozen in [false, true] {
        let t = Instant::now();
        let out = d.forward(&y, frozen).unwrap();
        let fwd = t.elapsed();
        for (i, s) in out.scores.iter().enumerate() {
            let t = Instant::now();
            let _g = s.sqr().unwrap().mean_all().unwrap().backward().unwrap();
            eprint!("d{i} {:?}  ", t.elapsed());
        }
        eprintln!("\nfrozen {frozen} fwd {fwd:?}");
    }
}
