"""Run under torchrun (tests/test_devices.py): the studio's model with the studio's LoRA, sharded by PyTorch's FSDP2
(`fully_shard`, per decoder layer as accelerate's TRANSFORMER_BASED_WRAP does) over CPU processes (gloo), trains
three steps on its share of one global batch. Prints the mean loss of each step (rank 0) and writes the gathered
adapter. With one process it trains the whole batch unsharded: the losses must agree."""

import json
import os
import sys

import torch
import torch.distributed as dist

from studio.core.trl_args import to_lora_config
from studio.models import models
from tests.conftest import tiny_settings


def main(model_dir: str, out: str) -> None:
    sharded = "RANK" in os.environ  # started by torchrun
    if sharded:
        dist.init_process_group("gloo")
    rank, world = (dist.get_rank(), dist.get_world_size()) if sharded else (0, 1)
    torch.manual_seed(0)
    from peft import get_peft_model

    model = get_peft_model(models.load_model(model_dir), to_lora_config(tiny_settings(model_dir, "lora_dropout=0.0")))
    if sharded:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh("cpu", (world,))
        layer_class = type(model.base_model.model.model.layers[0])  # the model's _no_split_modules class
        for module in model.modules():
            if isinstance(module, layer_class):
                fully_shard(module, mesh=mesh)
        fully_shard(model, mesh=mesh)
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=1e-2)
    batch = torch.randint(3, 400, (4, 24), generator=torch.Generator().manual_seed(1))
    mine = batch.chunk(world)[rank]
    losses = []
    for _ in range(3):
        loss = model(input_ids=mine, labels=mine).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        mean = loss.detach().clone()
        if sharded:
            dist.all_reduce(mean)
            mean /= world
        losses.append(round(mean.item(), 5))
    if sharded:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    else:
        state = model.state_dict()
    adapter = {k: v.float().norm().item() for k, v in state.items() if "lora_" in k}
    if rank == 0:
        with open(out, "w") as f:
            json.dump({"losses": losses, "adapter_norms": adapter,
                       "sharded_lora": sharded and type(trained[0]).__name__ == "DTensor"}, f)
    if sharded:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
