"""GARCH(1,1) volatility forecasts and regime-switching probabilities, with no look-ahead.

Both models are refitted on a schedule, each time on a trailing window of returns that ends
before the bars it will be applied to; between refits the fitted parameters filter the new
returns recursively. The forecast at bar t is for bar t+1 and uses returns up to and including
bar t, known at t's close.

Why the GARCH fit is built this way
-----------------------------------
The previous fit (arch 8's quasi-maximum likelihood: SLSQP with finite-difference gradients and
its default tolerance) was ill-conditioned on these windows: on the BTC 1h sample a 1e-12
relative change of the returns moved its forecasts by up to 4% and flipped 32 volatility labels;
another BLAS kernel did the same. Three causes, three remedies:

- The likelihood is flat along a ridge where omega falls as alpha + beta rises towards 1: a
  1000-bar window cannot tell a half-life of 700 bars from one of 7000 (12 of 77 fits sat at
  alpha + beta >= 0.999). *Variance targeting* (Engle and Mezrich 1996; consistent and
  asymptotically normal, Francq, Horvath and Zakoian 2011) removes the ridge: omega =
  s2 (1 - alpha - beta), with s2 the window's mean squared return, so the forecast reverts to
  the window's own variance and only (alpha, beta) are estimated. *Persistence is capped*:
  alpha + beta <= ``max_persistence`` (``regimes.garch_max_persistence``, 0.999, a half-life of
  693 bars, about the longest such a window resolves); a fit on the cap is counted, not hidden.
- The optimizer stopped wherever its numerical gradient stopped improving, a point that moves
  with the last bits of the data. Here the likelihood, its gradient and its Hessian are exact
  (first-order linear filters, ``scipy.signal.lfilter``: plain loops, no BLAS); SLSQP finds the
  basin and Newton steps polish its end point to the optimum itself. A fit has converged only if
  it meets the optimality (KKT) conditions there: projected gradient <= ``_GRADIENT_TOLERANCE``
  and a positive-definite Hessian on the coordinates not held at a bound. The estimate is then a
  smooth function of the data: 1e-12 noise moves it by ~1e-11.
- The likelihood often has two maxima (a persistent one and an ARCH-like one with beta = 0, when
  a few huge returns dominate a window), and which one a local optimizer reached depended on
  its start and path. The fit starts from the previous fit (a warm start) and from the best
  point of a fixed grid in each of three beta bands, and keeps the best converged optimum: the
  global maximum whatever the path (checked against a dense grid on every window of the four
  committed samples). It could change only where two maxima tie to ~1e-12 in mean
  log-likelihood. Consecutive fits may still jump between the two maxima (beta 0 then 0.9):
  that is the data under a Gaussian quasi-likelihood, not numerical noise.

The optimizer works in (persistence, ARCH share) coordinates, alpha = share x persistence:
their box bounds keep every point it tries stationary, which SLSQP does not guarantee for a
general constraint. Rounding the fitted parameters was considered and rejected: a parameter
near a rounding boundary would jump by a whole step, moving the forecast far more than the noise
it was meant to absorb.

A fit that fails (a window with no variance or no identified parameters, or no start that
converges) is never used: the previous parameters are kept, logged and counted, and they
warm-start the next fit. Until a first fit succeeds, the root mean square of the returns so far
stands in.

The Markov-switching model (statsmodels) already starts from values derived from the data and
scores its likelihood by complex-step differentiation, so its fit is a smooth function of the
data (1e-12 noise moves P(high) by ~2e-8). It now runs to a gradient of ``_MARKOV_GTOL``
rather than BFGS's default 1e-5, where the end point could lie 3e-4 from the optimum, and is
judged converged by its final gradient (BFGS reports a loss of precision once it cannot
improve, at ~2e-8). A failed fit is retried from the previous parameters; if that fails too,
the previous parameters are kept, logged and counted.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import astuple, dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

_FTOL = 1e-10  # SLSQP's tolerance on the mean negative log-likelihood per bar
_MAX_ITERATIONS = 200
_NEWTON_STEPS = 20  # polishing SLSQP's end point; two or three reach machine precision
_GRADIENT_TOLERANCE = 1e-8  # the largest projected gradient a converged fit may have
_MIN_CURVATURE = 1e-10  # a smaller Hessian eigenvalue: a direction the data do not identify
_SAME_OPTIMUM = 1e-6  # SLSQP end points closer than this polish to the same optimum
_SNAP = 1e-10  # a coordinate this close to its bound is on it (SLSQP stops a hair inside)
_BOUND_TOLERANCE = 1e-8  # alpha + beta this close to the cap counts as on it
# Starting grid: each beta band contributes its best point, so that every maximum the
# likelihood of a window has in practice is reached from some start.
_ALPHAS = (0.02, 0.05, 0.1, 0.2, 0.4)
_BETA_BANDS = ((0.0, 0.2, 0.4), (0.6, 0.75, 0.85), (0.9, 0.95, 0.97))

_MARKOV_GTOL = 1e-8  # BFGS's gradient tolerance on the mean log-likelihood per bar
_MARKOV_CONVERGED = 1e-6  # the largest final gradient a converged fit may have
_MARKOV_MAX_ITERATIONS = 500
_MARKOV_RETURN_CAP = 10.0  # returns beyond this many high-state deviations are filtered at it


@dataclass(frozen=True)
class Refit:
    """One scheduled refit: the parameters in force from ``bar`` on.

    ``converged`` False: the fit failed and ``params`` are the previous refit's (None when
    no fit has succeeded yet). ``at_persistence_bound``: a converged fit whose persistence
    reached the cap (GARCH: alpha + beta; Markov: the larger staying probability, which is
    not bounded there but is counted as the same warning sign).
    """

    bar: int
    params: tuple[float, ...] | None
    converged: bool
    at_persistence_bound: bool


@dataclass(frozen=True)
class FitDiagnostics:
    """How a model's refits went: how many, how many failed, how many at the persistence cap."""

    refits: int
    failed: int
    at_persistence_bound: int

    @classmethod
    def of(cls, refits: Sequence[Refit]) -> FitDiagnostics:
        """Count a model's refits."""
        return cls(
            refits=len(refits),
            failed=sum(not refit.converged for refit in refits),
            at_persistence_bound=sum(bool(refit.at_persistence_bound) for refit in refits),
        )


