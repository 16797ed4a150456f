"""Synthesis: event vectors → audio.

One synthesis contract, three modules:

- :mod:`~sparsecodec.synth.kernels`: every formula, written once (array-generic where it can be: the same
  function runs on numpy arrays and torch tensors), the window (``hann_smooth``), the overlap-add, the frame
  plan, the partial tables, pitch track and phase integral, the noise scale and band, and the input
  validation (``check_inputs``, ``parse_room``, ``safe_frame``).  No torch import.
- :mod:`~sparsecodec.synth.render_np`: the fast numpy decoder (no torch), bit-exact (tests/test_exact.py).
- :mod:`~sparsecodec.synth.render_torch`: the differentiable torch twin (encoder, ``--refine``, CUDA decode).

:mod:`~sparsecodec.synth.voice` renders voice tracks (#18; not in the container yet).

The renderers differ only where speed (numpy: kernel table, float32 blocks, the folded noise smoothing) or
differentiability (torch: closed-form kernel, scatter with ``index_add``) demands; tests/test_kernels.py
checks each kernel's numpy and torch values against each other and against closed forms.
"""
