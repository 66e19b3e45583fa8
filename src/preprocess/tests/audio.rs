//! Log-mel features and audio token counts against `WhisperFeatureExtractor` / the Qwen3-Omni processor.

use super::{as_usize, fixture, max_abs_diff, read_f32, read_json, usize_list};
use crate::models::audio_encoder::audio_token_count;
use crate::preprocess::audio_features::{log_mel_spectrogram, mel_frame_count};
use crate::preprocess::FeatureExtractorConfig;

/// Qwen3-Omni's feature-extractor values (spec §4.1) as they appear in its preprocessor_config.json.
const OMNI_FEATURE_CONFIG: &str = r#"{"feature_size": 128, "sampling_rate": 16000, "hop_length": 160,
    "n_fft": 400, "padding_value": 0.0, "dither": 0.0, "chunk_length": 300, "n_samples": 4800000,
    "nb_max_frames": 30000, "return_attention_mask": true, "feature_extractor_type": "WhisperFeatureExtractor"}"#;

/// The four test signals: slices of the stored WAV, and the WAV followed by itself reversed for 9.05 s.
fn signal(source: &str, offset: usize, n: usize) -> Vec<f32> {
    let wav = omnid_codecs::wav::read_wav(&fixture("speech_16k.wav")).expect("fixture WAV");
    assert_eq!(wav.sample_rate_hz, 16000);
    let full: Vec<f32> = match source {
        "wav" => wav.samples,
        "palindrome" => wav.samples.iter().chain(wav.samples.iter().rev()).copied().collect(),
        other => panic!("unknown source {other}"),
    };
    full[offset..offset + n].to_vec()
}

#[test]
fn log_mel_matches_whisper_feature_extractor() {
    let cfg = FeatureExtractorConfig::from_json_str(OMNI_FEATURE_CONFIG).unwrap();
    let cases = read_json("audio_cases.json");
    for case in cases["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let x = signal(case["source"].as_str().unwrap(), as_usize(&case["offset"]), as_usize(&case["n_samples"]));
        let mel = log_mel_spectrogram(&x, &cfg).unwrap();
        let n_frames = as_usize(&case["n_frames"]);
        assert_eq!((mel.n_mels, mel.n_frames), (128, n_frames), "{name}");
        assert_eq!(mel_frame_count(x.len(), 160), n_frames);
        assert_eq!(audio_token_count(mel.n_frames, 50), as_usize(&case["audio_tokens"]), "{name}: token count");

        // Stored frames, in full.
        let frames = usize_list(&case["frames"]);
        let want = read_f32(case["mel_file"].as_str().unwrap());
        let got: Vec<f32> = (0..128)
            .flat_map(|m| frames.iter().map(move |&t| (m, t)))
            .map(|(m, t)| mel.data[m * n_frames + t])
            .collect();
        let diff = max_abs_diff(&got, &want);
        eprintln!(
            "mel {name}: max |diff| vs numpy-path WhisperFeatureExtractor = {diff:.3e} over {} frames",
            frames.len()
        );
        assert!(diff <= 1e-5, "{name}: max |diff| {diff}");

        // Every frame, through its sum over the 128 bins.
        let sums = read_f32(case["frame_sums_file"].as_str().unwrap());
        assert_eq!(sums.len(), n_frames);
        for (t, &want_sum) in sums.iter().enumerate() {
            let got_sum: f64 = (0..128).map(|m| f64::from(mel.data[m * n_frames + t])).sum();
            assert!((got_sum - f64::from(want_sum)).abs() <= 1e-4, "{name} frame {t}: sum {got_sum} vs {want_sum}");
        }

        // The torch float32 path (what __call__ uses when torch is installed) differs from the numpy path by
        // up to ~4e-5 because of MKL's float32 FFT; we track it with a looser bound.
        if let Some(file) = case.get("torch_path_file").and_then(|v| v.as_str()) {
            let torch_path = read_f32(file);
            let diff = max_abs_diff(&mel.data, &torch_path);
            eprintln!("mel {name}: max |diff| vs torch-path WhisperFeatureExtractor = {diff:.3e}");
            assert!(diff <= 6e-5, "{name}: torch path max |diff| {diff}");
        }
    }
}

#[test]
fn token_counts_match_the_processor() {
    let cases = read_json("audio_cases.json");
    for row in cases["token_table"].as_array().unwrap() {
        let frames = mel_frame_count(as_usize(&row["n_samples"]), 160);
        assert_eq!(frames, as_usize(&row["n_frames"]));
        assert_eq!(audio_token_count(frames, 50), as_usize(&row["tokens"]), "{row}");
    }
}
