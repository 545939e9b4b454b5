//! Rows of the acceptance-rate benchmark: per (drafter, KV channel, block size, data set)
//! the distribution of accepted tokens per verify, acceptance per draft position, speed of
//! both paths from raw timings, TTFT, cache bytes and codec activity — all derived from the
//! per-sample measurements in [`Sample`], so the evidence gate can recompute them.

use serde_json::{Value, json};

use super::run::Sample;

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// The `q`-quantile (nearest rank) of sorted values.
pub fn quantile(sorted: &[usize], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64
}

/// Accepted drafts / proposed drafts at each draft position 1..=max (None where nothing was
/// proposed at that position).
pub fn per_position(samples: &[Sample]) -> Vec<Option<f64>> {
    let max = samples
        .iter()
        .flat_map(|s| &s.spec.block_lens)
        .copied()
        .max()
        .unwrap_or(1);
    let mut proposed = vec![0usize; max];
    let mut accepted = vec![0usize; max];
    for s in samples {
        for (l, a) in s.spec.block_lens.iter().zip(&s.spec.accepted_lens) {
            for j in 1..*l {
                proposed[j] += 1;
                if *a > j {
                    accepted[j] += 1;
                }
            }
        }
    }
    (1..max)
        .map(|j| (proposed[j] > 0).then(|| accepted[j] as f64 / proposed[j] as f64))
        .collect()
}

/// One benchmark row from its samples; `labels` (drafter, kv, block size, data set, …) are
/// merged in first.
pub fn row(labels: Value, samples: &[Sample], correctness: Option<f64>) -> Value {
    let mut lens: Vec<usize> = samples
        .iter()
        .flat_map(|s| s.spec.accepted_lens.iter().copied())
        .collect();
    lens.sort_unstable();
    let blocks = lens.len();
    let tokens: usize = samples.iter().map(|s| s.spec.tokens.len()).sum();
    let ar_tokens: usize = samples.iter().map(|s| s.ar.tokens.len()).sum();
    let proposed: usize = samples
        .iter()
        .flat_map(|s| &s.spec.block_lens)
        .map(|l| l - 1)
        .sum();
    let drafted_ok: usize = samples
        .iter()
        .flat_map(|s| &s.spec.accepted_lens)
        .map(|a| a - 1)
        .sum();
    let spec_s: f64 = samples.iter().map(|s| s.spec.total_s).sum();
    let ar_s: f64 = samples.iter().map(|s| s.ar.prefill_s + s.ar.decode_s).sum();
    let spec_prefill: f64 = samples.iter().map(|s| s.spec.prefill_s).sum();
    let ar_prefill: f64 = samples.iter().map(|s| s.ar.prefill_s).sum();
    let n = samples.len().max(1) as f64;
    let tps = ratio(tokens as f64, spec_s);
    let ar_tps = ratio(ar_tokens as f64, ar_s);
    let held: usize = samples
        .iter()
        .map(|s| s.kv_layers.iter().map(|l| l.bytes_held).sum::<usize>())
        .sum();
    let raw: usize = samples
        .iter()
        .map(|s| s.kv_layers.iter().map(|l| l.raw_bytes).sum::<usize>())
        .sum();
    let fired: u64 = samples
        .iter()
        .flat_map(|s| &s.kv_layers)
        .map(|l| l.fired)
        .sum();
    let skipped: u64 = samples
        .iter()
        .flat_map(|s| &s.kv_layers)
        .map(|l| l.skipped)
        .sum();
    let draft_s: f64 = samples.iter().map(|s| s.spec.draft_s).sum();
    let verify_s: f64 = samples.iter().map(|s| s.spec.verify_s).sum();
    let draft_fw: u64 = samples.iter().map(|s| s.spec.draft_forwards).sum();
    let ar_steps: u64 = samples
        .iter()
        .map(|s| s.ar.forwards.saturating_sub(1))
        .sum();
    let ar_step_s = ratio(ar_s - ar_prefill, ar_steps as f64);
    // Time the loop spends outside prefill, drafting and verifying (bookkeeping, sinks).
    let overhead_s = (spec_s - spec_prefill - draft_s - verify_s).max(0.0);
    let mut v = json!({
        "samples": samples.len(),
        "lossless": !samples.is_empty() && samples.iter().all(Sample::lossless),
        "tokens": tokens,
        "ar_tokens": ar_tokens,
        "blocks": blocks,
        "accepted_total": lens.iter().sum::<usize>(),
        "accept_len_mean": ratio(lens.iter().sum::<usize>() as f64, blocks as f64),
        "accept_len_p50": quantile(&lens, 0.5),
        "accept_len_p95": quantile(&lens, 0.95),
        "acceptance_rate": (proposed > 0).then(|| drafted_ok as f64 / proposed as f64),
        "acceptance_per_position": per_position(samples),
        "drafts_proposed": proposed,
        "plain_steps": samples.iter().map(|s| s.spec.plain_steps).sum::<u64>(),
        "draft_forwards": samples.iter().map(|s| s.spec.draft_forwards).sum::<u64>(),
        "verify_forwards": samples.iter().map(|s| s.spec.verify_forwards).sum::<u64>(),
        "spec_seconds": spec_s,
        "ar_seconds": ar_s,
        "draft_seconds": draft_s,
        "verify_seconds": verify_s,
        "loop_overhead_seconds": overhead_s,
        "ar_step_seconds": ar_step_s,
        "draft_forward_in_target_steps": (draft_fw > 0 && ar_step_s > 0.0)
            .then(|| draft_s / draft_fw as f64 / ar_step_s),
        "verify_in_target_steps": ratio(verify_s / (blocks.max(1) as f64), ar_step_s),
        "tokens_per_s": tps,
        "ar_tokens_per_s": ar_tps,
        "speedup_vs_ar": ratio(tps, ar_tps),
        "decode_tokens_per_s": ratio(tokens as f64, spec_s - spec_prefill),
        "ar_decode_tokens_per_s": ratio(ar_tokens as f64, ar_s - ar_prefill),
        "ttft_s": spec_prefill / n,
        "ar_ttft_s": ar_prefill / n,
        "kv_bytes_held": held,
        "kv_raw_bytes": raw,
        "codec_fired": fired,
        "codec_skipped": skipped,
        "correctness_proxy": correctness,
    });
    if let (Value::Object(dst), Value::Object(src)) = (&mut v, labels) {
        for (k, val) in src {
            dst.insert(k, val);
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::quantile;

    #[test]
    fn nearest_rank_quantiles() {
        let v = [1, 1, 2, 3, 4, 4, 4, 5, 8, 9];
        assert_eq!(quantile(&v, 0.5), 4.0);
        assert_eq!(quantile(&v, 0.95), 9.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
        assert_eq!(quantile(&[7], 0.95), 7.0);
    }
}
