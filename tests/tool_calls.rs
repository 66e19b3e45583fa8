//! Function calling prompts: a conversation with tools, a call and its result renders through a
//! Qwen3-Omni checkpoint's own chat template exactly as transformers renders it
//! (tests/fixtures/tool_calls.json, from scripts/make_tool_template_fixture.py).

mod common;

use candle_core::Device;
use omnid::engine::model_dir::{DTypeChoice, LoadedModel};

#[test]
fn tools_calls_and_results_render_as_transformers_renders_them() {
    let fx: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(common::fixture_dir("tool_calls.json")).unwrap()).unwrap();
    let lm = LoadedModel::open(&common::fixture_dir("omni_a"), DTypeChoice::parse("f32").unwrap(), &Device::Cpu)
        .expect("omni_a fixture");
    let mut vars = serde_json::Map::new();
    vars.insert("tools".into(), fx["tools"].clone());
    let rendered = lm.template.render(&fx["messages"], true, &vars).unwrap();
    assert_eq!(rendered, fx["rendered"].as_str().unwrap());
}

#[test]
fn the_embedded_template_lays_tools_out_as_the_qwen_template_does() {
    let fx: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(common::fixture_dir("tool_calls.json")).unwrap()).unwrap();
    let lm = omnid::engine::embedded::load_embedded(candle_core::DType::F32, &Device::Cpu).unwrap();
    let mut vars = serde_json::Map::new();
    vars.insert("tools".into(), fx["tools"].clone());
    let rendered = lm.template.render(&fx["messages"], true, &vars).unwrap();
    assert_eq!(rendered, fx["rendered"].as_str().unwrap());
}
