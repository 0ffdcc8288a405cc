from pathlib import Path

import pytest

# The public benchmark data lies beside the checkout (`../shared/data`), in CI too.
SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"


@pytest.fixture(scope="session")
def bfcl_dir() -> Path:
    path = SHARED_DATA / "bfcl"
    assert path.is_dir(), f"the BFCL data is expected at {path}"
    return path