class Forecast(NamedTuple):
    """A model's value per bar and the refits that produced it."""

    values: FloatArray
    refits: tuple[Refit, ...]

    @property
    def fits(self) -> FitDiagnostics:
        """The refits, counted."""
        return FitDiagnostics.of(self.refits)


@dataclass(frozen=True)
class GarchParams:
    """sigma^2_{t+1} = omega + alpha r_t^2 + beta sigma^2_t, in the returns' units."""

    omega: float
    alpha: float
    beta: float

    @property
    def persistence(self) -> float:
        """alpha + beta: how slowly a shock to the variance fades."""
        return self.alpha + self.beta


class GarchFit(NamedTuple):
    """A converged fit: its parameters and the variance it forecasts for the next bar."""

    params: GarchParams
    next_variance: float


def _recursion(drives: FloatArray, beta: float) -> FloatArray:
    """y_t = drive_t + beta y_{t-1}, y_0 = drive_0, along the last axis (plain loops, no BLAS)."""
    from scipy.signal import lfilter

    return np.asarray(lfilter([1.0], [1.0, -beta], drives, axis=-1), dtype=np.float64)


def _lagged(values: FloatArray, first: float) -> FloatArray:
    """values shifted one bar later along the last axis, ``first`` in front."""
    out = np.empty_like(values)
    out[..., 0] = first
    out[..., 1:] = values[..., :-1]
    return out


def _variance_path(z2: FloatArray, alpha: float, beta: float) -> FloatArray:
    """The variance path of returns scaled to unit mean square, started at that mean."""
    drive = (1.0 - alpha - beta) + alpha * _lagged(z2, 1.0)
    drive[0] = 1.0
    return _recursion(drive, beta)


class _Likelihood(NamedTuple):
    """Mean negative Gaussian log-likelihood per bar (less a constant), its gradient and Hessian
    in the coordinates (persistence, ARCH share); the Hessian is NaN unless asked for."""

    value: float
    gradient: FloatArray
    hessian: FloatArray


