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
from fastmlp.model_file import FORMAT_VERSION


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
    (lambda a, m: m.update(version=FORMAT_VERSION + 1), r"version 3; this fastmlp reads versions 1, 2"),
    (lambda a, m: m.update(version=True), "version True"),
    (lambda a, m: m.update(format="other"), "not a fastmlp model file"),
    (lambda a, m: m.update(layers=[3]), "invalid model metadata: layers must have at least 2"),
    (lambda a, m: m.update(layers=[3, 5, 2]), r"array W1 is declared as shape \(4, 3\) float32; "
                                              r"the metadata implies \(5, 3\) float32"),
    (lambda a, m: m.update(layers=[3, 4, 4, 2]), r"invalid model metadata: activation lists 1"),
    (lambda a, m: m.update(activations=["relu", "tanh"]), "activation lists 2 activation"),
    (lambda a, m: m.update(activations=["swish"]), "'swish' is not an activation"),
    (lambda a, m: m.update(init="he"), "unknown init 'he'"),
    (lambda a, m: m.update(dtype="float16"), "invalid model metadata: dtype"),
    (lambda a, m: m.update(l1=[-1, 0]), r"invalid model metadata: l1\[0\] must be >= 0"),
    (lambda a, m: m.update(l2=[0.1, 0.2, 0.3]), "l2 lists 3 value"),
    (lambda a, m: m.update(l2="ab"), "invalid model metadata"),
    (lambda a, m: m.pop("seed"), "invalid model metadata: 'seed'"),
    (lambda a, m: m.update(extra=[1, 2]), "'extra' must be a dict"),
    (lambda a, m: a.update(W1=a["W1"].astype(np.float64)), "W1 is declared as .* float64"),
    (lambda a, m: a.update(b2=a["b2"][:1]), r"b2 is declared as shape \(1,\)"),
    (lambda a, m: a.pop("b1"), r"expected the arrays \['W1', 'W2', 'b1', 'b2'\]"),
    (lambda a, m: a.update(extra=np.zeros(2)), "expected the arrays"),
    (lambda a, m: m.update(extra_arrays={"opt.v": [[3], "float32"]}), "expected the arrays"),
    (lambda a, m: a["W2"].__setitem__((0, 0), np.nan), "W2 holds NaN or infinite values"),
    (lambda a, m: a["b1"].__setitem__(0, np.inf), "b1 holds NaN or infinite values"),
], ids=["newer version", "version bool", "foreign format", "layers", "layers vs shapes",
        "layers vs activations", "activations", "unknown activation", "init", "dtype", "l1",
        "l2 length", "l2", "no seed", "extra", "array dtype", "array shape", "missing array",
        "undeclared array", "declared but missing array", "NaN weight", "infinite bias"])
def test_tampered_files_are_refused(tmp_path, tamper, match):
    _, path = saved(tmp_path)
    arrays, meta = entries(path)
    tamper(arrays, meta)
    write(path, arrays, meta)
    with pytest.raises(ModelFileError, match=match):
        MLP.load(path)


DATA = os.path.join(os.path.dirname(__file__), "data")


def test_version_1_files_of_fastmlp_010_load_and_predict_exactly_as_before():
    model = MLP.load(os.path.join(DATA, "model-v1-0.1.0.npz"))
    assert model.describe() == {"layers": [2, 5, 2], "activations": ["relu"],
                                "l1": [1e-4, 2e-4], "l2": [3e-4, 4e-4], "dtype": "float32",
                                "seed": 7, "init": "uniform"}
    with np.load(os.path.join(DATA, "model-v1-0.1.0-expected.npz")) as expected:
        X, proba, labels = expected["X"], expected["proba"], expected["labels"]
    for backend in fastmlp.BACKENDS:
        np.testing.assert_allclose(model.predict_proba(X, backend=backend), proba, rtol=1e-6)
    # the backend that wrote the expectations gives the same bits
    assert model.predict_proba(X, backend="numpy").tobytes() == proba.tobytes()
    assert np.array_equal(model.predict(X, backend="numpy"), labels)
    wide = MLP.load(os.path.join(DATA, "model-v1-0.1.0-float64.npz"))
    assert wide.layers == (3, 4, 3) and wide.dtype == np.float64
    assert np.array_equal(wide.theta, MLP((3, 4, 3), dtype="float64", seed=1).theta)


