"""A quantization recipe: the small declarative config that says how a model is quantized.

It is recorded verbatim in the ``.q4`` file (``meta["recipe"]``) so every result can be reproduced.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from q4sdk.errors import Q4Error
from q4sdk.ptq.methods import ACTIVATION_RANGE, WEIGHT_ROUNDING, WEIGHT_SCALE

# The meaning of the recipe fields and of the presets: raised when a method or a preset changes
# what it computes, recorded in every .q4 file as meta["recipe_version"].
RECIPE_VERSION = 5

WEIGHT_SCALE_METHODS = tuple(WEIGHT_SCALE)
ACTIVATION_RANGE_METHODS = tuple(ACTIVATION_RANGE)
WEIGHT_ROUNDING_METHODS = tuple(WEIGHT_ROUNDING)


@dataclass
class Recipe:
    weight_bits: int = 4
    activation_bits: int = 8
    output_bits: int = 8  # the network's final tensor (logits); 4 or 8
    unsigned_activations: bool = False  # unsigned-with-offset (zero point) instead of symmetric signed
    weight_scale: str = "mmse"  # mmse (grid line search) | minmax | golden | alternating
    weight_grid: int = 500  # grid points of the exact line search
    activation_range: str = "mmse"  # mmse | minmax | aciq_laplace | aciq_gauss (analytical clipping)
    activation_grid: int = 100
    cle: bool = False  # cross-layer equalization of the float graph before quantizing
    bias_correction: bool = False  # empirical, per channel, from the calibration set
    weight_rounding: str = "nearest"  # nearest | adaround | gpfq
    adaround_iters: int = 500
    gpfq_sparsity: float = 0.0  # GPFQ's sparsity-promoting soft threshold (0 = plain GPFQ)
    dual_tau: float | None = None  # dual INT4 tensors for layers whose relative weight MSE exceeds tau
    dual_layers: list = field(default_factory=list)  # ... and for these layers by name
    residual_input: bool = False  # network input as two INT4 tensors X ~ b1*X1 + b2*X2
    residual_activations: list = field(default_factory=list)  # internal tensors as two INT4 tensors
    # dual layers / residual activations chosen by measured sensitivity, their extra MACs at most
    # this fraction of the network's (sensitivity.py); added to the ones named above
    sensitivity_budget: float | None = None
    opt_rows: int = 4096  # im2col rows sampled for data-driven rounding
    opt_max_k: int | None = None  # data-driven rounding only for kernels of at most this many weights
    refine_iters: int = 0  # gradient-descent refinement of the scales (0 = off)
    refine_lr: float = 1e-3
    refine_loss: str = "mse"  # mse | kl: distance of quantized to float logits that refinement minimises
    refine_runs: int = 1  # independent refinement runs (own mini-batches) whose results are averaged
    refine_batch: int = 128  # calibration samples per refinement iteration
    # at most this many forward MACs in refinement's mini-batches (iterations x batch x MACs per
    # sample): larger models get smaller batches, then fewer iterations (refine.budgeted)
    refine_macs: float | None = None
    calib_samples: int = 512  # at most this many calibration samples are used
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
        if self.weight_scale not in WEIGHT_SCALE_METHODS:
            raise Q4Error(
                f"recipe field 'weight_scale': unknown method '{self.weight_scale}' "
                f"({', '.join(WEIGHT_SCALE_METHODS)})"
            )
        if self.activation_range not in ACTIVATION_RANGE_METHODS:
            raise Q4Error(
                f"recipe field 'activation_range': unknown method '{self.activation_range}' "
                f"({', '.join(ACTIVATION_RANGE_METHODS)})"
            )
        if not isinstance(self.cle, bool):
            raise Q4Error(f"recipe field 'cle': must be true or false, got {self.cle!r}")
        if self.weight_rounding not in WEIGHT_ROUNDING_METHODS:
            raise Q4Error(
                f"recipe field 'weight_rounding': unknown method '{self.weight_rounding}' "
                f"({', '.join(WEIGHT_ROUNDING_METHODS)})"
            )
        if self.refine_loss not in ("mse", "kl"):
            raise Q4Error(f"recipe field 'refine_loss': unknown loss '{self.refine_loss}' (mse, kl)")
        if self.residual_input and self.activation_bits != 4:
            raise Q4Error("recipe field 'residual_input': only for 4-bit activations")
        if not isinstance(self.residual_activations, list) or not all(
            isinstance(n, str) and n for n in self.residual_activations
        ):
            raise Q4Error("recipe field 'residual_activations': must be a list of tensor names")
        if self.residual_activations and self.activation_bits != 4:
            raise Q4Error("recipe field 'residual_activations': only for 4-bit activations")
        if self.sensitivity_budget is not None and (
            not isinstance(self.sensitivity_budget, (int, float)) or self.sensitivity_budget < 0
        ):
            raise Q4Error(
                f"recipe field 'sensitivity_budget': must be null or a number >= 0, got {self.sensitivity_budget!r}"
            )
        if self.dual_tau is not None and self.dual_tau < 0:
            raise Q4Error("recipe field 'dual_tau': must be >= 0")
        if not isinstance(self.refine_runs, int) or self.refine_runs < 1:
            raise Q4Error(f"recipe field 'refine_runs': must be an integer >= 1, got {self.refine_runs!r}")
        if not isinstance(self.refine_batch, int) or self.refine_batch < 1:
            raise Q4Error(f"recipe field 'refine_batch': must be an integer >= 1, got {self.refine_batch!r}")
        if self.refine_macs is not None and (
            not isinstance(self.refine_macs, (int, float)) or self.refine_macs <= 0
        ):
            raise Q4Error(
                f"recipe field 'refine_macs': must be null or a number > 0, got {self.refine_macs!r}"
            )
        if self.opt_max_k is not None and (not isinstance(self.opt_max_k, int) or self.opt_max_k < 1):
            raise Q4Error(
                f"recipe field 'opt_max_k': must be null or an integer >= 1, got {self.opt_max_k!r}"
            )
        if self.weight_grid < 1 or self.activation_grid < 1 or self.calib_samples < 1:
            raise Q4Error("recipe: grid sizes and calib_samples must be >= 1")


# Named recipes. "paper" is Choukroun et al. 2019 as published (MMSE grid search of the weight
# scales with 500 points and of the activation clipping with 50, dual INT4 tensors for layers whose
# relative weight error exceeds tau, scale refinement by gradient descent, residual quantization of
# the most sensitive activation, the network input, at 4 bits); "best" is our best measured
# combination on ResNet-8 / CIFAR-10 (benchmarks/ptq_ablation.py).
#
# "fast" and "default" share one per-layer recipe (since RECIPE_VERSION 3): unsigned-with-offset
# activations, GPFQ rounding of every layer whose kernels have at most 1024 weights, empirical
# bias correction, at 4-bit activations the network input as a residual pair, and dual INT4
# layers / residual activations chosen by measured sensitivity within 5 % extra MACs
# (sensitivity.py; on ResNet-8 the first and last layers, the 1x1 shortcut of the second stage
# and the last layer's input). "default" adds 80 iterations of scale refinement (KL) on
# mini-batches of 32 at a learning rate of 5e-3 (RECIPE_VERSION 4; 3e-3 before, which left seed 0
# at 73.00 % W4A4 on the ResNet-8 dev split, 5e-3 gives 74.38 %, 8e-3 74.00 %), capped at 1e11
# forward MACs so that a large model gets fewer (refine.budgeted).
_FAST = {
    "unsigned_activations": True,
    "bias_correction": True,
    "sensitivity_budget": 0.05,
    "weight_rounding": "gpfq",
    "opt_max_k": 1024,
    "residual_input": "a4",
}
PRESETS: dict[str, dict] = {
    "fast": _FAST,
    "default": {
        **_FAST,
        "refine_iters": 80,
        "refine_batch": 32,
        "refine_lr": 5e-3,
        "refine_loss": "kl",
        "refine_macs": 1e11,
    },
    "minmax": {"weight_scale": "minmax", "activation_range": "minmax"},
    # residual input: the network input as two INT4 tensors, at 4-bit activations only ("a4")
    "paper": {
        "unsigned_activations": True,
        "weight_grid": 500,
        "activation_grid": 50,
        "dual_tau": 0.02,
        "refine_iters": 100,
        "residual_input": "a4",
    },
    # measured on the dev split, seeds 0-4, one thread (benchmarks/cifar10_resnet8.py --seeds 5):
    # with 80-sample refinement batches (RECIPE_VERSION 5) W4A8 76.10 % / W4A4 74.93 % mean in
    # 32-34 s of CPU; the 128-sample batches of versions 2-4 gave 76.04 % / 74.74 % on one thread
    # in 42-48 s (76.11 % / 75.07 % on two threads, RECIPE_VERSION 2). It calibrates on up to 1024
    # samples (all 1000 here), quantizes the network input and the last layer's input as residual
    # INT4 pairs at 4-bit activations ("a4"), and refines the scales on the logits' KL divergence as
    # the mean of three 67-iteration runs. Each step's gain is in docs/methods.md ("Refinement runs").
    # Kept at fixed dual / residual positions: the sensitivity-chosen layers with 3 x 100 iterations
    # on 32 took 34.8 s but gave 73.82 % W4A4 on seed 0 (one draw).
    "best": {
        "unsigned_activations": True,
        "bias_correction": True,
        "dual_layers": ["@first", "@last"],
        "weight_rounding": "adaround",
        "adaround_iters": 300,
        "calib_samples": 1024,
        "residual_input": "a4",
        "residual_activations": "a4:@last_input",
        "refine_iters": 67,
        "refine_runs": 3,
        "refine_batch": 80,
        "refine_lr": 3e-3,
        "refine_loss": "kl",
    },
}


def preset(name: str, activation_bits: int = 8, **overrides) -> Recipe:
    """A named recipe for the given activation precision; ``overrides`` replace fields.

    ``residual_input: "a4"`` means on for 4-bit activations only; ``refine_iters: "a4:N"`` means N
    iterations for 4-bit activations and none for 8-bit; ``residual_activations: "a4:NAME"`` means
    ``[NAME]`` for 4-bit activations and none for 8-bit. ``dual_layers`` may name the
    graph's first and last weighted layers as "@first" / "@last", and ``residual_activations`` the
    input of the last weighted layer as "@last_input" (resolved by the pipeline).
    """
    if name not in PRESETS:
        raise Q4Error(f"unknown recipe '{name}' (known: {', '.join(PRESETS)})")
    fields_ = dict(PRESETS[name])
    if fields_.get("residual_input") == "a4":
        fields_["residual_input"] = activation_bits == 4
    if str(fields_.get("refine_iters", "")).startswith("a4:"):  # refinement for 4-bit activations only
        fields_["refine_iters"] = int(fields_["refine_iters"][3:]) if activation_bits == 4 else 0
    if str(fields_.get("residual_activations", "")).startswith("a4:"):
        fields_["residual_activations"] = (
            [fields_["residual_activations"][3:]] if activation_bits == 4 else []
        )
    fields_["activation_bits"] = activation_bits
    fields_.update(overrides)
    r = Recipe.from_dict(fields_)
    return r
