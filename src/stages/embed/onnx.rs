//! A user's own model as the feature source: an ONNX file run in-process by tract (pure
//! Rust, nothing to install or download).
//!
//! What the model expects is read from the file: one image input of rank 4 with three
//! colour channels, either first (NCHW, PyTorch's export) or last (NHWC, TensorFlow's), and
//! its height and width (`embed.model_input_size` when the model leaves them open). How
//! pixels are scaled is a setting (`embed.model_pixels`: 0..1, ImageNet mean/std, or 0..255),
//! because a model file does not say. The output is the model's only one, or the one named
//! by `embed.model_output`; it must give one vector per image (`[n, d]`, or `[n, d, 1, 1]`).
//!
//! Everything is checked when the model is loaded, by running it once on a blank image, so
//! a bad file, a wrong input shape or a missing output stop the run at once with a
//! [`ModelError`] that names the file and what to do, instead of failing an hour later.
//!
//! Speed: the plan is optimised for a fixed batch of one (or the model's own fixed batch),
//! and every rayon worker runs its own state of the shared plan on its share of the
//! images. Measured on CIFAR-10 with a small CNN, this was tract's fastest arrangement
//! (faster than larger batches and than tract's own multithreaded matrix products).
//!
//! The vector of an image depends on its pixels and on the model alone, so vectors are
//! stored by pixel hash under an id that holds the model's content hash and the settings
//! that change its output ([`OnnxEmbedder::id`]): switching models keeps each one's store.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::imageops::{self, FilterType};
use indicatif::ProgressBar;
use rayon::prelude::*;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;
use xxhash_rust::xxh3::xxh3_64;

use super::features::{Block, Embedder, Encoding};
use crate::config::{EmbedConfig, ModelPixels, ModelRuntime};

type Plan = Arc<TypedRunnableModel>;

/// Images per run of an onnxruntime session (it threads inside a run, so batches are large).
#[cfg(feature = "onnxruntime")]
const ORT_BATCH: usize = 256;

/// What runs the model. tract is always there; onnxruntime when built with the feature.
enum Runner {
    /// Every worker spawns its own state of the shared plan.
    Tract,
    /// One session, threaded inside each run.
    #[cfg(feature = "onnxruntime")]
    Onnxruntime(std::sync::Mutex<ort::session::Session>),
}

/// A model that cannot be used, with what to do about it. `main` gives it exit code 2,
/// like a wrong setting.
#[derive(Debug, thiserror::Error)]
#[error("model {path}: {problem}")]
pub struct ModelError {
    pub path: PathBuf,
    pub problem: String,
}

/// Where the colour channels sit in the model's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `[n, 3, h, w]`
    ChannelsFirst,
    /// `[n, h, w, 3]`
    ChannelsLast,
}

/// A loaded, checked model.
pub struct OnnxEmbedder {
    pub path: PathBuf,
    /// xxh3 of the file's bytes.
    pub hash: u64,
    pub layout: Layout,
    pub height: usize,
    pub width: usize,
    /// Images per run of the plan.
    pub batch: usize,
    /// Values per vector.
    pub dims: usize,
    /// The output used, by name.
    pub output: String,
    pixels: ModelPixels,
    pub runtime: ModelRuntime,
    plan: Plan,
    runner: Runner,
}

impl std::fmt::Debug for OnnxEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxEmbedder")
            .field("path", &self.path)
            .field("hash", &format_args!("{:016x}", self.hash))
            .field("input", &(self.layout, self.height, self.width))
            .field("dims", &self.dims)
            .field("output", &self.output)
            .finish()
    }
}

/// The content hash of a model file, as [`OnnxEmbedder::hash`] has it.
pub fn file_hash(path: &Path) -> Result<u64, ModelError> {
    read(path).map(|(_, hash)| hash)
}

/// A model file's bytes and their hash.
fn read(path: &Path) -> Result<(Vec<u8>, u64), ModelError> {
    let bytes = std::fs::read(path).map_err(|err| ModelError {
        path: path.to_path_buf(),
        problem: format!("cannot be read ({err}); give the path of an .onnx file"),
    })?;
    let hash = xxh3_64(&bytes);
    Ok((bytes, hash))
}

