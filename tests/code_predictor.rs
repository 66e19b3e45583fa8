//! Code predictor (talker MTP) parity with transformers 5.23 on the committed random-weight
//! checkpoint `omni_a` (reference: `tests/fixtures/omni_a/code_predictor_reference.safetensors`,
//! written by `scripts/make_code_predictor_fixture.py`), plus bad inputs.
//!
//! The reference ran in float32 as transformers does; its own float32-vs-float64 difference is
//! 8e-6 and the smallest top-1/top-2 margin 0.02, so a 1e-4 bound on every step's logits and exact
//! greedy tokens are both meaningful in f32. omni_a has `num_code_groups` 4: 3 residual codes per
//! frame (15 in the real model).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use candle_core::{DType, Device, Tensor};
use omnid::models::qwen3_omni::code_predictor::CodePredictor;
use omnid::models::qwen3_omni::config::CodePredictorConfig;

const TOL: f32 = 1e-4;

fn fixture_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn reference() -> &'static HashMap<String, Tensor> {
    static R: OnceLock<HashMap<String, Tensor>> = OnceLock::new();
    R.get_or_init(|| {
        candle_core::safetensors::load(fixture_dir("omni_a").join("code_predictor_reference.safetensors"), &Device::Cpu)
            .unwrap()
    })
}

fn model(dtype: DType) -> CodePredictor {
    CodePredictor::load(&fixture_dir("omni_a"), dtype, &Device::Cpu).unwrap()
}

fn model_f32() -> &'static CodePredictor {
    static M: OnceLock<CodePredictor> = OnceLock::new();
    M.get_or_init(|| model(DType::F32))
}

/// First index of the largest value, as `torch.argmax`.
fn argmax(xs: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best as u32
}

/// Runs every reference case greedily; returns the max |Δ logits| over all cases and steps.
fn greedy_parity(m: &CodePredictor) -> f32 {
    let r = reference();
    let h_all = &r["h_last"];
    let c0_all: Vec<i64> = r["c0"].to_vec1().unwrap();
    let want_tokens: Vec<Vec<i64>> = r["tokens"].to_vec2().unwrap();
    let want_logits = &r["logits"]; // cases, G − 1, codebook
    assert_eq!(want_tokens[0].len(), m.num_residual_codes());
    let mut worst = 0f32;
    for (case, &c0) in c0_all.iter().enumerate() {
        let mut logits = Vec::new();
        let mut groups = Vec::new();
        let tokens = m
            .predict_frame(&h_all.get(case).unwrap(), c0 as u32, |group, lg| {
                groups.push(group);
                let lg: Vec<f32> = lg.to_dtype(DType::F32)?.to_vec1()?;
                let t = argmax(&lg);
                logits.push(lg);
                Ok(t)
            })
            .unwrap();
        assert_eq!(groups, (1..=m.num_residual_codes()).collect::<Vec<_>>(), "sampler called per codebook in order");
        // Logits first: a wrong token changes every later step, and the logit difference says more.
        for (step, got) in logits.iter().enumerate() {
            let want: Vec<f32> = want_logits.get(case).unwrap().get(step).unwrap().to_vec1().unwrap();
            assert_eq!(got.len(), want.len());
            let d = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            worst = worst.max(d);
            assert!(d <= TOL, "case {case} (c0 {c0}) step {step}: max |Δ logits| {d:.3e}");
        }
        let want: Vec<u32> = want_tokens[case].iter().map(|&t| t as u32).collect();
        assert_eq!(tokens, want, "case {case} (c0 {c0}): greedy tokens");
    }
    worst
}

#[test]
fn greedy_frame_matches_reference_f32() {
    let d = greedy_parity(model_f32());
    eprintln!("f32: max |Δ logits| over all cases and steps {d:.3e}");
}

#[test]
fn greedy_frame_matches_reference_f64() {
    // f64 against the float32 reference: the difference is the reference's own rounding.
    let d = greedy_parity(&model(DType::F64));
    eprintln!("f64: max |Δ logits| over all cases and steps {d:.3e}");
}

#[test]
fn h_last_shapes_are_accepted_alike() {
    let m = model_f32();
    let h = reference()["h_last"].get(0).unwrap();
    let greedy = |lg: &Tensor| -> candle_core::Result<u32> { Ok(argmax(&lg.to_vec1::<f32>()?)) };
    let flat = m.predict_frame(&h, 3, |_, lg| greedy(lg)).unwrap();
    let row = m.predict_frame(&h.unsqueeze(0).unwrap(), 3, |_, lg| greedy(lg)).unwrap();
    let cube = m.predict_frame(&h.reshape((1, 1, m.hidden_size())).unwrap(), 3, |_, lg| greedy(lg)).unwrap();
    assert_eq!(flat, row);
    assert_eq!(flat, cube);
    // A fresh cache per frame: the same frame twice gives the same codes.
    assert_eq!(flat, m.predict_frame(&h, 3, |_, lg| greedy(lg)).unwrap());
}

