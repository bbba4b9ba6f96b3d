"""Architectures rebuilt in PyTorch because upstream code is dead, not importable or only exported.

`build(manifest.network)` makes the module a manifest names. Torch is imported by the network
modules themselves, so importing this package stays cheap.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from zoo.errors import UsageError

#: network name -> (module, {variant or None: class name})
NETWORKS: dict[str, tuple[str, dict[str | None, str]]] = {
    "aclnet": ("converters.networks.aclnet", {None: "AclNet"}),
    "dcase2018": ("converters.networks.dcase2018", {"vggish": "Vggish", "baseline_cnn": "BaselineCnn"}),
    "audioset_attention": (
        "converters.networks.audioset_attention",
        {
            "decision_level_single_attention": "DecisionLevelSingleAttention",
            "decision_level_multi_attention": "DecisionLevelMultiAttention",
            "feature_level_attention": "FeatureLevelSingleAttention",
        },
    ),
    "kahl_aed": ("converters.networks.kahl_aed", {None: "KahlAED"}),
    "silero_vad": ("converters.networks.silero_vad", {None: "SileroVad16k"}),
}


def network_class(name: str, variant: str | None = None) -> type:
    """The class for a manifest's network name and variant."""
    if name not in NETWORKS:
        raise UsageError(f"field network.name: unknown network {name!r} (known: {', '.join(NETWORKS)}).")
    module_name, classes = NETWORKS[name]
    if variant not in classes:
        known = ", ".join(str(v) for v in classes)
        raise UsageError(
            f"field network.variant: network {name!r} has no variant {variant!r} (known: {known})."
        )
    return getattr(importlib.import_module(module_name), classes[variant])


def build(network, origin: str = "manifest") -> Any:
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


def parameter_count(module) -> int:
    """Trainable parameters (BN running statistics and fixed buffers are not counted)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
