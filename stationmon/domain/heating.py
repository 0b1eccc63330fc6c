"""The heating model of a secondary loop (quality regulation, constant flow), vectorised with numpy.

Symbols as in DOMAIN.md: t_i indoor, t_o outdoor, t_s/t_r supply/return, t_m their mean, index d for
design values, m the emitter exponent, G the relative flow (1 at constant flow).

    relative load     Q   = (t_i - t_o) / (t_i,d - t_o,d)
    required supply   t_s = t_i + (t_m,d - t_i,d) Q^(1/m) + (t_s,d - t_r,d) Q / (2G)
    required return   t_r = t_i + (t_m,d - t_i,d) Q^(1/m) - (t_s,d - t_r,d) Q / (2G)
    indoor estimate   ((t_m - t_i) / (t_m,d - t_i,d))^m = (t_i - t_o) / (t_i,d - t_o,d), solved for t_i

Every function takes scalars or arrays (broadcast together) and returns float64 arrays, so one call
judges every loop of a district. NaN in, NaN out; no warnings. No I/O, no clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from stationmon.domain.vocabulary import DESIGN_INDOOR

__all__ = [
    "Design",
    "FloatArray",
    "curve",
    "estimate_indoor_temp",
    "expected_delta_t",
    "relative_load",
    "required_return_temp",
    "required_supply_temp",
    "required_temps",
    "running_mean_update",
]

FloatArray = NDArray[np.float64]


def _f(x: ArrayLike) -> FloatArray:
    return np.asarray(x, dtype=np.float64)


def relative_load(
    outdoor: ArrayLike,
    *,
    indoor_target: ArrayLike = DESIGN_INDOOR,
    outdoor_design: ArrayLike = -24.2,
    design_indoor: ArrayLike = DESIGN_INDOOR,
) -> FloatArray:
    """Relative heat load Q; 0 when it is warmer outside than the target (no heating needed)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        q = (_f(indoor_target) - _f(outdoor)) / (_f(design_indoor) - _f(outdoor_design))
    # clamp negative loads to zero; np.maximum keeps NaN (unknown outdoor) as NaN
    return np.asarray(np.maximum(q, 0.0))


@dataclass(frozen=True, slots=True, eq=False)
class Design:
    """The design terms of the heating curves of many loops (or one), computed once per loop table."""

    mean_excess: FloatArray  # t_m,d - t_i,d
    inv_exponent: FloatArray  # 1/m
    spread: FloatArray  # t_s,d - t_r,d
    half_spread: FloatArray  # (t_s,d - t_r,d) / 2
    inv_mean_excess: FloatArray  # 1 / (t_m,d - t_i,d)
    inv_load_span: FloatArray  # 1 / (t_i,d - t_o,d)
    exponent: FloatArray
    indoor_target: FloatArray
    outdoor_design: FloatArray
    design_indoor: FloatArray

    @classmethod
    def of(
        cls,
        design_supply: ArrayLike,
        design_return: ArrayLike,
        exponent: ArrayLike,
        *,
        indoor_target: ArrayLike = DESIGN_INDOOR,
        outdoor_design: ArrayLike = -24.2,
        design_indoor: ArrayLike = DESIGN_INDOOR,
    ) -> Design:
        """From the design temperatures and exponents, and the site's target and design point."""
        ds, dr, m = _f(design_supply), _f(design_return), _f(exponent)
        with np.errstate(invalid="ignore", divide="ignore"):
            return cls(
                mean_excess=0.5 * (ds + dr) - _f(design_indoor),
                inv_exponent=1.0 / m,
                spread=ds - dr,
                half_spread=0.5 * (ds - dr),
                inv_mean_excess=1.0 / (0.5 * (ds + dr) - _f(design_indoor)),
                inv_load_span=1.0 / (_f(design_indoor) - _f(outdoor_design)),
                exponent=m,
                indoor_target=_f(indoor_target),
                outdoor_design=_f(outdoor_design),
                design_indoor=_f(design_indoor),
            )


