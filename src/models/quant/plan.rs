//! Which weights are quantized, to which block format: `--quant SCHEME[,CLASS=TYPE...]`.
//!
//! Tensors are sorted into classes by their checkpoint name (the names are the same in every
//! Qwen3-Omni and Qwen3-VL checkpoint), and each class gets one ggml block format. The schemes
//! follow what llama.cpp's `Q4_K_M`-style mixes learnt: the bulk of the parameters (the routed
//! experts) take the smallest format, the few quality-sensitive matrices (attention, output
//! head) a larger one, and the encoders, whose errors feed every later token, stay at 8 bits.
//!
//! Never quantized: routers (`mlp.gate`, `shared_expert_gate`: small, and a rounding error there
//! changes which experts run), norms, biases, convolutions and position tables.
//!
//! A block format packs a row in blocks of 32 (legacy) or 256 (k-quants) values, so a row whose
//! length is not a multiple of 256 falls back to Q8_0 (llama.cpp picks Q5_0 for Q4_K, but candle
//! multiplies Q5_0 with scalar code, ten times slower than its SIMD Q8_0; the talker's 384-wide
//! expert rows are the case, 0.4 GB more at Q8_0). A row that fits no 32-value block stays dense.

use candle_core::quantized::GgmlDType;

/// What a weight matrix is for, decided from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TensorClass {
    /// Routed expert matrices of a MoE layer (~95% of a 30B-A3B model's parameters).
    Experts,
    /// q/k/v/o projections of the decoders.
    Attention,
    /// Dense feed-forward matrices: dense MLPs, the talker's shared expert, projections between models.
    Ffn,
    /// Token and codec embedding tables.
    Embedding,
    /// Output heads (`lm_head`, `codec_head`).
    Head,
    /// The vision and audio encoders.
    Encoder,
    /// Code2Wav, the speech decoder.
    Codec,
}

impl TensorClass {
    pub const ALL: [TensorClass; 7] = [
        TensorClass::Experts,
        TensorClass::Attention,
        TensorClass::Ffn,
        TensorClass::Embedding,
        TensorClass::Head,
        TensorClass::Encoder,
        TensorClass::Codec,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            TensorClass::Experts => "experts",
            TensorClass::Attention => "attention",
            TensorClass::Ffn => "ffn",
            TensorClass::Embedding => "embedding",
            TensorClass::Head => "head",
            TensorClass::Encoder => "encoder",
            TensorClass::Codec => "codec",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|c| *c == self).unwrap_or(0)
    }

    /// The class of a checkpoint tensor, or `None` for tensors that are never quantized.
    pub fn of(name: &str) -> Option<TensorClass> {
        let is = |part: &str| name.contains(part);
        if !name.ends_with(".weight") && !name.ends_with("_proj") {
            return None; // biases, scales, norms' `gamma`, fused expert tensors are handled by the caller
        }
        if name.ends_with(".gate.weight") || is("shared_expert_gate") || is("norm") || is("pos_embed") {
            return None;
        }
        if name.starts_with("code2wav.") {
            return Some(TensorClass::Codec);
        }
        if is("audio_tower.") || is("visual.") {
            return Some(TensorClass::Encoder);
        }
        if is(".experts.") || name.ends_with(".experts.gate_up_proj") || name.ends_with(".experts.down_proj") {
            return Some(TensorClass::Experts);
        }
        if is("embed_tokens") || is("codec_embedding") || is("code_embedding") {
            return Some(TensorClass::Embedding);
        }
        if is("lm_head") || is("codec_head") {
            return Some(TensorClass::Head);
        }
        if is("self_attn.") {
            return Some(TensorClass::Attention);
        }
        Some(TensorClass::Ffn)
    }
}

/// The block formats `--quant` accepts: those candle quantizes and multiplies with SIMD code on
/// the CPU (and on CUDA).
pub const FORMATS: &[(&str, GgmlDType)] = &[
    ("q4_0", GgmlDType::Q4_0),
    ("q8_0", GgmlDType::Q8_0),
    ("q4_k", GgmlDType::Q4K),
    ("q5_k", GgmlDType::Q5K),
    ("q6_k", GgmlDType::Q6K),
];

