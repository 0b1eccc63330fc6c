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

import numpy as np
from numpy.typing import ArrayLike, NDArray

from stationmon.domain.vocabulary import DESIGN_INDOOR

__all__ = [
    "FloatArray",
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
    # clamp negative loads to zero but keep NaN (unknown outdoor) as NaN
    return np.where(np.isnan(q), q, np.maximum(q, 0.0))


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
    q = relative_load(outdoor, indoor_target=indoor_target, outdoor_design=outdoor_design, design_indoor=design_indoor)
    ds, dr = _f(design_supply), _f(design_return)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_part = (0.5 * (ds + dr) - _f(design_indoor)) * np.power(q, 1.0 / _f(exponent))
        half_dt = 0.5 * (ds - dr) * q / _f(relative_flow)
    base = _f(indoor_target) + mean_part
    return base + half_dt, base - half_dt


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
        x = np.array(t_o, dtype=np.float64)
        u = np.empty(shape)
        um = np.empty(shape)
        slope = np.zeros(shape)
        step = np.empty(shape)
        for _ in range(50):
            np.subtract(t_m, x, out=u)
            np.maximum(u, 0.0, out=u)
            np.multiply(u, inv_a, out=u)
            np.power(u, m, out=um)
            # r(x) into step, -r'(x) = m inv_a u^(m-1) + inv_b into slope (u^(m-1) = u^m / u)
            np.subtract(x, t_o, out=step)
            np.multiply(step, inv_b, out=step)
            np.subtract(um, step, out=step)
            slope.fill(0.0)
            np.divide(um, u, out=slope, where=u > 0.0)
            np.multiply(slope, m, out=slope)
            np.multiply(slope, inv_a, out=slope)
            np.add(slope, inv_b, out=slope)
            np.divide(step, slope, out=step)
            np.add(x, step, out=x)
            finite = step[np.isfinite(step)]
            if not finite.size or float(np.abs(finite).max()) <= tolerance:
                break
        return x


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
    mean_a, mean_ts_a, value_a, ts_a = (_f(v) for v in (mean, mean_ts, value, ts))
    with np.errstate(invalid="ignore", over="ignore"):
        fresh = ~np.isnan(value_a) & ~(ts_a <= mean_ts_a)
        # irregular sampling: a sample's weight grows with the time since the last one
        gap = np.maximum(ts_a - mean_ts_a, 0.0)
        keep = np.exp(-gap / window_s) if window_s > 0.0 else np.zeros(np.shape(gap))
        keep = np.where(np.isnan(mean_a) | np.isnan(keep), 0.0, keep)
        # written as value + keep*(mean - value) so keep == 0 gives the sample exactly
        blended = value_a + keep * np.where(np.isnan(mean_a), 0.0, mean_a - value_a)
        new_mean = np.where(fresh, blended, mean_a)
        new_ts = np.where(fresh, ts_a, mean_ts_a)
    return new_mean, new_ts
