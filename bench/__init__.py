"""The spev benchmark: a fixed dev set (:mod:`bench.devset`), codec runners (:mod:`bench.codecs`),
metrics (:mod:`bench.metrics`), the harness (:mod:`bench.run`) and the rate-quality plot (:mod:`bench.plot`).

Run ``bash bench/setup.sh`` once, then ``python -m bench.run [--quick]``.  See ``bench/README.md``.
"""