#[test]
fn bad_inputs_are_clear_errors() {
    let m = model_f32();
    let h = reference()["h_last"].get(0).unwrap();
    let zero = |_: usize, _: &Tensor| -> candle_core::Result<u32> { Ok(0) };
    let size = m.codebook_size() as u32;

    // c0 past the codebook, e.g. codec_eos (134 in omni_a), which ends speech and has no frame.
    for c0 in [size, 134] {
        let e = m.predict_frame(&h, c0, zero).unwrap_err().to_string();
        assert!(e.contains(&format!("c0 = {c0}")) && e.contains(&format!("codebook has {size}")), "{e}");
    }
    // Wrong hidden size, a batch of two, too many dims.
    let hidden = m.hidden_size();
    for dims in [vec![hidden + 1], vec![2, hidden], vec![1, 1, 1, hidden], vec![]] {
        let bad = Tensor::zeros(dims.as_slice(), DType::F32, &Device::Cpu).unwrap();
        let e = m.predict_frame(&bad, 0, zero).unwrap_err().to_string();
        assert!(e.contains("h_last has shape") && e.contains(&format!("[{hidden}]")), "{e}");
    }
    // A sampler that returns a code outside the codebook.
    let e = m.predict_frame(&h, 0, |_, _| Ok(size)).unwrap_err().to_string();
    assert!(e.contains(&format!("token {size} for codebook 1")), "{e}");
    // A failing sampler's error passes through.
    let e = m.predict_frame(&h, 0, |_, _| candle_core::bail!("sampler broke")).unwrap_err().to_string();
    assert!(e.contains("sampler broke"), "{e}");
}

#[test]
fn frame_codec_sum_matches_the_talkers_next_input() {
    let m = model_f32();
    let r = reference();
    let c0_all: Vec<i64> = r["c0"].to_vec1().unwrap();
    let tokens: Vec<Vec<i64>> = r["tokens"].to_vec2().unwrap();
    let mut worst = 0f32;
    for (case, &c0) in c0_all.iter().enumerate() {
        let codes: Vec<u32> = tokens[case].iter().map(|&t| t as u32).collect();
        let got: Vec<f32> = m.frame_codec_sum(c0 as u32, &codes).unwrap().to_vec1().unwrap();
        let want: Vec<f32> = r["codec_sum"].get(case).unwrap().to_vec1().unwrap();
        let d = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        worst = worst.max(d);
        assert!(d <= TOL, "case {case}: max |Δ| {d:.3e}");
    }
    eprintln!("frame codec sum: max |Δ| {worst:.3e}");
    let e = m.frame_codec_sum(0, &[1]).unwrap_err().to_string();
    assert!(e.contains("residual codes"), "{e}");
    assert!(m.frame_codec_sum(m.codebook_size() as u32, &[0; 3]).is_err());
}

#[test]
fn residual_embeddings_for_the_talker() {
    let m = model_f32();
    let last = m.num_residual_codes();
    for g in 1..=last {
        assert_eq!(m.residual_embedding(g, 5).unwrap().dims(), &[m.hidden_size()]);
    }
    for g in [0, last + 1] {
        let e = m.residual_embedding(g, 0).unwrap_err().to_string();
        assert!(e.contains(&format!("codebook {g} does not exist")), "{e}");
    }
    assert!(m.residual_embedding(1, m.codebook_size() as u32).is_err());
}

#[test]
fn checkpoint_without_speech_output_is_refused() {
    // omni_b is a Thinking/Captioner-style checkpoint: talker_config present, no talker weights.
    let e = CodePredictor::load(&fixture_dir("omni_b"), DType::F32, &Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("no speech output"), "{e}");
}

#[test]
fn config_defaults_and_unsupported_settings() {
    // transformers' class defaults are the real model's values except num_code_groups (32 vs 16).
    let d = CodePredictorConfig::default();
    assert_eq!((d.vocab_size, d.hidden_size, d.num_hidden_layers, d.head_dim()), (2048, 1024, 5, 128));
    let real: CodePredictorConfig = serde_json::from_value(serde_json::json!({
        "num_code_groups": 16, "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0}
    }))
    .unwrap();
    real.validate(1024, 16).unwrap();
    let dec = real.decoder_config().unwrap();
    assert_eq!((dec.rope_theta, dec.mrope_section.is_none(), dec.attention.qk_norm), (1e6, true, true));
    assert_eq!(dec.attention.num_kv_heads, 8);

    assert!(real.validate(2048, 16).unwrap_err().contains("talker's hidden_size 2048"));
    assert!(real.validate(1024, 8).unwrap_err().contains("talker_config.num_code_groups 8"));
    let sliding: CodePredictorConfig =
        serde_json::from_value(serde_json::json!({"num_code_groups": 16, "sliding_window": 4, "max_window_layers": 2}))
            .unwrap();
    assert!(sliding.validate(1024, 16).unwrap_err().contains("sliding_attention"));
    let one: CodePredictorConfig = serde_json::from_value(serde_json::json!({"num_code_groups": 1})).unwrap();
    assert!(one.validate(1024, 1).unwrap_err().contains("no residual codebook"));
}
