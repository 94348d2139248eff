"""Model files: versioned .npz, written atomically, never unpickled, validated on load."""

import io
import json
import os
import pickle
import zipfile

import numpy as np
import pytest

import fastmlp
from fastmlp import MLP, ModelFileError
from fastmlp.model import FORMAT_VERSION


def saved(tmp_path, name="m.npz", **kwargs):
    model = MLP((3, 4, 2), seed=1, **kwargs)
    path = tmp_path / name
    model.save(path)
    return model, path


def entries(path):
    """The arrays and the metadata of a model file, to be tampered with."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    return arrays, json.loads(str(arrays.pop("__meta__")))


def write(path, arrays, meta):
    np.savez(path, __meta__=np.array(json.dumps(meta)), **arrays)


class MakesAFile:
    """Unpickling this would create ``path``: the proof that a file's code ran."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_pickled_payload_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    payload = MakesAFile(marker)
    # 1. an object array inside an otherwise well-formed model file
    model, path = saved(tmp_path)
    arrays, meta = entries(path)
    arrays["W1"] = np.array([payload], dtype=object)
    write(path, arrays, meta)
    with pytest.raises(ModelFileError, match="holds pickled objects.*refused without loading"):
        MLP.load(path)
    # 2. a bare pickle named like a model file
    bare = tmp_path / "bare.npz"
    bare.write_bytes(pickle.dumps(payload))
    with pytest.raises(ModelFileError):
        MLP.load(bare)
    # 3. a bare .npy holding pickled objects
    npy = tmp_path / "array.npz"
    with open(npy, "wb") as f:
        np.save(f, np.array([payload], dtype=object), allow_pickle=True)
    with pytest.raises(ModelFileError):
        MLP.load(npy)
    assert not marker.exists()
    # the payload is real: unpickling it does create the file
    pickle.loads(pickle.dumps(payload)).close()
    assert marker.exists()


@pytest.mark.parametrize("tamper, match", [
    (lambda a, m: m.update(version=FORMAT_VERSION + 1), r"version 2; this fastmlp reads version 1"),
    (lambda a, m: m.update(version=True), "version True"),
    (lambda a, m: m.update(format="other"), "not a fastmlp model file"),
    (lambda a, m: m.update(layers=[3, 4]), "invalid model metadata: layers must have length 3"),
    (lambda a, m: m.update(layers=[3, 5, 2]), r"array W1 has shape \(4, 3\) .* expected \(5, 3\)"),
    (lambda a, m: m.update(dtype="float16"), "invalid model metadata: dtype"),
    (lambda a, m: m.update(l1=[-1, 0]), r"invalid model metadata: l1\[0\] must be >= 0"),
    (lambda a, m: m.update(l2="ab"), "invalid model metadata"),
    (lambda a, m: m.pop("seed"), "invalid model metadata: 'seed'"),
    (lambda a, m: m.update(extra=[1, 2]), "'extra' must be a dict"),
    (lambda a, m: a.update(W1=a["W1"].astype(np.float64)), "W1 has .* dtype float64; expected"),
    (lambda a, m: a.update(b2=a["b2"][:1]), r"b2 has shape \(1,\)"),
    (lambda a, m: a.pop("b1"), r"expected arrays \['W1', 'W2', 'b1', 'b2'\]"),
    (lambda a, m: a.update(extra=np.zeros(2)), "expected arrays"),
    (lambda a, m: a["W2"].__setitem__((0, 0), np.nan), "W2 holds NaN or infinite values"),
    (lambda a, m: a["b1"].__setitem__(0, np.inf), "b1 holds NaN or infinite values"),
], ids=["newer version", "version bool", "foreign format", "layers", "layers vs shapes", "dtype",
        "l1", "l2", "no seed", "extra", "array dtype", "array shape", "missing array",
        "extra array", "NaN weight", "infinite bias"])
def test_tampered_files_are_refused(tmp_path, tamper, match):
    _, path = saved(tmp_path)
    arrays, meta = entries(path)
    tamper(arrays, meta)
    write(path, arrays, meta)
    with pytest.raises(ModelFileError, match=match):
        MLP.load(path)