def _likelihood(theta: FloatArray, z2: FloatArray, *, hessian: bool = False) -> _Likelihood:
    """The likelihood of returns scaled to unit mean square at ``theta`` (see _Likelihood).

    alpha = share x persistence and beta = the rest: box bounds on (persistence, share) keep
    every point the optimizer tries stationary (SLSQP may step outside a general constraint
    such as alpha + beta <= cap, never outside its bounds).
    """
    persistence, share = float(theta[0]), float(theta[1])
    alpha, beta = share * persistence, (1.0 - share) * persistence
    n = len(z2)
    # sigma^2_t and its derivatives all follow the same first-order filter.
    drives = np.empty((2, n))
    drives[0] = (1.0 - alpha - beta) + alpha * _lagged(z2, 1.0)
    drives[0, 0] = 1.0
    drives[1] = _lagged(z2 - 1.0, 0.0)
    variance, d_a = _recursion(drives, beta)
    d_b = _recursion(_lagged(variance - 1.0, 0.0), beta)
    value = 0.5 * float(np.sum(np.log(variance) + z2 / variance)) / n
    first = 0.5 * (1.0 / variance - z2 / variance**2)
    g_a, g_b = float(np.sum(first * d_a)) / n, float(np.sum(first * d_b)) / n
    # (alpha, beta) = (share p, (1 - share) p): the chain rule, written out for 2 x 2.
    gradient = np.array([share * g_a + (1.0 - share) * g_b, persistence * (g_a - g_b)])
    if not hessian:
        return _Likelihood(value, gradient, np.full((2, 2), np.nan))
    d_ab, d_bb = _recursion(_lagged(np.stack((d_a, 2.0 * d_b)), 0.0), beta)  # d_aa = 0
    second = 0.5 * (2.0 * z2 - variance) / variance**3
    h_aa = float(np.sum(second * d_a * d_a)) / n
    h_ab = float(np.sum(second * d_a * d_b + first * d_ab)) / n
    h_bb = float(np.sum(second * d_b * d_b + first * d_bb)) / n
    u_a, u_b = share, 1.0 - share  # d alpha / dp, d beta / dp
    v_a, v_b = persistence, -persistence  # d alpha / d share, d beta / d share
    h_pp = u_a * u_a * h_aa + 2.0 * u_a * u_b * h_ab + u_b * u_b * h_bb
    h_ss = v_a * v_a * h_aa + 2.0 * v_a * v_b * h_ab + v_b * v_b * h_bb
    # d2 alpha / dp ds = 1 and d2 beta / dp ds = -1 add g_a - g_b.
    h_ps = u_a * v_a * h_aa + (u_a * v_b + u_b * v_a) * h_ab + u_b * v_b * h_bb + g_a - g_b
    return _Likelihood(value, gradient, np.array([[h_pp, h_ps], [h_ps, h_ss]]))


def _coordinates(alpha: float, beta: float) -> FloatArray:
    """(persistence, ARCH share) of (alpha, beta)."""
    persistence = alpha + beta
    return np.array([persistence, alpha / persistence if persistence > 0.0 else 0.5])


def _starts(z2: FloatArray, max_persistence: float) -> list[FloatArray]:
    """The best grid point of each beta band (deterministic: a fixed grid, lowest value)."""
    alphas = np.array(_ALPHAS)
    n = len(z2)
    starts = []
    for band in _BETA_BANDS:
        best: tuple[float, float, float] | None = None
        for beta in band:
            alpha = alphas[alphas + beta <= max_persistence][:, np.newaxis]
            if not alpha.size:
                continue
            drives = (1.0 - alpha - beta) + alpha * _lagged(z2, 1.0)
            drives[:, 0] = 1.0
            variance = _recursion(drives, beta)  # one filter for all the alphas of a beta
            values = np.sum(np.log(variance) + z2 / variance, axis=1) / n
            i = int(np.argmin(values))
            if best is None or values[i] < best[0]:
                best = (float(values[i]), float(alpha[i, 0]), beta)
        if best is not None:
            starts.append(_coordinates(best[1], best[2]))
    return starts


def _snap(theta: FloatArray, upper: FloatArray) -> FloatArray:
    """``theta`` in its box, a coordinate within ``_SNAP`` of a bound put on it."""
    point = np.clip(theta, 0.0, upper)
    point[point <= _SNAP] = 0.0
    near = point >= upper - _SNAP
    point[near] = upper[near]
    return np.asarray(point)


def _free(theta: FloatArray, gradient: FloatArray, upper: FloatArray) -> npt.NDArray[np.bool_]:
    """The coordinates not held at a bound by the gradient (the share is moot at persistence 0)."""
    held = ((theta <= 0.0) & (gradient > 0.0)) | ((theta >= upper) & (gradient < 0.0))
    held[1] |= theta[0] <= 0.0
    return np.asarray(~held)


def _projected_gradient(at: _Likelihood, theta: FloatArray, upper: FloatArray) -> float:
    """The largest gradient component along which the point could still move."""
    return float(np.max(np.abs(at.gradient[_free(theta, at.gradient, upper)]), initial=0.0))


