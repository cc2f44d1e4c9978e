"""Generation (chapter 5): prefill the prompt, then decode one token at a time.

``generate(model, idx, max_new_tokens, temperature=0.0, top_k=None, top_p=None, eos_id=None, seed=None,
use_cache=True)`` returns the prompt with the new tokens appended, ``(B, T + new)``. Temperature 0 is
greedy (argmax); above 0 it samples with its own ``torch.Generator`` seeded by ``seed``, so the same
seed gives the same tokens whatever else has drawn random numbers. With a cache, generation stays
token-for-token equal to running the whole sequence through the model at every step.
"""
from __future__ import annotations

import functools
import itertools
import os
import shutil
import types
from typing import Callable, Protocol, Sequence

import torch
from torch import nn

from slm_course.device import model_device
from slm_course.generate.cache import KVCache
from slm_course.model.surgery import input_major_weights
from slm_course.generate.sampling import greedy, logits_to_probs, sample


class Tokenizer(Protocol):
    def encode(self, text: str) -> list[int]: ...
    def decode(self, ids: list[int]) -> str: ...


def prefill(model: nn.Module, idx: torch.Tensor, cache: KVCache) -> torch.Tensor:
    """Run the prompt ``idx`` ``(B, T)`` into an empty ``cache``; return the last position's logits ``(B, vocab)``."""
    if cache.length != 0:
        raise ValueError(f"prefill needs an empty cache; this one already holds {cache.length} positions (truncate(0)).")
    return model(idx, cache=cache)[:, -1]


def decode_one_token(model: nn.Module, token: torch.Tensor, cache: KVCache, *, run_blocks=None,
                     run_head=None) -> torch.Tensor:
    """One decode step: ``token`` ``(B, 1)`` at position ``cache.length`` → next logits ``(B, vocab)``.

    ``run_blocks``, ``run_head``: stand-ins for the model's blocks and its output layer (:func:`compiled_blocks`,
    :func:`compiled_head`), or None for the model's own."""
    stand_ins = {name: f for name, f in (("run_blocks", run_blocks), ("run_head", run_head)) if f is not None}
    return model(token, cache=cache, **stand_ins)[:, -1]


# one torch.compile-d copy of a method per model structure (see _compiled_method); its graphs are cached inside
_COMPILED: dict[tuple, Callable] = {}


def model_structure(model: nn.Module) -> tuple:
    """What the compiled decode code of ``model`` depends on, as a hashable key: its class and configuration, each
    submodule's name and class, each parameter's and buffer's name, shape, strides, dtype and device. Two models
    with the same key (a model and its reloaded copy, say) run the same compiled code; models that differ (fp32,
    int8 and int4 versions of one model) get their own."""
    tensors = itertools.chain(model.named_parameters(), model.named_buffers())
    return (type(model), repr(getattr(model, "config", None)),
            tuple((name, type(module)) for name, module in model.named_modules()),
            tuple((name, tuple(t.shape), t.stride(), t.dtype, t.device.type) for name, t in tensors))


def _own_copy(function: Callable) -> Callable:
    """``function`` with a code object of its own. Dynamo keeps compiled graphs, and its limit on how many, per
    code object: a copy per model structure keeps each structure's graphs apart, so switching between models
    finds its graph at once and never recompiles, and one model's variants cannot use up another's limit."""
    return types.FunctionType(function.__code__.replace(), function.__globals__, function.__name__,
                              function.__defaults__, function.__closure__)


def _compiled_method(model: nn.Module, name: str) -> Callable[..., torch.Tensor]:
    """``type(model).<name>`` through ``torch.compile`` (made once per model structure), bound to ``model``."""
    compiler = [c for c in (os.environ.get("CXX"), "g++", "c++", "clang++") if c and shutil.which(c)]
    if not compiler and model_device(model).type == "cpu":
        raise RuntimeError("compile=True turns the model's blocks into C++ with torch.compile, which needs a C++ "
                           "compiler: install one (Debian: apt-get install g++), or generate without compile=True.")
    key = (name, model_structure(model))
    if key not in _COMPILED:
        _COMPILED[key] = torch.compile(_own_copy(getattr(type(model), name)), dynamic=True)
    return functools.partial(_COMPILED[key], model)


