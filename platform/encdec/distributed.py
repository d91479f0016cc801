"""Runs started by an outside launcher (torchrun, SLURM tasks): every process runs the whole
train app, so whatever it writes into the shared run directory before training (the trained
tokenizer, the run id) must be written once, by rank 0, before the others read it.

Lightning finds the same environments (`TorchElasticEnvironment`, `SLURMEnvironment`) and reuses
the process group opened here for training. Runs whose processes Lightning starts itself
(ddp_spawn, a single `encdec-train` with devices > 1) need nothing from here: their setup runs
before the workers exist.
"""

from __future__ import annotations

import atexit
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch
from lightning_fabric.plugins.environments import ClusterEnvironment, SLURMEnvironment, TorchElasticEnvironment
from lightning_fabric.utilities.distributed import _init_dist_connection

from encdec.errors import ConfigError


def destroy_process_group_at_exit() -> None:
    """Makes this process close its process group before the interpreter shuts down.

    Lightning does this for NCCL only. A gloo group left open at exit still has C++ worker
    threads when the interpreter is torn down, and the process then dies of SIGABRT
    ("terminate called without an active exception") after its work was done: a ddp_spawn
    worker that finished its fit or test is reported as crashed. Registering per process is
    enough; a group already destroyed makes the handler a no-op."""
    global _destroy_registered
    if _destroy_registered or not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return
    atexit.register(_destroy_process_group)
    _destroy_registered = True


_destroy_registered = False


def _destroy_process_group() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def external_environment() -> ClusterEnvironment | None:
    """The launcher's environment when this process is one of several it started, else None."""
    for env_type in (TorchElasticEnvironment, SLURMEnvironment):
        if env_type.detect():
            env = env_type()
            if env.world_size() > 1:
                return env
    return None


@contextmanager
def rank_zero_first(run_dir: Path, accelerator: str = "auto") -> Iterator[None]:
    """Under an outside launcher, checks that every process got the same run directory; rank 0
    runs the body first, the others after it. A single process, or one whose workers Lightning
    starts, just runs the body."""
    env = external_environment()
    if env is None:
        yield
        return
    use_cuda = accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(env.local_rank())
    _init_dist_connection(env, "nccl" if use_cuda else "gloo", env.global_rank(), env.world_size())
    destroy_process_group_at_exit()
    run_dirs: list[str] = [""] * env.world_size()
    torch.distributed.all_gather_object(run_dirs, str(Path(run_dir).resolve()))
    if len(set(run_dirs)) > 1:
        raise ConfigError(
            f"the {env.world_size()} processes of this launch got {len(set(run_dirs))} different run directories "
            f"(e.g. {run_dirs[0]} and {run_dirs[-1]}): give them one with hydra.run.dir=<path every node sees>"
        )
    if env.global_rank() != 0:
        torch.distributed.barrier()
    yield
    if env.global_rank() == 0:
        torch.distributed.barrier()
