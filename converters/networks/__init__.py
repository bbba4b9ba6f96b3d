"""Architectures rebuilt in PyTorch or Keras because upstream code is dead, not importable or only exported.

Each network is a class in converters/networks/<network.name>.py declared with
zoo.plugins.register_network; `build(manifest.network)` makes the torch module a manifest names.
Frameworks are imported by the network modules themselves, so importing this package stays cheap.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from zoo.errors import UsageError
from zoo.plugins import network_entry

if TYPE_CHECKING:
    from zoo.manifest import Network


def network_class(name: str, variant: str | None = None) -> Any:
    """The torch module class for a manifest's network name and variant."""
    return network_entry(name, variant, framework="torch").factory


def build(network: Network | None, origin: str = "manifest") -> Any:
    """An eval-mode module for a manifest `network` entry (name, variant, args)."""
    if network is None:
        raise UsageError(f"{origin}: field network: this entry needs a rebuilt network (name and args).")
    cls = network_class(network.name, network.variant)
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(set(network.args) - accepted)
    if unknown:
        raise UsageError(
            f"{origin}: field network.args: {', '.join(unknown)} not accepted by {cls.__name__} "
            f"(accepted: {', '.join(sorted(accepted))})."
        )
    return cls(**network.args).eval()


def parameter_count(module: Any) -> int:
    """Trainable parameters (BN running statistics and fixed buffers are not counted)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