impl OnnxEmbedder {
    /// Loads `config.model`, reads its input and output, optimises it and runs it once.
    pub fn load(path: &Path, config: &EmbedConfig) -> Result<OnnxEmbedder, ModelError> {
        let fail = |problem: String| ModelError {
            path: path.to_path_buf(),
            problem,
        };
        let (bytes, hash) = read(path)?;
        let mut model = tract_onnx::onnx()
            .model_for_read(&mut bytes.as_slice())
            .map_err(|err| {
                fail(format!(
                    "is not an ONNX model tract can read ({err:#}); export it again with \
                     torch.onnx.export or tf2onnx, or check that the file is complete"
                ))
            })?;

        // The output: the only one, or the one named in the settings.
        let outputs: Vec<String> = model
            .output_outlets()
            .map_err(|err| fail(format!("{err:#}")))?
            .iter()
            .map(|o| {
                model
                    .outlet_label(*o)
                    .map(str::to_string)
                    .unwrap_or_else(|| model.node(o.node).name.clone())
            })
            .collect();
        let output = match (&config.model_output, outputs.as_slice()) {
            (Some(name), _) if outputs.contains(name) => name.clone(),
            (Some(name), _) => {
                return Err(fail(format!(
                    "has no output named {name:?} (embed.model_output); its outputs are {}",
                    quoted(&outputs)
                )));
            }
            (None, [only]) => only.clone(),
            (None, []) => return Err(fail("has no output".into())),
            (None, several) => {
                return Err(fail(format!(
                    "has {} outputs ({}); set embed.model_output to the one that gives the \
                     embedding",
                    several.len(),
                    quoted(several)
                )));
            }
        };
        model = model
            .with_outputs_by_name([output.as_str()])
            .map_err(|err| fail(format!("{err:#}")))?;

        // The input: one image tensor of rank 4 with three channels.
        let inputs = model
            .input_outlets()
            .map_err(|err| fail(format!("{err:#}")))?
            .len();
        if inputs != 1 {
            return Err(fail(format!(
                "has {inputs} inputs; aldente feeds a model one input, the image batch"
            )));
        }
        let fact = model
            .input_fact(0)
            .map_err(|err| fail(format!("{err:#}")))?
            .clone();
        let shape = fact.shape.clone();
        let dims: Vec<Option<usize>> = if shape.is_open() {
            Vec::new()
        } else {
            shape
                .dims()
                .map(|d| {
                    d.concretize()
                        .and_then(|t| t.to_i64().ok().and_then(|v| usize::try_from(v).ok()))
                })
                .collect()
        };
        if dims.len() != 4 {
            return Err(fail(format!(
                "takes an input of shape {shape:?}; aldente needs an image batch of rank 4, \
                 [n, 3, height, width] or [n, height, width, 3]"
            )));
        }
        let layout = match (dims[1], dims[3]) {
            (Some(3), _) => Layout::ChannelsFirst,
            (_, Some(3)) => Layout::ChannelsLast,
            _ => {
                return Err(fail(format!(
                    "takes an input of shape {shape:?}, which has no axis of 3 colour channels \
                     after the batch or at the end; aldente feeds RGB images, [n, 3, height, \
                     width] or [n, height, width, 3]"
                )));
            }
        };
        let (h_axis, w_axis) = match layout {
            Layout::ChannelsFirst => (2, 3),
            Layout::ChannelsLast => (1, 2),
        };
        let side = |axis: usize| -> Result<usize, ModelError> {
            match (dims[axis], config.model_input_size) {
                (Some(n), _) if n > 0 => Ok(n),
                (_, Some(n)) => Ok(n as usize),
                _ => Err(fail(format!(
                    "leaves its input size open ({shape:?}); set embed.model_input_size to the \
                     side it was trained on (224 for most ImageNet models)"
                ))),
            }
        };
        let (height, width) = (side(h_axis)?, side(w_axis)?);
        let batch = dims[0].filter(|&n| n > 0).unwrap_or(1);
        let mut concrete = vec![batch, 0, 0, 0];
        match layout {
            Layout::ChannelsFirst => concrete[1..].copy_from_slice(&[3, height, width]),
            Layout::ChannelsLast => concrete[1..].copy_from_slice(&[height, width, 3]),
        }
        model
            .set_input_fact(0, f32::fact(&concrete).into())
            .map_err(|err| fail(format!("{err:#}")))?;
        let plan = model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(|err| {
                fail(format!(
                    "cannot be prepared for a {} input ({err:#}); check embed.model_input_size \
                     and that the model takes float32 images",
                    shape_text(&concrete)
                ))
            })?;

        // One blank batch: the output must be one vector per image.
        let blank = Tensor::zero::<f32>(&concrete).map_err(|err| fail(format!("{err:#}")))?;
        let out = plan.run(tvec!(blank.into())).map_err(|err| {
            fail(format!(
                "failed on a blank {} image batch ({err:#})",
                shape_text(&concrete)
            ))
        })?;
        let out_shape = out[0].shape().to_vec();
        let vector_dims = match out_shape.as_slice() {
            [n, d] if *n == batch => *d,
            [n, d, rest @ ..] if *n == batch && rest.iter().all(|&r| r == 1) => *d,
            _ => {
                return Err(fail(format!(
                    "output {output:?} has shape {} for a batch of {batch}; aldente needs one \
                     vector per image, [n, d]; choose another output with embed.model_output",
                    shape_text(&out_shape)
                )));
            }
        };
        if vector_dims == 0 {
            return Err(fail(format!("output {output:?} is empty")));
        }
        if out[0].datum_type() != f32::datum_type() {
            return Err(fail(format!(
                "output {output:?} is {:?}, not float32",
                out[0].datum_type()
            )));
        }
        let runner = match config.model_runtime {
            ModelRuntime::Tract => Runner::Tract,
            ModelRuntime::Onnxruntime => onnxruntime_session(path, config)?,
        };
        Ok(OnnxEmbedder {
            path: path.to_path_buf(),
            hash,
            layout,
            height,
            width,
            batch,
            dims: vector_dims,
            output,
            pixels: config.model_pixels,
            runtime: config.model_runtime,
            plan,
            runner,
        })
    }

