//! Reproducible sampling for a request that gives a `seed`.
//!
//! mistral.rs samples from one engine-wide RNG, so the same seed would give
//! different text depending on what else is in the batch. Instead Warden
//! samples itself inside a logits processor, from an RNG derived from the
//! request's seed and the sequence length, and hands the engine a one-hot
//! distribution that its greedy sampler then picks. The constraint mask (if
//! any) is applied before a resample, so constrained output stays valid.

use candle_core::Tensor;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub(crate) struct SeededSampler {
    pub seed: u64,
    pub temperature: f64,
    pub top_p: f64,
}

impl mistralrs::CustomLogitsProcessor for SeededSampler {
    fn apply(&self, logits: &Tensor, context: &[u32]) -> candle_core::Result<Tensor> {
        let values: Vec<f32> = logits.flatten_all()?.to_vec1()?;
        let mut rng = StdRng::seed_from_u64(
            self.seed ^ (context.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let chosen = sample_index(&values, self.temperature, self.top_p, rng.random::<f64>());
        let mut one_hot = vec![f32::NEG_INFINITY; values.len()];
        if let Some(slot) = one_hot.get_mut(chosen) {
            *slot = 0.0;
        }
        Tensor::from_vec(one_hot, logits.shape(), logits.device())
    }
}

/// Picks an index from `logits` with temperature and nucleus (top-p)
/// filtering, using `uniform` in [0, 1) as the random draw.
pub(crate) fn sample_index(logits: &[f32], temperature: f64, top_p: f64, uniform: f64) -> usize {
    let max = logits
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return 0;
    }
    let t = temperature.max(1e-6);
    let mut probs: Vec<(usize, f64)> = logits
        .iter()
        .enumerate()
        .filter(|(_, x)| x.is_finite())
        .map(|(i, &x)| (i, (f64::from(x - max) / t).exp()))
        .collect();
    probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let total: f64 = probs.iter().map(|p| p.1).sum();
    let mut kept = 0.0;
    let mut cut = probs.len();
    for (n, p) in probs.iter().enumerate() {
        kept += p.1;
        if kept / total >= top_p {
            cut = n + 1;
            break;
        }
    }
    probs.truncate(cut);
    let mass: f64 = probs.iter().map(|p| p.1).sum();
    let mut target = uniform.clamp(0.0, 1.0) * mass;
    for (i, p) in &probs {
        if target < *p {
            return *i;
        }
        target -= p;
    }
    probs.last().map_or(0, |p| p.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn low_draws_pick_the_most_likely_token() {
        assert_eq!(sample_index(&[0.0, 5.0, 1.0], 1.0, 1.0, 0.0), 1);
    }

    #[test]
    fn top_p_cuts_the_tail() {
        // Token 1 holds almost all the mass; with top_p 0.5 it is the only one kept.
        for u in [0.0, 0.5, 0.999] {
            assert_eq!(sample_index(&[0.0, 10.0, 0.0], 1.0, 0.5, u), 1);
        }
    }

    #[test]
    fn high_temperature_reaches_other_tokens() {
        let picks: std::collections::HashSet<usize> = (0..10)
            .map(|i| sample_index(&[1.0, 1.2, 0.9], 5.0, 1.0, i as f64 / 10.0))
            .collect();
        assert_eq!(picks.len(), 3);
    }

    #[test]
    fn masked_tokens_are_never_chosen() {
        let logits = [f32::NEG_INFINITY, 0.0, f32::NEG_INFINITY, 0.0];
        for i in 0..20 {
            let idx = sample_index(&logits, 1.0, 1.0, i as f64 / 20.0);
            assert!(idx == 1 || idx == 3);
        }
    }

    #[test]
    fn same_seed_and_position_give_the_same_choice() {
        let s = SeededSampler {
            seed: 7,
            temperature: 1.0,
            top_p: 1.0,
        };
        let logits = Tensor::new(&[0.1f32, 0.2, 0.3, 0.4], &candle_core::Device::Cpu).unwrap();
        let ctx = [1u32, 2, 3];
        use mistralrs::CustomLogitsProcessor as _;
        let a = s.apply(&logits, &ctx).unwrap().to_vec1::<f32>().unwrap();
        let b = s.apply(&logits, &ctx).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.iter().filter(|x| x.is_finite()).count(), 1);
    }
}
