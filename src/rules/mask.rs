//! `mask`: keeps the last N characters of a value behind a fixed-width run of `*`.
//!
//! The output is always `****` followed by the last N characters, so it reveals neither
//! the length of the value nor anything before its tail. A value with N characters or
//! fewer becomes `****` alone (showing all of it would show the whole value).

use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::generalize::udf_struct;
use super::{check_args, first_array, int_arg, is_string, map_strings};

/// What stands in for the hidden part.
pub const MASK: &str = "****";

/// Writes the masked form of `s` keeping its last `keep_last` characters.
pub fn mask(s: &str, keep_last: usize, out: &mut String) {
    out.push_str(MASK);
    let n = s.chars().count();
    if n > keep_last {
        let start = s
            .char_indices()
            .nth(n - keep_last)
            .map(|(i, _)| i)
            .unwrap_or(s.len());
        out.push_str(&s[start..]);
    }
}

udf_struct!(MaskUdf);

impl ScalarUDFImpl for MaskUdf {
    fn name(&self) -> &str {
        "anon_mask"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        check_args(self.name(), arg_types, 2..=2, is_string, "a string column")?;
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let a = first_array(&args.args, args.number_rows)?;
        let keep = int_arg(self.name(), &args.args, 1, None, 0..=64)? as usize;
        let out = map_strings(&a, a.len() * (4 + keep), |s, buf| {
            mask(s, keep, buf);
            true
        })?;
        Ok(ColumnarValue::Array(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        let m = |s: &str, k| {
            let mut o = String::new();
            mask(s, k, &mut o);
            o
        };
        assert_eq!(m("+44 20 7946 0958", 2), "****58");
        assert_eq!(m("ab", 2), "****");
        assert_eq!(m("äöüß", 1), "****ß");
        assert_eq!(m("secret", 0), "****");
    }
}