def _polish(theta: FloatArray, z2: FloatArray, upper: FloatArray) -> tuple[FloatArray, str]:
    """Newton steps from an optimizer's end point to the optimum itself, then the KKT check.

    Returns the point and "" if it is a strict local minimum (projected gradient at most
    ``_GRADIENT_TOLERANCE``, positive-definite Hessian on the free coordinates), else why not.
    """
    point = _snap(theta, upper)
    at = _likelihood(point, z2, hessian=True)
    for _ in range(_NEWTON_STEPS):
        free = _free(point, at.gradient, upper)
        hessian = at.hessian[np.ix_(free, free)]
        if not free.any() or np.min(np.linalg.eigvalsh(hessian)) <= _MIN_CURVATURE:
            break
        step = np.zeros(2)
        step[free] = -np.linalg.solve(hessian, at.gradient[free])
        candidate = _snap(point + step, upper)
        there = _likelihood(candidate, z2, hessian=True)
        # Judged by the gradient: the value stops resolving progress long before it does.
        if _projected_gradient(there, candidate, upper) >= _projected_gradient(at, point, upper):
            break
        point, at = candidate, there
    free = _free(point, at.gradient, upper)
    if not (np.all(np.isfinite(point)) and np.isfinite(at.value)):
        return point, "not finite"
    gradient = _projected_gradient(at, point, upper)
    if gradient > _GRADIENT_TOLERANCE:
        return point, f"gradient {gradient:.1e}"
    if free.any() and np.min(np.linalg.eigvalsh(at.hessian[np.ix_(free, free)])) <= _MIN_CURVATURE:
        return point, "parameters not identified (flat likelihood)"
    return point, ""


def fit_garch(
    returns: FloatArray, *, max_persistence: float, previous: GarchParams | None = None
) -> GarchFit | None:
    """Fit a variance-targeted GARCH(1,1) by Gaussian quasi-maximum likelihood.

    The global optimum over alpha, beta >= 0, alpha + beta <= ``max_persistence`` among the
    local optima reached from ``previous`` (a warm start) and a fixed grid; see the module
    docstring. None when the window has no variance or no start converges.
    """
    from scipy.optimize import minimize

    r = np.asarray(returns, dtype=np.float64)
    mean_square = float(np.mean(r**2)) if len(r) else 0.0
    if not np.isfinite(mean_square) or mean_square <= 0.0:
        log.warning("GARCH fit: the window has no variance (mean square %g)", mean_square)
        return None
    z2 = r**2 / mean_square
    upper = np.array([max_persistence, 1.0])
    starts = _starts(z2, max_persistence)
    if previous is not None:
        starts.insert(0, _coordinates(previous.alpha, previous.beta))
    best: tuple[float, FloatArray] | None = None
    reasons = set()
    ends: list[FloatArray] = []
    for start in starts:
        result = minimize(
            lambda x: _likelihood(x, z2)[:2],
            start,
            jac=True,
            method="SLSQP",
            bounds=list(zip((0.0, 0.0), upper, strict=True)),
            options={"ftol": _FTOL, "maxiter": _MAX_ITERATIONS},
        )
        end = np.asarray(result.x, dtype=np.float64)
        if any(np.max(np.abs(end - other)) < _SAME_OPTIMUM for other in ends):
            continue  # a basin already polished
        ends.append(end)
        point, failure = _polish(end, z2, upper)
        if failure:
            reasons.add(f"{failure} ({result.message})")
            continue
        value = _likelihood(point, z2).value
        if best is None or value < best[0]:
            best = (value, point)
    if best is None:
        log.warning("GARCH fit: no start converged: %s", "; ".join(sorted(reasons)))
        return None
    persistence, share = (float(v) for v in best[1])
    alpha, beta = share * persistence, (1.0 - share) * persistence
    params = GarchParams(mean_square * (1.0 - alpha - beta), alpha, beta)
    # The variance of the bar after the window, from the window's filtered path.
    last = _variance_path(z2, alpha, beta)[-1] * mean_square
    return GarchFit(params, params.omega + alpha * float(r[-1]) ** 2 + beta * float(last))