    /// The input values of a batch of RGB images (padded with blanks to `batch` images),
    /// and their shape.
    fn input(&self, images: &[(&[u8], u32, u32)], batch: usize) -> ([usize; 4], Vec<f32>) {
        let (h, w) = (self.height, self.width);
        let plane = h * w;
        let mut values = vec![0f32; batch * plane * 3];
        let (mean, spread) = self.pixels.mean_and_spread();
        for (i, &(rgb, iw, ih)) in images.iter().enumerate() {
            let fitted = fit(rgb, iw, ih, w as u32, h as u32);
            let dst = &mut values[i * plane * 3..(i + 1) * plane * 3];
            for (p, px) in fitted.chunks_exact(3).enumerate() {
                for c in 0..3 {
                    let v = (f32::from(px[c]) * self.pixels.factor() - mean[c]) / spread[c];
                    match self.layout {
                        Layout::ChannelsFirst => dst[c * plane + p] = v,
                        Layout::ChannelsLast => dst[p * 3 + c] = v,
                    }
                }
            }
        }
        let shape = match self.layout {
            Layout::ChannelsFirst => [batch, 3, h, w],
            Layout::ChannelsLast => [batch, h, w, 3],
        };
        (shape, values)
    }

    fn tensor(&self, images: &[(&[u8], u32, u32)]) -> Tensor {
        let (shape, values) = self.input(images, self.batch);
        Tensor::from_shape(&shape, &values).expect("values has the batch's size")
    }

    /// tract: every worker runs its own state of the plan on batches of `self.batch`.
    fn embed_tract(&self, images: &[(&[u8], u32, u32)], out: &mut [u8], bar: &ProgressBar) {
        let row = self.dims * 4;
        images
            .par_chunks(self.batch)
            .zip(out.par_chunks_mut(row * self.batch))
            .for_each_init(
                || self.plan.spawn().ok(),
                |state, (batch, dst)| {
                    dst.fill(0);
                    bar.inc(batch.len() as u64);
                    let Some(state) = state else { return };
                    let Ok(result) = state.run(tvec!(self.tensor(batch).into())) else {
                        return;
                    };
                    let Ok(view) = result[0].to_plain_array_view::<f32>() else {
                        return;
                    };
                    for (o, v) in dst.chunks_exact_mut(4).zip(view.iter()) {
                        o.copy_from_slice(&v.to_le_bytes());
                    }
                },
            );
    }

    /// onnxruntime: one session, batches in turn, threads inside each run.
    #[cfg(feature = "onnxruntime")]
    fn embed_onnxruntime(
        &self,
        session: &std::sync::Mutex<ort::session::Session>,
        images: &[(&[u8], u32, u32)],
        out: &mut [u8],
        bar: &ProgressBar,
    ) {
        let row = self.dims * 4;
        // A model with a fixed batch size is fed that size; an open one ORT_BATCH at a time.
        let batch = if self.batch > 1 {
            self.batch
        } else {
            ORT_BATCH
        };
        let Ok(mut session) = session.lock() else {
            return;
        };
        for (chunk, dst) in images.chunks(batch).zip(out.chunks_mut(row * batch)) {
            dst.fill(0);
            bar.inc(chunk.len() as u64);
            let fed = if self.batch > 1 { batch } else { chunk.len() };
            let (shape, values) = self.input(chunk, fed);
            let Ok(tensor) = ort::value::TensorRef::from_array_view((shape, values.as_slice()))
            else {
                continue;
            };
            let Ok(result) = session.run(ort::inputs![tensor]) else {
                continue;
            };
            let Some(value) = result.get(self.output.as_str()) else {
                continue;
            };
            let Ok(array) = value.try_extract_array::<f32>() else {
                continue;
            };
            for (o, v) in dst.chunks_exact_mut(4).zip(array.iter()) {
                o.copy_from_slice(&v.to_le_bytes());
            }
        }
    }
}