def compiled_blocks(model: nn.Module) -> Callable[..., torch.Tensor]:
    """``model.run_blocks`` compiled by ``torch.compile`` (chapter 10), for one-token decode steps.

    Decoding one token runs about 45 small operations per block, and in plain ("eager") PyTorch each costs a
    few microseconds of Python and dispatch before any arithmetic: for a quantized SmolLM2 that overhead is
    most of a step. ``torch.compile`` traces the blocks once into one graph and generates C++ that fuses the
    small element-wise operations, so a step makes a few hundred calls instead of about fourteen hundred (SmolLM2;
    checking that the compiled code still fits the model, dynamo's guards, costs about 2 ms of a step). The first
    step compiles (tens of seconds on 2 cores for SmolLM2; cached afterwards, also across ``generate`` calls);
    the cache length is a symbolic size, so later steps reuse the same code. The compiled code is kept per model
    structure (:func:`model_structure`): alternating between models (fp32, int8, int4) never recompiles, and a
    reloaded or rebuilt model of the same structure reuses its code. The results equal the eager
    blocks' up to float rounding (fused arithmetic rounds in another order); greedy tokens agree (tested).
    Needs a C++ compiler on a CPU (``torch.compile``'s CPU backend builds C++). Int4 layers keep PyTorch's int4
    kernel inside the graph; int8 layers compile to Inductor's own loop with AVX-512 code and keep PyTorch's int8
    kernel elsewhere (:func:`slm_course.quantize.compiled_int8_uses_loop` says which, and why).
    """
    return _compiled_method(model, "run_blocks")


def compiled_head(model: nn.Module) -> Callable[..., torch.Tensor]:
    """``model.output_logits`` (the final norm and the output layer) compiled by ``torch.compile``, for one-token
    decode steps beside :func:`compiled_blocks`. SmolLM2's output layer is its largest matrix (49,152 × 576, a
    fifth of the weights): with AVX-512 code an int8 one reads faster compiled (see ``int8_product``)."""
    return _compiled_method(model, "output_logits")


