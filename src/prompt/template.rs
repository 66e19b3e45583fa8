//! The chat template a checkpoint ships, rendered the way transformers renders it
//! (`trim_blocks`, `lstrip_blocks`, loop controls, Python string/dict/list methods,
//! `raise_exception`, `strftime_now`, and a `tojson` that writes what Python's
//! `json.dumps(ensure_ascii=False)` writes).
//!
//! Where the template lives, in the order transformers 5.x looks: `chat_template.jinja`,
//! `chat_template.json` (`{"chat_template": "…"}`), `tokenizer_config.json`
//! (`"chat_template"`: a string, or a list of `{name, template}` of which `default` is used).

use std::path::{Path, PathBuf};

use minijinja::value::Kwargs;
use minijinja::{Environment, Error as JinjaError, ErrorKind, Value};

/// Why a template could not be loaded or rendered.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("{path}: {problem}")]
    File { path: PathBuf, problem: String },
    #[error("{dir}: the checkpoint ships no chat template (looked for chat_template.jinja, chat_template.json and \"chat_template\" in tokenizer_config.json)")]
    Missing { dir: PathBuf },
    #[error("chat template ({source_name}): {problem}")]
    Render { source_name: String, problem: String },
}

/// A compiled chat template plus the special-token strings templates may refer to.
pub struct ChatTemplate {
    env: Environment<'static>,
    source_name: String,
    special: Vec<(String, String)>,
}

impl ChatTemplate {
    /// Finds and compiles the template of a model directory.
    pub fn from_dir(dir: &Path) -> Result<Self, TemplateError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p)
                .map_err(|e| TemplateError::File { path: p.into(), problem: format!("cannot read: {e}") })
        };
        let tok_cfg_path = dir.join("tokenizer_config.json");
        let tok_cfg: Option<serde_json::Value> = if tok_cfg_path.exists() {
            Some(serde_json::from_str(&read(&tok_cfg_path)?).map_err(|e| TemplateError::File {
                path: tok_cfg_path.clone(),
                problem: format!("invalid JSON: {e}"),
            })?)
        } else {
            None
        };
        let jinja = dir.join("chat_template.jinja");
        let json = dir.join("chat_template.json");
        let (source, path) = if jinja.exists() {
            (read(&jinja)?, jinja)
        } else if json.exists() {
            let v: serde_json::Value = serde_json::from_str(&read(&json)?)
                .map_err(|e| TemplateError::File { path: json.clone(), problem: format!("invalid JSON: {e}") })?;
            let t = v.get("chat_template").and_then(|t| t.as_str()).ok_or_else(|| TemplateError::File {
                path: json.clone(),
                problem: "has no \"chat_template\" string".into(),
            })?;
            (t.to_string(), json)
        } else if let Some(t) = tok_cfg.as_ref().and_then(|c| c.get("chat_template")) {
            let text = match t {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Array(list) => list
                    .iter()
                    .find(|e| e.get("name").and_then(|n| n.as_str()) == Some("default"))
                    .and_then(|e| e.get("template")?.as_str())
                    .ok_or_else(|| TemplateError::File {
                        path: tok_cfg_path.clone(),
                        problem: "chat_template list has no entry named \"default\"".into(),
                    })?
                    .to_string(),
                _ => {
                    return Err(TemplateError::File {
                        path: tok_cfg_path.clone(),
                        problem: "chat_template is neither a string nor a list".into(),
                    })
                }
            };
            (text, tok_cfg_path.clone())
        } else {
            return Err(TemplateError::Missing { dir: dir.into() });
        };
        let mut special = Vec::new();
        if let Some(cfg) = &tok_cfg {
            for key in ["bos_token", "eos_token", "pad_token", "unk_token"] {
                let v = match cfg.get(key) {
                    Some(serde_json::Value::String(s)) => Some(s.clone()),
                    Some(obj @ serde_json::Value::Object(_)) => {
                        obj.get("content").and_then(|c| c.as_str()).map(String::from)
                    }
                    _ => None,
                };
                if let Some(v) = v {
                    special.push((key.to_string(), v));
                }
            }
        }
        Self::from_source(&source, &path.display().to_string(), special)
    }

    /// Compiles template text (used for the embedded default model and tests).
    pub fn from_source(source: &str, source_name: &str, special: Vec<(String, String)>) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()
                .expect("static syntax config; this is a bug"),
        );
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_filter("tojson", tojson);
        env.add_function("raise_exception", |msg: String| -> Result<Value, JinjaError> {
            Err(JinjaError::new(ErrorKind::InvalidOperation, msg))
        });
        env.add_function("strftime_now", |_fmt: String| -> String {
            // Templates use this for a "today is" line; omnid renders it deterministically.
            String::new()
        });
        env.add_template_owned("chat", source.to_string()).map_err(|e| TemplateError::Render {
            source_name: source_name.into(),
            problem: format!("does not compile: {e}"),
        })?;
        Ok(Self { env, source_name: source_name.into(), special })
    }

    /// Renders `messages` (HF chat format, as JSON) with `add_generation_prompt` and any
    /// extra template variables (`tools`, `enable_thinking`, …).
    pub fn render(
        &self,
        messages: &serde_json::Value,
        add_generation_prompt: bool,
        extra: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<String, TemplateError> {
        let mut ctx = serde_json::Map::new();
        for (k, v) in &self.special {
            ctx.insert(k.clone(), serde_json::Value::String(v.clone()));
        }
        for (k, v) in extra {
            ctx.insert(k.clone(), v.clone());
        }
        ctx.insert("messages".into(), messages.clone());
        ctx.insert("add_generation_prompt".into(), add_generation_prompt.into());
        let tmpl = self.env.get_template("chat").expect("added in the constructor; this is a bug");
        tmpl.render(Value::from(minijinja::value::Serde(&ctx)))
            .map_err(|e| TemplateError::Render { source_name: self.source_name.clone(), problem: format!("{e:#}") })
    }
}

