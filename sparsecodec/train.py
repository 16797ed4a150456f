"""Deprecated: ``python -m sparsecodec.train`` is now ``python -m training.train`` (from a source checkout;
training is not part of the wheel)."""

import sys
import warnings

if __name__ == "__main__":
    warnings.warn(
        "python -m sparsecodec.train moved to python -m training.train in spev 0.2; the old name will be "
        "removed in 0.3",
        DeprecationWarning,
        stacklevel=1,
    )
    try:
        from training.train import main
    except ImportError:
        sys.exit("spev: error: training is not installed with the package: run it from a source checkout")
    sys.exit(main())
