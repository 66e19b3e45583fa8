//! Speech parity with the reference (transformers 5.23 `generate(..., talker_do_sample=False)`)
//! on the committed tiny checkpoints with speech, from `scripts/make_talker_fixture.py`:
//! * omni_a — 4 codebooks, the talker reads thinker `hidden_states[2]` (layer 1's own output,
//!   before that layer's DeepStack addition); its random Code2Wav saturates the clamp, so its
//!   float32 waveform is compared at the bound measured for it in `tests/code2wav.rs`;
//! * omni_c — 6 codebooks, `hidden_states[3]` (= the thinker's final-norm state), other codec ids,
//!   a fourth speaker, codec_eos reachable (three cases end by themselves), Code2Wav gain tamed
//!   so float32 is compared at 1e-4.
//!
//! Per case, in f32: the talker prefill rows and 3-D positions, its first codec logits, then the
//! whole streamed pipeline (thinker, talker, code predictor and Code2Wav on their threads, exact
//! left context): identical thinker tokens, identical codes, the same stop, and the concatenated
//! audio chunks equal to the reference waveform.

use std::collections::HashMap;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use omnid::engine::generate::{generate_observed, GenerateParams};
use omnid::engine::model_dir::{DTypeChoice, LoadedModel};
use omnid::engine::sampling::SamplingParams;
use omnid::engine::speech::{respond_spoken, speech_models, ResponseEvent, SpeechOptions, SpeechStop, ThinkerSource};
use omnid::models::qwen3_omni::talker_prompt::{assistant_prompt, TalkerInputs, TextTrack, ThinkerPrompt};
use serde_json::Value;

mod common;
use common::{build_case, fixture_dir, ids_of};