/// The lower-case name of a format (`q4_k`), `dense` for `None`.
pub fn format_name(t: Option<GgmlDType>) -> &'static str {
    match t {
        None => "dense",
        Some(t) => FORMATS.iter().find(|(_, f)| *f == t).map_or("other", |(n, _)| n),
    }
}

/// Named schemes: per class, in [`TensorClass::ALL`] order.
const SCHEMES: &[(&str, [Option<GgmlDType>; 7])] = {
    use GgmlDType::{Q4K, Q6K, Q8_0};
    &[
        ("q8_0", [Some(Q8_0), Some(Q8_0), Some(Q8_0), Some(Q8_0), Some(Q8_0), Some(Q8_0), Some(Q8_0)]),
        ("q6_k", [Some(Q6K), Some(Q6K), Some(Q6K), Some(Q6K), Some(Q6K), Some(Q8_0), Some(Q8_0)]),
        ("q4_k", [Some(Q4K), Some(Q6K), Some(Q4K), Some(Q4K), Some(Q6K), Some(Q8_0), Some(Q8_0)]),
    ]
};

/// A per-class choice of block formats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuantPlan {
    /// The spec it was parsed from, normalised (for logs, reports and the saved file).
    spec: String,
    per_class: [Option<GgmlDType>; 7],
}

impl QuantPlan {
    /// Parses `SCHEME[,CLASS=FORMAT...]`, e.g. `q4_k` or `q4_k,attention=q8_0,encoder=dense`.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut parts = spec.split(',').map(str::trim);
        let scheme = parts.next().unwrap_or_default().to_ascii_lowercase();
        let schemes: Vec<&str> = SCHEMES.iter().map(|(n, _)| *n).collect();
        let Some((_, base)) = SCHEMES.iter().find(|(n, _)| *n == scheme) else {
            return Err(format!("unknown quantization scheme {scheme:?}; choose one of {}", schemes.join(", ")));
        };
        let mut per_class = *base;
        for part in parts {
            let Some((class, format)) = part.split_once('=') else {
                return Err(format!("{part:?} is not CLASS=FORMAT (e.g. attention=q8_0)"));
            };
            let class = class.trim().to_ascii_lowercase();
            let Some(c) = TensorClass::ALL.iter().find(|c| c.name() == class) else {
                let names: Vec<&str> = TensorClass::ALL.iter().map(|c| c.name()).collect();
                return Err(format!("unknown tensor class {class:?}; classes are {}", names.join(", ")));
            };
            per_class[c.index()] = parse_format(format.trim())?;
        }
        // Normalised: the scheme, then only the classes that differ from it.
        let mut spec = scheme.clone();
        for c in TensorClass::ALL {
            if per_class[c.index()] != base[c.index()] {
                spec.push_str(&format!(",{}={}", c.name(), format_name(per_class[c.index()])));
            }
        }
        Ok(Self { spec, per_class })
    }

    /// The normalised spec: the scheme followed by the overrides that change it.
    pub fn spec(&self) -> &str {
        &self.spec
    }

    /// `experts=q4_k attention=q6_k …`, every class spelled out.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = TensorClass::ALL
            .iter()
            .map(|c| format!("{}={}", c.name(), format_name(self.per_class[c.index()])))
            .collect();
        parts.join(" ")
    }

    /// The format planned for a class, before any row-length fallback.
    pub fn format_of(&self, class: TensorClass) -> Option<GgmlDType> {
        self.per_class[class.index()]
    }

    /// The format for the tensor `name` whose rows hold `row_len` values, or `None` to keep it dense.
    pub fn format_for(&self, name: &str, row_len: usize) -> Option<GgmlDType> {
        let class = TensorClass::of(name)?;
        fit_rows(self.per_class[class.index()]?, row_len)
    }
}

fn parse_format(s: &str) -> Result<Option<GgmlDType>, String> {
    let lower = s.to_ascii_lowercase();
    if matches!(lower.as_str(), "dense" | "none" | "f32" | "f16" | "bf16") {
        return Ok(None);
    }
    FORMATS.iter().find(|(n, _)| *n == lower).map(|(_, t)| Some(*t)).ok_or_else(|| {
        let names: Vec<&str> = FORMATS.iter().map(|(n, _)| *n).collect();
        format!("unknown block format {s:?}; formats are {} and dense", names.join(", "))
    })
}

