//! Chat templates: the GGUF's own Jinja `tokenizer.chat_template`, or a built-in preset.
//!
//! Both are rendered by minijinja with Python string methods enabled (templates written for
//! Hugging Face call `.strip()`, `.startswith()` …), so a preset is just another template
//! string and there is one rendering path.

use minijinja::{Environment, ErrorKind};
use serde::{Deserialize, Serialize};

use crate::bail;
use crate::error::{Error, ErrorCode, Result};
use crate::gguf::Metadata;
use crate::tokenizer::Tokenizer;

/// The work one render may do, in minijinja's fuel (about one unit per instruction, and one per
/// ~64 bytes it allocates): a template comes from the model file, so a hostile one could
/// otherwise loop or allocate without end. The longest real template we ship or test (Qwen 3's,
/// with tools) rendering a 100-turn conversation uses under a tenth of it.
pub const TEMPLATE_FUEL: u64 = 1_000_000;

/// The longest rendered chat accepted, in bytes: far more than any context window holds
/// (a 128k-token prompt is about 0.5 MB of text), small enough to be no threat to memory.
pub const MAX_TEMPLATE_OUTPUT: usize = 4 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Self {
        Self { role: role.into(), content: content.into() }
    }
}

/// Built-in templates, by name. Each renders `messages` (system, user, assistant turns) and,
/// with `add_generation_prompt`, opens the assistant's turn.
pub const PRESETS: &[(&str, &str)] = &[
    // TinyLlama-1.1B-Chat / Zephyr.
    (
        "zephyr",
        "{%- for m in messages -%}\
         {{ '<|' + m.role + '|>\\n' + m.content + eos_token + '\\n' }}\
         {%- endfor -%}\
         {%- if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif -%}",
    ),
    (
        "chatml",
        "{%- for m in messages -%}\
         {{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}\
         {%- endfor -%}\
         {%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif -%}",
    ),
    (
        "llama3",
        "{{ bos_token }}\
         {%- for m in messages -%}\
         {{ '<|start_header_id|>' + m.role + '<|end_header_id|>\\n\\n' + m.content | trim + '<|eot_id|>' }}\
         {%- endfor -%}\
         {%- if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif -%}",
    ),
    // Mistral Instruct: the system prompt goes in front of the first user turn.
    (
        "mistral",
        "{{ bos_token }}\
         {%- set ns = namespace(system='') -%}\
         {%- for m in messages -%}\
         {%- if m.role == 'system' -%}{%- set ns.system = m.content + '\\n\\n' -%}\
         {%- elif m.role == 'user' -%}{{ '[INST] ' + ns.system + m.content + ' [/INST]' }}{%- set ns.system = '' -%}\
         {%- else -%}{{ m.content + eos_token }}{%- endif -%}\
         {%- endfor -%}",
    ),
    // Gemma: roles user/model, no system role (it is folded into the first user turn).
    (
        "gemma",
        "{{ bos_token }}\
         {%- set ns = namespace(system='') -%}\
         {%- for m in messages -%}\
         {%- if m.role == 'system' -%}{%- set ns.system = m.content + '\\n\\n' -%}\
         {%- else -%}\
         {{ '<start_of_turn>' + ('model' if m.role == 'assistant' else 'user') + '\\n' + ns.system + m.content | trim + '<end_of_turn>\\n' }}\
         {%- set ns.system = '' -%}\
         {%- endif -%}\
         {%- endfor -%}\
         {%- if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif -%}",
    ),
];

pub fn preset_names() -> Vec<&'static str> {
    PRESETS.iter().map(|(n, _)| *n).collect()
}

#[derive(Debug, Clone)]
pub struct ChatTemplate {
    /// "gguf" for the file's own template, otherwise the preset name.
    pub name: String,
    source: String,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    pub fn preset(name: &str, tokenizer: &Tokenizer) -> Result<Self> {
        let Some((_, source)) = PRESETS.iter().find(|(n, _)| *n == name) else {
            bail!(InvalidRequest, "unknown chat template '{name}'; presets are {}", preset_names().join(", "));
        };
        Self::new(name, source, tokenizer)
    }

