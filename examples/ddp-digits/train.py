"""One DDP run: every task runs this; Runyard set MASTER_ADDR, MASTER_PORT, WORLD_SIZE and RANK.

``init_process_group("gloo")`` reads them (the env:// method), exactly as under torchrun.
Rank 0 logs the metrics; ``runyard logs RUN --task worker-0`` shows rank 1's output.
"""

from __future__ import annotations

import argparse

import torch
import torch.distributed as dist
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import runyard


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, required=True)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    torch.set_num_threads(1)

    X, y = load_digits(return_X_y=True)
    X_train, X_val, y_train, y_val = train_test_split(X / 16.0, y, test_size=0.25, random_state=0)
    # Each rank trains on its own shard; DDP averages the gradients across ranks.
    X_shard = torch.tensor(X_train[rank::world], dtype=torch.float32)
    y_shard = torch.tensor(y_train[rank::world])
    X_val_t, y_val_t = torch.tensor(X_val, dtype=torch.float32), torch.tensor(y_val)

    model = torch.nn.parallel.DistributedDataParallel(
        torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10)))
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    for epoch in range(args.epochs):
        for batch in torch.split(torch.randperm(len(y_shard)), 64):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(X_shard[batch]), y_shard[batch])
            loss.backward()
            opt.step()
        # The mean training loss over both ranks, with an all-reduce.
        mean_loss = torch.tensor([loss.item()])
        dist.all_reduce(mean_loss)
        mean_loss /= world
        with torch.no_grad():
            accuracy = (model(X_val_t).argmax(1) == y_val_t).float().mean().item()
        if rank == 0:
            runyard.log({"train/loss": mean_loss.item(), "val/accuracy": accuracy}, step=epoch)
    print(f"rank {rank} of {world}: validation accuracy {accuracy:.3f}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
