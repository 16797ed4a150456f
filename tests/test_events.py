"""The event layout and the quantiser: ranges, round trips, accuracy of the default table."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from sparsecodec.format import events, quantize


def test_layout_is_32_named_dims() -> None:
    assert events.N_DIMS == 32 == len(events.DIMS) == len(set(events.NAMES))
    for d in events.DIMS:
        assert d.lo <= d.default <= d.hi, d.name
        assert d.unit and d.doc


def test_unit_round_trip_numpy_and_torch() -> None:
    torch = pytest.importorskip("torch")
    v = events.sample_prior(np.random.default_rng(1), 200)
    u = events.to_unit(v)
    assert u.min() >= 0.0 and u.max() <= 1.0
    np.testing.assert_allclose(events.from_unit(u), v, rtol=1e-9, atol=1e-9)
    t = torch.tensor(v, requires_grad=True)
    back = events.from_unit(events.to_unit(t))
    np.testing.assert_allclose(back.detach().numpy(), v, rtol=1e-9, atol=1e-9)
    back.sum().backward()
    assert t.grad is not None and torch.isfinite(t.grad).all()


def test_prior_is_seeded_and_in_range() -> None:
    a = events.sample_prior(np.random.default_rng(7), 500)
    b = events.sample_prior(np.random.default_rng(7), 500)
    np.testing.assert_array_equal(a, b)
    assert (a >= events.LO).all() and (a <= events.HI).all()
    pitched = events.is_pitched(a)
    assert 0.6 < pitched.mean() < 0.95  # mostly notes, some noise hits
    assert (events.support_s(a) <= events.MAX_SUPPORT_S).all()


def test_default_table_accuracy() -> None:
    """The default table is below audibility for the key dims: pitch < 5 cents, level < 0.5 dB."""
    v = events.sample_prior(np.random.default_rng(3), 2000)
    w = quantize.dequantize(quantize.quantize(v))
    i = events.INDEX
    assert np.abs(w[:, i["pitch"]] - v[:, i["pitch"]]).max() * 100 < 5.0
    assert np.abs(w[:, i["level"]] - v[:, i["level"]]).max() < 0.5
    # Re-quantising decoded values is exact (codes are a fixed point).
    np.testing.assert_array_equal(quantize.quantize(w), quantize.quantize(v))
    assert quantize.bits_per_event() == sum(d.bits for d in events.DIMS)


def test_quantize_clips_and_handles_bad_values() -> None:
    v = events.defaults(3)
    v[0, :] = events.HI + 100.0
    v[1, :] = events.LO - 100.0
    v[2, 0] = np.nan
    codes = quantize.quantize(v)
    assert codes.dtype == np.uint16
    w = quantize.dequantize(codes)
    assert np.isfinite(w).all()
    assert (w >= events.LO - 1e-9).all() and (w <= events.HI + 1e-9).all()


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t: t[:-1],
        lambda t: [dict(t[0], bits=17), *t[1:]],
        lambda t: [dict(t[0], name="loudness"), *t[1:]],
        lambda t: [dict(t[0], scale="cubic"), *t[1:]],
        lambda t: [dict(t[16], lo=-1.0) if i == 16 else e for i, e in enumerate(t)],
        lambda t: [dict(t[0], hi=float("inf")), *t[1:]],
        lambda t: "not a table",
    ],
)
def test_validate_table_rejects_bad_tables(mutate) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(quantize.TableError):
        quantize.validate_table(mutate(quantize.default_table()))


def test_no_torch_import() -> None:
    code = "import sys, sparsecodec.format.events, sparsecodec.format.quantize; assert 'torch' not in sys.modules"  # noqa: E501
    subprocess.run([sys.executable, "-c", code], check=True)


def test_neutral_values_are_exact() -> None:
    """Signed dims whose neutral value is 0 (glide, pan, envelope, ...) decode to exactly 0."""
    v = events.defaults(1)
    w = quantize.dequantize(quantize.quantize(v))[0]
    for d in events.DIMS:
        if d.scale == "sym" or d.default == d.lo:
            assert w[d.index] == d.default, d.name
    pan = events.INDEX["pan"]
    v[0, pan] = -1.0
    assert quantize.dequantize(quantize.quantize(v))[0, pan] == -1.0


def test_registered_tables_resolve_by_name() -> None:
    table = quantize.default_table()
    assert quantize.table_name(table) == "default"
    assert quantize.resolve_table("default") == table
    custom = [dict(e) for e in table]
    custom[0]["bits"] = 7
    assert quantize.table_name(custom) is None
    assert quantize.resolve_table(custom) == custom
    with pytest.raises(quantize.TableError):
        quantize.resolve_table("layout9/fancy")