def next_token(logits: torch.Tensor, temperature: float = 0.0, top_k: int | None = None, top_p: float | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """Choose the next token ``(B, 1)`` from logits ``(B, vocab)``: argmax at temperature 0, else a draw."""
    if temperature == 0:
        return greedy(logits)
    return sample(logits_to_probs(logits, temperature, top_k, top_p), generator)


def _check_arguments(model: nn.Module, idx: torch.Tensor, max_new_tokens: int, temperature: float) -> None:
    model.check_input(idx)
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be a whole number ≥ 0, got {max_new_tokens!r}.")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature < 0:
        raise ValueError(f"temperature must be 0 (greedy) or above, got {temperature!r}.")


@torch.no_grad()
def generate(model: nn.Module, idx: torch.Tensor, max_new_tokens: int, *, temperature: float = 0.0,
             top_k: int | None = None, top_p: float | None = None, eos_id: int | None = None,
             seed: int | None = None, use_cache: bool = True, stop: Sequence[str] | str | None = None,
             tokenizer: Tokenizer | None = None, compile: bool = False) -> torch.Tensor:
    """Append up to ``max_new_tokens`` tokens to ``idx`` ``(B, T)``; returns ``(B, T + new)`` int64.

    Stops early once every row has produced ``eos_id`` (a finished row is padded with ``eos_id``)
    or, with a ``tokenizer``, once every row's new text contains one of the ``stop`` strings
    (the tokens stay; :func:`generate_text` cuts the text at the stop string).
    Past the model's context the cache is full: the remaining steps rerun the last
    ``context_length`` tokens without it, exactly as ``use_cache=False`` does throughout.
    The decoding reads input-major copies of the model's float32 linear weights
    (:func:`slm_course.model.surgery.input_major_weights`: same values and shapes, a faster layout for one-token
    steps on a CPU, kept for later calls); the model itself is left as it was found: same tensors, strides and
    values (its ``state_dict()`` unchanged), also when generation fails. ``compile=True`` runs the one-token steps through
    :func:`compiled_blocks` and :func:`compiled_head` (chapter 10: the first call compiles, for tens of seconds; the
    prompt's pass stays eager).
    """
    _check_arguments(model, idx, max_new_tokens, temperature)
    if isinstance(stop, str):
        stop = [stop]
    if stop and tokenizer is None:
        raise ValueError("stop strings need the tokenizer that decodes the tokens: pass tokenizer=...")
    was_training = model.training
    model.eval()
    generator = None
    if seed is not None:
        generator = torch.Generator(device=idx.device).manual_seed(int(seed))
    try:
        with input_major_weights(model):  # one-row matrix products read (in, out) weights faster on a CPU
            return _decode(model, idx.long(), max_new_tokens, temperature, top_k, top_p, eos_id, generator,
                           use_cache, stop, tokenizer, compile)
    finally:
        model.train(was_training)


def _decode(model: nn.Module, out: torch.Tensor, max_new_tokens: int, temperature: float, top_k: int | None,
            top_p: float | None, eos_id: int | None, generator: torch.Generator | None, use_cache: bool,
            stop: Sequence[str] | None, tokenizer: Tokenizer | None, compile: bool) -> torch.Tensor:
    """:func:`generate`'s loop on ``out`` ``(B, T)`` int64: the prefill, then one token at a time."""
    device, context, prompt_length = out.device, model.config.context_length, out.shape[1]
    done = torch.zeros(out.shape[0], dtype=torch.bool, device=device)
    compiled = compile and use_cache and max_new_tokens > 1
    run_blocks, run_head = (compiled_blocks(model), compiled_head(model)) if compiled else (None, None)
    # The cache holds what this call can reach (prompt + new tokens, at most the context): SmolLM2's full 8,192
    # positions would be 380 MB of zeros written for every call.
    cache = (KVCache.for_model(model, out.shape[0], min(context, prompt_length + max_new_tokens))
             if use_cache and max_new_tokens else None)
    for step in range(max_new_tokens):
        if cache is not None and cache.length < cache.max_length:
            logits = (prefill(model, out, cache) if step == 0
                      else decode_one_token(model, out[:, -1:], cache, run_blocks=run_blocks, run_head=run_head))
        else:  # no cache (or it is full): the whole window again
            logits = model(out[:, -context:])[:, -1]
        token = next_token(logits, temperature, top_k, top_p, generator)  # (B, 1)
        if eos_id is not None:
            token = token.masked_fill(done[:, None], eos_id)
            done = done | (token[:, 0] == eos_id)
        out = torch.cat([out, token], dim=1)
        if stop:
            for row in range(out.shape[0]):
                if not done[row] and any(s in tokenizer.decode(out[row, prompt_length:].tolist()) for s in stop):
                    done[row] = True
        if bool(done.all()):
            break
    return out


def generate_text(model: nn.Module, tokenizer: Tokenizer, prompt: str, max_new_tokens: int, *,
                  stop: Sequence[str] | str | None = None, eos_id: int | None = None, **options) -> str:
    """The text generated after ``prompt`` (one sequence), cut before the first ``stop`` string or ``eos_id``.

    ``options`` go to :func:`generate` (``temperature``, ``top_k``, ``top_p``, ``seed``, ``use_cache``).
    """
    ids = tokenizer.encode(prompt)
    if not ids:
        raise ValueError("the prompt encodes to no tokens: give at least one character.")
    device = model_device(model)
    out = generate(model, torch.tensor([ids], device=device), max_new_tokens, stop=stop, eos_id=eos_id,
                   tokenizer=tokenizer if stop else None, **options)
    new = out[0, len(ids):].tolist()
    if eos_id is not None and eos_id in new:
        new = new[: new.index(eos_id)]
    text = tokenizer.decode(new)
    for s in [stop] if isinstance(stop, str) else (stop or []):
        if s in text:
            text = text[: text.index(s)]
    return text


def decode_speed(model: nn.Module, prompt: torch.Tensor, new_tokens: int, *, repeats: int = 3,
                 compile: bool = False) -> tuple[float, torch.Tensor]:
    """Greedy decode tokens/s with the KV cache, the prompt's prefill left out, and the generated ids.

    The rate is ``new_tokens − 1`` tokens over the time a ``new_tokens`` generation takes beyond a one-token
    one (which is the prefill and the first choice), each the fastest of ``repeats`` runs (alternating, after
    a warm-up). A prompt's prefill is one batched pass whose cost depends on the prompt, not the step, so it
    is timed apart; chapters 6 and 10 and their benchmarks report decoding this way. ``compile``: see
    :func:`generate` (the warm-up then also compiles, so the rate leaves the compiling out).
    """
    import time

    if isinstance(new_tokens, bool) or not isinstance(new_tokens, int) or new_tokens < 2:
        raise ValueError(f"decode_speed times the steps after the first: new_tokens must be 2 or more, got {new_tokens!r}.")
    full = first = float("inf")
    generate(model, prompt, 3, compile=compile)  # warm up (make the input-major copies; compile decode steps)
    for _ in range(repeats):
        start = time.perf_counter()
        out = generate(model, prompt, new_tokens, compile=compile)
        full = min(full, time.perf_counter() - start)
        start = time.perf_counter()
        generate(model, prompt, 1, compile=compile)
        first = min(first, time.perf_counter() - start)
    return (new_tokens - 1) / max(full - first, 1e-9), out[:, prompt.shape[1]:]
