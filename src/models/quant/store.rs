//! The quantized model file: a GGUF file (`model.gguf`) holding every tensor of a checkpoint under
//! its Hugging Face name — the planned matrices in their block formats, everything else in f32 —
//! next to the checkpoint's `config.json`, tokenizer and processor files.
//!
//! GGUF because it is the format quantized weights already travel in (llama.cpp, candle and
//! mistral.rs read it), it carries its own metadata, and candle reads and writes its block
//! layouts. The metadata records the plan the file was made with and the `config.json` it was
//! made from, so a file is never run against another model's config.

use std::collections::HashMap;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;

use super::plan::QuantPlan;
use crate::models::weights::Recorded;

/// The file name inside a quantized model directory.
pub const FILE_NAME: &str = "model.gguf";
/// Version of the layout below; bumped when it changes incompatibly.
const FORMAT_VERSION: u32 = 1;
const KEY_VERSION: &str = "omnid.format_version";
const KEY_PLAN: &str = "omnid.quant";
const KEY_CONFIG: &str = "omnid.config_json";
/// JSON object: name → shape, for tensors of more than GGUF's 4 dimensions (stored with their
/// trailing dimensions merged), e.g. the vision tower's Conv3d patch embedding.
const KEY_SHAPES: &str = "omnid.shapes";
/// GGUF's limit on dimensions per tensor.
const MAX_DIMS: usize = 4;

/// An opened `model.gguf`.
pub struct QuantStore {
    path: PathBuf,
    mmap: memmap2::Mmap,
    content: gguf_file::Content,
    plan: QuantPlan,
    config: serde_json::Value,
    /// Shapes of the tensors stored flattened to 4 dimensions.
    shapes: HashMap<String, Vec<usize>>,
}

fn err(path: &Path, problem: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::msg(format!("{}: {problem}", path.display()))
}

impl QuantStore {
    /// Opens and checks a file written by [`write`].
    pub fn open(path: &Path) -> candle_core::Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| err(path, format!("cannot open: {e}")))?;
        // SAFETY: read-only mapping; like every model loader we assume the file is not truncated
        // while the daemon runs.
        let mmap = unsafe { memmap2::MmapOptions::new().map(&file) }
            .map_err(|e| err(path, format!("cannot memory-map: {e}")))?;
        let content = gguf_file::Content::read(&mut Cursor::new(&mmap[..]))
            .map_err(|e| err(path, format!("not a readable GGUF file: {e}")))?;
        let text = |key: &str| -> candle_core::Result<String> {
            match content.metadata.get(key) {
                Some(Value::String(s)) => Ok(s.clone()),
                _ => Err(err(path, format!("has no {key} entry: not a model written by `omnid quantize`"))),
            }
        };
        match content.metadata.get(KEY_VERSION) {
            Some(Value::U32(FORMAT_VERSION)) => {}
            Some(Value::U32(v)) => {
                return Err(err(
                    path,
                    format!(
                    "was written in omnid format {v}; this omnid reads {FORMAT_VERSION}; quantize the checkpoint again"
                ),
                ))
            }
            _ => return Err(err(path, format!("has no {KEY_VERSION} entry: not a model written by `omnid quantize`"))),
        }
        let plan = QuantPlan::parse(&text(KEY_PLAN)?).map_err(|e| err(path, format!("{KEY_PLAN}: {e}")))?;
        let config = serde_json::from_str(&text(KEY_CONFIG)?).map_err(|e| err(path, format!("{KEY_CONFIG}: {e}")))?;
        let shapes = serde_json::from_str(&text(KEY_SHAPES)?).map_err(|e| err(path, format!("{KEY_SHAPES}: {e}")))?;
        Ok(Self { path: path.to_path_buf(), mmap, content, plan, config, shapes })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The plan the file was quantized with.
    pub fn plan(&self) -> &QuantPlan {
        &self.plan
    }

    /// The `config.json` the file was made from.
    pub fn config(&self) -> &serde_json::Value {
        &self.config
    }

    pub fn contains(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    /// `name` if it is stored in a block format; `None` if absent or stored dense.
    pub fn quantized(&self, name: &str, device: &Device) -> candle_core::Result<Option<QTensor>> {
        match self.content.tensor_infos.get(name) {
            Some(info) if !is_dense(info.ggml_dtype) => self.read(name, device).map(Some),
            _ => Ok(None),
        }
    }

    fn read(&self, name: &str, device: &Device) -> candle_core::Result<QTensor> {
        self.content
            .tensor(&mut Cursor::new(&self.mmap[..]), name, device)
            .map_err(|e| err(&self.path, format!("tensor {name}: {e}")))
    }

    /// A `VarBuilder` over the file's tensors, dense ones as stored, quantized ones dequantized
    /// (for a layer that holds no quantized variant).
    pub fn var_builder(self: &Arc<Self>, dtype: DType, device: &Device) -> candle_nn::VarBuilder<'static> {
        let backend: Box<dyn SimpleBackend> = Box::new(StoreBackend(self.clone()));
        candle_nn::VarBuilder::from_backend(backend, dtype, device.clone())
    }
}

