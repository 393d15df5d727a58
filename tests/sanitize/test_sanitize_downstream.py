"""A downstream team reads a sanitized store with plain zarr and xarray, without anon-store."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np

from pipeline.sanitize import sanitize
from sanitize.stores import read_features

# Runs in a fresh interpreter: only zarr, xarray and numpy; fails if anything imports pipeline.
READER = textwrap.dedent(
    """
    import json
    import sys
    import numpy as np
    import xarray as xr
    import zarr

    path, out = sys.argv[1], sys.argv[2]
    group = zarr.open_group(path, mode="r")
    meta = json.loads(group.attrs["anon_store"])
    assert meta["kind"] == "sanitized" and meta["status"] == "complete", meta
    ok = group["status"][:] == 1
    train = (group["split"][:] == "train") & ok
    clips = group["clip_features"][:][train]            # [videos, clip, feature]
    ds = xr.open_zarr(path)                             # consolidated metadata
    assert ds["clip_features"].dims == ("video", "clip", "feature")
    assert ds["window_features"].dims == ("window", "feature")
    in_train = (ds["split"] == "train").compute()
    x_train = ds["clip_features"].where(in_train, drop=True).values
    v = int(np.flatnonzero(group["kind"][:] == "untrimmed")[0])
    lo = int(group["window_offset"][v]); n = int(group["window_count"][v])
    windows = ds["window_features"].isel(window=slice(lo, lo + n)).values
    owner = ds["window_video"].values                           # every window row is real
    assert (owner >= 0).all() and np.isfinite(ds["window_features"].values[ok[owner]]).all()
    assert ds["clip_features"].sel(video=str(ds["video"].values[v])).shape[0] > 0
    ds.isel(video=slice(0, 3)).to_netcdf(out + ".nc")           # flat attrs: netCDF accepts them
    assert "pipeline" not in sys.modules and "store_schema" not in sys.modules
    np.savez(out, clips=clips, x_train=x_train, windows=windows, v=v,
             ids=np.array([str(i) for i in ds["video_id"].values]))
    """
)


def test_plain_zarr_and_xarray_read_the_sanitized_store(raw_store, mlp_adapter, tmp_path):
    output = tmp_path / "sanitized.zarr"
    sanitize(raw_store.url, mlp_adapter, output)
    result = tmp_path / "read.npz"
    subprocess.run([sys.executable, "-c", READER, str(output), str(result)], check=True)
    read = np.load(result)
    import zarr

    group = zarr.open_group(str(output), mode="r")
    split, status = np.asarray(group["split"][:]), np.asarray(group["status"][:])
    features = read_features(output)
    np.testing.assert_array_equal(
        read["clips"], features["clip_features"][(split == "train") & (status == 1)]
    )
    np.testing.assert_array_equal(read["x_train"], features["clip_features"][split == "train"])
    v = int(read["v"])
    lo, n = int(group["window_offset"][v]), int(group["window_count"][v])
    np.testing.assert_array_equal(
        read["windows"], np.asarray(group["window_features"][lo : lo + n])
    )
    assert list(read["ids"]) == [f"video-{i:03d}" for i in range(23)]
