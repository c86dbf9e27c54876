"""prunebench.library.artifacts: atomic writes and the content checksums every artifact carries (one flipped bit anywhere in a
mask, init, checkpoint, data cache or results table is a one-line error naming the file)."""
import json

import pytest
import torch

from prunebench.library import artifacts as io
from prunebench.library.errors import PrunebenchError
from prunebench.library.init import initialize, load_init, save_init
from prunebench.library.masks import Mask
from prunebench.library.models import build_model


def _flip(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _data_offsets(path):
    """Byte offsets of the tensor region of a safetensors file: every byte after the header."""
    n = int.from_bytes(path.read_bytes()[:8], "little")
    return 8 + n, path.stat().st_size


def _header_value_offset(path, text):
    """Offset of `text` inside the header (to flip a bit of a recorded value, keeping valid JSON)."""
    i = path.read_bytes().find(text.encode())
    assert i > 0, text
    return i


def _mask_file(tmp_path):
    from test_train import model_and_mask

    model, mask = model_and_mask(sparsity=0.7)
    path = tmp_path / "mask.safetensors"
    mask.save(path, method="random", sparsity=0.7)
    return path, model


def _init_file(tmp_path):
    model = initialize(build_model("lenet300", "mnist"), "kaiming_normal", 0)
    path = tmp_path / "init.safetensors"
    save_init(path, model, model="lenet300", dataset="mnist", scheme="kaiming_normal", seed=0)
    return path


def test_round_trip_keeps_tensors_and_metadata(tmp_path):
    t = {"a": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.tensor([1, 2], dtype=torch.int64)}
    io.save_tensors(tmp_path / "x.safetensors", t, {"kind": "test", "n": 2})
    back, meta = io.load_tensors(tmp_path / "x.safetensors")
    assert meta == {"kind": "test", "n": 2}
    assert all(torch.equal(back[k], t[k]) for k in t)


def test_checksum_covers_names_shapes_dtypes_and_metadata():
    a = {"w": torch.zeros(2, 3)}
    base = io.tensors_sha256(a, "{}")
    assert io.tensors_sha256({"v": torch.zeros(2, 3)}, "{}") != base
    assert io.tensors_sha256({"w": torch.zeros(3, 2)}, "{}") != base
    assert io.tensors_sha256({"w": torch.zeros(2, 3, dtype=torch.float64)}, "{}") != base
    assert io.tensors_sha256(a, '{"x":1}') != base
    assert io.tensors_sha256({"w": torch.zeros(2, 3)}, "{}") == base


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_one_flipped_bit_in_a_mask_is_an_error(tmp_path, where):
    path, model = _mask_file(tmp_path)
    Mask.load(path, model)  # intact: loads
    start, end = _data_offsets(path)
    _flip(path, {"first": start, "middle": (start + end) // 2, "last": end - 1}[where])
    with pytest.raises(PrunebenchError) as e:
        Mask.load(path, model)
    msg = str(e.value)
    assert "\n" not in msg and "checksum mismatch in mask file" in msg and str(path) in msg


def test_a_flipped_bit_in_the_recorded_metadata_is_an_error(tmp_path):
    path, model = _mask_file(tmp_path)
    # "random" -> "random"-like change of one bit inside the metadata text: the header stays valid JSON
    _flip(path, _header_value_offset(path, "random") + 1)
    with pytest.raises(PrunebenchError, match="checksum mismatch in mask file"):
        Mask.load(path, model)


def test_one_flipped_bit_in_an_init_is_an_error(tmp_path):
    path = _init_file(tmp_path)
    model = build_model("lenet300", "mnist")
    load_init(path, model)
    start, end = _data_offsets(path)
    _flip(path, (start + end) // 3)
    with pytest.raises(PrunebenchError, match="checksum mismatch in init file"):
        load_init(path, build_model("lenet300", "mnist"))


def test_one_flipped_bit_in_a_checkpoint_stops_the_resume(tmp_path):
    from test_train import _run  # the tiny training set-up of the training tests

    out = tmp_path / "run"
    assert _run(out, stop=1) == {"interrupted_at_epoch": 1}
    ckpt = out / "checkpoint.safetensors"
    start, end = _data_offsets(ckpt)
    _flip(ckpt, end - 3)
    with pytest.raises(PrunebenchError, match="checksum mismatch in checkpoint"):
        _run(out)
    assert not (out / "metrics.json").exists()


def test_a_file_without_checksum_is_refused(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "old.safetensors"
    save_file({"w": torch.zeros(2)}, str(path), metadata={"prunebench": json.dumps({"kind": "mask"})})
    with pytest.raises(PrunebenchError, match="has no content checksum"):
        io.load_tensors(path, what="mask file")


def test_checked_text_and_its_sidecar(tmp_path):
    path = tmp_path / "summary.csv"
    io.write_checked_text(path, "a,b\n1,2\n")
    side = io.checksum_path(path)
    assert side.name == "summary.csv.sha256"
    assert side.read_text() == f"{io.sha256_file(path)}  summary.csv\n"  # sha256sum -c format
    io.verify_checked_file(path)
    _flip(path, 5)
    with pytest.raises(PrunebenchError, match="checksum mismatch in results table"):
        io.verify_checked_file(path)
    side.unlink()
    with pytest.raises(PrunebenchError, match="has no checksum file"):
        io.verify_checked_file(path)
    with pytest.raises(PrunebenchError, match="missing results table"):
        io.verify_checked_file(tmp_path / "nope.csv")


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