def test_a_version_1_file_with_more_layers_is_refused(tmp_path):
    _, path = saved(tmp_path)
    arrays, meta = entries(path)
    meta = {"format": "fastmlp-model", "version": 1, "layers": [3, 4, 4, 2], "l1": [0, 0],
            "l2": [0, 0], "dtype": "float32", "seed": 1}
    write(path, arrays, meta)
    with pytest.raises(ModelFileError, match="a version-1 file has 3 layers"):
        MLP.load(path)


@pytest.mark.parametrize("layers, activation, init", [
    ((3, 2), "relu", "uniform"), ((3, 4, 2), "tanh", "glorot"),
    ((5, 6, 4, 7, 3), ("logistic", "identity", "relu"), "glorot")])
def test_any_network_round_trips(tmp_path, layers, activation, init):
    model = MLP(layers, activation=activation, l1=0.01, l2=tuple(0.1 * i for i in
                                                                 range(len(layers) - 1)),
                dtype="float64", seed=5, init=init)
    model.params["b1"][...] = 3.0
    model.save(tmp_path / "m.npz")
    loaded = MLP.load(tmp_path / "m.npz")
    assert loaded.describe() == model.describe()
    assert loaded.theta.tobytes() == model.theta.tobytes()


def test_a_declared_shape_is_checked_before_any_data_is_read(tmp_path):
    """A small file whose W1 header declares (8, 67108864) -- 2 GiB -- must be refused
    at once, without reading or allocating for it."""
    _, path = saved(tmp_path)
    arrays, meta = entries(path)
    huge = io.BytesIO()
    np.lib.format.write_array_header_1_0(huge, {"descr": "<f4", "fortran_order": False,
                                                "shape": (8, 67108864)})
    huge.write(b"\0" * 1024)
    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(bomb, "w") as z:
        z.writestr("__meta__.npy", _npy_bytes(np.array(json.dumps(meta))))
        z.writestr("W1.npy", b"\x93NUMPY\x01\x00" + huge.getvalue()[8:])
        for key in ("b1", "W2", "b2"):
            z.writestr(f"{key}.npy", _npy_bytes(arrays[key]))
    import time
    t0 = time.perf_counter()
    with pytest.raises(ModelFileError, match=r"W1 is declared as shape \(8, 67108864\)"):
        MLP.load(bomb)
    assert time.perf_counter() - t0 < 1.0
    # the same declared shape matching the metadata: refused because the data is not there
    meta["layers"] = [67108864, 8, 2]
    with zipfile.ZipFile(bomb, "w") as z:
        z.writestr("__meta__.npy", _npy_bytes(np.array(json.dumps(meta))))
        z.writestr("W1.npy", huge.getvalue())
        for key in ("b1", "W2", "b2"):
            z.writestr(f"{key}.npy", _npy_bytes(arrays[key]))
    with pytest.raises(ModelFileError, match="holds 1024 bytes of data where its header "
                                             "announces 2147483648"):
        MLP.load(bomb)


def _npy_bytes(a):
    f = io.BytesIO()
    np.save(f, a, allow_pickle=False)
    return f.getvalue()


def test_an_entry_present_twice_is_refused(tmp_path):
    model, path = saved(tmp_path)
    with zipfile.ZipFile(path, "a") as z, pytest.warns(UserWarning, match="Duplicate name"):
        z.writestr("W1.npy", _npy_bytes(np.zeros_like(model.params["W1"])))
    with pytest.raises(ModelFileError, match=r"holds the entries \['W1.npy'\] more than once"):
        MLP.load(path)


def test_loading_while_another_thread_saves_never_mixes_two_files(tmp_path):
    """Each load reads one file from one open descriptor: while the path is replaced again
    and again, every model loaded is one of the two saved, metadata and weights together."""
    import threading

    path = tmp_path / "m.npz"
    models = {seed: MLP((30, 20, 3), seed=seed) for seed in (1, 2)}
    models[1].save(path)
    stop = threading.Event()

    def saver():
        while not stop.is_set():
            for model in models.values():
                model.save(path)

    thread = threading.Thread(target=saver)
    thread.start()
    try:
        for _ in range(150):
            loaded = MLP.load(path)
            assert loaded.theta.tobytes() == models[loaded.seed].theta.tobytes()
    finally:
        stop.set()
        thread.join()


