//! images.parquet: one row per analysed image, for pandas, Polars and DuckDB. A stable,
//! documented contract like report.json (the schema is in README.md, "`images.parquet`"): columns
//! are only ever added; a column never changes its meaning or type.
//!
//! The table is built from the stage artifacts (never from the dataset), in the ingest image
//! table's order, with a null wherever a stage gave the image no value: an image on no
//! duplicate list has no group, one that is not a label-issue candidate no score.
//!
//! Written with the parquet crate's low-level column writers and no compression codec, so
//! the crate is built without arrow or any codec (CI time); dictionary encoding keeps the
//! repeated strings (split, label, format) small. Every reader of Parquet reads this file
//! with nothing else installed.

use std::sync::Arc;

use ::parquet::basic::Compression;
use ::parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, Int32Type, Int64Type};
use ::parquet::file::properties::WriterProperties;
use ::parquet::file::writer::SerializedFileWriter;
use ::parquet::schema::parser::parse_message_type;
use anyhow::{Context, Result};

use super::view::RenderInput;

pub const FILE: &str = "images.parquet";
/// Written into the file's key-value metadata as `aldente.schema_version`; bumped only if a
/// column is removed or changes meaning.
pub const SCHEMA_VERSION: u32 = 1;
/// Rows per row group: bounded memory for the readers of a million-image table.
const ROW_GROUP_ROWS: usize = 65_536;

/// One column's values, a `None` for each null.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    Text(Vec<Option<String>>),
    Int32(Vec<Option<i32>>),
    Int64(Vec<Option<i64>>),
    Double(Vec<Option<f64>>),
    Bool(Vec<Option<bool>>),
}

impl Values {
    fn len(&self) -> usize {
        match self {
            Values::Text(v) => v.len(),
            Values::Int32(v) => v.len(),
            Values::Int64(v) => v.len(),
            Values::Double(v) => v.len(),
            Values::Bool(v) => v.len(),
        }
    }

    fn has_null(&self) -> bool {
        match self {
            Values::Text(v) => v.iter().any(Option::is_none),
            Values::Int32(v) => v.iter().any(Option::is_none),
            Values::Int64(v) => v.iter().any(Option::is_none),
            Values::Double(v) => v.iter().any(Option::is_none),
            Values::Bool(v) => v.iter().any(Option::is_none),
        }
    }

    fn parquet_type(&self) -> &'static str {
        match self {
            Values::Text(_) => "BYTE_ARRAY",
            Values::Int32(_) => "INT32",
            Values::Int64(_) => "INT64",
            Values::Double(_) => "DOUBLE",
            Values::Bool(_) => "BOOLEAN",
        }
    }
}

/// A named column; `nullable` columns are OPTIONAL in the schema, the others REQUIRED.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: &'static str,
    pub nullable: bool,
    pub values: Values,
}

fn column(name: &'static str, nullable: bool, values: Values) -> Column {
    Column {
        name,
        nullable,
        values,
    }
}

