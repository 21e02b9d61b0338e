use std::path::PathBuf;
pub struct GenerateOptions {
    pub out: PathBuf,
    pub customers: u64,
    pub seed: u64,
    pub start: chrono::NaiveDate,
    pub months: u32,
    pub files: usize,
}
impl GenerateOptions {
    pub fn new(out: PathBuf, customers: u64) -> Self {
        Self {
            out,
            customers,
            seed: 42,
            start: chrono::NaiveDate::from_ymd_opt(2023, 1, 1).unwrap(),
            months: 36,
            files: 1,
        }
    }
}
#[derive(Debug, Clone, serde::Serialize)]
pub struct GenerateSummary {
    pub customers: u64,
    pub transactions: u64,
    pub customer_files: Vec<PathBuf>,
    pub transaction_files: Vec<PathBuf>,
}
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("x")]
    Invalid(String),
}
pub fn generate(_o: &GenerateOptions) -> Result<GenerateSummary, GenerateError> {
    Err(GenerateError::Invalid("stub".into()))
}
