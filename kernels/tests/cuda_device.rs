//! The kernels on a real GPU against their CPU definitions (builds with `--features cuda`; on a
//! machine without a usable GPU it says so and checks nothing, since there is nothing to run on).
//! `omnid gpu-selftest` runs the same comparisons at real widths, plus the model end to end.
#![cfg(feature = "cuda")]

use candle_core::{DType, Device, Tensor};
use omnid_kernels::fused_ops::{MoeExperts, MoeRoute, RmsNormRope, SnakeBeta};

fn gpu() -> Option<Device> {
    match Device::new_cuda(0) {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!("skipped: no usable GPU ({e})");
            None
        }
    }
}

fn assert_close(gpu: &Tensor, cpu: &Tensor, tol: f32, what: &str) {
    let g = gpu.to_device(&Device::Cpu).unwrap().to_dtype(DType::F32).unwrap();
    let c = cpu.to_dtype(DType::F32).unwrap();
    let diff = (&g - &c).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
    let scale = c.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
    assert!(scale > 0.0 && diff <= tol * scale, "{what}: {diff} (scale {scale})");
}

#[test]
fn every_kernel_matches_its_cpu_definition_on_the_gpu() {
    let Some(gpu) = gpu() else { return };
    let cpu = Device::Cpu;
    // Routing: same experts, weights to f32 rounding.
    let logits = Tensor::randn(0f32, 2.0, (6, 128), &cpu).unwrap();
    let route = MoeRoute { k: 8, renormalize: true };
    let want = logits.apply_op1_no_bwd(&route).unwrap();
    let got = logits.to_device(&gpu).unwrap().apply_op1_no_bwd(&route).unwrap();
    let (w, g): (Vec<u32>, Vec<u32>) = (
        want.flatten_all().unwrap().to_vec1().unwrap(),
        got.to_device(&cpu).unwrap().flatten_all().unwrap().to_vec1().unwrap(),
    );
    for (a, b) in w.chunks(2).zip(g.chunks(2)) {
        assert_eq!(a[0], b[0]);
        assert!((f32::from_bits(a[1]) - f32::from_bits(b[1])).abs() < 1e-5);
    }
    for dtype in [DType::F32, DType::BF16] {
        let tol = if dtype == DType::F32 { 1e-5 } else { 1e-2 };
        let x = Tensor::randn(0f32, 1.0, (6, 256), &cpu).unwrap();
        let gu = Tensor::randn(0f32, 0.05, (128, 2 * 96, 256), &cpu).unwrap().to_dtype(dtype).unwrap();
        let dn = Tensor::randn(0f32, 0.05, (128, 256, 96), &cpu).unwrap().to_dtype(dtype).unwrap();
        let want = x.apply_op3_no_bwd(&gu, &dn, &MoeExperts { routing: want.clone() }).unwrap();
        let op = MoeExperts { routing: got.clone() };
        let on_gpu = x
            .to_device(&gpu)
            .unwrap()
            .apply_op3_no_bwd(&gu.to_device(&gpu).unwrap(), &dn.to_device(&gpu).unwrap(), &op)
            .unwrap();
        assert_close(&on_gpu, &want, 1e-4, "moe experts");

        let xs = Tensor::randn(0f32, 2.0, (2, 5, 8, 64), &cpu).unwrap().to_dtype(dtype).unwrap();
        let w = Tensor::randn(1f32, 0.2, 64, &cpu).unwrap().to_dtype(dtype).unwrap();
        let a = Tensor::randn(0f32, 3.0, (5, 32), &cpu).unwrap();
        let table = Tensor::stack(&[a.cos().unwrap(), a.sin().unwrap()], 1).unwrap().to_dtype(dtype).unwrap();
        let op = RmsNormRope { seq: 5, eps: 1e-6 };
        let want = xs.apply_op3_no_bwd(&w, &table, &op).unwrap();
        let on = |t: &Tensor| t.to_device(&gpu).unwrap();
        assert_close(&on(&xs).apply_op3_no_bwd(&on(&w), &on(&table), &op).unwrap(), &want, tol, "rms norm rope");

        let xs = Tensor::randn(0f32, 1.0, (2, 16, 300), &cpu).unwrap().to_dtype(dtype).unwrap();
        let al = Tensor::randn(0f32, 0.5, 16, &cpu).unwrap().exp().unwrap().to_dtype(dtype).unwrap();
        let ib = Tensor::randn(0f32, 0.5, 16, &cpu).unwrap().exp().unwrap().recip().unwrap().to_dtype(dtype).unwrap();
        let want = xs.apply_op3_no_bwd(&al, &ib, &SnakeBeta).unwrap();
        assert_close(&on(&xs).apply_op3_no_bwd(&on(&al), &on(&ib), &SnakeBeta).unwrap(), &want, tol, "snake beta");
    }
}
