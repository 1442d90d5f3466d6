import pytest


@pytest.fixture(scope="session")
def tiny_decode_json(tmp_path_factory):
    """One real end-to-end decode of gemma3n-tiny on this backend, shared by tests."""
    from click.testing import CliRunner

    from mlxprof.cli import main

    path = tmp_path_factory.mktemp("decode") / "tiny.json"
    r = CliRunner().invoke(main, ["decode", "--model", "gemma3n-tiny", "--runs", "3", "--warmup", "4",
                                  "--tokens", "24", "--json", str(path), "--quiet"])
    assert r.exit_code == 0, r.output
    return path
