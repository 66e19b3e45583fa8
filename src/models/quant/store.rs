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

/// One memory-mapped GGUF file.
pub(crate) struct GgufFile {
    pub(crate) path: PathBuf,
    mmap: memmap2::Mmap,
    pub(crate) content: gguf_file::Content,
}

impl GgufFile {
    pub(crate) fn open(path: &Path) -> candle_core::Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| err(path, format!("cannot open: {e}")))?;
        // SAFETY: read-only mapping; like every model loader we assume the file is not truncated
        // while the daemon runs.
        let mmap = unsafe { memmap2::MmapOptions::new().map(&file) }
            .map_err(|e| err(path, format!("cannot memory-map: {e}")))?;
        let content = gguf_file::Content::read(&mut Cursor::new(&mmap[..]))
            .map_err(|e| err(path, format!("not a readable GGUF file: {e}")))?;
        Ok(Self { path: path.to_path_buf(), mmap, content })
    }

    fn read(&self, name: &str, device: &Device) -> candle_core::Result<QTensor> {
        self.content
            .tensor(&mut Cursor::new(&self.mmap[..]), name, device)
            .map_err(|e| err(&self.path, format!("tensor {name}: {e}")))
    }

    fn format(&self, name: &str) -> Option<GgmlDType> {
        self.content.tensor_infos.get(name).map(|i| i.ggml_dtype)
    }
}

/// Where a checkpoint tensor (by its Hugging Face name) lives in the GGUF files.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// One tensor of file `file`, as is.
    One { file: usize, name: String },
    /// `experts.gate_up_proj` `[E, 2I, H]` from llama.cpp's separate `ffn_gate_exps` and
    /// `ffn_up_exps` (`[E, I, H]` each): per expert, the gate rows then the up rows.
    GateUp { file: usize, gate: String, up: String },
    /// The Conv3d patch embedding `[C_out, C_in, 2, p, p]` from llama.cpp's two Conv2d slices.
    TemporalSlices { file: usize, first: String, second: String },
}

/// The tensors of a quantized model: omnid's `model.gguf`, or llama.cpp's text GGUF and mmproj.
pub struct QuantStore {
    files: Vec<GgufFile>,
    names: HashMap<String, Source>,
    /// The plan `omnid quantize` used (`None` for llama.cpp's files, quantized as they come).
    plan: Option<QuantPlan>,
    /// The config.json the file was made from (`None` for llama.cpp's files).
    config: Option<serde_json::Value>,
    /// Shapes of the tensors stored flattened to 4 dimensions.
    shapes: HashMap<String, Vec<usize>>,
    /// What to say when a tensor is missing (e.g. that llama.cpp keeps the vision tower apart).
    missing_hint: String,
}

fn err(path: &Path, problem: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::msg(format!("{}: {problem}", path.display()))
}

impl QuantStore {
    /// Opens and checks a file written by [`write`].
    pub fn open(path: &Path) -> candle_core::Result<Self> {
        let file = GgufFile::open(path)?;
        let content = &file.content;
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
        let names =
            content.tensor_infos.keys().map(|n| (n.clone(), Source::One { file: 0, name: n.clone() })).collect();
        let missing_hint = format!("{} has no such tensor", path.display());
        Ok(Self { files: vec![file], names, plan: Some(plan), config: Some(config), shapes, missing_hint })
    }

    /// A store over already opened files with a name map (llama.cpp's layout, see `llama_cpp`).
    pub(crate) fn from_parts(files: Vec<GgufFile>, names: HashMap<String, Source>, missing_hint: String) -> Self {
        Self { files, names, plan: None, config: None, shapes: HashMap::new(), missing_hint }
    }

    /// The plan the file was quantized with (`None`: llama.cpp's files).
    pub fn plan(&self) -> Option<&QuantPlan> {
        self.plan.as_ref()
    }

    /// The `config.json` the file was made from (`None`: llama.cpp's files).
    pub fn config(&self) -> Option<&serde_json::Value> {
        self.config.as_ref()
    }

    /// The files, for messages.
    pub fn describe(&self) -> String {
        self.files.iter().map(|f| f.path.display().to_string()).collect::<Vec<_>>().join(" + ")
    }

    pub fn contains(&self, name: &str) -> bool {
        self.names.contains_key(name)
    }

    /// `name` if it is stored in a block format; `None` if absent or stored dense.
    pub fn quantized(&self, name: &str, device: &Device) -> candle_core::Result<Option<QTensor>> {
        let quantized = |file: usize, n: &str| self.files[file].format(n).is_some_and(|f| !is_dense(f));
        match self.names.get(name) {
            Some(Source::One { file, name: n }) if quantized(*file, n) => self.files[*file].read(n, device).map(Some),
            Some(Source::GateUp { file, gate, up }) if quantized(*file, gate) && quantized(*file, up) => {
                let f = &self.files[*file];
                let (g, u) = (f.read(gate, device)?, f.read(up, device)?);
                if g.dtype() != u.dtype() || g.shape() != u.shape() {
                    return Err(err(&f.path, format!("{gate} and {up} differ in format or shape")));
                }
                let (e, i, h) = g.shape().dims3()?;
                if e == 0 {
                    return Err(err(&f.path, format!("{gate} holds no experts")));
                }
                let (gb, ub) = (g.data()?, u.data()?);
                let per = gb.len() / e;
                let mut bytes = Vec::with_capacity(2 * gb.len());
                for x in 0..e {
                    bytes.extend_from_slice(&gb[x * per..(x + 1) * per]);
                    bytes.extend_from_slice(&ub[x * per..(x + 1) * per]);
                }
                let storage =
                    candle_core::quantized::QStorage::from_data(std::borrow::Cow::Owned(bytes), device, g.dtype())?;
                QTensor::new(storage, (e, 2 * i, h)).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// `name` as a dense f32 tensor on the CPU (quantized tensors dequantized).
    fn dense(&self, name: &str) -> candle_core::Result<Tensor> {
        let cpu = &Device::Cpu;
        let read = |file: usize, n: &str| self.files[file].read(n, cpu)?.dequantize(cpu);
        let t = match self.names.get(name) {
            Some(Source::One { file, name: n }) => read(*file, n)?,
            Some(Source::GateUp { file, gate, up }) => Tensor::cat(&[read(*file, gate)?, read(*file, up)?], 1)?,
            Some(Source::TemporalSlices { file, first, second }) => {
                Tensor::stack(&[read(*file, first)?, read(*file, second)?], 2)?
            }
            None => return Err(candle_core::Error::msg(format!("{}: {name}", self.missing_hint))),
        };
        match self.shapes.get(name) {
            Some(shape) => t.reshape(shape.as_slice()),
            None => Ok(t),
        }
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
            return Err(candle_core::Error::msg(format!(
                "{}: tensor {name} has shape {:?}, the config expects {:?}",
                self.0.describe(),
                t.dims(),
                s.dims()
            )));
        }
        Ok(t)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.0.dense(name)?.to_dtype(dtype)?.to_device(dev)
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