/// An onnxruntime session on the model, from the library in the settings or ORT_DYLIB_PATH.
#[cfg(feature = "onnxruntime")]
fn onnxruntime_session(path: &Path, config: &EmbedConfig) -> Result<Runner, ModelError> {
    let fail = |problem: String| ModelError {
        path: path.to_path_buf(),
        problem,
    };
    let library = config
        .onnxruntime_library
        .clone()
        .or_else(|| std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from))
        .ok_or_else(|| {
            fail(
                "embed.model_runtime = \"onnxruntime\" needs the onnxruntime library: set \
                 embed.onnxruntime_library or ORT_DYLIB_PATH to libonnxruntime.so (pip install \
                 onnxruntime puts it in onnxruntime/capi/)"
                    .into(),
            )
        })?;
    if !library.is_file() {
        return Err(fail(format!(
            "the onnxruntime library {} does not exist (embed.onnxruntime_library or \
             ORT_DYLIB_PATH)",
            library.display()
        )));
    }
    let unloadable = |err: String| {
        fail(format!(
            "onnxruntime library {} could not be loaded ({err})",
            library.display()
        ))
    };
    let environment = ort::init_from(&library)
        .map_err(|err| unloadable(err.to_string()))?
        .build()
        .map_err(|err| unloadable(err.to_string()))?;
    let threads = rayon::current_num_threads();
    let refused = |err: String| fail(format!("onnxruntime cannot run it ({err})"));
    let session = ort::session::Session::builder(&environment)
        .map_err(|err| refused(err.to_string()))?
        .with_intra_threads(threads)
        .map_err(|err| refused(err.to_string()))?
        .with_inter_threads(1)
        .map_err(|err| refused(err.to_string()))?
        .commit_from_file(path)
        .map_err(|err| refused(err.to_string()))?;
    Ok(Runner::Onnxruntime(std::sync::Mutex::new(session)))
}

#[cfg(not(feature = "onnxruntime"))]
fn onnxruntime_session(path: &Path, _config: &EmbedConfig) -> Result<Runner, ModelError> {
    Err(ModelError {
        path: path.to_path_buf(),
        problem: "embed.model_runtime = \"onnxruntime\", but this aldente was built without \
                  it: build with `cargo build --release --features onnxruntime`, or use the \
                  built-in runtime, model_runtime = \"tract\""
            .into(),
    })
}

/// The image resized to `w x h` (aspect ignored, like the built-in features), as RGB bytes.
fn fit(rgb: &[u8], iw: u32, ih: u32, w: u32, h: u32) -> Vec<u8> {
    let expected = iw as usize * ih as usize * 3;
    let Some(image) = (rgb.len() == expected && expected > 0)
        .then(|| image::RgbImage::from_raw(iw, ih, rgb.to_vec()))
        .flatten()
    else {
        return vec![0; w as usize * h as usize * 3];
    };
    if (iw, ih) == (w, h) {
        return image.into_raw();
    }
    imageops::resize(&image, w, h, FilterType::Triangle).into_raw()
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn shape_text(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    format!("[{}]", dims.join(", "))
}

impl ModelPixels {
    fn factor(self) -> f32 {
        match self {
            ModelPixels::Raw => 1.0,
            ModelPixels::Unit | ModelPixels::Imagenet => 1.0 / 255.0,
        }
    }

    fn mean_and_spread(self) -> ([f32; 3], [f32; 3]) {
        match self {
            ModelPixels::Imagenet => ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
            ModelPixels::Unit | ModelPixels::Raw => ([0.0; 3], [1.0; 3]),
        }
    }
}

impl Embedder for OnnxEmbedder {
    /// The model's content hash, the output, how pixels are fed and what runs it (the two
    /// runtimes agree to about 1e-6, not bit for bit): what changes a vector.
    fn id(&self) -> String {
        format!(
            "onnx-{:016x}-{}-{}x{}-{}-{}",
            self.hash,
            self.output,
            self.width,
            self.height,
            self.pixels.name(),
            self.runtime.name()
        )
    }

    fn dims(&self) -> usize {
        self.dims
    }

    fn blocks(&self) -> Vec<Block> {
        vec![Block::new(self.dims, 1.0)]
    }

    fn encoding(&self) -> Encoding {
        Encoding::Float
    }

    fn embed(&self, rgb: &[u8], width: u32, height: u32, out: &mut [u8]) {
        self.embed_many(&[(rgb, width, height)], out, &ProgressBar::hidden());
    }

    /// A batch the model fails on (it passed a blank one at load) gets zero vectors.
    fn embed_many(&self, images: &[(&[u8], u32, u32)], out: &mut [u8], bar: &ProgressBar) {
        match &self.runner {
            Runner::Tract => self.embed_tract(images, out, bar),
            #[cfg(feature = "onnxruntime")]
            Runner::Onnxruntime(session) => self.embed_onnxruntime(session, images, out, bar),
        }
    }
}
