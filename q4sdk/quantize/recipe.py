"""A quantization recipe: the small declarative config that says how a model is quantized.

It is recorded verbatim in the ``.q4`` file (``meta["recipe"]``) so every result can be reproduced.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from ..errors import Q4Error


@dataclass
class Recipe:
    weight_bits: int = 4
    activation_bits: int = 8
    output_bits: int = 8            # the network's final tensor (logits); 4 or 8
    unsigned_activations: bool = False  # unsigned-with-offset (zero point) instead of symmetric signed
    weight_scale: str = "mmse"      # mmse | minmax
    weight_grid: int = 500          # grid points of the exact line search
    activation_range: str = "mmse"  # mmse | minmax
    activation_grid: int = 100
    bias_correction: bool = False   # empirical, per channel, from the calibration set
    calib_samples: int = 512        # at most this many calibration samples are used
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Recipe":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise Q4Error(f"recipe: unknown field '{unknown[0]}' (known: {', '.join(sorted(known))})")
        r = cls(**d)
        r.validate()
        return r

    def validate(self) -> None:
        if self.weight_bits != 4:
            raise Q4Error(f"recipe field 'weight_bits': only 4 is supported, got {self.weight_bits}")
        for f in ("activation_bits", "output_bits"):
            if getattr(self, f) not in (4, 8):
                raise Q4Error(f"recipe field '{f}': must be 4 or 8, got {getattr(self, f)}")
        if self.weight_scale not in ("mmse", "minmax"):
            raise Q4Error(f"recipe field 'weight_scale': unknown method '{self.weight_scale}'")
        if self.activation_range not in ("mmse", "minmax"):
            raise Q4Error(f"recipe field 'activation_range': unknown method '{self.activation_range}'")
        if self.weight_grid < 1 or self.activation_grid < 1 or self.calib_samples < 1:
            raise Q4Error("recipe: grid sizes and calib_samples must be >= 1")