def garch_forecast(
    returns: FloatArray, *, window: int, refit_every: int, max_persistence: float
) -> Forecast:
    """One-step-ahead GARCH(1,1) volatility per bar (same units as ``returns``), and its refits.

    ``returns[t]`` is the return of bar t (NaN for the first). The value at t forecasts the
    volatility of bar t+1. Until a fit has succeeded (a full window of history first), the root
    mean square of the returns so far stands in for the forecast.
    """
    r = np.nan_to_num(np.asarray(returns, dtype=np.float64))
    n = len(r)
    sigma = np.sqrt(np.cumsum(r**2) / np.arange(1, n + 1))
    params: GarchParams | None = None
    variance = 0.0
    refits: list[Refit] = []
    for t in range(window, n):
        if (t - window) % refit_every == 0:
            fitted = fit_garch(r[t - window : t], max_persistence=max_persistence, previous=params)
            if fitted is None:
                log.warning("GARCH refit at bar %d failed; the previous parameters stay", t)
            elif params is None:
                variance = fitted.next_variance  # sigma^2_t, from returns up to t-1
            params = params if fitted is None else fitted.params
            refits.append(
                Refit(
                    bar=t,
                    params=None if params is None else astuple(params),
                    converged=fitted is not None,
                    at_persistence_bound=fitted is not None
                    and fitted.params.persistence >= max_persistence - _BOUND_TOLERANCE,
                )
            )
        if params is not None:
            # sigma^2_{t+1} = omega + alpha r_t^2 + beta sigma^2_t: uses bar t, known at its close.
            variance = params.omega + params.alpha * r[t] ** 2 + params.beta * variance
            sigma[t] = np.sqrt(variance)
    return Forecast(np.asarray(sigma), tuple(refits))


def _fit_markov(history: FloatArray, previous: FloatArray | None) -> FloatArray | None:
    """Fitted parameters of the 2-state model, from its own start or else ``previous``."""
    from statsmodels.tsa.regime_switching.markov_regression import MarkovRegression

    model = MarkovRegression(history, k_regimes=2, trend="n", switching_variance=True)
    for start in (None,) if previous is None else (None, previous):
        with warnings.catch_warnings():
            # Convergence is judged below from the final gradient, not from BFGS's flag.
            warnings.simplefilter("ignore")
            try:
                result = model.fit(
                    start_params=start,
                    disp=False,
                    cov_type="none",
                    gtol=_MARKOV_GTOL,
                    maxiter=_MARKOV_MAX_ITERATIONS,
                )
                loglikelihood = float(result.llf)
            except (ValueError, RuntimeError, np.linalg.LinAlgError) as err:
                # statsmodels raises these on degenerate windows (e.g. no variance at all).
                log.warning("regime-switching fit raised %s: %s", type(err).__name__, err)
                continue
        params = np.asarray(result.params, dtype=np.float64)
        gradient = np.asarray(result.mle_retvals.get("gopt", [np.nan]), dtype=np.float64)
        if (
            np.all(np.isfinite(params))
            and np.isfinite(loglikelihood)
            and np.max(np.abs(gradient)) <= _MARKOV_CONVERGED
        ):
            return params
    return None


def high_volatility_probability(
    returns: FloatArray, *, window: int, refit_every: int, max_persistence: float
) -> Forecast:
    """Filtered probability of the high-variance state of a 2-state Markov-switching model.

    Each segment of ``refit_every`` bars is filtered with parameters fitted on the ``window``
    bars before it (the filter runs over that window first, to settle). Filtered, not
    smoothed: the probability at t uses returns up to t only. NaN before the first fit that
    succeeds. ``max_persistence`` marks the fits where a state (almost) never leaves.
    """
    from statsmodels.tsa.regime_switching.markov_regression import MarkovRegression

    r = np.nan_to_num(np.asarray(returns, dtype=np.float64)) * 100.0  # percent: fits better
    n = len(r)
    out = np.full(n, np.nan)
    params: FloatArray | None = None
    refits: list[Refit] = []
    for start in range(window, n, refit_every):
        stop = min(start + refit_every, n)
        fitted = _fit_markov(r[start - window : start], params)
        if fitted is None:
            log.warning(
                "regime-switching refit at bar %d failed; the previous parameters stay", start
            )
        # Parameters: p[0->0], p[1->0], sigma2[0], sigma2[1].
        staying = 0.0 if fitted is None else float(max(fitted[0], 1.0 - fitted[1]))
        params = params if fitted is None else fitted
        refits.append(
            Refit(
                bar=start,
                params=None if params is None else tuple(float(v) for v in params),
                converged=fitted is not None,
                at_persistence_bound=staying >= max_persistence,
            )
        )
        if params is None:
            continue
        high = int(np.argmax(params[-2:]))
        # A return many of the high state's deviations out has a likelihood of 0 under both
        # states, and the filter divides 0 by 0; capped there, it reads (as it should) as
        # certainly the high state, and no other return changes.
        cap = _MARKOV_RETURN_CAP * float(np.sqrt(params[-2:][high]))
        span = np.clip(r[start - window : stop], -cap, cap)
        filtered = MarkovRegression(span, k_regimes=2, trend="n", switching_variance=True).filter(
            params
        )
        probabilities = np.asarray(filtered.filtered_marginal_probabilities)
        out[start:stop] = probabilities[window:, high]
    return Forecast(out, tuple(refits))