/// Rows and positions of the prefill; the waveform where Code2Wav is well conditioned.
const TOL: f32 = 1e-4;
/// Codec logits, relative to the largest |logit| (~12 here): float32 sums through two resize
/// MLPs and the MoE layers differ from torch's by up to 1.1e-5 of that.
const LOGITS_REL_TOL: f32 = 2e-5;

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    (a.to_dtype(DType::F32).unwrap() - b.to_dtype(DType::F32).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn run_model(name: &str, wave_tol: f32) {
    let dir = fixture_dir(name);
    let media_dir = fixture_dir("omni_a");
    let cases: Value =
        serde_json::from_str(&std::fs::read_to_string(media_dir.join("reference.json")).unwrap()).unwrap();
    let tref: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("talker_reference.json")).unwrap()).unwrap();
    let tensors: HashMap<String, Tensor> =
        candle_core::safetensors::load(dir.join("talker_reference.safetensors"), &Device::Cpu).unwrap();
    let t = |k: &str| tensors.get(k).unwrap_or_else(|| panic!("{name}: reference tensor {k} missing")).clone();
    let mut lm = LoadedModel::open(&dir, DTypeChoice::Exact(DType::F32), &Device::Cpu).unwrap();
    let default_video = lm.processor.video.clone();
    let eos = ids_of(&tref["thinker_eos_token_ids"]);
    let mut failures = Vec::new();
    let mut worst = [0f32; 4];

    for case in tref["cases"].as_array().unwrap() {
        let cname = case["name"].as_str().unwrap();
        let rc = cases["cases"].as_array().unwrap().iter().find(|c| c["name"] == cname).unwrap();
        let built = build_case(&mut lm, &default_video, &media_dir, rc).unwrap();
        let params = GenerateParams {
            sampling: SamplingParams { greedy: true, ..Default::default() },
            max_new_tokens: case["thinker_max_new_tokens"].as_u64().unwrap() as usize,
            stop_ids: eos.clone(),
        };
        let want_ids: Vec<u32> =
            t(&format!("{cname}.thinker_ids")).to_vec1::<i64>().unwrap().iter().map(|&i| i as u32).collect();

        // 1. The prefill and the first logits, from the thinker's captured hidden states.
        let (thinker, speech) = speech_models(&lm).unwrap();
        let talker = &speech.talker;
        let mut hidden = None;
        let generation = generate_observed(
            &lm.model,
            &built.inputs,
            &params,
            Some(talker.config().accept_hidden_layer),
            |h| {
                hidden = h;
                true
            },
            |_| true,
        )
        .unwrap();
        assert_eq!(generation.token_ids, want_ids, "{name}/{cname}: thinker tokens");
        let mut track = TextTrack::new(assistant_prompt(&built.inputs.ids, thinker.config()).unwrap());
        track.push(generation.token_ids[0]);
        let layout = thinker.media_layout(&built.inputs).unwrap();
        let hidden = hidden.unwrap();
        let prompt = ThinkerPrompt { ids: &built.inputs.ids, accept_hidden: &hidden, layout: &layout };
        let rows = TalkerInputs::new(talker, &thinker.decoder, thinker.config()).unwrap();
        let speaker = talker.config().speaker(case["speaker"].as_str().unwrap()).unwrap();
        let prefill = rows.prefill(&prompt, track.head().unwrap(), speaker).unwrap();
        let d_rows = max_diff(&prefill.rows.squeeze(0).unwrap(), &t(&format!("{cname}.prefill_embeds")));
        let pos = &prefill.positions;
        let ours_pos = Tensor::new([pos.t.clone(), pos.h.clone(), pos.w.clone()].concat(), &Device::Cpu)
            .unwrap()
            .reshape((3, ()))
            .unwrap();
        // transformers 5.23 passes [text, t, h, w] rows; the rotary uses the last three.
        let d_pos = max_diff(&ours_pos, &t(&format!("{cname}.prefill_positions")).narrow(0, 1, 3).unwrap());
        let mut cache = talker.new_cache(64);
        let (_, logits) = talker.forward_last(&prefill.rows, &prefill.positions, &mut cache).unwrap();
        let want_logits = t(&format!("{cname}.first_logits"));
        let scale = want_logits.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap().max(1.0);
        let d_logits = max_diff(&Tensor::new(logits, &Device::Cpu).unwrap(), &want_logits) / scale;
        worst[0] = worst[0].max(d_rows);
        worst[1] = worst[1].max(d_pos);
        worst[2] = worst[2].max(d_logits);
        for (what, d, tol) in [
            ("prefill rows", d_rows, TOL),
            ("prefill positions", d_pos, 0.0),
            ("first logits (relative)", d_logits, LOGITS_REL_TOL),
        ] {
            if d.is_nan() || d > tol {
                failures.push(format!("{name}/{cname}: {what} max |diff| {d:.3e}"));
            }
        }

        // 2. The streamed pipeline, all greedy, exact Code2Wav context, 3-frame chunks.
        let mut opts = SpeechOptions::new(case["speaker"].as_str().unwrap(), true, 0);
        opts.max_frames = case["talker_max_new_tokens"].as_u64().unwrap() as usize - 1;
        opts.left_context = None;
        opts.chunk_frames = 3;
        let mut audio = Vec::new();
        let mut chunks = 0;
        let ans = respond_spoken(&lm, &built.inputs, &params, &opts, Instant::now(), ThinkerSource::Run, |ev| {
            if let ResponseEvent::Audio(a) = ev {
                chunks += 1;
                audio.extend(a);
            }
            true
        })
        .unwrap();
        assert_eq!(ans.generation.token_ids, want_ids, "{name}/{cname}: thinker tokens in the pipeline");
        let want_codes = t(&format!("{cname}.codes"));
        let (frames, groups) = want_codes.dims2().unwrap();
        let want: Vec<Vec<u32>> = want_codes
            .to_vec2::<i64>()
            .unwrap()
            .into_iter()
            .map(|r| r.into_iter().map(|c| c as u32).collect())
            .collect();
        if ans.speech.codes != want {
            failures.push(format!(
                "{name}/{cname}: codes differ ({} frames, reference {frames} × {groups}):\n  ours: {:?}\n  ref:  {:?}",
                ans.speech.codes.len(),
                ans.speech.codes,
                want
            ));
            continue;
        }
        let want_stop = if case["stopped_by"] == "eos" { SpeechStop::Eos } else { SpeechStop::Length };
        assert_eq!(ans.speech.stop, want_stop, "{name}/{cname}: stop");
        assert!(chunks >= frames.div_ceil(3).min(2), "{name}/{cname}: {chunks} audio chunks for {frames} frames");
        let wave = t(&format!("{cname}.waveform"));
        let d_wave = max_diff(&Tensor::new(audio.as_slice(), &Device::Cpu).unwrap(), &wave);
        worst[3] = worst[3].max(d_wave);
        if d_wave.is_nan() || d_wave > wave_tol {
            failures.push(format!("{name}/{cname}: waveform max |diff| {d_wave:.3e} > {wave_tol:.0e}"));
        }
        assert_eq!(ans.speech.samples, audio.len());
    }
    eprintln!(
        "{name}: max |diff| prefill rows {:.2e}, positions {:.2e}, first logits {:.2e} (relative), waveform {:.2e}",
        worst[0], worst[1], worst[2], worst[3]
    );
    assert!(failures.is_empty(), "{} speech parity failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn omni_a_speech_matches_the_reference() {
    // omni_a's Code2Wav drives its output far past the clamp (peak ~350 before it): float32
    // rounding inside moves samples by up to 1.4e-2 (tests/code2wav.rs measures 6e-8 in f64).
    run_model("omni_a", 2e-2);
}

