"""Model merging: linear, task arithmetic, SLERP and TIES on the weights of finetunes of one base (chapter 8).

Two finetunes of the same base model sit close together in weight space, so their weights can be
combined without any training:

- **linear**: a weighted average Σ wᵢ θᵢ / Σ wᵢ (model soups);
- **task arithmetic**: base + λ Σ wᵢ τᵢ, with the *task vector* τᵢ = θᵢ − θ_base (Ilharco et al., 2023);
- **SLERP**: along the great circle between two weight tensors instead of the straight chord, so the
  norm does not shrink midway; nearly (anti)parallel tensors fall back to linear interpolation;
- **TIES**: trim each task vector to its largest-magnitude share ``density``, elect a sign per
  weight (the sign of the summed vectors), and average only the entries that agree with it
  (Yadav et al., 2023).

Everything works on state dicts (``name → tensor``), so :func:`merge_models` can rebuild an
``SLM`` whose tied embedding and head stay one matrix. Each method equals ``mergekit``'s (the
tests run mergekit 0.1.5 on saved models); SLERP takes each tensor as one vector. A :class:`MergeNode` tree merges merges, with a score at each node.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import torch

StateDict = Mapping[str, torch.Tensor]


def _check_same_keys(state_dicts: Sequence[StateDict]) -> None:
    if not state_dicts:
        raise ValueError("give at least one state dict to merge.")
    keys = list(state_dicts[0])
    for i, sd in enumerate(state_dicts[1:], 1):
        if set(sd) != set(keys):
            missing = sorted(set(keys) ^ set(sd))[:3]
            raise ValueError(f"state dict {i} has different tensors ({missing} …): merging needs one architecture.")
        for k in keys:
            if sd[k].shape != state_dicts[0][k].shape:
                raise ValueError(f"{k!r} has shape {tuple(sd[k].shape)} in state dict {i} but "
                                 f"{tuple(state_dicts[0][k].shape)} in the first: merging needs one architecture.")


def _per_tensor(fn: Callable[..., torch.Tensor], state_dicts: Sequence[StateDict]) -> dict[str, torch.Tensor]:
    """``{name: fn(name, tensors…)}``; names that share one tensor in the first state dict (a tied
    embedding and head) get one shared output tensor, so the merge stays tied."""
    _check_same_keys(state_dicts)
    out: dict[str, torch.Tensor] = {}
    done: dict[int, torch.Tensor] = {}
    for name, first in state_dicts[0].items():
        key = first.data_ptr()
        if key in done and done[key].shape == first.shape:
            out[name] = done[key]
            continue
        merged = fn(name, *[sd[name] for sd in state_dicts]) if first.is_floating_point() else first.clone()
        out[name] = done[key] = merged
    return out


def linear(state_dicts: Sequence[StateDict], weights: Sequence[float] | None = None,
           normalize: bool = True) -> dict[str, torch.Tensor]:
    """Σ wᵢ θᵢ (divided by Σ wᵢ when ``normalize``): equal weights by default, i.e. the plain average."""
    weights = [1.0] * len(state_dicts) if weights is None else list(weights)
    if len(weights) != len(state_dicts):
        raise ValueError(f"{len(weights)} weights for {len(state_dicts)} models: give one weight per model.")
    total = sum(weights)
    if normalize and abs(total) < 1e-12:
        raise ValueError("the weights sum to zero, so normalizing divides by zero: use other weights.")

    def avg(_: str, *tensors: torch.Tensor) -> torch.Tensor:
        out = sum(w * t.float() for w, t in zip(weights, tensors))
        return (out / total if normalize else out).to(tensors[0].dtype)

    return _per_tensor(avg, state_dicts)


def task_vector(finetuned: StateDict, base: StateDict) -> dict[str, torch.Tensor]:
    """τ = θ_finetuned − θ_base, tensor by tensor."""
    return _per_tensor(lambda _, f, b: f - b, [finetuned, base])


def task_arithmetic(base: StateDict, finetuned: Sequence[StateDict], weights: Sequence[float] | None = None,
                    scale: float = 1.0, normalize: bool = False) -> dict[str, torch.Tensor]:
    """θ_base + ``scale`` · Σ wᵢ (θᵢ − θ_base) (the sum divided by Σ wᵢ when ``normalize``); mergekit's
    ``task_arithmetic`` with ``lambda`` = ``scale``."""
    weights = [1.0] * len(finetuned) if weights is None else list(weights)
    if len(weights) != len(finetuned):
        raise ValueError(f"{len(weights)} weights for {len(finetuned)} finetunes: give one weight per finetune.")

    def add(_: str, b: torch.Tensor, *tensors: torch.Tensor) -> torch.Tensor:
        delta = sum(w * (t.float() - b.float()) for w, t in zip(weights, tensors))
        if normalize:
            total = sum(weights)
            delta = delta / (total if abs(total) >= 1e-8 else 1.0)
        return (b.float() + scale * delta).to(b.dtype)

    return _per_tensor(add, [base, *finetuned])


def slerp(t: float, v0: torch.Tensor, v1: torch.Tensor, dot_threshold: float = 0.9995,
          eps: float = 1e-8) -> torch.Tensor:
    """Spherical interpolation from ``v0`` (t = 0) to ``v1`` (t = 1), both tensors seen as one flat vector.

    With θ the angle between them: sin((1−t)θ)/sin θ · v0 + sin(tθ)/sin θ · v1. When
    |cos θ| > ``dot_threshold`` (parallel or antiparallel, where sin θ ≈ 0) it is the linear
    (1−t)·v0 + t·v1. Zero vectors (norm < ``eps``) count as unit length. Same shape and dtype as ``v0``.
    """
    if v0.shape != v1.shape:
        raise ValueError(f"slerp needs two tensors of one shape, got {tuple(v0.shape)} and {tuple(v1.shape)}.")
    return _slerp_rows(t, v0.reshape(1, -1), v1.reshape(1, -1), dot_threshold, eps).reshape(v0.shape).to(v0.dtype)


def _slerp_rows(t: float, a: torch.Tensor, b: torch.Tensor, dot_threshold: float, eps: float) -> torch.Tensor:
    """SLERP of each row of ``a`` ``(R, D)`` towards the same row of ``b``, in float32 (float64 kept)."""
    dtype = torch.float64 if a.dtype == torch.float64 else torch.float32
    a, b = a.to(dtype), b.to(dtype)
    norm_a = torch.linalg.vector_norm(a, dim=1, keepdim=True)
    norm_b = torch.linalg.vector_norm(b, dim=1, keepdim=True)
    norm_a = torch.where(norm_a > eps, norm_a, torch.ones_like(norm_a))
    norm_b = torch.where(norm_b > eps, norm_b, torch.ones_like(norm_b))
    dot = ((a / norm_a) * (b / norm_b)).sum(dim=1, keepdim=True).clamp(-1, 1)  # cos θ per row
    straight = dot.abs() > dot_threshold
    theta = torch.acos(torch.where(straight, torch.zeros_like(dot), dot))
    sin_theta = torch.where(straight, torch.ones_like(theta), torch.sin(theta))
    coef_a = torch.where(straight, torch.full_like(dot, 1 - t), torch.sin((1 - t) * theta) / sin_theta)
    coef_b = torch.where(straight, torch.full_like(dot, t), torch.sin(t * theta) / sin_theta)
    return coef_a * a + coef_b * b


def slerp_merge(base: StateDict, other: StateDict, t: float = 0.5, dot_threshold: float = 0.9995) -> dict[str, torch.Tensor]:
    """SLERP of two models, ``t`` = 0 giving ``base`` and 1 ``other``; each tensor is one vector
    (its own angle), as in mergekit 0.1.5."""
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"t must be between 0 (the first model) and 1 (the second), got {t!r}.")

    return _per_tensor(lambda _, x, y: slerp(t, x, y, dot_threshold), [base, other])


def trim(delta: torch.Tensor, density: float) -> torch.Tensor:
    """``delta`` with all but its ``max(1, int(density · numel))`` largest-magnitude entries set to 0."""
    if density >= 1:
        return delta
    if density <= 0 or delta.numel() == 0:
        return torch.zeros_like(delta)
    k = max(1, int(density * delta.numel()))
    keep = torch.argsort(delta.abs().reshape(-1).float(), descending=True)[:k]
    mask = torch.zeros(delta.numel(), dtype=delta.dtype, device=delta.device)
    mask[keep] = 1
    return delta * mask.reshape(delta.shape)


def ties(base: StateDict, finetuned: Sequence[StateDict], weights: Sequence[float] | None = None,
         density: float | Sequence[float] = 0.5, scale: float = 1.0, normalize: bool = True) -> dict[str, torch.Tensor]:
    """TIES merging: trim each task vector to ``density``, weight it, elect the sign of their sum per
    entry, keep only the entries that agree and divide by the agreeing weights (``normalize``)."""
    weights = [1.0] * len(finetuned) if weights is None else list(weights)
    densities = [density] * len(finetuned) if isinstance(density, (int, float)) else list(density)
    if not (len(weights) == len(densities) == len(finetuned)):
        raise ValueError("give one weight and one density per finetuned model.")

    def one(_: str, b: torch.Tensor, *tensors: torch.Tensor) -> torch.Tensor:
        return ties_stages(b, tensors, weights, densities, scale, normalize)["merged"]

    return _per_tensor(one, [base, *finetuned])


def ties_stages(base: torch.Tensor, finetuned: Sequence[torch.Tensor], weights: Sequence[float],
                densities: Sequence[float], scale: float = 1.0, normalize: bool = True) -> dict[str, torch.Tensor]:
    """TIES on one tensor, every stage kept (what :func:`ties` computes for each tensor, and chapter 8 draws).

    For ``K`` finetuned tensors of ``base``'s shape ``S``: ``"task_vectors"`` ``(K, *S)`` the τᵢ = θᵢ − θ_base
    (float32); ``"trimmed"`` ``(K, *S)`` each τᵢ trimmed to its ``densities[i]`` share and multiplied by
    ``weights[i]``; ``"elected"`` ``S`` the sign (±1) of their sum; ``"agree"`` ``(K, *S)`` 1 where a trimmed
    entry has the elected sign (a trimmed-away zero never agrees); ``"delta"`` ``S`` the agreeing entries
    summed (divided by the agreeing weights when ``normalize``); ``"merged"`` base + ``scale`` · delta, in
    ``base``'s dtype.
    """
    vectors = torch.stack([t.float() - base.float() for t in finetuned])
    deltas = torch.stack([w * trim(v, d) for v, w, d in zip(vectors, weights, densities)])
    w = torch.tensor(list(weights), dtype=deltas.dtype, device=deltas.device).reshape(-1, *[1] * base.dim())
    elected = torch.where(deltas.sum(dim=0) >= 0, 1.0, -1.0)  # the sign with more total mass
    agree = (deltas.sign() == elected).to(deltas.dtype)  # zeros (trimmed) never agree
    mixed = (deltas * agree).sum(dim=0)
    if normalize:
        divisor = (w * agree).sum(dim=0)
        mixed = mixed / torch.where(divisor == 0, torch.ones_like(divisor), divisor)
    return {"task_vectors": vectors, "trimmed": deltas, "elected": elected, "agree": agree, "delta": mixed,
            "merged": (base.float() + scale * mixed).to(base.dtype)}


METHODS = ("linear", "task_arithmetic", "slerp", "ties")


def merge_state_dicts(method: str, base: StateDict, models: Sequence[StateDict], **params) -> dict[str, torch.Tensor]:
    """One entry point: ``method`` in :data:`METHODS`; ``linear`` ignores ``base``, ``slerp`` takes exactly
    two models (``t`` from the first to the second)."""
    if method == "linear":
        return linear(models, **params)
    if method == "task_arithmetic":
        return task_arithmetic(base, models, **params)
    if method == "ties":
        return ties(base, models, **params)
    if method == "slerp":
        if len(models) != 2:
            raise ValueError(f"slerp merges exactly two models, got {len(models)}.")
        return slerp_merge(models[0], models[1], **params)
    raise ValueError(f"unknown merge method {method!r}: choose one of {list(METHODS)}.")


def merge_models(method: str, base: torch.nn.Module, models: Sequence[torch.nn.Module], **params) -> torch.nn.Module:
    """A new model like ``base`` holding the merge of ``models``' weights (see :func:`merge_state_dicts`).

    It is a deep copy of ``base`` with the merged values loaded, so a tied embedding and head stay
    one parameter; ``base`` and ``models`` are not changed.
    """
    merged = merge_state_dicts(method, base.state_dict(), [m.state_dict() for m in models], **params)
    out = copy.deepcopy(base)
    out.load_state_dict(merged)
    return out.eval()


@dataclass
class MergeNode:
    """A node of a merge tree: ``name`` = ``method`` over ``inputs`` (leaf names or other nodes)."""

    name: str
    method: str
    inputs: Sequence["MergeNode | str"]
    params: dict = field(default_factory=dict)

    def names(self) -> list[str]:
        """Every node and leaf name below and including this one, children first."""
        out: list[str] = []
        for child in self.inputs:
            out += child.names() if isinstance(child, MergeNode) else [child]
        return out + [self.name]

    def edges(self) -> list[tuple[str, str]]:
        """``(child, parent)`` name pairs of the tree."""
        out = []
        for child in self.inputs:
            out.append((child.name if isinstance(child, MergeNode) else child, self.name))
            if isinstance(child, MergeNode):
                out += child.edges()
        return out


def build_merge_tree(tree: MergeNode, base: torch.nn.Module, leaves: Mapping[str, torch.nn.Module],
                     score: Callable[[torch.nn.Module], float] | None = None
                     ) -> tuple[dict[str, torch.nn.Module], dict[str, float]]:
    """Merge bottom-up: ``(models, scores)`` by name for every leaf and node (``scores`` empty without ``score``)."""
    models: dict[str, torch.nn.Module] = dict(leaves)

    def build(node: MergeNode) -> torch.nn.Module:
        inputs = []
        for child in node.inputs:
            if isinstance(child, MergeNode):
                inputs.append(build(child))
            elif child in models:
                inputs.append(models[child])
            else:
                raise ValueError(f"merge tree input {child!r} is neither a leaf ({list(leaves)}) nor a node.")
        models[node.name] = merge_models(node.method, base, inputs, **node.params)
        return models[node.name]

    build(tree)
    scores = {name: float(score(models[name])) for name in tree.names()} if score else {}
    return models, scores
