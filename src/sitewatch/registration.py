"""Sub-pixel translation between two images by cross-correlation (Guizar-Sicairos et al. 2008).

The one path of ``skimage.registration.phase_cross_correlation`` that :mod:`sitewatch.align`
uses (real-space images, no masks, no disambiguation), ported so that the core install does
without scikit-image and its dependencies (about 44 MB). It is the same arithmetic in the same
order, with the same FFT (``scipy.fft``) and dtypes, so the shifts are bit-identical to
scikit-image 0.26's (``tests/test_registration.py`` compares them).

Ported from scikit-image 0.26.0, ``skimage/registration/_phase_cross_correlation.py``
(itself a port of Manuel Guizar's MATLAB code, "Efficient subpixel image registration by
cross-correlation"):

Copyright (c) 2009-2022 the scikit-image team; BSD-3-Clause licence, whose full text and
conditions ship beside this module in ``LICENSE-scikit-image.txt``.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.fft import fftfreq, fftn, ifftn


def _upsampled_dft(data: np.ndarray, region_size: float, upsample_factor: np.ndarray,
                   axis_offsets: np.ndarray) -> np.ndarray:
    """The DFT of ``data`` upsampled by ``upsample_factor``, only over a small region, by matrix products.

    As zero-padding the spectrum and taking the inverse FFT, but costs a few small matrix
    products instead of an FFT ``upsample_factor`` times larger in each dimension.
    """
    im2pi = 1j * 2 * np.pi
    for n_items, ax_offset in list(zip(data.shape, axis_offsets))[::-1]:
        kernel = (np.arange(region_size) - ax_offset)[:, None] * fftfreq(n_items, upsample_factor)
        kernel = np.exp(-im2pi * kernel).astype(data.dtype, copy=False)  # the data's precision
        data = np.tensordot(kernel, data, axes=(1, -1))
    return data


def _error(cc_max: complex, src_amp: float, target_amp: float) -> float:
    """Translation-invariant normalised RMS error between the images."""
    amp = src_amp * target_amp
    if amp == 0:
        warnings.warn(f"Could not determine RMS error between images with the normalized average "
                      f"intensities {src_amp!r} and {target_amp!r}: one image may be empty.",
                      UserWarning, stacklevel=3)
    with np.errstate(invalid="ignore"):
        error = 1.0 - cc_max * cc_max.conj() / amp
    return np.sqrt(np.abs(error))


def phase_cross_correlation(reference_image: np.ndarray, moving_image: np.ndarray, *,
                            upsample_factor: int = 1, normalization: str | None = "phase",
                            ) -> tuple[np.ndarray, float, float]:
    """(shift, error, phasediff): the shift that registers ``moving_image`` onto ``reference_image``.

    As ``skimage.registration.phase_cross_correlation`` with ``space="real"``, no masks and
    ``disambiguate=False``: the shift (pixels, axis order of the arrays, to within
    ``1 / upsample_factor``) is found from the cross-correlation peak by an FFT, then refined
    by an upsampled DFT around it. ``normalization="phase"`` correlates phase only; ``None``
    (what align uses) the plain cross-correlation, more robust to noise.
    """
    if reference_image.shape != moving_image.shape:
        raise ValueError("images must be same shape")
    src_freq = fftn(reference_image)
    target_freq = fftn(moving_image)

    # whole-pixel shift: the cross-correlation by an inverse FFT
    shape = src_freq.shape
    image_product = src_freq * target_freq.conj()
    if normalization == "phase":
        eps = np.finfo(image_product.real.dtype).eps
        image_product /= np.maximum(np.abs(image_product), 100 * eps)
    elif normalization is not None:
        raise ValueError("normalization must be either phase or None")
    cross_correlation = ifftn(image_product)

    maxima = np.unravel_index(np.argmax(np.abs(cross_correlation)), cross_correlation.shape)
    midpoint = np.array([np.trunc(axis_size / 2) for axis_size in shape])
    float_dtype = image_product.real.dtype
    shift = np.stack(maxima).astype(float_dtype, copy=False)
    shift[shift > midpoint] -= np.array(shape)[shift > midpoint]

    if upsample_factor == 1:
        src_amp = np.sum(np.real(src_freq * src_freq.conj()))
        src_amp /= src_freq.size
        target_amp = np.sum(np.real(target_freq * target_freq.conj()))
        target_amp /= target_freq.size
        cc_max = cross_correlation[maxima]
    else:  # refine by an upsampled DFT around the whole-pixel estimate
        factor = np.array(upsample_factor, dtype=float_dtype)
        shift = np.round(shift * factor) / factor
        region_size = np.ceil(factor * 1.5)
        dftshift = np.trunc(region_size / 2.0)  # the centre of the output, at dftshift + 1
        offset = dftshift - shift * factor
        cross_correlation = _upsampled_dft(image_product.conj(), region_size, factor, offset).conj()
        maxima = np.unravel_index(np.argmax(np.abs(cross_correlation)), cross_correlation.shape)
        cc_max = cross_correlation[maxima]
        peak = np.stack(maxima).astype(float_dtype, copy=False)
        peak -= dftshift
        shift += peak / factor
        src_amp = np.sum(np.real(src_freq * src_freq.conj()))
        target_amp = np.sum(np.real(target_freq * target_freq.conj()))

    for dim in range(src_freq.ndim):  # along a single row or column a shift means nothing
        if shape[dim] == 1:
            shift[dim] = 0
    if np.isnan(cc_max) or np.isnan(src_amp) or np.isnan(target_amp):
        raise ValueError("NaN values found: remove NaNs from the images before registering them")
    return shift, _error(cc_max, src_amp, target_amp), np.arctan2(cc_max.imag, cc_max.real)
