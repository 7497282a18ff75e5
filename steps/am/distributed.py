"""Several training processes (DDP under torchrun): which process this is, and the
collective operations training needs, each a no-op for a single process.

    world, device = init_world("cuda")   # WORLD_SIZE, RANK, LOCAL_RANK from torchrun
    all_reduce_sum(tensor, world); gather_objects(obj, world); barrier(world)
    close_world()                         # at the end, whatever happened

gloo on CPU, nccl on CUDA; one process per device.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_world(device: str) -> tuple[World, torch.device]:
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World(), torch.device(device)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if cuda else "gloo")
    return World(rank, size, local_rank), torch.device(f"cuda:{local_rank}") if cuda else torch.device(device)


def close_world() -> None:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor, world: World) -> torch.Tensor:
    if world.size > 1:
        dist.all_reduce(values)
    return values


def gather_objects(obj, world: World) -> list:
    if world.size == 1:
        return [obj]
    out = [None] * world.size
    dist.all_gather_object(out, obj)
    return out


def barrier(world: World) -> None:
    if world.size > 1:
        dist.barrier()
