"""Writes the page-checksum fixtures of `input::tests` (run once; the files are committed).

pyarrow (26.0.1 was used) writes a CRC-32 in every page header, as parquet-mr (Spark,
Hive) does by default; parquet-rs does not write them. `good.parquet` holds 200 rows of
(id int64, label string), uncompressed and plain-encoded so that a changed byte is still a
valid value; `flipped.parquet` is the same file with one byte of one label changed
("label-0100" -> "lbbel-0100"), which only the page's checksum can tell.
"""
import pyarrow as pa
import pyarrow.parquet as pq

t = pa.table({
    "id": pa.array(range(200), pa.int64()),
    "label": pa.array([f"label-{i:04d}" for i in range(200)], pa.string()),
})
pq.write_table(t, "good.parquet", compression="none", use_dictionary=False,
               write_page_checksum=True, write_statistics=False)
b = bytearray(open("good.parquet", "rb").read())
at = b.index(b"label-0100")
b[at + 1] = ord("b")
open("flipped.parquet", "wb").write(bytes(b))