#[test]
fn omni_c_speech_matches_the_reference() {
    run_model("omni_c", TOL);
}

/// Builds a reference case of omni_a's `reference.json` for `model`.
fn case_inputs(model: &str, case: &str) -> (LoadedModel, omnid::engine::processor::BuiltPrompt, GenerateParams) {
    let media_dir = fixture_dir("omni_a");
    let cases: Value =
        serde_json::from_str(&std::fs::read_to_string(media_dir.join("reference.json")).unwrap()).unwrap();
    let rc = cases["cases"].as_array().unwrap().iter().find(|c| c["name"] == case).unwrap().clone();
    let mut lm = LoadedModel::open(&fixture_dir(model), DTypeChoice::Exact(DType::F32), &Device::Cpu).unwrap();
    let default_video = lm.processor.video.clone();
    let built = build_case(&mut lm, &default_video, &media_dir, &rc).unwrap();
    let params = GenerateParams {
        sampling: SamplingParams { greedy: true, ..Default::default() },
        max_new_tokens: 10,
        stop_ids: ids_of(&cases["eos_token_ids"]),
    };
    (lm, built, params)
}

#[test]
fn cancelling_mid_speech_stops_every_stage_cleanly() {
    // omni_c's audio_text speaks 59 frames when left alone; cancel at the second audio chunk.
    let (lm, built, params) = case_inputs("omni_c", "audio_text");
    let mut opts = SpeechOptions::new("serena", true, 0);
    opts.chunk_frames = 1;
    let (mut chunks, mut text_after_cancel) = (0, 0);
    let started = Instant::now();
    let ans = respond_spoken(&lm, &built.inputs, &params, &opts, Instant::now(), ThinkerSource::Run, |ev| match ev {
        ResponseEvent::Audio(_) => {
            chunks += 1;
            chunks < 2
        }
        ResponseEvent::Text(_) => {
            text_after_cancel += usize::from(chunks >= 2);
            true
        }
    })
    .unwrap();
    assert_eq!(ans.speech.stop, SpeechStop::Cancelled);
    assert!(ans.speech.frames < 59, "{} frames after a cancel", ans.speech.frames);
    assert_eq!(text_after_cancel, 0, "no event reaches the caller after it cancelled");
    // Every stage has ended (the threads are scoped): the call returned, quickly.
    assert!(started.elapsed().as_secs() < 30);
}

#[test]
fn an_answer_that_is_only_its_end_token_is_not_spoken() {
    // omni_a's text_system case: the thinker's first token is <|im_end|> (transformers 5.23's
    // generate() crashes on this; omnid answers with no speech).
    let (lm, built, params) = case_inputs("omni_a", "text_system");
    let opts = SpeechOptions::new("ethan", true, 0);
    let mut audio = 0;
    let ans = respond_spoken(&lm, &built.inputs, &params, &opts, Instant::now(), ThinkerSource::Run, |ev| {
        audio += usize::from(matches!(ev, ResponseEvent::Audio(_)));
        true
    })
    .unwrap();
    assert_eq!((ans.speech.stop, ans.speech.frames, ans.speech.samples, audio), (SpeechStop::NoText, 0, 0, 0));
    assert_eq!(ans.generation.token_ids.len(), 1);
}

#[test]
fn sampled_speech_is_seeded_and_stays_in_the_codebooks() {
    let (lm, built, params) = case_inputs("omni_c", "video");
    let run = |seed| {
        let mut opts = SpeechOptions::new("aiden", false, seed);
        opts.max_frames = 12;
        respond_spoken(&lm, &built.inputs, &params, &opts, Instant::now(), ThinkerSource::Run, |_| true).unwrap().speech
    };
    let (a, b, c) = (run(1), run(1), run(2));
    assert_eq!(a.codes, b.codes, "same seed, same speech");
    assert_ne!(a.codes, c.codes, "another seed, other speech");
    let (_, speech) = speech_models(&lm).unwrap();
    let codebook = speech.talker.config().codebook_size() as u32;
    assert!(a.codes.iter().flatten().all(|&c| c < codebook));
    assert!(a.codes.iter().all(|f| f.len() == 6));
}
