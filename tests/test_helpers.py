"""The test suite's own rule: a missing data folder, font or Tesseract skips a test, except under
PIXAR_REQUIRE_DATA=1 (.ci/run sets it when the data folder exists), where it fails it."""
import pytest
from helpers import need_data


def test_need_data_skips_and_fails_under_pixar_require_data(monkeypatch):
    monkeypatch.delenv("PIXAR_REQUIRE_DATA", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no font here"):
        need_data("no font here")
    monkeypatch.setenv("PIXAR_REQUIRE_DATA", "1")
    with pytest.raises(pytest.fail.Exception, match="PIXAR_REQUIRE_DATA=1 but no font here"):
        need_data("no font here")
