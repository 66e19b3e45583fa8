//! Linear layers. Every projection in omnid goes through [`Linear`], so a weight variant
//! (quantized blocks, a CUDA kernel) is added here once instead of in every model file.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

/// `y = x·Wᵀ + b` with `W: [out, in]` as stored in Hugging Face checkpoints.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// Loads `{vb}.weight` `[out, in]` and, if `bias`, `{vb}.bias` `[out]`.
    pub fn new(in_dim: usize, out_dim: usize, bias: bool, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get((out_dim, in_dim), "weight")?;
        let bias = if bias { Some(vb.get(out_dim, "bias")?) } else { None };
        Ok(Self { weight, bias })
    }

    /// Wraps tensors that were built elsewhere (e.g. a tied embedding table).
    pub fn from_weights(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }

    /// The `[out, in]` weight.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// Output width.
    pub fn out_dim(&self) -> usize {
        self.weight.dims()[0]
    }
}

impl Module for Linear {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        // Flatten leading dims so one 2-D matmul runs against the transposed weight view
        // (candle reads the transpose through strides; nothing is copied).
        let dims = xs.dims().to_vec();
        let in_dim = dims[dims.len() - 1];
        let rows: usize = dims[..dims.len() - 1].iter().product();
        let ys = xs.reshape((rows, in_dim))?.matmul(&self.weight.t()?)?;
        let ys = match &self.bias {
            Some(b) => ys.broadcast_add(b)?,
            None => ys,
        };
        let mut out_dims = dims;
        let last = out_dims.len() - 1;
        out_dims[last] = self.weight.dims()[0];
        ys.reshape(out_dims)
    }
}
