//! "Did you mean" for misspelt keys, rules and column names.

/// The closest candidate to `word`, if it is close enough to be a plausible typo.
pub fn did_you_mean<'a, I>(word: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    let lw = word.to_lowercase();
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let lc = c.to_lowercase();
        if lc == lw {
            return Some(c.to_string());
        }
        let score = strsim::jaro_winkler(&lw, &lc);
        if score >= 0.8 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| c.to_string())
}

/// ` (did you mean 'x'?)` or nothing.
pub fn hint(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(s) => format!(" (did you mean '{s}'?)"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_words_only() {
        let rules = ["keep", "drop", "pseudonymize", "generalize"];
        assert_eq!(
            did_you_mean("pseudonymise", rules).as_deref(),
            Some("pseudonymize")
        );
        assert_eq!(did_you_mean("Drop", rules).as_deref(), Some("drop"));
        assert_eq!(did_you_mean("xylophone", rules), None);
    }
}
