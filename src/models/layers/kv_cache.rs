//! Key/value cache for causal decoders. Appending writes into spare capacity, so the past
//! is never copied per token; when the capacity runs out it doubles (amortised O(1)).

use candle_core::{Result, Tensor};

/// Cache of keys and values shaped `[B, kv_heads, S, head_dim]`. Not `Clone`: appends write
/// into the buffers in place, so a copy would share them.
#[derive(Debug, Default)]
pub struct KvCache {
    k: Option<Tensor>,
    v: Option<Tensor>,
    len: usize,
    /// Positions to allocate for at the first append (prompt + budget), so a generation
    /// that stays within it never reallocates.
    reserve: usize,
}

impl KvCache {
    /// An empty cache that will allocate room for `positions` at once.
    pub fn with_capacity(positions: usize) -> Self {
        Self { reserve: positions, ..Default::default() }
    }

    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `k, v: [B, H, s, D]` and returns views of the whole cache `[B, H, len, D]`.
    pub fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let add = k.dim(2)?;
        let needed = self.len + add;
        let capacity = self.k.as_ref().map(|t| t.dim(2)).transpose()?.unwrap_or(0);
        if needed > capacity {
            let new_cap = needed.max(capacity * 2).max(self.reserve).max(64);
            let grow = |old: &Option<Tensor>, like: &Tensor| -> Result<Tensor> {
                let (b, h, _, d) = like.dims4()?;
                let fresh = Tensor::zeros((b, h, new_cap, d), like.dtype(), like.device())?;
                if let Some(old) = old {
                    fresh.slice_set(&old.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
                }
                Ok(fresh)
            };
            self.k = Some(grow(&self.k, k)?);
            self.v = Some(grow(&self.v, v)?);
        }
        let (kc, vc) = (self.k.as_ref().expect("allocated above"), self.v.as_ref().expect("allocated above"));
        kc.slice_set(&k.contiguous()?, 2, self.len)?;
        vc.slice_set(&v.contiguous()?, 2, self.len)?;
        self.len = needed;
        Ok((kc.narrow(2, 0, self.len)?, vc.narrow(2, 0, self.len)?))
    }
}

impl KvCache {
    /// Forgets every position from `len` on (a failed step is rolled back this way; the next
    /// append overwrites them).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Keeps only the last `n` positions (a sliding-window attention never looks further back),
    /// so a long stream's cache stays bounded. Positions are then counted from the first kept.
    pub fn keep_last(&mut self, n: usize) -> Result<()> {
        if self.len <= n {
            return Ok(());
        }
        let start = self.len - n;
        for t in [&self.k, &self.v].into_iter().flatten() {
            // A fresh copy: the tail is a view of the same buffer (slice_set refuses overlaps).
            let tail = t.narrow(2, start, n)?.contiguous()?.copy()?;
            t.slice_set(&tail, 2, 0)?;
        }
        self.len = n;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn keep_last_drops_the_oldest_positions() {
        let dev = Device::Cpu;
        let mut c = KvCache::with_capacity(4);
        let k = Tensor::arange(0f32, 10., &dev).unwrap().reshape((1, 1, 10, 1)).unwrap();
        c.append(&k, &k).unwrap();
        c.keep_last(3).unwrap();
        assert_eq!(c.len(), 3);
        let (kk, vv) = c.append(&k.narrow(2, 0, 2).unwrap(), &k.narrow(2, 0, 2).unwrap()).unwrap();
        assert_eq!(kk.flatten_all().unwrap().to_vec1::<f32>().unwrap(), [7., 8., 9., 0., 1.]);
        assert_eq!(vv.flatten_all().unwrap().to_vec1::<f32>().unwrap(), [7., 8., 9., 0., 1.]);
        c.keep_last(10).unwrap();
        assert_eq!(c.len(), 5);
    }

    #[test]
    fn appends_across_growth_keep_history() {
        let dev = Device::Cpu;
        let mut c = KvCache::default();
        let mut all = Vec::new();
        for step in 0..70 {
            let s = if step == 0 { 5 } else { 1 };
            let k = Tensor::arange(0f32, (2 * s * 3) as f32, &dev).unwrap().reshape((1, 2, s, 3)).unwrap();
            let k = (k + step as f64 * 100.0).unwrap();
            all.push(k.clone());
            let (kk, vv) = c.append(&k, &k).unwrap();
            assert_eq!(kk.dims(), vv.dims());
        }
        let want = Tensor::cat(&all, 2).unwrap();
        let (kk, _) = c
            .append(
                &Tensor::zeros((1, 2, 0, 3), DType::F32, &dev).unwrap(),
                &Tensor::zeros((1, 2, 0, 3), DType::F32, &dev).unwrap(),
            )
            .unwrap();
        assert_eq!(c.len(), 74);
        let diff = (kk - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(diff, 0.0);
    }
}
