"""Hugging Face models for export_checkpoint: which logits fisheval scores (the read-out),
example inputs from the model's configuration, and tracing (transformers models do not
script). Used by export_checkpoint.py; transformers and peft are imported only when the model
is one of theirs.

Read-outs (docs/HUGGING_FACE.md):
  t5-first-token   encoder-decoder language models (T5): the logits of the first decoder
                   position over the whole vocabulary, the decoder started with the model's
                   decoder_start_token_id; the target is the first token of the label (the iEF
                   paper's read-out for GLUE with T5). Inputs: input_ids, attention_mask.
  logits           classification heads (ViTForImageClassification: pixel_values;
                   *ForSequenceClassification: input_ids, attention_mask): the model's logits.
  token-logits     causal language models: the logits of every position [N, T, V].
"""
import torch


def is_hf_model(model) -> bool:
    config = getattr(model, "config", None)
    return config is not None and hasattr(config, "model_type")


def hf_config(model):
    """The transformers configuration of a model or of the model under a PEFT adapter."""
    return model.config


def t5_first_token(model, inputs):
    """Logits of the first decoder position: [N, vocab]."""
    config = hf_config(model)
    start = torch.full((inputs["input_ids"].shape[0], 1), config.decoder_start_token_id, dtype=torch.long,
                       device=inputs["input_ids"].device)
    out = model(input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"), decoder_input_ids=start,
                use_cache=False, return_dict=True)
    return out.logits[:, 0, :]


t5_first_token.name = "t5-first-token"


def logits(model, inputs):
    return model(**inputs, return_dict=True).logits


logits.name = "logits"


def token_logits(model, inputs):
    return model(**inputs, use_cache=False, return_dict=True).logits


token_logits.name = "token-logits"


def default_readout(model):
    config = hf_config(model)
    names = " ".join(getattr(config, "architectures", None) or [])
    if config.is_encoder_decoder:
        return t5_first_token
    if "CausalLM" in names or getattr(config, "model_type", "") in ("gpt2", "llama", "mistral", "qwen2", "opt"):
        return token_logits
    return logits


def example_inputs_for(model, readout, batch: int = 2, length: int = 8):
    """Inputs of the right names, shapes and types for tracing, from the configuration."""
    config = hf_config(model)
    if getattr(config, "model_type", "") in ("vit", "deit", "beit", "swin", "convnext", "dinov2"):
        size = config.image_size if isinstance(config.image_size, int) else config.image_size[0]
        return {"pixel_values": torch.randn(batch, config.num_channels, size, size)}
    vocab = config.vocab_size
    ids = torch.randint(2, max(3, min(vocab, 1000)), (batch, length))
    return {"input_ids": ids, "attention_mask": torch.ones(batch, length, dtype=torch.long)}


def defaults(model, readout, example_inputs, method):
    """(readout, example_inputs, method) for export_checkpoint: unchanged for other models;
    for a Hugging Face model the default read-out, example inputs from its configuration, and
    tracing."""
    if not is_hf_model(model):
        return readout, example_inputs, method
    readout = readout or default_readout(model)
    if example_inputs is None:
        example_inputs = example_inputs_for(model, readout)
    dtype = next(model.parameters()).dtype
    example_inputs = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in dict(example_inputs).items()}
    return readout, example_inputs, "trace"
