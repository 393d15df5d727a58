"""Signed distances (in the caller's units) to the shapes the actors are built from."""

from __future__ import annotations

import math

import numpy as np


def capsule(u, v, ax, ay, bx, by, r):
    """Distance to a segment (a, b) of radius r; endpoints may be per-frame [T, 1, 1] arrays."""
    bax, bay = bx - ax, by - ay
    pax, pay = u - ax, v - ay
    t = np.clip((pax * bax + pay * bay) / (bax * bax + bay * bay), 0.0, 1.0)
    return np.hypot(pax - bax * t, pay - bay * t) - r


def taper(au, v, top, bottom, w_top, w_bottom):
    """Distance (approximate outside the corners) to a trapezoid symmetric about u = 0."""
    slope = (w_bottom - w_top) / (bottom - top)
    t = np.clip((v - top) / (bottom - top), 0.0, 1.0)
    side = (au - (w_top + (w_bottom - w_top) * t)) / math.sqrt(1.0 + slope * slope)
    return np.maximum(side, np.maximum(top - v, v - bottom))


def round_box(au, v, centre_y, half_w, half_h, r):
    """Distance to a rounded box centred on (0, centre_y)."""
    qx = au - (half_w - r)
    qy = np.abs(v - centre_y) - (half_h - r)
    outside = np.hypot(np.maximum(qx, 0.0), np.maximum(qy, 0.0))
    return outside + np.minimum(np.maximum(qx, qy), 0.0) - r