def test_foreign_and_broken_files(tmp_path):
    np.save(tmp_path / "plain.npy", np.zeros(3))
    with pytest.raises(ModelFileError, match="not an .npz archive"):
        MLP.load(tmp_path / "plain.npy")
    np.savez(tmp_path / "meta-not-a-string.npz", __meta__=np.arange(3), W1=np.zeros(2))
    with pytest.raises(ModelFileError, match="'__meta__' entry is not a string"):
        MLP.load(tmp_path / "meta-not-a-string.npz")
    np.savez(tmp_path / "bad-json.npz", __meta__=np.array("{not json"))
    with pytest.raises(ModelFileError, match="not valid JSON"):
        MLP.load(tmp_path / "bad-json.npz")
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(ModelFileError):
        MLP.load(tmp_path / "empty.npz")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        MLP.load(tmp_path / "missing.npz")
    with pytest.raises(TypeError, match="path must be a file path"):
        MLP.load(3)


def test_every_truncation_is_refused(tmp_path):
    _, path = saved(tmp_path)
    data = path.read_bytes()
    for size in [*range(0, len(data), 5), *range(len(data) - 30, len(data))]:
        path.write_bytes(data[:size])
        with pytest.raises(ModelFileError):
            MLP.load(path)


def test_any_flipped_byte_is_refused_or_harmless(tmp_path):
    """A corrupted byte either makes the file refused or changes nothing that is read
    (a timestamp, say): never a silently different model. Every third byte: each field of
    the zip and .npy headers is at least two bytes wide, the arrays are covered by CRCs."""
    model, path = saved(tmp_path, dtype="float64")
    data = bytearray(path.read_bytes())
    refused = 0
    for i in range(0, len(data), 3):
        flipped = data.copy()
        flipped[i] ^= 0xFF
        path.write_bytes(flipped)
        try:
            loaded = MLP.load(path)
        except ModelFileError:
            refused += 1
            continue
        assert repr(loaded) == repr(model), i
        for k in model.params:
            assert loaded.params[k].tobytes() == model.params[k].tobytes(), i
    assert refused > len(data) // 6  # the check is not vacuous


def test_interrupted_write_keeps_the_previous_file(tmp_path, monkeypatch):
    old, path = saved(tmp_path)
    before = path.read_bytes()
    new = MLP((3, 4, 2), seed=2)
    real_savez = np.savez

    def dies_halfway(f, **arrays):
        real_savez(f, **arrays)
        f.truncate(f.tell() // 2)
        raise KeyboardInterrupt  # Ctrl-C in the middle of the write

    monkeypatch.setattr(np, "savez", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        new.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]  # no temporary left
    new.save(path)
    assert MLP.load(path).params["W1"].tobytes() == new.params["W1"].tobytes()


def test_files_get_the_usual_permissions(tmp_path):
    _, path = saved(tmp_path)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_save_refuses_what_would_not_load(tmp_path):
    model = MLP((3, 4, 2))
    model.params["W1"][0, 0] = np.nan
    with pytest.raises(ValueError, match="W1 holds NaN"):
        model.save(tmp_path / "m.npz")
    with pytest.raises(TypeError, match="extra must hold only JSON values"):
        MLP((3, 4, 2)).save(tmp_path / "m.npz", extra={"f": object()})
    with pytest.raises(TypeError, match="extra must be a dict"):
        MLP((3, 4, 2)).save(tmp_path / "m.npz", extra=[1])
    with pytest.raises(TypeError, match="path must be a file path"):
        MLP((3, 4, 2)).save(None)
    assert not (tmp_path / "m.npz").exists()


def test_extra_round_trips(tmp_path):
    model = MLP((3, 4, 2))
    extra = {"epoch": 3, "history": {"loss": [0.5, None, float("inf")]}, "name": "é"}
    model.save(tmp_path / "m.npz", extra=extra)
    loaded, got = MLP.load(tmp_path / "m.npz", return_extra=True)
    assert got == extra


def test_model_file_is_a_plain_zip_of_npy(tmp_path):
    """The format is documented by what it is: an .npz anyone can read without fastmlp."""
    model, path = saved(tmp_path)
    with zipfile.ZipFile(path) as z:
        assert sorted(z.namelist()) == ["W1.npy", "W2.npy", "__meta__.npy", "b1.npy", "b2.npy"]
        W1 = np.load(io.BytesIO(z.read("W1.npy")), allow_pickle=False)
    assert np.array_equal(W1, model.params["W1"])
    assert entries(path)[1] == {"format": "fastmlp-model", "version": 1, "layers": [3, 4, 2],
                                "l1": [0.0, 0.0], "l2": [0.0, 0.0], "dtype": "float32", "seed": 1}
    assert fastmlp.model.FORMAT_VERSION == 1