    fn new(name: &str, source: &str, tokenizer: &Tokenizer) -> Result<Self> {
        let template = Self {
            name: name.into(),
            source: source.into(),
            bos_token: tokenizer.token_text(tokenizer.bos),
            eos_token: tokenizer.token_text(tokenizer.eos),
        };
        // Parse once now so a broken template fails at load, not at the first question.
        template.environment().template_from_str(&template.source)?;
        Ok(template)
    }

    /// The template a model should use: `requested` if given, the GGUF's own if it has one,
    /// otherwise a preset guessed from the vocabulary (as llama.cpp does).
    pub fn for_model(requested: Option<&str>, md: Metadata<'_>, tokenizer: &Tokenizer) -> Result<Self> {
        if let Some(name) = requested.filter(|n| *n != "auto") {
            return Self::preset(name, tokenizer);
        }
        if let Some(source) = md.opt_string("tokenizer.chat_template")? {
            return Self::new("gguf", source, tokenizer);
        }
        let has = |t: &str| tokenizer.token_to_id(t).is_some();
        let guess = if has("<start_of_turn>") {
            "gemma"
        } else if has("<|im_start|>") {
            "chatml"
        } else if has("<|start_header_id|>") {
            "llama3"
        } else if has("[INST]") {
            "mistral"
        } else {
            "zephyr"
        };
        Self::preset(guess, tokenizer)
    }

    fn environment(&self) -> Environment<'static> {
        let mut env = Environment::new();
        // As Hugging Face's apply_chat_template (and llama.cpp's renderer) configure Jinja:
        // templates are written for these, e.g. a newline after `{% endif %}` is not output.
        // Only custom delimiters can make the builder fail.
        if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).build() {
            env.set_syntax(syntax);
        }
        env.set_fuel(Some(TEMPLATE_FUEL));
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> std::result::Result<String, minijinja::Error> {
            Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
        });
        env
    }

    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        if messages.is_empty() {
            bail!(InvalidRequest, "a chat needs at least one message");
        }
        for m in messages {
            if !matches!(m.role.as_str(), "system" | "user" | "assistant") {
                bail!(InvalidRequest, "message role '{}' is not one of system, user, assistant", m.role);
            }
        }
        match self.render_as_given(messages, add_generation_prompt) {
            // Templates of models trained without a system role (Mistral Instruct, Gemma) refuse
            // one; the instructions then go in front of the first user turn, as those models'
            // own chat front ends do.
            Err(e) if messages[0].role == "system" && messages.get(1).is_some_and(|m| m.role == "user") => {
                let mut folded = messages[1..].to_vec();
                folded[0].content = format!("{}\n\n{}", messages[0].content, messages[1].content);
                self.render_as_given(&folded, add_generation_prompt).map_err(|_| e)
            }
            result => result,
        }
    }

    fn render_as_given(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let env = self.environment();
        let template = env.template_from_str(&self.source)?;
        let mut out = BoundedOutput(Vec::new());
        template.render_captured_to(
            minijinja::context! {
                messages => minijinja::Value::from_iter(
                    messages.iter().map(|m| minijinja::context! { role => &m.role, content => &m.content })
                ),
                add_generation_prompt => add_generation_prompt,
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
            },
            &mut out,
        )?;
        String::from_utf8(out.0).map_err(|_| Error::new(ErrorCode::Template, "the rendered chat is not valid UTF-8"))
    }
}

/// Where a render writes: refuses to grow past [`MAX_TEMPLATE_OUTPUT`], so the error comes
/// before the memory is spent rather than after.
struct BoundedOutput(Vec<u8>);

impl std::io::Write for BoundedOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > MAX_TEMPLATE_OUTPUT {
            return Err(std::io::Error::other(format!("the rendered chat is longer than {MAX_TEMPLATE_OUTPUT} bytes")));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