/// The table's columns, in schema order, one value per analysed image.
pub fn columns(input: &RenderInput) -> Vec<Column> {
    let ingest = &input.ingested.artifact;
    let images = &ingest.images;
    let n = images.len();
    let classes = super::json::class_names(ingest);
    let text = |f: &dyn Fn(usize) -> String| Values::Text((0..n).map(|i| Some(f(i))).collect());

    // Per-image properties, aligned with the image table; nulls if they ever are not.
    let properties = &input.statistics.properties;
    let aligned = properties.len() == n;
    let property = |f: &dyn Fn(&crate::stages::statistics::properties::ImageProperties) -> f32| {
        Values::Double(
            (0..n)
                .map(|i| aligned.then(|| f64::from(f(&properties[i]))))
                .collect(),
        )
    };

    // Duplicate group (the index in report.json's duplicates.groups) and tier: "copy" for a
    // member of a group, else "possible" for an image in a pair to review.
    let dedup = input.dedup;
    let mut group: Vec<Option<i32>> = vec![None; n];
    let mut tier: Vec<Option<String>> = vec![None; n];
    for pair in &dedup.possible_pairs {
        for i in [pair.pair.a, pair.pair.b] {
            if i < n {
                tier[i] = Some("possible".into());
            }
        }
    }
    for (g, members) in dedup.groups.iter().enumerate() {
        for &i in &members.members {
            if i < n {
                group[i] = i32::try_from(g).ok();
                tier[i] = Some("copy".into());
            }
        }
    }

    let embed = input.embed;
    let mut issue_score: Vec<Option<f64>> = vec![None; n];
    let mut suggested: Vec<Option<String>> = vec![None; n];
    for issue in &embed.label_issues {
        if issue.image < n {
            issue_score[issue.image] = Some(f64::from(issue.score));
            suggested[issue.image] = classes.get(issue.detail.suggested as usize).cloned();
        }
    }
    let mut outlier: Vec<Option<f64>> = vec![None; n];
    for finding in &embed.outliers {
        if finding.image < n {
            outlier[finding.image] = Some(f64::from(finding.score));
        }
    }
    let mut map_x: Vec<Option<f64>> = vec![None; n];
    let mut map_y: Vec<Option<f64>> = vec![None; n];
    for point in &embed.map {
        let i = point.image as usize;
        if i < n {
            map_x[i] = Some(f64::from(point.x));
            map_y[i] = Some(f64::from(point.y));
        }
    }

    let has_splits = images.iter().any(|r| r.split.is_some());
    vec![
        column("path", false, text(&|i| images[i].path.clone())),
        column(
            "split",
            true,
            Values::Text(
                images
                    .iter()
                    .map(|r| r.split.clone().filter(|_| has_splits))
                    .collect(),
            ),
        ),
        column("label", false, text(&|i| images[i].label.clone())),
        column("format", false, text(&|i| images[i].format.clone())),
        column("color", false, text(&|i| images[i].color.clone())),
        column(
            "width",
            false,
            Values::Int64(images.iter().map(|r| Some(i64::from(r.width))).collect()),
        ),
        column(
            "height",
            false,
            Values::Int64(images.iter().map(|r| Some(i64::from(r.height))).collect()),
        ),
        column(
            "file_size",
            false,
            Values::Int64(
                images
                    .iter()
                    .map(|r| Some(i64::try_from(r.file_size).unwrap_or(i64::MAX)))
                    .collect(),
            ),
        ),
        column(
            "content_hash",
            false,
            text(&|i| format!("{:032x}", images[i].content_hash)),
        ),
        column(
            "pixel_hash",
            false,
            text(&|i| format!("{:032x}", images[i].pixel_hash)),
        ),
        column("brightness", true, property(&|p| p.brightness)),
        column("contrast", true, property(&|p| p.contrast)),
        column("saturation", true, property(&|p| p.saturation)),
        column("sharpness", true, property(&|p| p.sharpness)),
        column("entropy", true, property(&|p| p.entropy)),
        column("aspect", true, property(&|p| p.aspect)),
        column(
            "greyscale",
            true,
            Values::Bool(
                (0..n)
                    .map(|i| aligned.then(|| properties[i].greyscale))
                    .collect(),
            ),
        ),
        column("duplicate_group", true, Values::Int32(group)),
        column("duplicate_tier", true, Values::Text(tier)),
        column("label_issue_score", true, Values::Double(issue_score)),
        column("suggested_label", true, Values::Text(suggested)),
        column("outlier_score", true, Values::Double(outlier)),
        column("map_x", true, Values::Double(map_x)),
        column("map_y", true, Values::Double(map_y)),
    ]
}

/// The schema in Parquet's message syntax. Strings are annotated as UTF-8 so readers give
/// text, not bytes.
fn schema(columns: &[Column]) -> String {
    let mut message = String::from("message image {\n");
    for c in columns {
        let repetition = if c.nullable { "OPTIONAL" } else { "REQUIRED" };
        let annotation = if matches!(c.values, Values::Text(_)) {
            " (STRING)"
        } else {
            ""
        };
        message.push_str(&format!(
            "  {repetition} {} {}{annotation};\n",
            c.values.parquet_type(),
            c.name
        ));
    }
    message.push('}');
    message
}

/// Writes the columns as a Parquet file in memory.
pub fn write(columns: &[Column]) -> Result<Vec<u8>> {
    let rows = columns.first().map_or(0, |c| c.values.len());
    for c in columns {
        anyhow::ensure!(
            c.values.len() == rows && (c.nullable || !c.values.has_null()),
            "images.parquet: column `{}` does not fit the table",
            c.name
        );
    }
    let schema = Arc::new(
        parse_message_type(&schema(columns)).context("images.parquet: building the schema")?,
    );
    let properties = WriterProperties::builder()
        .set_compression(Compression::UNCOMPRESSED)
        .set_dictionary_enabled(true)
        .set_created_by(format!("aldente {}", crate::TOOL_VERSION))
        .set_key_value_metadata(Some(vec![::parquet::file::metadata::KeyValue::new(
            "aldente.schema_version".to_string(),
            SCHEMA_VERSION.to_string(),
        )]))
        .build();
    let mut bytes = Vec::new();
    let mut writer = SerializedFileWriter::new(&mut bytes, schema, Arc::new(properties))
        .context("images.parquet: starting the file")?;
    let mut start = 0;
    // An empty dataset still gets a file with the schema and no rows.
    while start < rows || (rows == 0 && start == 0) {
        let end = (start + ROW_GROUP_ROWS).min(rows);
        let mut group = writer
            .next_row_group()
            .context("images.parquet: starting a row group")?;
        for c in columns {
            let mut out = group
                .next_column()
                .context("images.parquet: starting a column")?
                .context("images.parquet: the schema has fewer columns than the table")?;
            write_column(&mut out, &c.values, start..end, c.nullable)
                .with_context(|| format!("images.parquet: writing column `{}`", c.name))?;
            out.close()
                .with_context(|| format!("images.parquet: closing column `{}`", c.name))?;
        }
        group
            .close()
            .context("images.parquet: closing a row group")?;
        if rows == 0 {
            break;
        }
        start = end;
    }
    writer.close().context("images.parquet: closing the file")?;
    Ok(bytes)
}

