//! The HF Trainer's `linear` schedule: warm up linearly from 0 to the peak over `warmup` steps, then
//! decay linearly to 0 at `total` steps.

pub fn linear_lr(peak: f64, step: usize, warmup: usize, total: usize) -> f64 {
    if step < warmup {
        return peak * step as f64 / warmup.max(1) as f64;
    }
    let remaining = total.saturating_sub(step) as f64;
    let span = total.saturating_sub(warmup).max(1) as f64;
    peak * (remaining / span).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::linear_lr;

    #[test]
    fn warms_up_then_decays_to_zero() {
        assert_eq!(linear_lr(1.0, 0, 10, 110), 0.0);
        assert_eq!(linear_lr(1.0, 5, 10, 110), 0.5);
        assert_eq!(linear_lr(1.0, 10, 10, 110), 1.0);
        assert_eq!(linear_lr(1.0, 60, 10, 110), 0.5);
        assert_eq!(linear_lr(1.0, 110, 10, 110), 0.0);
        assert_eq!(linear_lr(2.0, 3, 0, 4), 0.5);
    }
}