fn is_dense(t: GgmlDType) -> bool {
    matches!(t, GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16)
}

struct StoreBackend(Arc<QuantStore>);

impl SimpleBackend for StoreBackend {
    fn get(&self, s: Shape, name: &str, _: candle_nn::Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let t = self.get_unchecked(name, dtype, dev)?;
        if t.shape() != &s {
            return Err(err(
                &self.0.path,
                format!("tensor {name} has shape {:?}, the config expects {:?}", t.dims(), s.dims()),
            ));
        }
        Ok(t)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        if !self.0.contains(name) {
            return Err(err(&self.0.path, format!("has no tensor named {name}")));
        }
        let t = self.0.read(name, &Device::Cpu)?.dequantize(&Device::Cpu)?;
        let t = match self.0.shapes.get(name) {
            Some(shape) => t.reshape(shape.as_slice())?,
            None => t,
        };
        t.to_dtype(dtype)?.to_device(dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.0.contains(name)
    }
}

/// Writes the recorded tensors of a model load to `path` (through a temporary file, renamed at the
/// end, so an interrupted run never leaves a half-written model behind). A name recorded twice
/// (a table two models share) is written once. Returns the bytes written.
pub fn write(
    path: &Path,
    plan: &QuantPlan,
    config: &serde_json::Value,
    recorded: Vec<(String, Recorded)>,
) -> candle_core::Result<u64> {
    let mut shapes: serde_json::Map<String, serde_json::Value> = serde_json::Map::new();
    let mut owned: Vec<(String, Arc<QTensor>)> = Vec::with_capacity(recorded.len());
    for (name, t) in recorded {
        let q = match t {
            Recorded::Quantized(q) => q,
            // Dense tensors are kept in f32: they are small (norms, biases, routers, convolutions)
            // and the loader converts them to the activation dtype anyway.
            Recorded::Dense(t) => {
                let dims = t.dims().to_vec();
                let t = if dims.len() > MAX_DIMS {
                    shapes.insert(name.clone(), serde_json::json!(dims));
                    let merged: usize = dims[MAX_DIMS - 1..].iter().product();
                    t.reshape([&dims[..MAX_DIMS - 1], &[merged]].concat())?
                } else {
                    t
                };
                Arc::new(QTensor::quantize(&t.to_dtype(DType::F32)?, GgmlDType::F32)?)
            }
        };
        owned.push((name, q));
    }
    let tensors: Vec<(&str, &QTensor)> = owned.iter().map(|(n, q)| (n.as_str(), q.as_ref())).collect();
    let version = Value::U32(FORMAT_VERSION);
    let plan_v = Value::String(plan.spec().to_string());
    let config_v = Value::String(config.to_string());
    let shapes_v = Value::String(serde_json::Value::Object(shapes).to_string());
    let arch = Value::String("omnid".into());
    let metadata: Vec<(&str, &Value)> = vec![
        ("general.architecture", &arch),
        (KEY_VERSION, &version),
        (KEY_PLAN, &plan_v),
        (KEY_CONFIG, &config_v),
        (KEY_SHAPES, &shapes_v),
    ];
    let tmp = path.with_extension("gguf.partial");
    let file = std::fs::File::create(&tmp).map_err(|e| err(&tmp, format!("cannot create: {e}")))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    gguf_file::write(&mut out, &metadata, &tensors).map_err(|e| err(&tmp, format!("cannot write: {e}")))?;
    out.flush().map_err(|e| err(&tmp, format!("cannot write: {e}")))?;
    let file = out.into_inner().map_err(|e| err(&tmp, format!("cannot write: {e}")))?;
    file.sync_all().map_err(|e| err(&tmp, format!("cannot sync: {e}")))?;
    let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    std::fs::rename(&tmp, path).map_err(|e| err(path, format!("cannot rename {} into place: {e}", tmp.display())))?;
    Ok(bytes)
}