/// The present values of `range` and, for an optional column, the definition levels (1 for a
/// value, 0 for a null).
fn split_nulls<T: Clone, U>(values: &[Option<T>], convert: impl Fn(T) -> U) -> (Vec<U>, Vec<i16>) {
    let mut present = Vec::with_capacity(values.len());
    let mut levels = Vec::with_capacity(values.len());
    for v in values {
        match v {
            Some(v) => {
                present.push(convert(v.clone()));
                levels.push(1);
            }
            None => levels.push(0),
        }
    }
    (present, levels)
}

fn write_column(
    out: &mut ::parquet::file::writer::SerializedColumnWriter<'_>,
    values: &Values,
    range: std::ops::Range<usize>,
    nullable: bool,
) -> ::parquet::errors::Result<()> {
    macro_rules! write_typed {
        ($ty:ty, $values:expr, $convert:expr) => {{
            let (present, levels) = split_nulls(&$values[range], $convert);
            let levels = nullable.then_some(levels.as_slice());
            out.typed::<$ty>().write_batch(&present, levels, None)?;
        }};
    }
    match values {
        Values::Text(v) => write_typed!(ByteArrayType, v, |s: String| ByteArray::from(
            s.into_bytes()
        )),
        Values::Int32(v) => write_typed!(Int32Type, v, |x| x),
        Values::Int64(v) => write_typed!(Int64Type, v, |x| x),
        Values::Double(v) => write_typed!(DoubleType, v, |x| x),
        Values::Bool(v) => write_typed!(BoolType, v, |x| x),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::parquet::file::reader::{FileReader, SerializedFileReader};
    use ::parquet::record::Field;

    fn reader(bytes: &[u8]) -> SerializedFileReader<std::fs::File> {
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, bytes).unwrap();
        SerializedFileReader::new(file).unwrap()
    }

    fn read_back(bytes: Vec<u8>) -> Vec<Vec<(String, Field)>> {
        let reader = reader(&bytes);
        reader
            .get_row_iter(None)
            .unwrap()
            .map(|row| {
                row.unwrap()
                    .get_column_iter()
                    .map(|(name, field)| (name.clone(), field.clone()))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn nulls_and_values_come_back_in_their_rows() {
        let columns = vec![
            column(
                "path",
                false,
                Values::Text(vec![Some("a.png".into()), Some("b.png".into())]),
            ),
            column("score", true, Values::Double(vec![None, Some(0.5)])),
            column("group", true, Values::Int32(vec![Some(3), None])),
            column("grey", false, Values::Bool(vec![Some(true), Some(false)])),
        ];
        let rows = read_back(write(&columns).unwrap());
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][0], ("path".into(), Field::Str("a.png".into())));
        assert_eq!(rows[0][1].1, Field::Null);
        assert_eq!(rows[1][1].1, Field::Double(0.5));
        assert_eq!(rows[0][2].1, Field::Int(3));
        assert_eq!(rows[1][2].1, Field::Null);
        assert_eq!(rows[1][3].1, Field::Bool(false));
    }

    #[test]
    fn a_null_in_a_required_column_is_refused() {
        let columns = vec![column("path", false, Values::Text(vec![None]))];
        assert!(write(&columns).is_err());
    }

    #[test]
    fn many_rows_span_row_groups_in_order() {
        let n = ROW_GROUP_ROWS + 10;
        let columns = vec![column(
            "i",
            true,
            Values::Int64((0..n as i64).map(|i| (i % 7 != 0).then_some(i)).collect()),
        )];
        let bytes = write(&columns).unwrap();
        assert_eq!(reader(&bytes).metadata().num_row_groups(), 2);
        let rows = read_back(bytes);
        assert_eq!(rows.len(), n);
        for (i, row) in rows.iter().enumerate() {
            let want = if i % 7 == 0 {
                Field::Null
            } else {
                Field::Long(i as i64)
            };
            assert_eq!(row[0].1, want, "row {i}");
        }
    }

    #[test]
    fn an_empty_table_is_a_valid_file() {
        let columns = vec![column("path", false, Values::Text(Vec::new()))];
        assert!(read_back(write(&columns).unwrap()).is_empty());
    }
}
