import pytest

from efsctl.drive.names import model_key, name_problem, validate_model_name
from efsctl.errors import ConfigError

GOOD = ["resnet.safetensors", "team/a.gguf", "my model.bin", "modèle/数据 v2.onnx", "a..b", "x/y/z.pt",
        "é" * 512]
HOSTILE = ["", "../etc/passwd", "a/../../b", "/abs/path", ".hidden", "team/.tmp-x", "a//b", "a/", "./a",
           "a/./b", "..", ".", "nul\x00byte", "back\\slash", "x" * 1025, "é" * 513, "\udcff"]


@pytest.mark.parametrize("name", GOOD)
def test_valid_names(name):
    assert name_problem(name) is None
    assert validate_model_name(name) == name
    assert model_key(name) == "models/" + name


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_usage_errors(name):
    with pytest.raises(ConfigError) as info:
        validate_model_name(name)
    assert info.value.exit_code == 2
    assert "Invalid model name" in info.value.message


def test_limit_is_in_utf8_bytes():
    assert name_problem("a" * 1024) is None
    assert "1025 bytes" in name_problem("a" * 1025)
