"""A model sharded across the workers of one job (``run.shard_model``): PyTorch FSDP2 ``fully_shard``.

Each decoder layer is sharded over the workers: every worker holds a slice of its parameters, gradients and
optimizer state, and a forward pass gathers a layer's parameters as it reaches it. The embeddings, the final norm
and the output head stay whole on every worker (the policy calls the decoder and the head separately, and a tied
head shares the embedding matrix), their gradients summed like an unsharded job's; for a 7B model the layers are
about six sevenths of the parameters. The
parameters stay float32 masters; with a compute dtype (bfloat16 on GPUs) they are gathered in it and gradients are
reduced in float32 (``MixedPrecisionPolicy``), as the unsharded model's autocast does.

Every forward pass of the sharded model is a collective, so the workers run the same number of them: the update's
micro-batches and the old log-probabilities are padded to the most any worker has (:func:`lockstep`) with passes
whose loss counts zero; the KL reference is sharded the same way (in the compute dtype). Acting is not in lock step (each worker plays its own episodes), so the episodes are played
by a full copy of the weights in the compute dtype, the *actor*, refreshed after every update
(:func:`sync_actor`); a checkpoint gathers the full float32 weights and optimizer state on rank 0
(:func:`full_states`). A reduced gradient is the mean over workers, so each worker's loss is scaled by their
number to give the sum the update's normalisation expects.
"""

from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional, Sequence, Tuple, TypeVar

import torch

from proxmo.train.distributed import Shard

T = TypeVar("T")


def layer_stack(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The model's decoder layers (the ``ModuleList`` named ``...layers``: Llama, Qwen, Mistral; under LoRA too)."""
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and name.split(".")[-1] == "layers":
            return module
    raise ValueError(f"run.shard_model: no decoder layers (a ModuleList named 'layers') in {type(model).__name__}")


def shard_model(model: torch.nn.Module, shard: Shard, compute_dtype: Optional[torch.dtype]) -> torch.nn.Module:
    """Shard ``model``'s decoder layers in place over the workers of the default process group."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    device = next(model.parameters()).device
    mesh = init_device_mesh(device.type, (shard.world,))
    precision = MixedPrecisionPolicy(param_dtype=compute_dtype, reduce_dtype=torch.float32) if compute_dtype else None
    options: Dict[str, Any] = {"mesh": mesh}
    if precision is not None:
        options["mp_policy"] = precision
    for layer in layer_stack(model):
        fully_shard(layer, **options)
    return model


def is_sharded(model: torch.nn.Module) -> bool:
    """Whether some of ``model``'s layers are sharded."""
    from torch.distributed.fsdp import FSDPModule

    return any(isinstance(module, FSDPModule) for module in model.modules())


def whole_parameters(model: torch.nn.Module) -> List[torch.nn.Parameter]:
    """The parameters every worker holds whole (not sharded)."""
    return [p for p in model.parameters() if not hasattr(p, "full_tensor")]


def _full(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor


def make_actor(policy, compute_dtype: Optional[torch.dtype]):
    """A policy of its own full weights (in the compute dtype) to act with, before ``policy`` is sharded."""
    model = copy.deepcopy(policy.model)
    if compute_dtype is not None:
        model = model.to(compute_dtype)
    model.requires_grad_(False)
    return type(policy)(model, policy.tokenizer, policy.config, None)


def frozen_shards(reference, shard: Shard):
    """The KL reference (a frozen full model) in the compute dtype, its layers sharded like the policy's: its log-probs
    are computed in the update phase, where the workers are in lock step anyway."""
    dtype = reference.compute_dtype
    if dtype is not None:
        reference.model.to(dtype)
    shard_model(reference.model, shard, None)
    return type(reference)(reference.model, reference.tokenizer, reference.config, None)


@torch.no_grad()
def sync_actor(model: torch.nn.Module, actor: torch.nn.Module) -> None:
    """The actor's weights from the sharded model's (a collective: every worker calls it, in the same order)."""
    targets = dict(actor.named_parameters())
    for name, parameter in model.named_parameters():
        full = _full(parameter.detach())
        targets[name].copy_(full.to(targets[name].dtype))


def full_states(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """The full float32 weights and optimizer state, on the CPU (a collective; what rank 0 writes)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=options), get_optimizer_state_dict(model, optimizer, options=options)


def load_optimizer(model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: Optional[Dict[str, Any]]) -> None:
    """Rank 0's full optimizer state (from a checkpoint) into every worker's shards."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
    set_optimizer_state_dict(model, optimizer, optim_state_dict=state or {}, options=options)


def clip_gradients(parameters, max_norm: float) -> torch.Tensor:
    """``torch.nn.utils.clip_grad_norm_`` over whole and sharded gradients: the norm of the full gradient (the
    sharded parts' squares summed over workers), every gradient scaled by ``min(1, max_norm / (norm + 1e-6))``."""
    import torch.distributed as dist

    grads = [p.grad for p in parameters if p.grad is not None]
    whole = [g for g in grads if not hasattr(g, "to_local")]
    parts = [g.to_local() for g in grads if hasattr(g, "to_local")]
    device = (whole or parts)[0].device
    sharded = torch.stack([g.detach().float().pow(2).sum() for g in parts]).sum() if parts else torch.zeros((), device=device)
    dist.all_reduce(sharded)
    squares = sharded + (torch.stack([g.detach().float().pow(2).sum() for g in whole]).sum() if whole else 0.0)
    norm = squares.sqrt()
    coefficient = torch.clamp(max_norm / (norm + 1e-6), max=1.0)
    for g in grads:
        g.mul_(coefficient.to(g.dtype) if not hasattr(g, "to_local") else float(coefficient))
    return norm


def lockstep(chunks: List[T], shard: Optional[Shard]) -> List[Optional[T]]:
    """``chunks`` padded with ``None`` to the most any worker has (each ``None`` is a pass whose loss counts zero)."""
    if shard is None or shard.world == 1:
        return list(chunks)
    most = max(shard.gather(len(chunks)))
    return list(chunks) + [None] * (most - len(chunks))


def filler(rows: Sequence[int]) -> List[int]:
    """The rows of a padding pass: this worker's first row (its loss is multiplied by zero)."""
    if not rows:
        raise ValueError("run.shard_model: a worker without any row cannot take part in a sharded pass")
    return [rows[0]]


__all__ = ["clip_gradients", "filler", "frozen_shards", "full_states", "is_sharded", "whole_parameters", "layer_stack", "load_optimizer", "lockstep", "make_actor",
           "shard_model", "sync_actor"]