/// `tojson` as transformers defines it: `json.dumps(x, ensure_ascii=False, indent=…)`, i.e.
/// `", "` / `": "` separators without indent, `","` / `": "` with one, no HTML escaping.
fn tojson(value: Value, kwargs: Kwargs) -> Result<Value, JinjaError> {
    let mut json = serde_json::to_value(&value)
        .map_err(|e| JinjaError::new(ErrorKind::InvalidOperation, format!("tojson: {e}")))?;
    let indent: Option<usize> = kwargs.get("indent")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    // `ensure_ascii` is accepted for compatibility; transformers always passes False.
    let _: Option<bool> = kwargs.get("ensure_ascii")?;
    kwargs.assert_all_used()?;
    if sort_keys == Some(true) {
        sort_json_keys(&mut json);
    }
    let mut out = String::new();
    write_py_json(&json, indent, 0, &mut out);
    Ok(Value::from_safe_string(out))
}

fn sort_json_keys(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<(String, serde_json::Value)> = std::mem::take(map).into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            for (k, mut val) in entries {
                sort_json_keys(&mut val);
                map.insert(k, val);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(sort_json_keys),
        _ => {}
    }
}

fn write_py_json(v: &serde_json::Value, indent: Option<usize>, level: usize, out: &mut String) {
    use serde_json::Value as J;
    let newline = |out: &mut String, level: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * level));
        }
    };
    let item_sep = if indent.is_some() { "," } else { ", " };
    match v {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::Number(n) => {
            // Python prints floats with a fractional part ("1.0"); serde_json does too for f64.
            out.push_str(&n.to_string())
        }
        J::String(s) => out.push_str(&serde_json::to_string(s).expect("strings always serialise; this is a bug")),
        J::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, it) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, level + 1);
                write_py_json(it, indent, level + 1, out);
            }
            newline(out, level);
            out.push(']');
        }
        J::Object(map) => {
            if map.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            for (i, (k, it)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, level + 1);
                out.push_str(&serde_json::to_string(k).expect("strings always serialise; this is a bug"));
                out.push_str(": ");
                write_py_json(it, indent, level + 1, out);
            }
            newline(out, level);
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tojson_matches_python_json_dumps() {
        let t = ChatTemplate::from_source("{{ x | tojson }}|{{ x | tojson(indent=2) }}", "t", vec![]).unwrap();
        let mut extra = serde_json::Map::new();
        extra.insert(
            "x".into(),
            serde_json::json!({"name": "get_weather", "args": {"city": "Zürich <1>", "n": [1, 2]}}),
        );
        let out = t.render(&serde_json::json!([]), false, &extra).unwrap();
        let (flat, pretty) = out.split_once('|').unwrap();
        assert_eq!(flat, r#"{"name": "get_weather", "args": {"city": "Zürich <1>", "n": [1, 2]}}"#);
        assert_eq!(pretty, "{\n  \"name\": \"get_weather\",\n  \"args\": {\n    \"city\": \"Zürich <1>\",\n    \"n\": [\n      1,\n      2\n    ]\n  }\n}");
    }

    #[test]
    fn renders_python_style_methods_and_namespaces() {
        // Expected output produced by Python jinja2 with transformers' settings (trim_blocks eats
        // the newline after a block tag).
        let src = "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}<{{ m.role }}>{{ m.content.strip() }}{% if m.content.strip().startswith('Hi') %}!{% endif %}\n{% endfor %}{{ ns.n }}{% if add_generation_prompt %}<a>{% endif %}";
        let t = ChatTemplate::from_source(src, "t", vec![]).unwrap();
        let msgs =
            serde_json::json!([{"role": "user", "content": "  Hi there "}, {"role": "assistant", "content": "yo"}]);
        assert_eq!(t.render(&msgs, true, &Default::default()).unwrap(), "<user>Hi there!<assistant>yo2<a>");
    }

    #[test]
    fn raise_exception_is_an_error_with_the_message() {
        let t = ChatTemplate::from_source("{{ raise_exception('no system role here') }}", "t", vec![]).unwrap();
        let e = t.render(&serde_json::json!([]), false, &Default::default()).unwrap_err().to_string();
        assert!(e.contains("no system role here"), "{e}");
    }
}