/// `t`, or the format to use when rows of `row_len` values do not fill its blocks.
pub fn fit_rows(t: GgmlDType, row_len: usize) -> Option<GgmlDType> {
    if row_len.is_multiple_of(t.block_size()) {
        return Some(t);
    }
    match t {
        GgmlDType::Q4K | GgmlDType::Q5K | GgmlDType::Q6K => fit_rows(GgmlDType::Q8_0, row_len),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_checkpoint_names() {
        let cases = [
            ("thinker.model.layers.3.mlp.experts.7.down_proj.weight", Some(TensorClass::Experts)),
            ("model.language_model.layers.0.mlp.experts.gate_up_proj", Some(TensorClass::Experts)),
            ("thinker.model.layers.3.mlp.gate.weight", None),
            ("talker.model.layers.0.mlp.shared_expert_gate.weight", None),
            ("talker.model.layers.0.mlp.shared_expert.up_proj.weight", Some(TensorClass::Ffn)),
            ("thinker.model.layers.0.self_attn.q_proj.weight", Some(TensorClass::Attention)),
            ("thinker.model.layers.0.self_attn.q_proj.bias", None),
            ("thinker.model.layers.0.self_attn.q_norm.weight", None),
            ("thinker.model.embed_tokens.weight", Some(TensorClass::Embedding)),
            ("thinker.lm_head.weight", Some(TensorClass::Head)),
            ("talker.codec_head.weight", Some(TensorClass::Head)),
            ("thinker.audio_tower.layers.0.self_attn.k_proj.weight", Some(TensorClass::Encoder)),
            ("thinker.visual.blocks.0.attn.qkv.weight", Some(TensorClass::Encoder)),
            ("thinker.visual.pos_embed.weight", None),
            ("code2wav.pre_transformer.layers.0.mlp.up_proj.weight", Some(TensorClass::Codec)),
        ];
        for (name, want) in cases {
            assert_eq!(TensorClass::of(name), want, "{name}");
        }
    }

    #[test]
    fn schemes_and_overrides_parse() {
        let p = QuantPlan::parse("q4_k, attention=q8_0 ,encoder=dense").unwrap();
        assert_eq!(p.format_of(TensorClass::Experts), Some(GgmlDType::Q4K));
        assert_eq!(p.format_of(TensorClass::Attention), Some(GgmlDType::Q8_0));
        assert_eq!(p.format_of(TensorClass::Encoder), None);
        assert_eq!(p.format_of(TensorClass::Head), Some(GgmlDType::Q6K));
        assert_eq!(p.spec(), "q4_k,attention=q8_0,encoder=dense");
        assert_eq!(QuantPlan::parse(p.spec()).unwrap(), p);
        assert_eq!(QuantPlan::parse("Q4_K,experts=q4_k").unwrap().spec(), "q4_k");
        for (bad, why) in [
            ("q3", "unknown quantization scheme \"q3\""),
            ("q4_k,experts", "is not CLASS=FORMAT"),
            ("q4_k,mlp=q8_0", "unknown tensor class \"mlp\""),
            ("q4_k,experts=q2", "unknown block format \"q2\""),
        ] {
            let e = QuantPlan::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn rows_that_do_not_fill_k_blocks_fall_back_to_q8_0() {
        assert_eq!(fit_rows(GgmlDType::Q4K, 2048), Some(GgmlDType::Q4K));
        assert_eq!(fit_rows(GgmlDType::Q4K, 384), Some(GgmlDType::Q8_0)); // talker experts' down_proj
        assert_eq!(fit_rows(GgmlDType::Q6K, 1152), Some(GgmlDType::Q8_0)); // vision width
        assert_eq!(fit_rows(GgmlDType::Q8_0, 40), None);
        let p = QuantPlan::parse("q4_k").unwrap();
        assert_eq!(p.format_for("thinker.model.layers.0.mlp.gate.weight", 2048), None);
        assert_eq!(p.format_for("talker.model.layers.0.mlp.experts.1.down_proj.weight", 384), Some(GgmlDType::Q8_0));
    }
}
