//! Memory-mapped safetensors checkpoints, single file or sharded through
//! `model.safetensors.index.json`, exactly as Hugging Face publishes them.
//!
//! Every shard is validated when it is opened (header, offsets and file length, so a
//! truncated download is reported before any tensor is used), and every tensor lookup
//! that fails names the tensor, the shard and the problem. [`Checkpoint`] implements
//! candle's `SimpleBackend`, so model constructors take an ordinary `VarBuilder`.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use safetensors::tensor::{Dtype as StDtype, SafeTensors, TensorInfo};

/// Why a checkpoint could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {problem}")]
    File { path: PathBuf, problem: String },
    #[error("{dir}: no model.safetensors or model.safetensors.index.json in this directory")]
    NoWeights { dir: PathBuf },
}

fn file_err(path: &Path, problem: impl Into<String>) -> CheckpointError {
    CheckpointError::File { path: path.to_path_buf(), problem: problem.into() }
}

/// One memory-mapped `.safetensors` file with its parsed header.
struct Shard {
    path: PathBuf,
    mmap: memmap2::Mmap,
    /// Byte offset of the tensor data (8-byte length prefix + JSON header).
    data_start: usize,
    tensors: HashMap<String, TensorInfo>,
}

impl Shard {
    fn open(path: &Path) -> Result<Self, CheckpointError> {
        let file = File::open(path).map_err(|e| file_err(path, format!("cannot open: {e}")))?;
        // SAFETY: the file is opened read-only; like every safetensors loader we assume
        // nobody truncates the checkpoint while the daemon runs.
        let mmap = unsafe { memmap2::MmapOptions::new().map(&file) }
            .map_err(|e| file_err(path, format!("cannot memory-map: {e}")))?;
        let (header_len, metadata) = SafeTensors::read_metadata(&mmap).map_err(|e| {
            let why = match e {
                safetensors::SafeTensorError::MetadataIncompleteBuffer => {
                    "truncated or corrupt safetensors file: the header's tensor offsets do not match the file length"
                        .to_string()
                }
                safetensors::SafeTensorError::HeaderTooSmall | safetensors::SafeTensorError::InvalidHeaderLength => {
                    format!("not a safetensors file (or truncated header): {e}")
                }
                other => format!("corrupt safetensors header: {other}"),
            };
            file_err(path, why)
        })?;
        let tensors = metadata.tensors().into_iter().map(|(name, info)| (name, info.clone())).collect();
        Ok(Self { path: path.to_path_buf(), mmap, data_start: 8 + header_len, tensors })
    }

    fn load(&self, name: &str, info: &TensorInfo, device: &Device) -> candle_core::Result<Tensor> {
        let (start, end) = info.data_offsets;
        let bytes = &self.mmap[self.data_start + start..self.data_start + end];
        let dtype = match info.dtype {
            StDtype::F32 => DType::F32,
            StDtype::F16 => DType::F16,
            StDtype::BF16 => DType::BF16,
            StDtype::F64 => DType::F64,
            StDtype::I64 => DType::I64,
            StDtype::U32 => DType::U32,
            StDtype::U8 => DType::U8,
            other => candle_core::bail!(
                "{}: tensor {name} has dtype {other:?}, which omnid does not load (f32, f16, bf16 expected)",
                self.path.display()
            ),
        };
        Tensor::from_raw_buffer(bytes, dtype, &info.shape, device)
    }
}

/// A checkpoint's weights: one or more memory-mapped shards and a name → shard map.
pub struct Checkpoint {
    shards: Vec<Shard>,
    /// Tensor name → index into `shards`.
    index: HashMap<String, usize>,
}

impl Checkpoint {
    /// Opens the weights of a model directory: `model.safetensors.index.json` if present
    /// (every shard it names must exist and hold exactly the tensors it claims), otherwise
    /// `model.safetensors`.
    pub fn open_dir(dir: &Path) -> Result<Self, CheckpointError> {
        let index_path = dir.join("model.safetensors.index.json");
        if index_path.exists() {
            return Self::open_index(&index_path);
        }
        let single = dir.join("model.safetensors");
        if single.exists() {
            return Self::open_files(&[single]);
        }
        Err(CheckpointError::NoWeights { dir: dir.to_path_buf() })
    }

