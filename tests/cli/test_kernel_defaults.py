"""Issue 13, "Defaults": a board's optimised kernels are the default of ``generate --board`` and
``run``; ``--kernels portable`` opts out; a board without DSP or Helium gets the portable kernels."""

import re

import pytest

from q4sdk.cli import build_parser, main
from q4sdk.codegen.kernels import KERNEL_VARIANTS, TERMS_VARIANTS


def _kernels(folder) -> set[str]:
    """The q4 kernel functions the generated model (``model/<name>.c``) calls."""
    (model_c,) = [p for p in (folder / "model").glob("*.c") if not p.name.endswith("_weights.c")]
    return set(re.findall(r"\b(q4_[a-z0-9_]+)\(", model_c.read_text()))


@pytest.mark.parametrize(
    "board,extra,suffix",
    [
        ("mps2-an386", [], "_dsp"),  # Cortex-M4: DSP extension
        ("mps3-an547", [], "_mve"),  # Cortex-M55: Helium
        ("mps2-an386", ["--kernels", "portable"], None),
        ("rp2040", [], None),  # Cortex-M0+: no extension, portable kernels, no error
    ],
)
def test_generate_board_picks_optimised_kernels_by_default(small, tmp_path, capsys, board, extra, suffix):
    out = tmp_path / "fw"
    assert main(["generate", str(small / "m.q4"), "-o", str(out), "--board", board, *extra]) == 0
    kernels = _kernels(out)
    optimised = {k for k in kernels if k.endswith(("_dsp", "_mve"))}
    if suffix is None:
        assert not optimised, kernels
        assert "0 layers optimised" in capsys.readouterr().out
    else:
        # a kind without a variant of the board's own kind (global_avgpool has only _dsp) takes
        # the next one the core runs (the Cortex-M55 has the DSP extension too)
        fallback = {
            v.function
            for variants in (*KERNEL_VARIANTS.values(), *TERMS_VARIANTS.values())
            if not any(w.function.endswith(suffix) for w in variants)
            for v in variants
            if v.requires == "dsp"
        }
        assert optimised and all(k.endswith(suffix) or k in fallback for k in optimised), kernels


def test_run_defaults_to_optimised_kernels():
    args = build_parser().parse_args(["run", "m.q4", "--board", "mps2-an386", "--data", "x.npz"])
    assert args.kernels == "optimised"
    assert build_parser().parse_args(["generate", "m.q4", "-o", "d"]).kernels == "optimised"
