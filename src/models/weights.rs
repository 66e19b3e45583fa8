//! Where model constructors get their weights: a `VarBuilder` for dense tensors, plus the
//! quantization plan and any tensors stored already quantized.
//!
//! Every constructor in `models/` takes a [`Weights`] instead of a bare `VarBuilder`, so that the
//! layers holding matrices ([`Linear`](super::layers::linear::Linear), the MoE experts, the
//! embedding tables) can quantize each matrix as it is read. That keeps the peak memory of
//! quantize-on-load at the quantized model plus one dense tensor — loading the whole dense model
//! first would need 120 GB for the 30B-A3B checkpoint in f32.
//!
//! When recording (`omnid quantize`), every tensor handed out is also kept, by its checkpoint
//! name, so the quantized model can be written to one file and loaded without re-quantizing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use candle_core::quantized::QTensor;
use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::VarBuilder;

use super::layers::linear::MatrixWeight;
use super::quant::plan::QuantPlan;
use super::quant::store::QuantStore;

/// A tensor as it was handed to the model, for saving.
#[derive(Debug, Clone)]
pub enum Recorded {
    Dense(Tensor),
    Quantized(Arc<QTensor>),
}

/// How the weights of one model load are held; shared by every [`Weights`] of that load.
#[derive(Default)]
pub struct WeightOptions {
    /// Matrices to quantize as they are read; `None` keeps the checkpoint's precision.
    pub plan: Option<QuantPlan>,
    /// Tensors stored already quantized (an omnid quantized model file), by checkpoint name.
    pub stored: Option<Arc<QuantStore>>,
    /// Keeps every tensor handed out (for writing the quantized model).
    pub record: Option<Mutex<Recorder>>,
}

/// The tensors handed to a model, by checkpoint name, in first-use order. A name handed out again
/// keeps its place and takes the later value: a layer may read a tensor raw and then hand over
/// its reoriented or quantized form.
#[derive(Default)]
pub struct Recorder {
    entries: Vec<(String, Recorded)>,
    index: HashMap<String, usize>,
}

impl Recorder {
    fn insert(&mut self, name: String, t: Recorded) {
        match self.index.get(&name) {
            Some(&i) => self.entries[i].1 = t,
            None => {
                self.index.insert(name.clone(), self.entries.len());
                self.entries.push((name, t));
            }
        }
    }
}

/// A position in the checkpoint's name tree (like `VarBuilder`), with the load's options.
#[derive(Clone)]
pub struct Weights<'a> {
    vb: VarBuilder<'a>,
    options: Arc<WeightOptions>,
}

impl<'a> Weights<'a> {
    /// Dense weights, as stored.
    pub fn dense(vb: VarBuilder<'a>) -> Self {
        Self { vb, options: Arc::new(WeightOptions::default()) }
    }

    /// Weights held as `options` says.
    pub fn new(vb: VarBuilder<'a>, options: Arc<WeightOptions>) -> Self {
        Self { vb, options }
    }

    /// The tensors handed out so far, when recording (empty otherwise).
    pub fn take_recorded(&self) -> Vec<(String, Recorded)> {
        let Some(r) = &self.options.record else { return Vec::new() };
        std::mem::take(&mut *r.lock().unwrap_or_else(|e| e.into_inner())).entries
    }

    /// The quantization plan of this load, if any.
    pub fn plan(&self) -> Option<&QuantPlan> {
        self.options.plan.as_ref()
    }

    /// Descends into the sub-module `s`.
    pub fn pp<S: ToString>(&self, s: S) -> Self {
        Self { vb: self.vb.pp(s), options: self.options.clone() }
    }

    /// The checkpoint path of this position (`thinker.model.layers.3`), for error messages.
    pub fn prefix(&self) -> String {
        self.vb.prefix()
    }

    /// The activation dtype (the one dense tensors are converted to).
    pub fn dtype(&self) -> DType {
        self.vb.dtype()
    }

