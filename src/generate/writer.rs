//! A Parquet writer that can encode (and compress) the columns of each batch
//! in parallel on the rayon pool, so that a single output file is not limited
//! to one core. Encoding each column is independent of the others and every
//! column writer sees the same sequence of values either way, so the bytes
//! written do not depend on `parallel` or on the number of threads.

use std::fs::File;
use std::io::BufWriter;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{FieldRef, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{
    ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory, compute_leaves,
};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use rayon::prelude::*;

pub(super) struct ColumnParallelWriter {
    file: SerializedFileWriter<BufWriter<File>>,
    factory: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    /// Writers of the row group in progress (empty between row groups).
    columns: Vec<ArrowColumnWriter>,
    row_groups: usize,
    rows_in_group: usize,
    max_rows_per_group: usize,
    parallel: bool,
}

impl ColumnParallelWriter {
    /// `schema` must be flat (one Parquet leaf per field).
    pub(super) fn try_new(
        file: File,
        schema: SchemaRef,
        props: WriterProperties,
        max_rows_per_group: usize,
        parallel: bool,
    ) -> Result<Self, ParquetError> {
        // ArrowWriter sets up the Parquet schema and embeds the Arrow schema
        // (so time zones and other Arrow-only details survive a round trip).
        let writer = ArrowWriter::try_new(
            BufWriter::with_capacity(1 << 20, file),
            schema.clone(),
            Some(props),
        )?;
        let (file, factory) = writer.into_serialized_writer()?;
        if file.schema_descr().num_columns() != schema.fields().len() {
            return Err(ParquetError::General(
                "nested columns are not supported by the generator's writer".into(),
            ));
        }
        Ok(ColumnParallelWriter {
            file,
            factory,
            schema,
            columns: Vec::new(),
            row_groups: 0,
            rows_in_group: 0,
            max_rows_per_group: max_rows_per_group.max(1),
            parallel,
        })
    }

    pub(super) fn write(&mut self, batch: &RecordBatch) -> Result<(), ParquetError> {
        let mut offset = 0;
        while offset < batch.num_rows() {
            if self.columns.is_empty() {
                self.columns = self.factory.create_column_writers(self.row_groups)?;
            }
            let n = (self.max_rows_per_group - self.rows_in_group).min(batch.num_rows() - offset);
            let part = batch.slice(offset, n);
            let fields = self.schema.fields();
            let encode = |((w, array), field): ((&mut ArrowColumnWriter, &ArrayRef), &FieldRef)| {
                for leaf in compute_leaves(field, array)? {
                    w.write(&leaf)?;
                }
                Ok::<(), ParquetError>(())
            };
            if self.parallel {
                self.columns
                    .par_iter_mut()
                    .zip(part.columns().par_iter())
                    .zip(fields.par_iter())
                    .try_for_each(encode)?;
            } else {
                self.columns
                    .iter_mut()
                    .zip(part.columns().iter())
                    .zip(fields.iter())
                    .try_for_each(encode)?;
            }
            self.rows_in_group += n;
            offset += n;
            if self.rows_in_group == self.max_rows_per_group {
                self.flush_row_group()?;
            }
        }
        Ok(())
    }

    fn flush_row_group(&mut self) -> Result<(), ParquetError> {
        let columns = std::mem::take(&mut self.columns);
        let chunks: Vec<ArrowColumnChunk> = if self.parallel {
            columns
                .into_par_iter()
                .map(|w| w.close())
                .collect::<Result<_, _>>()?
        } else {
            columns
                .into_iter()
                .map(|w| w.close())
                .collect::<Result<_, _>>()?
        };
        let mut row_group = self.file.next_row_group()?;
        for chunk in chunks {
            chunk.append_to_row_group(&mut row_group)?;
        }
        row_group.close()?;
        self.row_groups += 1;
        self.rows_in_group = 0;
        Ok(())
    }

    /// Writes the last row group and the footer, and returns the file.
    pub(super) fn finish(mut self) -> Result<File, ParquetError> {
        if self.rows_in_group > 0 {
            self.flush_row_group()?;
        }
        let buf = self.file.into_inner()?;
        buf.into_inner()
            .map_err(|e| ParquetError::External(Box::new(e.into_error())))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::*;

    fn write(dir: &std::path::Path, name: &str, parallel: bool) -> Vec<u8> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("s", DataType::Utf8, true),
        ]));
        let path = dir.join(name);
        let mut w = ColumnParallelWriter::try_new(
            File::create(&path).unwrap(),
            schema.clone(),
            WriterProperties::builder().build(),
            7,
            parallel,
        )
        .unwrap();
        let mut next = 0i64;
        for len in [3usize, 10, 0, 1, 15] {
            let ids: Vec<i64> = (next..next + len as i64).collect();
            let s: Vec<Option<String>> = ids
                .iter()
                .map(|i| (i % 3 != 0).then(|| format!("v{i}")))
                .collect();
            next += len as i64;
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from(ids)),
                    Arc::new(StringArray::from(s)),
                ],
            )
            .unwrap();
            w.write(&batch).unwrap();
        }
        w.finish().unwrap();
        std::fs::read(path).unwrap()
    }

    #[test]
    fn row_groups_split_and_parallel_encoding_is_byte_identical() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a.parquet", false);
        let b = write(dir.path(), "b.parquet", true);
        assert_eq!(a, b);

        let file = File::open(dir.path().join("a.parquet")).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        let groups: Vec<i64> = reader
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.num_rows())
            .collect();
        assert_eq!(groups, [7, 7, 7, 7, 1]);
        let ids: Vec<i64> = reader
            .build()
            .unwrap()
            .flat_map(|b| {
                let b = b.unwrap();
                let a = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                a.values().to_vec()
            })
            .collect();
        assert_eq!(ids, (0..29).collect::<Vec<_>>());
    }
}
