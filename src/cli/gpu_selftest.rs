//! `omnid gpu-selftest` (builds with the `cuda` feature): exits non-zero unless the GPU works for
//! omnid. It opens the device, checks a matmul against the CPU, reports bf16 matmul throughput,
//! compiles omnid's kernels with NVRTC, checks each fused op against its CPU definition in f32 and
//! bf16, and runs the embedded tiny model on both devices: the greedy tokens must agree.

use std::process::ExitCode;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use omnid_kernels::fused_ops::{MoeExperts, MoeRoute, RmsNormRope, SnakeBeta};

/// One check's outcome, printed as it completes.
struct Report {
    failures: usize,
}

impl Report {
    fn check(&mut self, name: &str, result: anyhow::Result<String>) {
        match result {
            Ok(detail) => println!("ok    {name}: {detail}"),
            Err(e) => {
                self.failures += 1;
                println!("FAIL  {name}: {e:#}");
            }
        }
    }
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> anyhow::Result<f32> {
    let a = a.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
    let b = b.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
    Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
}

fn max_abs(a: &Tensor) -> anyhow::Result<f32> {
    Ok(a.to_device(&Device::Cpu)?.to_dtype(DType::F32)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
}

/// `|gpu − cpu| ≤ tol · max|cpu|`, reported with the figures.
fn close(gpu: &Tensor, cpu: &Tensor, tol: f32) -> anyhow::Result<String> {
    let (diff, scale) = (max_abs_diff(gpu, cpu)?, max_abs(cpu)?);
    anyhow::ensure!(scale > 0.0, "the CPU result is all zeros: the check proves nothing");
    anyhow::ensure!(diff <= tol * scale, "max |gpu − cpu| = {diff:.3e}, over {tol:.0e} × {scale:.3e}");
    Ok(format!("max |gpu − cpu| = {diff:.3e} (scale {scale:.3e})"))
}

fn matmul_matches(gpu: &Device) -> anyhow::Result<String> {
    let a = Tensor::randn(0f32, 1.0, (256, 512), &Device::Cpu)?;
    let b = Tensor::randn(0f32, 1.0, (512, 384), &Device::Cpu)?;
    let cpu = a.matmul(&b)?;
    let on_gpu = a.to_device(gpu)?.matmul(&b.to_device(gpu)?)?;
    // cuBLAS may use TF32 for f32: allow its 10-bit mantissa.
    close(&on_gpu, &cpu, 2e-3)
}

fn bf16_throughput(gpu: &Device) -> anyhow::Result<String> {
    let n = 4096;
    let a = Tensor::randn(0f32, 1.0, (n, n), gpu)?.to_dtype(DType::BF16)?;
    let b = Tensor::randn(0f32, 1.0, (n, n), gpu)?.to_dtype(DType::BF16)?;
    a.matmul(&b)?; // warm-up (cuBLAS handles, kernels)
    gpu.synchronize()?;
    let reps = 20;
    let start = Instant::now();
    for _ in 0..reps {
        a.matmul(&b)?;
    }
    gpu.synchronize()?;
    let s = start.elapsed().as_secs_f64();
    Ok(format!(
        "{:.1} TFLOP/s (bf16 {n}², {reps} runs in {:.1} ms)",
        2.0 * (n as f64).powi(3) * reps as f64 / s / 1e12,
        s * 1e3
    ))
}

fn compile_kernels(gpu: &Device) -> anyhow::Result<String> {
    let Device::Cuda(dev) = gpu else { anyhow::bail!("not a CUDA device") };
    let start = Instant::now();
    omnid_kernels::cuda::compile_all(dev)?;
    Ok(format!("all modules compiled in {:.0} ms", start.elapsed().as_secs_f64() * 1e3))
}

fn route_matches(gpu: &Device) -> anyhow::Result<String> {
    let (tokens, experts, k) = (5, 128, 8);
    let logits = Tensor::randn(0f32, 2.0, (tokens, experts), &Device::Cpu)?;
    let op = MoeRoute { k, renormalize: true };
    let cpu: Vec<u32> = logits.apply_op1_no_bwd(&op)?.flatten_all()?.to_vec1()?;
    let on_gpu: Vec<u32> =
        logits.to_device(gpu)?.apply_op1_no_bwd(&op)?.to_device(&Device::Cpu)?.flatten_all()?.to_vec1()?;
    let mut worst = 0f32;
    for (slot, (g, c)) in on_gpu.chunks(2).zip(cpu.chunks(2)).enumerate() {
        anyhow::ensure!(g[0] == c[0], "slot {slot}: expert {} on the GPU, {} on the CPU", g[0], c[0]);
        worst = worst.max((f32::from_bits(g[1]) - f32::from_bits(c[1])).abs());
    }
    anyhow::ensure!(worst < 1e-5, "routing weights differ by {worst:.3e}");
    Ok(format!("same experts; weights within {worst:.1e}"))
}

fn experts_match(gpu: &Device, dtype: DType) -> anyhow::Result<String> {
    let (tokens, k, experts, hidden, inter) = (4, 8, 64, 2048, 768);
    let cpu = Device::Cpu;
    let x = Tensor::randn(0f32, 1.0, (tokens, hidden), &cpu)?;
    let logits = Tensor::randn(0f32, 2.0, (tokens, experts), &cpu)?;
    let routing = logits.apply_op1_no_bwd(&MoeRoute { k, renormalize: true })?;
    let gate_up = Tensor::randn(0f32, 0.02, (experts, 2 * inter, hidden), &cpu)?.to_dtype(dtype)?;
    let down = Tensor::randn(0f32, 0.02, (experts, hidden, inter), &cpu)?.to_dtype(dtype)?;
    let want = x.apply_op3_no_bwd(&gate_up, &down, &MoeExperts { routing: routing.clone() })?;
    let op = MoeExperts { routing: routing.to_device(gpu)? };
    let got = x.to_device(gpu)?.apply_op3_no_bwd(&gate_up.to_device(gpu)?, &down.to_device(gpu)?, &op)?;
    close(&got, &want, 1e-4)
}

fn norm_rope_matches(gpu: &Device, dtype: DType) -> anyhow::Result<String> {
    let (b, s, h, d) = (2, 7, 32, 128);
    let cpu = Device::Cpu;
    let x = Tensor::randn(0f32, 2.0, (b, s, h, d), &cpu)?.to_dtype(dtype)?;
    let w = Tensor::randn(1f32, 0.2, d, &cpu)?.to_dtype(dtype)?;
    let angles = Tensor::randn(0f32, 3.0, (s, d / 2), &cpu)?;
    let table = Tensor::stack(&[angles.cos()?, angles.sin()?], 1)?.to_dtype(dtype)?;
    let op = RmsNormRope { seq: s, eps: 1e-6 };
    let want = x.apply_op3_no_bwd(&w, &table, &op)?;
    let got = x.to_device(gpu)?.apply_op3_no_bwd(&w.to_device(gpu)?, &table.to_device(gpu)?, &op)?;
    close(&got, &want, if dtype == DType::F32 { 1e-5 } else { 1e-2 })
}

fn snake_matches(gpu: &Device, dtype: DType) -> anyhow::Result<String> {
    let (c, len) = (96, 4800);
    let cpu = Device::Cpu;
    let x = Tensor::randn(0f32, 1.0, (1, c, len), &cpu)?.to_dtype(dtype)?;
    let a = Tensor::randn(0f32, 0.5, c, &cpu)?.exp()?.to_dtype(dtype)?;
    let ib = Tensor::randn(0f32, 0.5, c, &cpu)?.exp()?.recip()?.to_dtype(dtype)?;
    let want = x.apply_op3_no_bwd(&a, &ib, &SnakeBeta)?;
    let got = x.to_device(gpu)?.apply_op3_no_bwd(&a.to_device(gpu)?, &ib.to_device(gpu)?, &SnakeBeta)?;
    close(&got, &want, if dtype == DType::F32 { 1e-5 } else { 1e-2 })
}

fn tiny_model_agrees(gpu: &Device) -> anyhow::Result<String> {
    use crate::engine::ask::{ask, AskRequest};
    use crate::engine::embedded::{load_synthetic_quantized, EmbeddedSize};
    let req = AskRequest {
        system: None,
        media: Vec::new(),
        prompt: "Name three colours of the rainbow.".into(),
        use_audio_in_video: false,
        video_fps: 2.0,
        video_window: (0.0, None),
        sampling: Default::default(), // greedy
        max_new_tokens: 24,
        template_vars: Default::default(),
    };
    let mut ids = Vec::new();
    for dev in [&Device::Cpu, gpu] {
        let lm = load_synthetic_quantized(&EmbeddedSize::Tiny, DType::F32, dev, None)?;
        let start = Instant::now();
        let out = ask(&lm, &req, |_| true)?;
        ids.push((out.generation.token_ids, start.elapsed().as_secs_f64()));
    }
    let ((cpu, cpu_s), (gpu_ids, gpu_s)) = (&ids[0], &ids[1]);
    anyhow::ensure!(cpu == gpu_ids, "greedy tokens differ: CPU {cpu:?}, GPU {gpu_ids:?}");
    Ok(format!("{} greedy tokens identical (CPU {:.2} s, GPU {:.2} s)", cpu.len(), cpu_s, gpu_s))
}

/// Runs every check; the exit status is 0 only when all pass.
pub fn run() -> anyhow::Result<ExitCode> {
    let gpu = match Device::new_cuda(0) {
        Ok(d) => d,
        Err(e) => {
            println!("FAIL  open cuda:0: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    println!("ok    open cuda:0");
    let mut r = Report { failures: 0 };
    r.check("f32 matmul against the CPU", matmul_matches(&gpu));
    r.check("bf16 matmul throughput", bf16_throughput(&gpu));
    r.check("NVRTC compiles omnid's kernels", compile_kernels(&gpu));
    r.check("moe route", route_matches(&gpu));
    for dtype in [DType::F32, DType::BF16] {
        r.check(&format!("moe experts ({dtype:?} weights)"), experts_match(&gpu, dtype));
        r.check(&format!("rms norm + rope ({dtype:?})"), norm_rope_matches(&gpu, dtype));
        r.check(&format!("snake beta ({dtype:?})"), snake_matches(&gpu, dtype));
    }
    r.check("embedded tiny model, CPU vs GPU (f32)", tiny_model_agrees(&gpu));
    if r.failures == 0 {
        println!("gpu-selftest: all checks passed");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("gpu-selftest: {} check(s) failed", r.failures);
        Ok(ExitCode::FAILURE)
    }
}
