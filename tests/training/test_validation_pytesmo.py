"""In-situ validation of real ISMN sensors: the per-sensor metrics equal pytesmo's to 1e-9.

Runs in the training environment because pytesmo lives there (it does not install beside QGIS's
numpy 1.24). The ISMN station files come from the ismn sdist (tests/data/ismn_testdata.py, fetched
into build/ at test time); the maps are built to hold known values at the stations.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from pytesmo import metrics as pm

from smqgis.core import metrics, validation

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("ismn_testdata", ROOT / "tests" / "data" / "ismn_testdata.py")
td = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(td)
TOL = 1e-9


def test_real_ismn_validation_metrics_equal_pytesmo(tmp_path: Path) -> None:
    try:
        data_dir = td.ismn_test_data()
    except RuntimeError as exc:
        pytest.skip(str(exc))
    case = td.multinetwork_case(data_dir, tmp_path)
    result = validation.validate_maps(case["maps"], str(case["archive"]))
    assert len(result.sensors) == 3
    kept_ubrmse, kept_r = [], []
    for row in result.sensors:
        rows = case["expected"][row["sensor_id"]]
        est = np.array([r[3] for r in rows])
        obs = np.array([r[2] for r in rows])
        assert row["n"] == len(rows)
        assert row["ubrmse"] == pytest.approx(pm.ubrmsd(est, obs), abs=TOL)
        assert row["rmse"] == pytest.approx(pm.rmsd(est, obs), abs=TOL)
        assert row["r"] == pytest.approx(pm.pearson_r(est, obs), abs=TOL)
        assert row["bias"] == pytest.approx(pm.bias(est, obs), abs=TOL)
        assert row["in_average"] == (len(rows) >= metrics.MIN_POINTS)
        if row["in_average"]:
            kept_ubrmse.append(pm.ubrmsd(est, obs))
            kept_r.append(pm.pearson_r(est, obs))
    assert 0 < len(kept_r) < len(result.sensors)  # some sensors below 13 points are left out
    assert result.average["ubrmse"] == pytest.approx(np.mean(kept_ubrmse), abs=TOL)
    assert result.average["r"] == pytest.approx(np.mean(kept_r), abs=TOL)