def test_folders_and_fifos_are_not_model_files(tmp_path):
    with pytest.raises(ModelFileError, match="is a folder, not a model file"):
        MLP.load(tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ModelFileError, match="is a FIFO, not a model file"):
        MLP.load(fifo)                      # and does not block waiting for a writer


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
    with pytest.raises(ValueError, match=r"params\['W1'\] holds NaN"):
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
    extra = {"epoch": 3, "history": {"loss": [0.5, None, 1e300]}, "name": "é"}
    arrays = {"opt.exp_avg": np.arange(model.n_params, dtype=np.float32)}
    model.save(tmp_path / "m.npz", extra=extra, extra_arrays=arrays)
    loaded, got, got_arrays = MLP.load(tmp_path / "m.npz", return_extra=True)
    assert got == extra
    assert got_arrays.keys() == arrays.keys()
    assert np.array_equal(got_arrays["opt.exp_avg"], arrays["opt.exp_avg"])
    with pytest.raises(TypeError, match="finite numbers"):
        model.save(tmp_path / "m.npz", extra={"loss": float("nan")})
    with pytest.raises(ValueError, match="cannot name an array"):
        model.save(tmp_path / "m.npz", extra_arrays={"W1": np.zeros(2)})


def test_model_file_is_a_plain_zip_of_npy(tmp_path):
    """The format is documented by what it is: an .npz anyone can read without fastmlp."""
    model, path = saved(tmp_path)
    with zipfile.ZipFile(path) as z:
        assert sorted(z.namelist()) == ["W1.npy", "W2.npy", "__meta__.npy", "b1.npy", "b2.npy"]
        W1 = np.load(io.BytesIO(z.read("W1.npy")), allow_pickle=False)
    assert np.array_equal(W1, model.params["W1"])
    assert entries(path)[1] == {"format": "fastmlp-model", "version": 2, "layers": [3, 4, 2],
                                "activations": ["relu"], "l1": [0.0, 0.0], "l2": [0.0, 0.0],
                                "dtype": "float32", "seed": 1, "init": "uniform"}
    assert FORMAT_VERSION == 2


def test_save_never_replaces_a_device_a_folder_or_a_fifo(tmp_path):
    model = MLP((3, 4, 2))
    for target, kind in (("/dev/null", "a device"), (str(tmp_path), "a folder")):
        with pytest.raises(ValueError, match=f"is {kind}; fastmlp writes regular files only"):
            model.save(target)
    assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="is a FIFO"):
        model.save(fifo)
    link = tmp_path / "to-null"
    link.symlink_to("/dev/null")
    with pytest.raises(ValueError, match="through the link"):
        model.save(link)
    for bad in ("", str(tmp_path) + os.sep):
        with pytest.raises(ValueError, match="names no file"):
            model.save(bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "to-null"]


def test_save_writes_through_a_symlink_and_keeps_it(tmp_path):
    (tmp_path / "models").mkdir()
    target = tmp_path / "models" / "best.npz"
    MLP((3, 4, 2), seed=1).save(target)
    link = tmp_path / "current.npz"
    link.symlink_to(target)
    new = MLP((3, 4, 2), seed=2)
    new.save(link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert MLP.load(target).theta.tobytes() == new.theta.tobytes()
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["best.npz"]


def test_save_keeps_an_existing_files_permissions(tmp_path):
    path = tmp_path / "m.npz"
    MLP((3, 4, 2)).save(path)
    path.chmod(0o600)
    MLP((3, 4, 2), seed=3).save(path)
    assert path.stat().st_mode & 0o777 == 0o600


def test_write_errors_name_the_file_asked_for(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match=r"cannot write '.*m\.npz': No space left on device") as info:
        MLP((3, 4, 2)).save(tmp_path / "m.npz")
    assert ".tmp-" not in str(info.value)
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []
