"""Shared fixtures of the training-side tests: the tiny released-schema TFRecord.

The file is written once per pytest session by the committed, seeded script
``tests/training/make_tiny_tfrecord.py`` (no binary test data is committed).
"""

from __future__ import annotations

import pytest

from tests.training import make_tiny_tfrecord as tiny
from training import data


@pytest.fixture(scope="session")
def examples() -> list[dict]:
    """The tiny fixture's examples as dicts keyed by the released field names."""
    return tiny.make_examples()


@pytest.fixture(scope="session")
def tiny_file(tmp_path_factory: pytest.TempPathFactory, examples: list[dict]) -> str:
    """Path of the gzipped tiny TFRecord (written once per session)."""
    path = tmp_path_factory.getbasetemp() / "tiny-fixture" / "tiny.tfrecord.gz"
    if not path.exists():
        path.parent.mkdir(exist_ok=True)
        assert data.write_examples(str(path), examples) == tiny.N_EXAMPLES
    return str(path)
