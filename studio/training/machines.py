"""Several machines from one preset: the command each machine runs (`launch.py machines` prints them), checked
before anyone types them. Every machine runs the same preset; machine 0 hosts the rendezvous (address, port);
torchrun gives each process its global rank, and the run's processes agree on one run folder (distributed.py).
Plain data parallelism needs torchrun alone; a sharded strategy (FSDP, ZeRO) goes through accelerate launch with
a config written next to the preset."""

from __future__ import annotations

import errno
import ipaddress
import re
import shlex
import socket
from pathlib import Path

import yaml

from studio.core.config import Settings
from studio.core.text import Msg

MAX_MACHINES = 1024
MAX_GPUS_PER_MACHINE = 64
HOST_NAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")


def rendezvous_problems(address: str, port: int) -> tuple[list[Msg], list[Msg]]:
    """(problems that make the commands wrong, warnings worth reading). The address must be an IP address or a
    host name (it is pasted into a shell command); a port this machine already uses cannot host the rendezvous."""
    problems, warnings = [], []
    if not _address_valid(address):
        problems.append(Msg("machines.bad_address", address=address[:80]))
    if isinstance(port, bool) or not isinstance(port, int) or not 1024 <= port <= 65535:
        problems.append(Msg("machines.bad_port", port=port))
    if problems:
        return problems, warnings
    try:
        socket.getaddrinfo(address, port)
    except OSError:
        warnings.append(Msg("machines.unresolved", address=address))
        return problems, warnings
    if (in_use := _port_in_use_here(address, port)) is not None and in_use:
        problems.append(Msg("machines.port_in_use", address=address, port=port))
    return problems, warnings


def _address_valid(address: str) -> bool:
    """An IPv4 or IPv6 address without a scope id (Python accepts any text after '%', a shell command included;
    torchrun's rendezvous needs none between machines), or a host name. A grammar, not a list of bad characters."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return bool(HOST_NAME.match(address or ""))
    return getattr(ip, "scope_id", None) is None


def _port_in_use_here(address: str, port: int) -> bool | None:
    """True: this machine is the address and the port is taken; False: free here; None: the address is another
    machine's (nothing to check from here)."""
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address, port))
            return False
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                return True
            return None


def count_problems(machines, gpus) -> list[Msg]:
    ok = all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= limit
             for v, limit in ((machines, MAX_MACHINES), (gpus, MAX_GPUS_PER_MACHINE)))
    return [] if ok else [Msg("machines.bad_counts", machines=MAX_MACHINES, gpus=MAX_GPUS_PER_MACHINE)]


def machine_commands(preset: Path, settings: Settings, machines: int, gpus: int, address: str, port: int,
                     output_dir: str) -> list[str]:
    """One command per machine (with a comment line before each), for the preset's strategy."""
    strategy = settings.training.distributed_strategy
    world = machines * gpus
    train = f"launch.py train --preset {shlex.quote(str(preset))} --output-dir {shlex.quote(output_dir)}"
    lines = [str(Msg("machines.head", machines=machines, gpus=gpus, world=world, address=address, port=port)),
             str(Msg("machines.same_paths"))]
    config = None
    if strategy not in ("auto", "ddp"):
        config = write_accelerate_config(preset, settings, machines, gpus, address, port)
        lines.append(str(Msg("machines.config", path=str(config), strategy=strategy)))
    for rank in range(machines):
        lines.append(str(Msg("machines.on", rank=rank)))
        if config is None:
            lines.append(f"torchrun --nnodes {machines} --node_rank {rank} --nproc_per_node {gpus} "
                         f"--master_addr {shlex.quote(address)} --master_port {port} {train}")
        else:
            lines.append(f"accelerate launch --config_file {shlex.quote(str(config))} --machine_rank {rank} {train}")
    return lines


def write_accelerate_config(preset: Path, settings: Settings, machines: int, gpus: int, address: str,
                            port: int) -> Path:
    from .repeat import launch_config  # deferred: repeat imports the training modules

    t = settings.training
    precision = "bf16" if t.precision == "auto" else t.precision  # the GPUs are not this machine's: Ampere assumed
    config = launch_config(t.gradient_accumulation_steps, t.max_grad_norm, precision, machines * gpus,
                           t.distributed_strategy, machines, address)
    config["main_process_port"] = port
    path = preset.with_name(f"{preset.stem}-accelerate-{t.distributed_strategy}-{machines}x{gpus}.yaml")
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path
