//! `--model FILE.onnx`: a model's output replaces the built-in features, its vectors are
//! cached per model, and a model that cannot be used stops the run with a clear error.
//!
//! The models are a few hundred bytes, written here from tract-onnx's protobuf types: an
//! image input and a chain of standard ONNX operators (mean colour by global average
//! pooling, say). Nothing is downloaded.

use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};
use prost::Message;
use serde_json::Value;
use tract_onnx::pb::{self, tensor_shape_proto::Dimension, tensor_shape_proto::dimension};

use crate::common::Fixture;

/// `Some(n)`: a fixed axis; `None`: an open one (the batch, usually).
type Shape = Vec<Option<i64>>;

fn value_info(name: &str, shape: &Shape) -> pb::ValueInfoProto {
    let dim = |d: &Option<i64>| Dimension {
        value: Some(match d {
            Some(v) => dimension::Value::DimValue(*v),
            None => dimension::Value::DimParam("n".into()),
        }),
        ..Default::default()
    };
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: Some(pb::TensorShapeProto {
                    dim: shape.iter().map(dim).collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn node(op: &str, input: &str, output: &str) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        input: vec![input.into()],
        output: vec![output.into()],
        name: output.into(),
        ..Default::default()
    }
}

/// Writes a model: input "image" of `input` shape, the `nodes`, and the named outputs.
fn write_model(
    path: &Path,
    input: Shape,
    nodes: Vec<pb::NodeProto>,
    outputs: &[(&str, Shape)],
) -> PathBuf {
    let model = pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        graph: Some(pb::GraphProto {
            name: "tiny".into(),
            node: nodes,
            input: vec![value_info("image", &input)],
            output: outputs
                .iter()
                .map(|(name, shape)| value_info(name, shape))
                .collect(),
            ..Default::default()
        }),
        ..Default::default()
    };
    std::fs::write(path, model.encode_to_vec()).unwrap();
    path.to_path_buf()
}

/// Mean colour: [n, 3, 8, 8] → global average pool → flatten → "embedding" [n, 3].
fn mean_colour_model(path: &Path) -> PathBuf {
    write_model(
        path,
        vec![None, Some(3), Some(8), Some(8)],
        vec![
            node("GlobalAveragePool", "image", "pooled"),
            node("Flatten", "pooled", "embedding"),
        ],
        &[("embedding", vec![None, Some(3)])],
    )
}

/// Another model with the same output: the mean colour, squared (so its vectors differ).
fn squared_colour_model(path: &Path) -> PathBuf {
    let mut square = node("Mul", "pooled", "squared");
    square.input.push("pooled".into());
    write_model(
        path,
        vec![None, Some(3), Some(8), Some(8)],
        vec![
            node("GlobalAveragePool", "image", "pooled"),
            square,
            node("Flatten", "squared", "embedding"),
        ],
        &[("embedding", vec![None, Some(3)])],
    )
}

/// Three classes told apart by colour alone, each with a little seeded noise, in 12x12
/// pictures: red, green and blue grounds.
fn colour_dataset(fx: &Fixture) {
    colour_classes(fx, ["red", "green", "blue"]);
}