    fn open_index(index_path: &Path) -> Result<Self, CheckpointError> {
        let text =
            std::fs::read_to_string(index_path).map_err(|e| file_err(index_path, format!("cannot read: {e}")))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| file_err(index_path, format!("invalid JSON: {e}")))?;
        let map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| file_err(index_path, "has no \"weight_map\" object"))?;
        let dir = index_path.parent().unwrap_or(Path::new("."));
        let mut files: Vec<String> = Vec::new();
        let mut claimed: HashMap<String, String> = HashMap::new();
        for (name, file) in map {
            let file = file
                .as_str()
                .ok_or_else(|| file_err(index_path, format!("weight_map entry {name} is not a file name")))?;
            if !files.iter().any(|f| f == file) {
                files.push(file.to_string());
            }
            claimed.insert(name.clone(), file.to_string());
        }
        files.sort();
        let paths: Vec<PathBuf> = files.iter().map(|f| dir.join(f)).collect();
        for p in &paths {
            if !p.exists() {
                return Err(file_err(p, format!("missing shard named by {}", index_path.display())));
            }
        }
        let ckpt = Self::open_files(&paths)?;
        for (name, file) in &claimed {
            match ckpt.index.get(name) {
                Some(&i) if ckpt.shards[i].path.file_name().map(|f| f == file.as_str()) == Some(true) => {}
                Some(&i) => {
                    return Err(file_err(
                        index_path,
                        format!("says {name} is in {file}, but it is in {}", ckpt.shards[i].path.display()),
                    ))
                }
                None => {
                    return Err(file_err(
                        &dir.join(file),
                        format!("does not contain {name}, which the index places there"),
                    ))
                }
            }
        }
        Ok(ckpt)
    }

    /// Opens an explicit list of shard files.
    pub fn open_files(paths: &[PathBuf]) -> Result<Self, CheckpointError> {
        let mut shards = Vec::with_capacity(paths.len());
        let mut index = HashMap::new();
        for path in paths {
            let shard = Shard::open(path)?;
            for name in shard.tensors.keys() {
                if let Some(&prev) = index.get(name) {
                    let prev: &Shard = &shards[prev];
                    return Err(file_err(path, format!("tensor {name} is also in {}", prev.path.display())));
                }
                index.insert(name.clone(), shards.len());
            }
            shards.push(shard);
        }
        Ok(Self { shards, index })
    }

    /// Loads a tensor as stored (no dtype conversion).
    pub fn load_raw(&self, name: &str, device: &Device) -> candle_core::Result<Tensor> {
        let Some(&i) = self.index.get(name) else { candle_core::bail!("checkpoint has no tensor named {name}") };
        let shard = &self.shards[i];
        shard.load(name, &shard.tensors[name], device)
    }

    /// The shard file holding `name`, for error messages.
    pub fn file_of(&self, name: &str) -> Option<&Path> {
        self.index.get(name).map(|&i| self.shards[i].path.as_path())
    }

    /// Wraps the checkpoint in a `VarBuilder` converting every tensor to `dtype`.
    pub fn var_builder(self: &Arc<Self>, dtype: DType, device: &Device) -> candle_nn::VarBuilder<'static> {
        let backend: Box<dyn SimpleBackend> = Box::new(CheckpointBackend(self.clone()));
        candle_nn::VarBuilder::from_backend(backend, dtype, device.clone())
    }
}

/// `SimpleBackend` adapter (an `Arc` so the builder can outlive the borrow).
struct CheckpointBackend(Arc<Checkpoint>);

impl SimpleBackend for CheckpointBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _hints: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let t = self.get_unchecked(name, dtype, dev)?;
        if t.shape() != &s {
            let file = self.0.file_of(name).map(|p| p.display().to_string()).unwrap_or_default();
            candle_core::bail!(
                "{file}: tensor {name} has shape {:?}, the config implies {:?} (does config.json belong to these weights?)",
                t.dims(),
                s.dims()
            )
        }
        Ok(t)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        if !self.0.index.contains_key(name) {
            candle_core::bail!(
                "missing tensor {name}: the checkpoint does not contain it (wrong architecture in config.json, or an incomplete download?)"
            )
        }
        self.0.load_raw(name, dev)?.to_dtype(dtype)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.0.index.contains_key(name)
    }
}
