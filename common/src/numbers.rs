//! Value parsers for numeric flags (`#[arg(value_parser = numbers::positive_float)]`), so that every
//! stage refuses a meaningless number the same way: clap stops before the stage runs, with a message
//! naming the flag and the value (`invalid value 'nan' for '--lr <LR>': ...`).

/// A count of at least 1 (steps, batch sizes, ranks).
pub fn count(text: &str) -> Result<usize, String> {
    usize::try_from(count_u64(text)?).map_err(|_| "too large for this machine".to_string())
}

/// A count of at least 1 that may exceed 32 bits (pixels, bytes).
pub fn count_u64(text: &str) -> Result<u64, String> {
    let n: u64 = text
        .trim()
        .parse()
        .map_err(|_| "expected a whole number of at least 1".to_string())?;
    if n == 0 {
        return Err("must be at least 1".into());
    }
    Ok(n)
}

/// A finite number above 0 (learning rates, temperatures, scales).
pub fn positive_float(text: &str) -> Result<f64, String> {
    let v = finite(text)?;
    if v <= 0.0 {
        return Err("must be greater than 0".into());
    }
    Ok(v)
}

/// A finite number of at least 0 (weight decay, a limit where 0 turns it off).
pub fn non_negative_float(text: &str) -> Result<f64, String> {
    let v = finite(text)?;
    if v < 0.0 {
        return Err("must be 0 or greater".into());
    }
    Ok(v)
}

/// A probability of dropping something: at least 0 and below 1 (1 would drop everything).
pub fn drop_probability(text: &str) -> Result<f32, String> {
    let v = finite(text)?;
    if !(0.0..1.0).contains(&v) {
        return Err("must be at least 0 and below 1".into());
    }
    Ok(v as f32)
}

fn finite(text: &str) -> Result<f64, String> {
    let v: f64 = text.trim().parse().map_err(|_| "expected a number".to_string())?;
    if !v.is_finite() {
        return Err("must be a finite number".into());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_meaningless_numbers() {
        assert_eq!(count("3"), Ok(3));
        assert!(count("0").is_err() && count("-1").is_err() && count("x").is_err());
        assert_eq!(positive_float("5e-5"), Ok(5e-5));
        for bad in ["0", "-1", "nan", "inf", "-inf", ""] {
            assert!(positive_float(bad).is_err(), "{bad}");
        }
        assert_eq!(non_negative_float("0"), Ok(0.0));
        assert!(non_negative_float("-0.1").is_err() && non_negative_float("NaN").is_err());
        assert_eq!(drop_probability("0"), Ok(0.0));
        assert_eq!(drop_probability("0.1"), Ok(0.1));
        for bad in ["1", "1.5", "-0.1", "nan"] {
            assert!(drop_probability(bad).is_err(), "{bad}");
        }
    }
}