    pub fn device(&self) -> &Device {
        self.vb.device()
    }

    /// Whether the checkpoint has `name` under this prefix (dense or quantized).
    pub fn contains_tensor(&self, name: &str) -> bool {
        self.vb.contains_tensor(name) || self.options.stored.as_ref().is_some_and(|s| s.contains(&self.path(name)))
    }

    /// A dense tensor of the given shape.
    pub fn get<S: Into<Shape>>(&self, shape: S, name: &str) -> Result<Tensor> {
        let t = self.vb.get(shape, name)?;
        self.record(name, Recorded::Dense(t.clone()));
        Ok(t)
    }

    /// A dense tensor of whatever shape is stored.
    pub fn get_unchecked(&self, name: &str) -> Result<Tensor> {
        let t = self.vb.get_unchecked(name)?;
        self.record(name, Recorded::Dense(t.clone()));
        Ok(t)
    }

    /// The `[out, in]` matrix `name`: read quantized if the file stores it so, quantized now if
    /// the plan says so, dense otherwise.
    pub fn matrix(&self, out_dim: usize, in_dim: usize, name: &str) -> Result<MatrixWeight> {
        if let Some(q) = self.stored_quantized(name)? {
            if q.shape().dims() != [out_dim, in_dim] {
                candle_core::bail!(
                    "{}: stored with shape {:?}, the config expects [{out_dim}, {in_dim}]",
                    self.path(name),
                    q.shape().dims()
                )
            }
            return Ok(MatrixWeight::Quantized(q));
        }
        match self.plan().and_then(|p| p.format_for(&self.path(name), in_dim)) {
            Some(format) => {
                let dense = self.vb.get((out_dim, in_dim), name)?;
                self.quantize_now(name, &dense, format)
            }
            None => Ok(MatrixWeight::Dense(self.get((out_dim, in_dim), name)?)),
        }
    }

    /// Quantizes a matrix (or a stack of them) that was read with [`Self::get_unchecked`] and
    /// reshaped by the caller, if the plan has a format for `name`'s class; `t` as is otherwise.
    /// Rows are the last dimension.
    pub fn planned(&self, name: &str, t: Tensor) -> Result<MatrixWeight> {
        let row_len = t.dims().last().copied().unwrap_or(0);
        match self.plan().and_then(|p| p.format_for(&self.path(name), row_len)) {
            Some(format) => self.quantize_now(name, &t, format),
            None => {
                self.record(name, Recorded::Dense(t.clone()));
                Ok(MatrixWeight::Dense(t))
            }
        }
    }

    /// `name` as stored quantized in the model file, if it is.
    pub fn stored_quantized(&self, name: &str) -> Result<Option<Arc<QTensor>>> {
        let Some(store) = &self.options.stored else { return Ok(None) };
        let full = self.path(name);
        let Some(q) = store.quantized(&full, self.device())? else { return Ok(None) };
        let q = Arc::new(q);
        self.record(name, Recorded::Quantized(q.clone()));
        Ok(Some(q))
    }

    fn quantize_now(
        &self,
        name: &str,
        dense: &Tensor,
        format: candle_core::quantized::GgmlDType,
    ) -> Result<MatrixWeight> {
        let q = super::layers::linear::quantize(dense, format)
            .map_err(|e| candle_core::Error::msg(format!("{}: cannot quantize: {e}", self.path(name))))?;
        let q = Arc::new(q);
        self.record(name, Recorded::Quantized(q.clone()));
        Ok(MatrixWeight::Quantized(q))
    }

    fn path(&self, name: &str) -> String {
        let prefix = self.vb.prefix();
        if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}.{name}")
        }
    }

    fn record(&self, name: &str, t: Recorded) {
        if let Some(r) = &self.options.record {
            r.lock().unwrap_or_else(|e| e.into_inner()).insert(self.path(name), t);
        }
    }
}
