//! Quantized weights end to end: `--quant` on load, `omnid quantize` writing a model directory that
//! loads to exactly the same numbers without re-quantizing, quantized answers staying close to the
//! dense ones, and every bad quantized input refused with one clear error.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::{DType, Device};
use omnid::engine::embedded::{load_synthetic_quantized, EmbeddedSize};
use omnid::engine::generate::{generate, GenerateParams, GenerationOutput};
use omnid::engine::model_dir::{DTypeChoice, LoadedModel};
use omnid::engine::sampling::SamplingParams;
use omnid::models::multimodal::MultimodalInputs;
use omnid::models::quant::plan::QuantPlan;

fn omnid(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_omnid")).args(args).env_remove("RUST_BACKTRACE").output().expect("run omnid")
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("omnid-quant-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_clean_error(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert!(!o.status.success(), "expected failure, got success; stderr: {err}");
    assert!(!err.contains("panicked"), "panic instead of an error: {err}");
    for n in needles {
        assert!(err.contains(n), "error should mention {n:?}: {err}");
    }
}

fn answer(lm: &LoadedModel, ids: Vec<u32>) -> GenerationOutput {
    let params = GenerateParams { sampling: SamplingParams::default(), max_new_tokens: 8, stop_ids: vec![] };
    generate(&lm.model, &MultimodalInputs { ids, ..Default::default() }, &params, |_| true).unwrap()
}

fn open(dir: &Path, quant: Option<&str>) -> LoadedModel {
    let plan = quant.map(|q| QuantPlan::parse(q).unwrap());
    LoadedModel::open_with(dir, DTypeChoice::Exact(DType::F32), &Device::Cpu, plan.as_ref(), false).unwrap().0
}

/// The written file holds exactly the blocks quantize-on-load makes: same tokens, same logits to
/// the bit, for fused experts in both orientations (vl_moe_a hub, vl_moe_b transformers 5.x,
/// bf16 shards, a dense layer) and per-expert tensors with a talker and Code2Wav (omni_a).
#[test]
fn a_quantized_model_directory_loads_to_the_numbers_of_quantizing_on_load() {
    // The fixtures' widths (24–40) fill 32-value blocks in only some matrices; those must be quantized.
    let cases = [
        ("vl_moe_a", "q8_0", &["attention", "embedding", "experts", "encoder", "head"][..], true),
        ("vl_moe_b", "q4_k,attention=q8_0", &["encoder"][..], false),
        ("omni_a", "q8_0", &["attention", "encoder", "ffn"][..], true),
    ];
    for (fixture, quant, must, text_changes) in cases {
        let out = scratch(fixture);
        let src = common::fixture_dir(fixture);
        let o = omnid(&[
            "quantize",
            "--model",
            src.to_str().unwrap(),
            "--quant",
            quant,
            "--out",
            out.to_str().unwrap(),
            "--json",
        ]);
        assert!(o.status.success(), "{fixture}: {}", stderr(&o));
        let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(report["quant"], QuantPlan::parse(quant).unwrap().spec());
        let quantized_classes: Vec<&str> = report["classes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["formats"].as_array().unwrap().iter().any(|f| f.as_str().unwrap().starts_with('q')))
            .map(|c| c["class"].as_str().unwrap())
            .collect();
        for class in must {
            assert!(quantized_classes.contains(class), "{fixture}: no {class} matrix quantized: {report}");
        }
        for file in ["config.json", "tokenizer.json", "generation_config.json", "model.gguf"] {
            assert!(out.join(file).is_file(), "{fixture}: {file} missing from the quantized directory");
        }
        assert!(!out.join("model.safetensors").exists() && !out.join("model.safetensors.index.json").exists());

        let on_load = open(&src, Some(quant));
        let from_file = open(&out, None);
        assert_eq!(
            from_file.quant.as_ref().map(|q| q.spec().to_string()),
            Some(QuantPlan::parse(quant).unwrap().spec().into())
        );
        let dense = open(&src, None);
        for prompt in [vec![10u32, 11, 12, 13], (30..52).collect()] {
            let (a, b, d) =
                (answer(&on_load, prompt.clone()), answer(&from_file, prompt.clone()), answer(&dense, prompt));
            assert_eq!(a.token_ids, b.token_ids, "{fixture}");
            assert_eq!(
                a.first_step_top5, b.first_step_top5,
                "{fixture}: logits differ between the file and on-load quantization"
            );
            // The quantization did change the numbers (the test would pass vacuously otherwise);
            // where only the encoders are quantized, a text prompt's numbers stay dense.
            assert_eq!(a.first_step_top5 != d.first_step_top5, text_changes, "{fixture}: quantized vs dense logits");
        }
        // The same plan again on the quantized directory is accepted (nothing to redo).
        let again = LoadedModel::open_with(
            &out,
            DTypeChoice::Exact(DType::F32),
            &Device::Cpu,
            Some(&QuantPlan::parse(quant).unwrap()),
            false,
        );
        assert!(again.is_ok(), "{fixture}: {:?}", again.err().map(|e| e.to_string()));
        let _ = std::fs::remove_dir_all(&out);
    }
}

/// On the embedded model, whose thinker rows are multiples of 32, the whole thinker is quantized:
/// q8_0 keeps the top logits within about 0.1 of the dense ones (measured 0.14 at most); q4_0
/// moves them further (0.57), but
/// keeps the dense answer's first token among its top three. (The random model's top logits are nearly tied, so the
/// greedy token itself may flip.)
#[test]
fn quantized_answers_stay_close_to_dense_ones() {
    let load = |q: Option<&str>| {
        let plan = q.map(|q| QuantPlan::parse(q).unwrap());
        load_synthetic_quantized(&EmbeddedSize::Tiny, DType::F32, &Device::Cpu, plan.as_ref()).unwrap()
    };
    let prompt: Vec<u32> = (5..40).collect();
    let d = answer(&load(None), prompt.clone());
    let mut worst = Vec::new();
    for (quant, tol) in [("q8_0", 0.15f32), ("q8_0,experts=q4_0,ffn=q4_0,attention=q4_0,embedding=q4_0,head=q4_0", 0.8)]
    {
        let q = answer(&load(Some(quant)), prompt.clone());
        let diffs: Vec<f32> =
            q.first_step_top5.iter().zip(&d.first_step_top5).map(|((_, a), (_, b))| (a - b).abs()).collect();
        let max = diffs.iter().copied().fold(0.0, f32::max);
        assert!(max <= tol && max > 0.0, "{quant}: top-5 logits move by up to {max} (bound {tol})");
        assert!(
            q.first_step_top5[..3].iter().any(|(id, _)| *id == d.first_step_top5[0].0),
            "{quant}: the dense top token left the top 3"
        );
        worst.push(max);
    }
    assert!(worst[0] < worst[1], "q8_0 ({}) should stay closer to dense than q4_0 ({})", worst[0], worst[1]);
}

#[test]
fn bad_quantization_inputs_get_clear_errors() {
    let src = common::fixture_dir("vl_moe_a");
    let src_s = src.to_str().unwrap();
    // Unknown scheme, class, format.
    assert_clean_error(
        &omnid(&["check", "--model", src_s, "--quant", "q3"]),
        &["--quant", "unknown quantization scheme \"q3\""],
    );
    assert_clean_error(
        &omnid(&["check", "--model", src_s, "--quant", "q4_k,mlp=q8_0"]),
        &["unknown tensor class \"mlp\""],
    );
    assert_clean_error(
        &omnid(&["check", "--model", src_s, "--quant", "q4_k,experts=q9"]),
        &["unknown block format \"q9\""],
    );
    // Writing over the checkpoint.
    assert_clean_error(
        &omnid(&["quantize", "--model", src_s, "--quant", "q8_0", "--out", src_s]),
        &["is the checkpoint directory"],
    );

    let out = scratch("bad");
    let out_s = out.to_str().unwrap().to_string();
    assert!(omnid(&["quantize", "--model", src_s, "--quant", "q8_0", "--out", &out_s]).status.success());
    // A second run does not silently replace the first; --force does.
    assert_clean_error(
        &omnid(&["quantize", "--model", src_s, "--quant", "q8_0", "--out", &out_s]),
        &["already has a model.gguf", "--force"],
    );
    assert!(omnid(&["quantize", "--model", src_s, "--quant", "q8_0", "--out", &out_s, "--force"]).status.success());
    // Another plan than the file's.
    assert_clean_error(
        &omnid(&["check", "--model", &out_s, "--quant", "q4_k"]),
        &["model.gguf", "holds weights quantized as q8_0, not q4_k"],
    );
    // A config.json edited after quantizing.
    let config_path = out.join("config.json");
    let original = std::fs::read_to_string(&config_path).unwrap();
    std::fs::write(&config_path, original.replace("\"rms_norm_eps\": 1e-06", "\"rms_norm_eps\": 1e-05")).unwrap();
    assert_ne!(
        std::fs::read_to_string(&config_path).unwrap(),
        original,
        "the fixture's config changed; edit another key"
    );
    assert_clean_error(&omnid(&["check", "--model", &out_s]), &["model.gguf", "different config.json"]);
    std::fs::write(&config_path, &original).unwrap();
    assert!(omnid(&["check", "--model", &out_s]).status.success());
    // A truncated file, and a file that is not GGUF.
    let gguf = out.join("model.gguf");
    let bytes = std::fs::read(&gguf).unwrap();
    std::fs::write(&gguf, &bytes[..bytes.len() / 2]).unwrap();
    let o = omnid(&["ask", "--model", &out_s, "--max-tokens", "2", "hi"]);
    assert_clean_error(&o, &["model.gguf"]);
    std::fs::write(&gguf, b"not a gguf file at all").unwrap();
    assert_clean_error(&omnid(&["check", "--model", &out_s]), &["model.gguf", "not a readable GGUF file"]);
    let _ = std::fs::remove_dir_all(&out);
}

fn ask_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["ask", "--greedy", "--max-tokens", "6", "--json"];
    all.extend_from_slice(args);
    let o = omnid(&all);
    assert!(o.status.success(), "{all:?}: {}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    serde_json::json!({"ids": v["token_ids"], "top5": v["first_step_top5"]})
}

/// llama.cpp's files of vl_moe_a (text GGUF + mmproj, written in its converter's layout by
/// scripts/make_llama_gguf_fixture.py): in f32 they give the checkpoint's own tokens and logits, in
/// q8_0 those of `--quant q8_0` (the gguf package's quantizer and candle's make the same blocks),
/// for a text prompt and an image prompt (the vision tower comes from the mmproj).
#[test]
fn llama_cpp_gguf_files_load_like_the_checkpoint() {
    let dir = |name: &str| common::fixture_dir(name).to_str().unwrap().to_string();
    let image = common::fixture_dir("vl_moe_a").join("inputs/img_0.png").to_str().unwrap().to_string();
    let (st, f32_gguf, q8_gguf) = (dir("vl_moe_a"), dir("vl_moe_a_gguf_f32"), dir("vl_moe_a_gguf"));
    for prompt in [&["Hello there"][..], &["--image", &image, "What is this?"][..]] {
        fn with<'a>(model: &[&'a str], prompt: &[&'a str]) -> Vec<&'a str> {
            [model, prompt].concat()
        }
        let dense = ask_json(&with(&["--model", &st], prompt));
        assert_eq!(ask_json(&with(&["--model", &f32_gguf], prompt)), dense, "{prompt:?}: f32 GGUF vs safetensors");
        let q8 = ask_json(&with(&["--model", &st, "--quant", "q8_0"], prompt));
        assert_eq!(ask_json(&with(&["--model", &q8_gguf], prompt)), q8, "{prompt:?}: q8_0 GGUF vs --quant q8_0");
        assert_ne!(q8["top5"], dense["top5"], "the q8_0 files should differ from the dense model");
    }

    // `check` says the files are used as they are quantized.
    let o = omnid(&["check", "--model", &q8_gguf]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(report.contains("weights     as quantized in") && report.contains("mmproj-vl_moe_a-q8_0.gguf"), "{report}");

    // Bad inputs: --quant on files that are already quantized, the mmproj missing, the text file
    // missing, two text files.
    assert_clean_error(
        &omnid(&["check", "--model", &q8_gguf, "--quant", "q8_0"]),
        &["used as they are quantized", "safetensors"],
    );
    let only_text = scratch("only-text");
    let only_vision = scratch("only-vision");
    let two = scratch("two-texts");
    for (d, skip) in [(&only_text, "mmproj-"), (&only_vision, "vl_moe_a-q8_0"), (&two, "")] {
        std::fs::create_dir_all(d).unwrap();
        for e in std::fs::read_dir(&q8_gguf).unwrap().flatten() {
            let name = e.file_name().to_str().unwrap().to_string();
            if skip.is_empty() || !name.starts_with(skip) {
                std::fs::copy(e.path(), d.join(&name)).unwrap();
            }
        }
    }
    std::fs::copy(two.join("vl_moe_a-q8_0.gguf"), two.join("copy-q8_0.gguf")).unwrap();
    assert_clean_error(&omnid(&["check", "--model", only_text.to_str().unwrap()]), &["has no vision tower", "mmproj"]);
    assert_clean_error(&omnid(&["check", "--model", only_vision.to_str().unwrap()]), &["no llama.cpp text GGUF"]);
    assert_clean_error(&omnid(&["check", "--model", two.to_str().unwrap()]), &["are both qwen3vlmoe GGUF files"]);
    for d in [only_text, only_vision, two] {
        let _ = std::fs::remove_dir_all(d);
    }
}
