"""DistributedDataParallel under ``torchrun``: process group, devices, and the few collectives training needs.

``torchrun --nproc_per_node=N -m LesionDetectLib train ...`` sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``;
then each process trains on its own partition of the cases with NCCL (GPUs, one per process) or gloo
(CPU). Rank 0 alone logs, writes checkpoints and the bundle; validation cases are shared out and the
per-case results gathered. Without those variables everything runs in one process, unchanged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from ..errors import LesionDetectError


@dataclass(frozen=True)
class Context:
    """Where this process stands: rank, number of processes, the device it computes on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"
    backend: str | None = None  # None: not distributed
    owns_group: bool = False  # this process created the process group (and so destroys it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.backend is not None


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: str = "auto") -> Context:
    """Join the process group when launched by torchrun (NCCL on CUDA, gloo on CPU); pick the device."""
    import torch

    from ..infer import resolve_device

    device = resolve_device(device)
    if not launched_by_torchrun():
        return Context(device=device)
    import torch.distributed as dist

    if not dist.is_available():
        raise LesionDetectError("this PyTorch build has no torch.distributed; run without torchrun")
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        if local_rank >= torch.cuda.device_count():
            raise LesionDetectError(
                f"local rank {local_rank} has no GPU ({torch.cuda.device_count()} visible); lower --nproc_per_node"
            )
        device, backend = f"cuda:{local_rank}", "nccl"
        torch.cuda.set_device(local_rank)
    else:
        backend = "gloo"
    owns_group = not dist.is_initialized()
    if owns_group:
        dist.init_process_group(backend=backend)
    return Context(rank, world_size, local_rank, device, backend, owns_group)


def cleanup(context: Context) -> None:
    """Leave the process group when `setup` created it."""
    if context.owns_group:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def barrier(context: Context) -> None:
    if context.distributed:
        import torch.distributed as dist

        dist.barrier()


def broadcast(value: Any, context: Context) -> Any:
    """Rank 0's ``value`` on every rank (any picklable object)."""
    if not context.distributed:
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(value: Any, context: Context) -> list[Any]:
    """Every rank's ``value``, in rank order, on every rank."""
    if not context.distributed:
        return [value]
    import torch.distributed as dist

    values: list[Any] = [None] * context.world_size
    dist.all_gather_object(values, value)
    return values


def mean(value: float, context: Context) -> float:
    """The mean of a number over the ranks."""
    if not context.distributed:
        return float(value)
    return float(sum(gather(float(value), context)) / context.world_size)


def wrap(network, context: Context):
    """The network wrapped in DistributedDataParallel when distributed, else unchanged."""
    if not context.distributed:
        return network
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [context.local_rank] if context.device.startswith("cuda") else None
    return DistributedDataParallel(network, device_ids=device_ids)


def unwrap(network):
    """The plain module inside a DDP wrapper."""
    return getattr(network, "module", network)


def partition(items: list, context: Context, seed: int) -> list:
    """This rank's share of ``items`` (MONAI's ``partition_dataset``: shuffled with ``seed``, even sizes)."""
    if not context.distributed:
        return list(items)
    from monai.data import partition_dataset

    if len(items) < context.world_size:
        return [items[context.rank % len(items)]]
    return list(partition_dataset(list(items), num_partitions=context.world_size, shuffle=True, seed=seed,
                                  even_divisible=True)[context.rank])
