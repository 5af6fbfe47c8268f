import pytest

from efsctl.drive.names import model_key, name_problem, validate_model_name
from efsctl.errors import ConfigError

GOOD = ["resnet.safetensors", "team/a.gguf", "my model.bin", "modèle/数据 v2.onnx", "a..b", "x/y/z.pt",
        "é" * 127, "/".join(["x" * 255] * 4), "tab-free ~!@#$%^&()[]{}+=,;'"]
HOSTILE = ["", "../etc/passwd", "a/../../b", "/abs/path", ".hidden", "team/.tmp-x", "a//b", "a/", "./a",
           "a/./b", "..", ".", "nul\x00byte", "back\\slash", "x" * 1025, "/".join(["é" * 100] * 6), "\udcff",
           "new\nline", "tab\there", "del\x7f", "x" * 256, "a/" + "é" * 128]


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


def test_limits_are_in_utf8_bytes():
    name = "/".join(["a" * 255] * 3 + ["a" * 254, "b"])  # 1024 bytes
    assert len(name) == 1024 and name_problem(name) is None
    assert "1025 bytes" in name_problem(name + "b")
    assert "over 255 bytes" in name_problem("é" * 128)