/// The colour dataset with its three classes named (red, green and blue grounds).
fn colour_classes(fx: &Fixture, names: [&str; 3]) {
    for (c, class) in names.iter().enumerate() {
        for j in 0..12u32 {
            let mut state = (c as u32 + 1) * 7919 + j * 104_729;
            let image = RgbImage::from_fn(12, 12, |_, _| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                let noise = (state % 40) as u8;
                let mut px = [noise; 3];
                px[c] = 180 + noise;
                Rgb(px)
            });
            let path = fx.data().join(format!("{class}/{j}.png"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            image.save(path).unwrap();
        }
    }
    fx.settle();
}

fn embed_log(run: &crate::common::Run) -> Value {
    run.run_log()["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "embed")
        .cloned()
        .unwrap()
}

fn model_arg(path: &Path) -> String {
    format!("--model={}", path.display())
}

#[test]
fn a_models_vectors_replace_the_builtin_features_and_are_cached_per_model() {
    let fx = Fixture::new();
    colour_dataset(&fx);
    let mean = mean_colour_model(&fx.dir.path().join("mean.onnx"));
    let squared = squared_colour_model(&fx.dir.path().join("squared.onnx"));

    let builtin = fx.report(&[]).report_json();
    assert!(
        builtin["embedding"]["features"]
            .as_str()
            .unwrap()
            .starts_with("builtin"),
        "{}",
        builtin["embedding"]
    );

    let first = fx.report(&[&model_arg(&mean)]);
    let report = first.report_json();
    let features = report["embedding"]["features"].as_str().unwrap();
    assert!(features.starts_with("onnx-"), "{features}");
    assert_eq!(report["embedding"]["feature_dims"], 3);
    // Mean colour separates the three classes perfectly.
    assert_eq!(report["embedding"]["vote_accuracy"], 1.0);
    let log = embed_log(&first);
    assert_eq!(log["status"], "stale");
    assert_eq!(log["embed"]["features_computed"], 36);
    let html = first.html();
    assert!(
        html.contains("the model mean.onnx"),
        "no model in the report"
    );
    assert!(html.contains("36 images run through it"), "no throughput");

    // Same model: nothing reruns, nothing is inferred.
    let again = fx.report(&[&model_arg(&mean)]);
    assert_eq!(embed_log(&again)["status"], "fresh");

    // Another model: its own vectors; then back to the first: its store was kept.
    let other = fx.report(&[&model_arg(&squared)]);
    let other_features = other.report_json()["embedding"]["features"].clone();
    assert_ne!(other_features.as_str().unwrap(), features);
    assert_eq!(embed_log(&other)["embed"]["features_computed"], 36);
    let back = fx.report(&[&model_arg(&mean)]);
    let log = embed_log(&back);
    assert_eq!(log["status"], "stale");
    assert_eq!(log["embed"]["features_computed"], 0, "{log}");
    assert_eq!(log["embed"]["features_reused"], 36, "{log}");
    assert_eq!(back.report_json()["embedding"], report["embedding"]);
    assert!(back.html().contains("no inference in this run"));

    // A relabel (a file moved to another class) runs no inference; a changed file runs the
    // model on that file alone.
    std::fs::rename(
        fx.data().join("red/0.png"),
        fx.data().join("green/moved.png"),
    )
    .unwrap();
    let relabelled = fx.report(&[&model_arg(&mean)]);
    let log = embed_log(&relabelled);
    assert_eq!(log["embed"]["features_computed"], 0, "{log}");
    assert_eq!(log["embed"]["pixel_part_reused"], true, "{log}");
    let issues = relabelled.report_json()["label_issues"].clone();
    assert_eq!(issues[0]["path"], "green/moved.png", "{issues}");
    assert_eq!(issues[0]["suggested"], "red", "{issues}");
    RgbImage::from_pixel(12, 12, Rgb([10, 10, 200]))
        .save(fx.data().join("blue/0.png"))
        .unwrap();
    let changed = fx.report(&[&model_arg(&mean)]);
    let log = embed_log(&changed);
    assert_eq!(log["embed"]["features_computed"], 1, "{log}");
    assert_eq!(log["embed"]["features_reused"], 35, "{log}");

    // The model file replaced at the same path: the stage reruns on the new content.
    squared_colour_model(&mean);
    let replaced = fx.report(&[&model_arg(&mean)]);
    let log = embed_log(&replaced);
    assert_eq!(log["status"], "stale", "{log}");
    assert_eq!(
        replaced.report_json()["embedding"]["features"],
        other_features
    );

    // Thumbnails smaller than the model's input: a warning says which setting to raise.
    std::fs::write(
        fx.dir.path().join("aldente.toml"),
        "[ingest]\nthumbnail_size = 4\n",
    )
    .unwrap();
    let small = fx.report(&[&model_arg(&mean)]);
    let warnings = small.run_log()["warnings"].to_string();
    assert!(
        warnings.contains("set ingest.thumbnail_size = 8"),
        "{warnings}"
    );

    // The same model from the settings file.
    let settings = fx.dir.path().join("aldente.toml");
    std::fs::write(
        &settings,
        format!("[embed]\nmodel = {:?}\n", squared.display().to_string()),
    )
    .unwrap();
    let from_file = fx.report(&[]);
    assert_eq!(
        from_file.report_json()["embedding"]["features"],
        other_features
    );
}

#[test]
fn channels_last_models_and_open_input_sizes_are_read_from_the_model() {
    let fx = Fixture::new();
    colour_dataset(&fx);
    // [n, h, w, 3] with the size left open: pooled over the two middle axes.
    let mut reduce = node("ReduceMean", "image", "embedding");
    reduce.attribute.push(pb::AttributeProto {
        name: "axes".into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: vec![1, 2],
        ..Default::default()
    });
    reduce.attribute.push(pb::AttributeProto {
        name: "keepdims".into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: 0,
        ..Default::default()
    });
    let model = write_model(
        &fx.dir.path().join("nhwc.onnx"),
        vec![None, None, None, Some(3)],
        vec![reduce],
        &[("embedding", vec![None, Some(3)])],
    );
    let open = fx.report_raw(&[&model_arg(&model)]);
    assert_eq!(open.output.status.code(), Some(2), "{}", open.stderr());
    assert!(
        open.stderr().contains("embed.model_input_size"),
        "{}",
        open.stderr()
    );
    std::fs::write(
        fx.dir.path().join("aldente.toml"),
        "[embed]\nmodel_input_size = 6\n",
    )
    .unwrap();
    let run = fx.report(&[&model_arg(&model)]);
    let report = run.report_json();
    assert_eq!(report["embedding"]["feature_dims"], 3);
    assert_eq!(report["embedding"]["vote_accuracy"], 1.0);
    assert!(run.html().contains("6 x 6 x 3 (channels last)"));
}

/// Runs with a model that must be refused: exit code 2, and the message names the file
/// and says what is wrong.
fn refused(fx: &Fixture, model: &Path, extra: &[&str], expect: &str) {
    let mut args = vec![model_arg(model)];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = fx.report_raw(&args);
    let stderr = run.stderr();
    assert_eq!(run.output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&model.display().to_string()), "{stderr}");
    assert!(stderr.contains(expect), "expected {expect:?} in {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn models_that_cannot_be_used_give_a_clear_error_naming_the_file() {
    let fx = Fixture::new();
    colour_dataset(&fx);
    let dir = fx.dir.path();

    let missing = dir.join("missing.onnx");
    refused(&fx, &missing, &[], "cannot be read");

    let garbage = dir.join("garbage.onnx");
    std::fs::write(&garbage, b"this is not a model at all\n").unwrap();
    refused(&fx, &garbage, &[], "not an ONNX model");

    let good = mean_colour_model(&dir.join("good.onnx"));
    let bytes = std::fs::read(&good).unwrap();
    let truncated = dir.join("truncated.onnx");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    refused(&fx, &truncated, &[], "not an ONNX model");

    // One channel where RGB is needed.
    let grey = write_model(
        &dir.join("grey.onnx"),
        vec![None, Some(1), Some(8), Some(8)],
        vec![
            node("GlobalAveragePool", "image", "pooled"),
            node("Flatten", "pooled", "embedding"),
        ],
        &[("embedding", vec![None, Some(1)])],
    );
    refused(&fx, &grey, &[], "3 colour channels");

    // A flat input.
    let flat = write_model(
        &dir.join("flat.onnx"),
        vec![None, Some(192)],
        vec![node("Identity", "image", "embedding")],
        &[("embedding", vec![None, Some(192)])],
    );
    refused(&fx, &flat, &[], "rank 4");

    // An output that is a picture, not a vector.
    let picture = write_model(
        &dir.join("picture.onnx"),
        vec![None, Some(3), Some(8), Some(8)],
        vec![node("Identity", "image", "same")],
        &[("same", vec![None, Some(3), Some(8), Some(8)])],
    );
    refused(&fx, &picture, &[], "one vector per image");

    // Two outputs and none chosen; a chosen one that does not exist; the right one.
    let two = write_model(
        &dir.join("two.onnx"),
        vec![None, Some(3), Some(8), Some(8)],
        vec![
            node("GlobalAveragePool", "image", "pooled"),
            node("Flatten", "pooled", "embedding"),
            node("Identity", "image", "copy"),
        ],
        &[
            ("embedding", vec![None, Some(3)]),
            ("copy", vec![None, Some(3), Some(8), Some(8)]),
        ],
    );
    refused(&fx, &two, &[], "embed.model_output");
    let settings = dir.join("aldente.toml");
    std::fs::write(&settings, "[embed]\nmodel_output = \"nope\"\n").unwrap();
    refused(&fx, &two, &[], "no output named \"nope\"");
    std::fs::write(&settings, "[embed]\nmodel_output = \"embedding\"\n").unwrap();
    let run = fx.report(&[&model_arg(&two)]);
    assert_eq!(run.report_json()["embedding"]["feature_dims"], 3);

    // A scaling that does not exist is a settings error naming the key.
    std::fs::write(&settings, "[embed]\nmodel_pixels = \"0..2\"\n").unwrap();
    let run = fx.report_raw(&[&model_arg(&good)]);
    assert_eq!(run.output.status.code(), Some(2), "{}", run.stderr());
    assert!(run.stderr().contains("model_pixels"), "{}", run.stderr());
}

#[cfg(not(feature = "onnxruntime"))]
#[test]
fn the_onnxruntime_runtime_says_how_to_get_it_when_it_is_not_built_in() {
    let fx = Fixture::new();
    colour_dataset(&fx);
    let model = mean_colour_model(&fx.dir.path().join("mean.onnx"));
    std::fs::write(
        fx.dir.path().join("aldente.toml"),
        "[embed]\nmodel_runtime = \"onnxruntime\"\n",
    )
    .unwrap();
    refused(&fx, &model, &[], "--features onnxruntime");
}

/// Needs ORT_DYLIB_PATH: the libonnxruntime to load (`pip install onnxruntime` has one in
/// onnxruntime/capi/). .ci/run sets it when it can install the package.
#[cfg(feature = "onnxruntime")]
#[test]
fn onnxruntime_gives_the_vectors_tract_gives() {
    let library = std::env::var("ORT_DYLIB_PATH")
        .expect("set ORT_DYLIB_PATH to libonnxruntime.so to test the onnxruntime feature");
    let fx = Fixture::new();
    colour_dataset(&fx);
    let model = mean_colour_model(&fx.dir.path().join("mean.onnx"));
    let tract = fx.report(&[&model_arg(&model)]).report_json();
    let settings = fx.dir.path().join("aldente.toml");
    std::fs::write(&settings, "[embed]\nmodel_runtime = \"onnxruntime\"\n").unwrap();
    let run = fx.report(&[&model_arg(&model)]);
    let ort = run.report_json();
    assert!(
        ort["embedding"]["features"]
            .as_str()
            .unwrap()
            .ends_with("onnxruntime")
    );
    assert_eq!(embed_log(&run)["embed"]["features_computed"], 36);
    // The two agree to about 1e-6; on this tiny 3-value model that can reorder neighbours
    // tied at a class boundary, so the findings are compared, not every share.
    for key in ["vote_accuracy", "feature_dims"] {
        assert_eq!(ort["embedding"][key], tract["embedding"][key], "{key}");
    }
    let findings = |report: &Value| -> Vec<(Value, Value)> {
        report["label_issues"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| (i["path"].clone(), i["suggested"].clone()))
            .collect()
    };
    assert_eq!(findings(&ort), findings(&tract));
    // A library that is not there: a clear error naming it.
    std::fs::write(
        &settings,
        "[embed]\nmodel_runtime = \"onnxruntime\"\nonnxruntime_library = \"/nowhere/libonnxruntime.so\"\n",
    )
    .unwrap();
    refused(
        &fx,
        &model,
        &[],
        "/nowhere/libonnxruntime.so does not exist",
    );
    drop(library);
}

#[test]
fn a_model_of_the_datasets_classes_can_be_the_classifier_of_the_label_issues() {
    let fx = Fixture::new();
    // Sorted, the class names are in the order of the model's outputs: red, green, blue.
    colour_classes(&fx, ["a-red", "b-green", "c-blue"]);
    std::fs::rename(
        fx.data().join("a-red/0.png"),
        fx.data().join("b-green/moved.png"),
    )
    .unwrap();
    fx.settle();
    let model = mean_colour_model(&fx.dir.path().join("scores.onnx"));
    let plain = fx.report(&[&model_arg(&model)]).report_json();
    std::fs::write(
        fx.dir.path().join("aldente.toml"),
        "[embed]\nmodel_is_classifier = true\n",
    )
    .unwrap();
    let run = fx.report(&[&model_arg(&model)]);
    let issues = run.report_json()["label_issues"].clone();
    let moved = &issues[0];
    assert_eq!(moved["path"], "b-green/moved.png", "{issues}");
    assert_eq!(moved["suggested"], "a-red");
    // The model witness is the softmax of the mean colour (0..1 pixels): red wins for a red
    // picture, by the exact margin the scores give, not by a trained model's confidence.
    let (given, suggested) = (
        moved["model_given"].as_f64().unwrap(),
        moved["model_suggested"].as_f64().unwrap(),
    );
    assert!(suggested > given, "{moved}");
    assert!(suggested < 0.6, "a softmax of 0..1 means is soft: {moved}");
    let linear = &plain["label_issues"][0];
    assert_ne!(linear["model_suggested"], moved["model_suggested"]);
    assert!(run.html().contains("used as a classifier"));

    // Four classes for three outputs: used as an embedding, with a note that says why.
    colour_classes(&fx, ["a-red", "b-green", "d-grey"]);
    fx.settle();
    let run = fx.report(&[&model_arg(&model)]);
    let warnings = run.run_log()["warnings"].to_string();
    assert!(warnings.contains("model_is_classifier"), "{warnings}");
    assert!(!run.html().contains("used as a classifier"));
}

#[test]
fn label_issues_are_ranked_against_the_train_split_and_shown_per_split() {
    let fx = Fixture::new();
    colour_dataset(&fx);
    // Split the colour dataset: images 0-8 train, 9-11 test; then mislabel one of each.
    for class in ["red", "green", "blue"] {
        for j in 0..12 {
            let split = if j < 9 { "train" } else { "test" };
            let to = fx.data().join(format!("{split}/{class}/{j}.png"));
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::rename(fx.data().join(format!("{class}/{j}.png")), to).unwrap();
        }
        std::fs::remove_dir(fx.data().join(class)).unwrap();
    }
    std::fs::rename(
        fx.data().join("test/red/9.png"),
        fx.data().join("test/blue/from-red.png"),
    )
    .unwrap();
    std::fs::rename(
        fx.data().join("train/green/0.png"),
        fx.data().join("train/red/from-green.png"),
    )
    .unwrap();
    fx.settle();
    let model = mean_colour_model(&fx.dir.path().join("mean.onnx"));
    let run = fx.report(&[&model_arg(&model)]);
    let report = run.report_json();
    let issues = report["label_issues"].as_array().unwrap();
    let find = |path: &str| {
        issues
            .iter()
            .find(|i| i["path"] == path)
            .unwrap_or_else(|| panic!("{path} not among {issues:?}"))
    };
    let test_issue = find("test/blue/from-red.png");
    assert_eq!(test_issue["split"], "test");
    assert_eq!(test_issue["suggested"], "red");
    assert!(test_issue["nearest_suggested"].as_f64().unwrap() > 0.99);
    let train_issue = find("train/red/from-green.png");
    assert_eq!(train_issue["split"], "train");
    assert_eq!(train_issue["suggested"], "green");
    // The test split is shown first, compared with train; then train itself.
    let html = run.html();
    let test_at = html.find("test split:").expect("a test group");
    let train_at = html.find("train split:").expect("a train group");
    assert!(test_at < train_at);
    assert!(html.contains("Compared with the images of the train split."));
    let summary = std::fs::read_to_string(run.out.join("summary.md")).unwrap();
    assert!(summary.contains("test split:"), "{summary}");
}