def curve(
    outdoor: ArrayLike, design: Design, relative_flow: ArrayLike = 1.0
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Required supply and return temperatures from the heating curve, °C, and the expected ΔT, K."""
    d = design
    q = relative_load(
        outdoor, indoor_target=d.indoor_target, outdoor_design=d.outdoor_design, design_indoor=d.design_indoor
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_part = d.mean_excess * np.power(q, d.inv_exponent)
        half_dt = d.half_spread * q
        expected = d.spread * q
        if not (np.isscalar(relative_flow) and relative_flow == 1.0):  # x / 1.0 is x
            half_dt = half_dt / _f(relative_flow)
            expected = expected / _f(relative_flow)
    base = d.indoor_target + mean_part
    return base + half_dt, base - half_dt, expected


def required_temps(
    outdoor: ArrayLike,
    design_supply: ArrayLike,
    design_return: ArrayLike,
    exponent: ArrayLike,
    *,
    indoor_target: ArrayLike = DESIGN_INDOOR,
    outdoor_design: ArrayLike = -24.2,
    design_indoor: ArrayLike = DESIGN_INDOOR,
    relative_flow: ArrayLike = 1.0,
) -> tuple[FloatArray, FloatArray]:
    """Required (supply, return) temperatures from the heating curve, °C."""
    site = {"indoor_target": indoor_target, "outdoor_design": outdoor_design, "design_indoor": design_indoor}
    supply, return_, _ = curve(outdoor, Design.of(design_supply, design_return, exponent, **site), relative_flow)
    return supply, return_


def required_supply_temp(
    outdoor: ArrayLike, design_supply: ArrayLike, design_return: ArrayLike, exponent: ArrayLike, **site: ArrayLike
) -> FloatArray:
    """Required supply temperature from the heating curve, °C (keywords as `required_temps`)."""
    return required_temps(outdoor, design_supply, design_return, exponent, **site)[0]


def required_return_temp(
    outdoor: ArrayLike, design_supply: ArrayLike, design_return: ArrayLike, exponent: ArrayLike, **site: ArrayLike
) -> FloatArray:
    """Required return temperature from the heating curve, °C (keywords as `required_temps`)."""
    return required_temps(outdoor, design_supply, design_return, exponent, **site)[1]


def expected_delta_t(
    outdoor: ArrayLike,
    design_supply: ArrayLike,
    design_return: ArrayLike,
    *,
    relative_flow: ArrayLike = 1.0,
    **site: ArrayLike,
) -> FloatArray:
    """Expected supply-return difference (t_s,d - t_r,d) Q / G, K (site keywords as `relative_load`)."""
    q = relative_load(outdoor, **site)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (_f(design_supply) - _f(design_return)) * q / _f(relative_flow)


def estimate_indoor_temp(
    supply: ArrayLike,
    return_: ArrayLike,
    outdoor: ArrayLike,
    design_supply: ArrayLike,
    design_return: ArrayLike,
    exponent: ArrayLike,
    *,
    outdoor_design: ArrayLike = -24.2,
    design_indoor: ArrayLike = DESIGN_INDOOR,
    tolerance: float = 1e-6,
    method: str = "newton",
) -> FloatArray:
    """Steady-state indoor temperature that measured supply/return water sustains at this outdoor, °C.

    Solves r(t) = ((t_m - t)/(t_m,d - t_i,d))^m - (t - t_o)/(t_i,d - t_o,d) = 0 on [t_o, t_m]. r falls
    and, for m >= 1, is convex there, so Newton from t_o climbs to the root without overshooting.
    """
    t_o = _f(outdoor)
    with np.errstate(invalid="ignore", over="ignore"):  # inf + -inf probes: NaN, silently
        t_m = 0.5 * (_f(supply) + _f(return_))
    t_o, t_m, m = np.broadcast_arrays(t_o, t_m, _f(exponent))
    shape = t_o.shape
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        inv_a = np.broadcast_to(1.0 / (0.5 * (_f(design_supply) + _f(design_return)) - _f(design_indoor)), shape)
        inv_b = np.broadcast_to(1.0 / (_f(design_indoor) - _f(outdoor_design)), shape)
        if method == "bisection":
            return _bisect(t_o, t_m, m, inv_a, inv_b, tolerance)
        if method != "newton":
            raise ValueError(f"unknown method {method!r} (newton or bisection)")
        return _newton(t_o, t_m, m, inv_a, inv_b, tolerance)


def estimate_indoor(
    supply: FloatArray, return_: FloatArray, outdoor: FloatArray, design: Design, tolerance: float = 1e-6
) -> FloatArray:
    """`estimate_indoor_temp` (Newton) for the loops of `design`, its terms computed once (arrays of one shape)."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        t_m = 0.5 * (supply + return_)
        return _newton(outdoor, t_m, design.exponent, design.inv_mean_excess, design.inv_load_span, tolerance)


def _newton(
    t_o: FloatArray, t_m: FloatArray, m: FloatArray, inv_a: FloatArray, inv_b: FloatArray, tolerance: float
) -> FloatArray:
    """Newton steps from t_o for every element until the largest finite step is within `tolerance`."""
    shape = np.broadcast_shapes(t_o.shape, t_m.shape, m.shape)
    x = np.array(np.broadcast_to(t_o, shape), dtype=np.float64)
    u, um, slope, step = (np.empty(shape) for _ in range(4))
    for _ in range(50):
        np.subtract(t_m, x, out=u)
        np.maximum(u, 0.0, out=u)
        np.multiply(u, inv_a, out=u)
        np.power(u, m, out=um)
        # r(x) into step, -r'(x) = m inv_a u^(m-1) + inv_b into slope (u^(m-1) = u^m / u, 0 unless u > 0)
        np.subtract(x, t_o, out=step)
        np.multiply(step, inv_b, out=step)
        np.subtract(um, step, out=step)
        np.divide(um, u, out=slope)
        flat = ~(u > 0.0)
        if flat.any():
            slope[flat] = 0.0
        np.multiply(slope, m, out=slope)
        np.multiply(slope, inv_a, out=slope)
        np.add(slope, inv_b, out=slope)
        np.divide(step, slope, out=step)
        np.add(x, step, out=x)
        if _largest_finite(step) <= tolerance:
            break
    return x


def _largest_finite(a: FloatArray) -> float:
    """The largest |a| of the finite elements, 0 if none (NaN skipped by fmax, inf rare: filtered then)."""
    largest = float(np.fmax.reduce(np.abs(a), axis=None, initial=0.0))
    if largest == math.inf:
        finite = a[np.isfinite(a)]
        largest = float(np.abs(finite).max()) if finite.size else 0.0
    return largest


def _bisect(
    t_o: FloatArray, t_m: FloatArray, m: FloatArray, inv_a: FloatArray, inv_b: FloatArray, tolerance: float
) -> FloatArray:
    """Vectorised bisection on [t_o, t_m] to a bracket of `tolerance` K, then one interpolation."""
    shape = t_o.shape
    x = np.array(t_o, dtype=np.float64)  # lower end of the bracket: the residual is >= 0 here
    width = np.maximum(t_m - t_o, 0.0)
    finite = width[np.isfinite(width)]
    span = float(finite.max()) if finite.size else 0.0
    steps = min(60, max(1, math.ceil(math.log2(span / tolerance)))) if span > tolerance else 1
    tmp = np.empty(shape)

    def residual(t: FloatArray, out: FloatArray) -> FloatArray:
        np.subtract(t_m, t, out=tmp)
        np.maximum(tmp, 0.0, out=tmp)
        np.multiply(tmp, inv_a, out=tmp)
        np.power(tmp, m, out=out)
        np.subtract(t, t_o, out=tmp)
        np.multiply(tmp, inv_b, out=tmp)
        np.subtract(out, tmp, out=out)
        return out

    # x moves up by each halved width where the residual at x + width is still positive (no masked
    # copies: they cost more than the arithmetic at 100,000 loops)
    mid = np.empty(shape)
    res = np.empty(shape)
    for _ in range(steps):
        width *= 0.5
        np.add(x, width, out=mid)
        x += width * (residual(mid, res) > 0.0)
    f_lo = residual(x, np.empty(shape))
    f_hi = residual(x + width, np.empty(shape))
    drop = f_lo - f_hi
    frac: FloatArray = np.clip(np.where(drop > 0.0, f_lo / np.where(drop > 0.0, drop, 1.0), 0.5), 0.0, 1.0)
    return x + width * frac


def running_mean_update(
    mean: ArrayLike, mean_ts: ArrayLike, value: ArrayLike, ts: ArrayLike, window_s: float
) -> tuple[FloatArray, FloatArray]:
    """Fold new samples into an exponentially weighted running mean; returns (mean, mean_ts).

    NaN or stale samples leave the mean as it was; `window_s` 0 follows the samples unsmoothed.
    """
    mean_a, mean_ts_a, value_a, ts_a = np.broadcast_arrays(*(_f(v) for v in (mean, mean_ts, value, ts)))
    shape = mean_a.shape
    with np.errstate(invalid="ignore", over="ignore"):
        fresh = ~np.isnan(value_a) & ~(ts_a <= mean_ts_a)
        unknown = np.isnan(mean_a)
        # irregular sampling: a sample's weight grows with the time since the last one
        keep = np.subtract(ts_a, mean_ts_a, out=np.empty(shape))
        np.maximum(keep, 0.0, out=keep)
        if window_s > 0.0:
            np.negative(keep, out=keep)
            np.divide(keep, window_s, out=keep)
            np.exp(keep, out=keep)
        else:
            keep.fill(0.0)
        keep[unknown | np.isnan(keep)] = 0.0
        # written as value + keep*(mean - value) so keep == 0 gives the sample exactly
        new_mean = np.subtract(mean_a, value_a, out=np.empty(shape))
        new_mean[unknown] = 0.0
        new_mean *= keep
        new_mean += value_a
        np.copyto(new_mean, mean_a, where=~fresh)
        new_ts = np.where(fresh, ts_a, mean_ts_a)
    return new_mean, new_ts
