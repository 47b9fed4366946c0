//! A peer's normal throughput: a bias-corrected, time-weighted EWMA that ignores anomalous samples.

use serde::{Deserialize, Serialize};

use super::config::{AnomalyConfig, millis};

/// Exponentially weighted mean throughput over event time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct TrafficBaseline {
    /// Uncorrected EWMA; divided by `coverage` it is the weighted mean of what was seen so far.
    weighted_bytes_per_s: f64,
    /// `1 - exp(-watched/tau)`: the weight the samples seen so far carry, kept up incrementally.
    coverage: f64,
    /// Event time covered by samples.
    watched_ms: i64,
}

/// What one throughput sample means for the anomaly rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AnomalyVerdict {
    /// Within bounds (or not judged yet).
    Normal,
    /// Far above the baseline.
    Anomalous,
    /// Between the resolve and raise factors: keep whatever state the alert is in.
    Elevated,
}

impl TrafficBaseline {
    /// The baseline throughput in bytes per second, `None` until there is any sample.
    pub fn bytes_per_s(&self) -> Option<f64> {
        (self.coverage > 0.0).then(|| self.weighted_bytes_per_s / self.coverage)
    }

    /// Judges a sample against the baseline as it stands before the sample.
    pub(crate) fn judge(&self, rate_bytes_per_s: f64, config: &AnomalyConfig) -> AnomalyVerdict {
        let Some(baseline) = self.bytes_per_s() else { return AnomalyVerdict::Normal };
        if self.watched_ms < millis(config.warmup) || rate_bytes_per_s < config.floor_bytes_per_s {
            return AnomalyVerdict::Normal;
        }
        if rate_bytes_per_s > config.raise_factor * baseline {
            AnomalyVerdict::Anomalous
        } else if rate_bytes_per_s > config.resolve_factor * baseline {
            AnomalyVerdict::Elevated
        } else {
            AnomalyVerdict::Normal
        }
    }

    /// Folds in a sample covering `elapsed_ms` of event time.
    pub(crate) fn learn(&mut self, rate_bytes_per_s: f64, elapsed_ms: i64, config: &AnomalyConfig) {
        if elapsed_ms <= 0 {
            return;
        }
        let tau = millis(config.baseline_time_constant).max(1) as f64;
        let alpha = 1.0 - (-(elapsed_ms as f64) / tau).exp();
        self.weighted_bytes_per_s += alpha * (rate_bytes_per_s - self.weighted_bytes_per_s);
        self.coverage += alpha * (1.0 - self.coverage);
        self.watched_ms = self.watched_ms.saturating_add(elapsed_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bias_correction_makes_the_early_baseline_the_plain_mean() {
        let config = AnomalyConfig::default();
        let mut baseline = TrafficBaseline::default();
        assert_eq!(baseline.bytes_per_s(), None);
        for _ in 0..6 {
            baseline.learn(1_000.0, 10_000, &config);
        }
        let mean = baseline.bytes_per_s().expect("baseline");
        assert!((mean - 1_000.0).abs() < 1e-6, "{mean}");
    }

    #[test]
    fn nothing_is_judged_during_warmup_or_under_the_floor() {
        let config = AnomalyConfig::default();
        let mut baseline = TrafficBaseline::default();
        baseline.learn(10.0, 60_000, &config);
        assert_eq!(baseline.judge(1e9, &config), AnomalyVerdict::Normal, "still warming up");
        baseline.learn(10.0, 3_600_000, &config);
        assert_eq!(baseline.judge(config.floor_bytes_per_s - 1.0, &config), AnomalyVerdict::Normal);
        assert_eq!(baseline.judge(config.floor_bytes_per_s * 2.0, &config), AnomalyVerdict::Anomalous);
    }
}
