"""Explanation files: every damaged or crafted file is refused with a FileFormatError that
says what is wrong, and a saved explanation keeps what metrics need to remove features the
way it did (its removal, the background rows it really used, its targets)."""

from __future__ import annotations

import io
import json
import pickle
import struct
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import xai
import xai.metrics.complexity
import xai.metrics.correlation
import xai.metrics.curves  # registers the metrics
from xai import registry
from xai.errors import FileFormatError, ProvenanceError, XaiError
from xai.explanation import FORMAT, Explanation
from xai.removals import Baseline, Marginal

# ----------------------------------------------------------------------------- helpers


def npy_bytes(arr: np.ndarray, version: tuple[int, int] | None = None) -> bytes:
    """``arr`` as the bytes of a .npy file (object arrays pickled, as numpy.save does)."""
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asanyarray(arr), version=version, allow_pickle=True)
    return buf.getvalue()


def write_zip(path: Path, members: list[tuple[str, bytes]],
              compression: int = zipfile.ZIP_DEFLATED) -> Path:
    """A zip archive with exactly these members (duplicates allowed)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names
        with zipfile.ZipFile(path, "w", compression=compression) as zf:
            for name, data in members:
                zf.writestr(name, data)
    return path


def small() -> Explanation:
    """A valid (3, 2) explanation with data, stderr and a target per row."""
    return Explanation(values=np.arange(6.0).reshape(3, 2), stderr=np.full((3, 2), 0.1),
                       base_values=np.zeros(3), data=np.ones((3, 2)), method="shap",
                       feature_names=["a", "b"], extras={"target": np.array([0, 1, 0])})


def members_of(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def meta_of(members: dict[str, bytes]) -> dict:
    return json.loads(str(np.load(io.BytesIO(members["__meta__.npy"]))[()]))


def rewrite(tmp_path: Path, *, meta: dict | None = None, drop: tuple[str, ...] = (),
            **arrays: np.ndarray) -> Path:
    """A saved ``small()`` explanation with members replaced (``name=array``; ``extras__x``
    stands for ``extras/x``, ``removal__x`` for ``removal/x``), removed, or new metadata."""
    members = members_of(small().save(tmp_path / "valid.npz"))
    if meta is not None:
        members["__meta__.npy"] = npy_bytes(np.array(json.dumps(meta)))
    for name, arr in arrays.items():
        members[name.replace("__", "/") + ".npy"] = npy_bytes(arr)
    for name in drop:
        members.pop(name + ".npy")
    return write_zip(tmp_path / "crafted.npz", list(members.items()))


def changed_meta(tmp_path: Path, **changes) -> Path:
    meta = meta_of(members_of(small().save(tmp_path / "valid.npz")))
    meta.update(changes)
    return rewrite(tmp_path, meta=meta)


def patch_sizes(path: Path, member: str, size: int) -> Path:
    """Rewrite the uncompressed size the zip declares for ``member`` (local and central
    headers), leaving the data as it is."""
    raw = bytearray(path.read_bytes())
    name = member.encode()
    for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (at := raw.find(sig, start)) >= 0:
            head = 30 if sig == b"PK\x03\x04" else 46
            n_len = struct.unpack_from("<H", raw, at + (26 if head == 30 else 28))[0]
            if raw[at + head:at + head + n_len] == name:
                struct.pack_into("<I", raw, at + offset, size)
            start = at + 4
    path.write_bytes(bytes(raw))
    return path


def set_flag(path: Path, bit: int) -> Path:
    """Set a general-purpose flag bit on every central directory entry."""
    raw = bytearray(path.read_bytes())
    at = 0
    while (at := raw.find(b"PK\x01\x02", at)) >= 0:
        flags = struct.unpack_from("<H", raw, at + 8)[0]
        struct.pack_into("<H", raw, at + 8, flags | bit)
        at += 4
    path.write_bytes(bytes(raw))
    return path


# ------------------------------------------------------------------- crafted files


def empty(tmp_path):
    (path := tmp_path / "empty.npz").write_bytes(b"")
    return path


def pickled(tmp_path):
    (path := tmp_path / "expl.npz").write_bytes(pickle.dumps({"values": [1, 2]}, protocol=4))
    return path


def not_a_zip(tmp_path):
    (path := tmp_path / "text.npz").write_bytes(b"values,base\n1,2\n")
    return path


def single_npy(tmp_path):
    np.save(path := tmp_path / "values.npy", np.zeros((2, 2)))
    return path


def truncated(tmp_path):
    path = small().save(tmp_path / "whole.npz")
    raw = path.read_bytes()
    (cut := tmp_path / "cut.npz").write_bytes(raw[:len(raw) // 2])
    return cut


def bad_crc(tmp_path):
    members = members_of(small().save(tmp_path / "valid.npz"))
    path = write_zip(tmp_path / "stored.npz", list(members.items()), zipfile.ZIP_STORED)
    raw = bytearray(path.read_bytes())
    data = members["values.npy"]
    at = raw.find(data) + len(data) - 1  # the last byte of values' data
    raw[at] ^= 0xFF
    path.write_bytes(bytes(raw))
    return path


def no_meta(tmp_path):
    return rewrite(tmp_path, drop=("__meta__",))


def meta_not_json(tmp_path):
    members = members_of(small().save(tmp_path / "valid.npz"))
    members["__meta__.npy"] = npy_bytes(np.array("{not json"))
    return write_zip(tmp_path / "crafted.npz", list(members.items()))


def meta_a_list(tmp_path):
    return rewrite(tmp_path, meta=[1, 2, 3])


def meta_deeply_nested(tmp_path):
    meta = meta_of(members_of(small().save(tmp_path / "valid.npz")))
    text = json.dumps(meta)[:-1] + ', "options": ' + "[" * 200_000 + "]" * 200_000 + "}"
    members = members_of(tmp_path / "valid.npz")
    members["__meta__.npy"] = npy_bytes(np.array(text))
    return write_zip(tmp_path / "crafted.npz", list(members.items()))


def meta_nested_40_levels(tmp_path):
    nested: dict = {}
    for _ in range(40):
        nested = {"x": nested}
    return changed_meta(tmp_path, options=nested)


def meta_unknown_key(tmp_path):
    return changed_meta(tmp_path, run_this="os.system('x')")


def future_format(tmp_path):
    return changed_meta(tmp_path, format="xai.explanation/99")


def meta_as_array(tmp_path):
    members = members_of(small().save(tmp_path / "valid.npz"))
    members["__meta__.npy"] = npy_bytes(np.array(["{}", "{}"]))
    return write_zip(tmp_path / "crafted.npz", list(members.items()))


def complex_values(tmp_path):
    return rewrite(tmp_path, values=np.ones((3, 2)) + 1j)


def structured_values(tmp_path):
    return rewrite(tmp_path, values=np.zeros(3, dtype=[("a", "f8"), ("b", "f8")]))


def object_values(tmp_path):
    return rewrite(tmp_path, values=np.array([[1.0, "x"]] * 3, dtype=object))


def string_data(tmp_path):
    return rewrite(tmp_path, data=np.array([["a", "b"]] * 3))


def long_double_values(tmp_path):
    return rewrite(tmp_path, values=np.ones((3, 2), dtype=np.longdouble))


def minus_inf_stderr(tmp_path):
    stderr = np.full((3, 2), 0.1)
    stderr[1, 1] = -np.inf
    return rewrite(tmp_path, stderr=stderr)


def negative_stderr(tmp_path):
    return rewrite(tmp_path, stderr=np.full((3, 2), -0.5))


def stderr_wrong_shape(tmp_path):
    return rewrite(tmp_path, stderr=np.zeros((3, 3)))


def values_one_dimensional(tmp_path):
    return rewrite(tmp_path, values=np.zeros(6))


def base_values_wrong_shape(tmp_path):
    return rewrite(tmp_path, base_values=np.zeros(4))


def data_wrong_rows(tmp_path):
    return rewrite(tmp_path, data=np.zeros((5, 2)))


def negative_target(tmp_path):
    return rewrite(tmp_path, extras__target=np.array([0, -1, 0]))


def float_target(tmp_path):
    return rewrite(tmp_path, extras__target=np.array([0.5, 1, 0]))


def feature_map_out_of_range(tmp_path):
    expl = small()
    expl.data = np.ones((3, 1, 2, 2))
    expl.feature_map = np.array([[[0, 1], [1, 0]]])
    path = expl.save(tmp_path / "img.npz")
    members = members_of(path)
    members["feature_map.npy"] = npy_bytes(np.array([[[0, 1], [7, 0]]]))
    return write_zip(tmp_path / "crafted.npz", list(members.items()))


def wrong_metadata_type(field, value):
    def make(tmp_path):
        return changed_meta(tmp_path, **{field: value})
    make.__name__ = f"meta_{field}_{type(value).__name__}"
    return make


def duplicate_member(tmp_path):
    members = list(members_of(small().save(tmp_path / "valid.npz")).items())
    members.append(("values.npy", npy_bytes(np.full((3, 2), 9.0))))
    return write_zip(tmp_path / "crafted.npz", members)


def unlisted_member(tmp_path):
    return rewrite(tmp_path, extras__secret=np.zeros(3))


def listed_member_missing(tmp_path):
    return rewrite(tmp_path, drop=("stderr",))


def not_npy_member(tmp_path):
    members = list(members_of(small().save(tmp_path / "valid.npz")).items())
    members.append(("run.sh", b"rm -rf /"))
    return write_zip(tmp_path / "crafted.npz", members)


def header_says_more_than_data(tmp_path):
    members = members_of(small().save(tmp_path / "valid.npz"))
    members["values.npy"] = members["values.npy"][:-16]  # header still says (3, 2) float64
    return write_zip(tmp_path / "crafted.npz", list(members.items()))


def npy_header_text_damaged(tmp_path):
    members = members_of(small().save(tmp_path / "valid.npz"))
    raw = bytearray(members["values.npy"])
    raw[raw.index(b"}")] = ord(")")  # the header dict no longer parses
    members["values.npy"] = bytes(raw)
    return write_zip(tmp_path / "crafted.npz", list(members.items()))


def npy_version_3(tmp_path):
    members = members_of(small().save(tmp_path / "valid.npz"))
    members["values.npy"] = npy_bytes(np.zeros((3, 2)), version=(3, 0))
    return write_zip(tmp_path / "crafted.npz", list(members.items()))


def huge_declared_member(tmp_path):
    path = small().save(tmp_path / "valid.npz")
    return patch_sizes(path, "values.npy", 400 * 10**6)  # 400 MB, no data behind it


def understated_member(tmp_path):
    path = small().save(tmp_path / "valid.npz")
    # the data decompresses to more than the 144 bytes declared: zipfile stops there, and the
    # CRC of what it read is wrong
    return patch_sizes(path, "values.npy", 144)


def encrypted_member(tmp_path):
    return set_flag(small().save(tmp_path / "valid.npz"), 0x1)


def bzip2_member(tmp_path):
    members = members_of(small().save(tmp_path / "valid.npz"))
    return write_zip(tmp_path / "crafted.npz", list(members.items()), zipfile.ZIP_BZIP2)


def malformed_removal_record(tmp_path):
    return changed_meta(tmp_path, removal_record={"name": "baseline", "params": {"value": [1]},
                                                  "per_explicand": []})


def removal_record_names_missing_array(tmp_path):
    return changed_meta(tmp_path, removal_record={"name": "baseline", "params": {},
                                                  "per_explicand": ["value"]})


def removal_background_nan(tmp_path):
    meta = meta_of(members_of(small().save(tmp_path / "valid.npz")))
    meta.update(removal_arrays=["background"],
                removal_record={"name": "marginal", "params": {}, "per_explicand": []})
    bg = np.ones((4, 2))
    bg[0, 0] = np.nan
    return rewrite(tmp_path, meta=meta, removal__background=bg)


def removal_background_wrong_width(tmp_path):
    meta = meta_of(members_of(small().save(tmp_path / "valid.npz")))
    meta.update(removal_arrays=["background"],
                removal_record={"name": "marginal", "params": {}, "per_explicand": []})
    return rewrite(tmp_path, meta=meta, removal__background=np.ones((4, 5)))


CRAFTED = [
    (empty, "is empty"),
    (pickled, "is a Python pickle, not an xai explanation file. xai never loads pickles"),
    (not_a_zip, r"not a \.npz \(zip\) archive"),
    (single_npy, r"single \.npy array"),
    (truncated, "damaged or truncated"),
    (bad_crc, "Bad CRC-32"),
    (no_meta, "no '__meta__' member"),
    (meta_not_json, "not valid JSON"),
    (meta_a_list, "is a list, not an object"),
    (meta_deeply_nested, "nested too deeply"),
    (meta_nested_40_levels, "nested more than 32 levels"),
    (meta_unknown_key, r"unknown keys \['run_this'\]"),
    (future_format, "xai.explanation/99"),
    (meta_as_array, "must be one unicode string"),
    (complex_values, "real numbers only"),
    (structured_values, "structured dtype"),
    (object_values, "dtype object, which only pickle can read"),
    (string_data, "real numbers only"),
    (long_double_values, "real numbers only"),
    (minus_inf_stderr, "negative values"),
    (negative_stderr, "negative values"),
    (stderr_wrong_shape, r"'stderr' has shape \(3, 3\)"),
    (values_one_dimensional, r"not \(n, d\) or \(n, d, k\)"),
    (base_values_wrong_shape, r"'base_values' has shape \(4,\)"),
    (data_wrong_rows, r"'data' has shape \(5, 2\)"),
    (negative_target, "output indices >= 0"),
    (float_target, "output indices >= 0"),
    (feature_map_out_of_range, "feature numbers outside -1..1"),
    (wrong_metadata_type("evaluations", "many"), "'evaluations' must be an integer >= 0"),
    (wrong_metadata_type("evaluations", -3), "'evaluations' must be an integer >= 0"),
    (wrong_metadata_type("seconds", -1.0), "'seconds' must be a finite number"),
    (wrong_metadata_type("method", 7), "'method' must be a string"),
    (wrong_metadata_type("feature_names", [1, 2]), "'feature_names' must be a list of str"),
    (wrong_metadata_type("channel_axis", "last"), "'channel_axis' must be null or an axis"),
    (wrong_metadata_type("options", [1]), "'options' must be an object"),
    (wrong_metadata_type("arrays", "values"), "'arrays' must be a list of strings"),
    (wrong_metadata_type("arrays", ["values", "base_values", "os"]), r"unknown fields \['os'\]"),
    (wrong_metadata_type("feature_names", ["a", "b", "c"]), "3 feature names for 2 features"),
    (duplicate_member, "two members named 'values.npy'"),
    (unlisted_member, r"members the metadata does not list: \['extras/secret'\]"),
    (listed_member_missing, r"lists \['stderr'\] but the file has no such members"),
    (not_npy_member, "'run.sh' that is not a .npy array"),
    (header_says_more_than_data, r"says shape \(3, 2\) of float64 \(48 bytes\) but holds 32"),
    (npy_header_text_damaged, "'values.npy' has a damaged .npy header"),
    (npy_version_3, "format version 3.0"),
    (huge_declared_member, "declares 381.5 MiB uncompressed, over the limit of 256.0 MiB"),
    (understated_member, "Bad CRC-32 for file 'values.npy'"),
    (encrypted_member, "is encrypted"),
    (bzip2_member, "compression method 12"),
    (malformed_removal_record, "removal record is malformed: 'params'"),
    (removal_record_names_missing_array, "'per_explicand' must list names"),
    (removal_background_nan, "'removal/background' holds NaN or infinite values"),
    (removal_background_wrong_width, r"rows of shape \(5,\), the explained rows \(2,\)"),
]


@pytest.mark.parametrize(("make", "message"), CRAFTED, ids=[m.__name__ for m, _ in CRAFTED])
def test_crafted_file_is_refused_with_a_file_format_error(make, message, tmp_path):
    path = make(tmp_path)
    with pytest.raises(FileFormatError, match=message) as info:
        Explanation.load(path)
    text = str(info.value)
    assert str(path) in text
    assert "allow_pickle" not in text and "unpickl" not in text


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
                        min_size=1, max_size=4), cut=st.none() | st.floats(0, 1))
def test_a_corrupted_file_loads_or_raises_a_file_format_error(changes, cut, tmp_path):
    raw = bytearray(small().save(tmp_path / "valid.npz").read_bytes())
    for where, byte in changes:
        raw[int(where * len(raw))] = byte
    if cut is not None:
        raw = raw[:int(cut * len(raw))]
    (path := tmp_path / "corrupted.npz").write_bytes(bytes(raw))
    try:
        Explanation.load(path)
    except FileFormatError as exc:
        assert "allow_pickle" not in str(exc)


def test_valid_members_of_the_crafted_files_load(tmp_path):
    # the crafted files above differ from this one in one member or field each
    loaded = Explanation.load(small().save(tmp_path / "valid.npz"))
    np.testing.assert_array_equal(loaded.values, small().values)


def test_decompressed_size_is_limited_per_member_and_in_total(tmp_path):
    expl = small()
    expl.extras["zeros"] = np.zeros(2**18)  # 2 MiB of zeros: a few KiB compressed
    path = expl.save(tmp_path / "big.npz")
    assert path.stat().st_size < 2**16
    with pytest.raises(FileFormatError, match=r"'extras/zeros.npy' declares 2.0 MiB .* "
                                              "max_member_bytes="):
        Explanation.load(path, max_member_bytes=2**20)
    with pytest.raises(FileFormatError, match="in all, over the limit of 1.0 MiB"):
        Explanation.load(path, max_total_bytes=2**20)
    assert Explanation.load(path).extras["zeros"].shape == (2**18,)


def test_missing_file_is_file_not_found_and_a_folder_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError):
        Explanation.load(tmp_path / "absent.npz")
    with pytest.raises(FileFormatError, match="is a directory"):
        Explanation.load(tmp_path)


def test_file_format_errors_are_xai_errors():
    assert issubclass(FileFormatError, XaiError) and issubclass(FileFormatError, ValueError)


def test_fortran_order_and_big_endian_members_read_as_their_values(tmp_path):
    values = np.asfortranarray(np.arange(6.0).reshape(3, 2)).astype(">f8")
    path = rewrite(tmp_path, values=values, extras__target=np.array([0, 1, 0], dtype=">i4"))
    loaded = Explanation.load(path)
    np.testing.assert_array_equal(loaded.values, np.arange(6.0).reshape(3, 2))
    assert loaded.extras["target"].dtype.isnative


def test_save_refuses_what_load_would_refuse(tmp_path):
    expl = small()
    expl.extras["phase"] = np.ones(3) + 1j
    with pytest.raises(XaiError, match="real numbers only"):
        expl.save(tmp_path / "x.npz")
    expl.extras["phase"] = np.array(["a", "b", "c"])
    with pytest.raises(XaiError, match="real numbers only"):
        expl.save(tmp_path / "x.npz")


def test_format_1_files_load_but_metrics_refuse_to_guess_their_removal(tmp_path):
    path = changed_meta(tmp_path, format="xai.explanation/1", removal={"name": "marginal"})
    meta = meta_of(members_of(path))
    meta.pop("removal_arrays")
    meta.pop("removal_record")
    path = rewrite(tmp_path, meta=meta)
    loaded = Explanation.load(path)
    assert loaded.removal_record == {}
    model = lambda z: np.asarray(z) @ np.array([1.0, -2.0])
    with pytest.raises(ProvenanceError, match=r"'marginal'.*xai.explanation/1.*Pass removal="):
        registry.get("metric", "deletion")()(model, np.ones((3, 2)), loaded, output="raw",
                                             target=0)
    # a metric that removes nothing still scores it; removal= chooses one explicitly
    registry.get("metric", "sparseness")()(None, np.ones((3, 2)), loaded)
    res = registry.get("metric", "deletion")()(model, np.ones((3, 2)), loaded, output="raw",
                                                target=0, removal=Baseline(0.0))
    assert res.settings["removal"] == {"name": "baseline", "value": 0.0}


# ------------------------------------------------------------------ round trips


values_arrays = st.tuples(st.integers(1, 4), st.integers(1, 5), st.integers(0, 3)).flatmap(
    lambda s: hnp.arrays(np.float64, s[:2] if s[2] == 0 else s,
                         elements=st.floats(allow_nan=True, allow_infinity=True, width=64)))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(values=values_arrays, scale=st.floats(0, 1e300), data_dtype=st.sampled_from(
    [np.float32, np.float64, np.int64, np.uint8, np.bool_]))
def test_random_values_and_shapes_round_trip(values, scale, data_dtype, tmp_path):
    n, d = values.shape[:2]
    rng = np.random.default_rng(0)
    stderr = np.abs(rng.normal(size=values.shape)) * scale
    stderr[..., 0] = np.nan
    expl = Explanation(values=values, stderr=stderr, base_values=np.zeros((n, *values.shape[2:])),
                       data=(rng.normal(size=(n, d)) * 3).astype(data_dtype),
                       extras={"target": np.arange(n) % 2})
    loaded = Explanation.load(expl.save(tmp_path / "r.npz"))
    for name in ("values", "stderr", "base_values", "data"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(expl, name))
        assert getattr(loaded, name).dtype == getattr(expl, name).dtype
    np.testing.assert_array_equal(loaded.extras["target"], expl.extras["target"])


# --------------------------------------------------------- metrics on loaded explanations


def _tabular():
    """A small torch classifier (logits) and 160 rows of 5 features."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(),
                              torch.nn.Linear(8, 2)).double().eval()
    return net, np.random.default_rng(0).normal(size=(160, 5))


CASES = {  # method: options (background rows 20:100, explained rows :6)
    "shap": {},
    "occlusion": {},
    "lime": {"budget": 400},
    "kernelshap": {"budget": 600, "max_background": 30},  # 80 rows, subsampled to 30
    "banzhaf": {"budget": 800, "max_background": 12, "background_summary": "kmeans"},
}
METRICS = ("deletion", "faithfulness-correlation")


def _explain(method, **extra):
    model, X = _tabular()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # background subsampling warnings
        expl = xai.explain(model, X[:6], method=method, background=X[20:100], seed=0,
                           progress=False, **{**CASES.get(method, {}), **extra})
    return model, X[:6], expl


def _scores(model, X, expl, **kw):
    return {name: registry.get("metric", name)()(model, X, expl, seed=1, **kw).per_sample
            for name in METRICS}


@pytest.mark.parametrize("method", sorted(CASES))
def test_metrics_score_a_loaded_explanation_as_the_one_in_memory(method, tmp_path):
    model, X, expl = _explain(method)
    loaded = Explanation.load(expl.save(tmp_path / f"{method}.npz"))
    in_memory, from_file = _scores(model, X, expl), _scores(model, X, loaded)
    for name in METRICS:
        np.testing.assert_array_equal(from_file[name], in_memory[name], err_msg=name)
    np.testing.assert_array_equal(loaded.extras["target"], expl.extras["target"])
    assert loaded.removal_record == expl.removal_record


@pytest.mark.parametrize("method", ["shap", "occlusion", "lime"])
def test_a_loaded_explanation_removes_as_its_own_removal_object(method, tmp_path):
    # the truth: the metric given the removal object that made the explanation
    model, X, expl = _explain(method)
    truth = _scores(model, X, expl, removal=expl.removal_object)
    loaded = _scores(model, X, Explanation.load(expl.save(tmp_path / "e.npz")))
    for name in METRICS:
        np.testing.assert_allclose(loaded[name], truth[name], rtol=1e-12, atol=1e-12)
    zero = _scores(model, X, expl, removal=Baseline(0.0))
    assert not np.allclose(loaded["deletion"], zero["deletion"])  # a zero baseline differs


def test_the_background_rows_kept_are_the_rows_the_removal_used(tmp_path):
    expl = _explain("kernelshap")[2]
    used = expl.removal_object.bg.numpy()
    assert used.shape == (30, 5)  # subsampled from 80 rows
    loaded = Explanation.load(expl.save(tmp_path / "k.npz"))
    np.testing.assert_array_equal(loaded.removal_arrays["background"], used)
    rebuilt = loaded.rebuild_removal()
    assert isinstance(rebuilt, Marginal) and rebuilt.max_background == 30


def test_k_means_centres_keep_their_weights(tmp_path):
    model, X, expl = _explain("banzhaf")
    weights = expl.removal_object.weights.numpy()
    assert weights.shape == (12,) and not np.allclose(weights, weights[0])
    loaded = Explanation.load(expl.save(tmp_path / "b.npz"))
    game = xai.game.Game(xai.models.as_model(model), X, loaded.rebuild_removal(),
                         xai.behaviours.Prediction(target=1), xai.features.FeatureMap.tabular(5),
                         kind="tabular", seed=5)
    np.testing.assert_array_equal(game.weights.numpy(), weights)


def test_per_row_baselines_are_kept_and_sliced_with_the_rows(tmp_path):
    model, X = _tabular()
    rows = np.random.default_rng(3).normal(size=(6, 5))
    expl = xai.explain(model, X[:6], method="occlusion", baseline=rows, progress=False)
    assert expl.removal_record["per_explicand"] == ["value"]
    loaded = Explanation.load(expl.save(tmp_path / "o.npz"))
    part = loaded[2:5]
    np.testing.assert_array_equal(part.removal_arrays["value"], rows[2:5])
    metric = registry.get("metric", "deletion")(ties="index")
    whole = metric(model, X[:6], loaded, target=1)
    some = metric(model, X[2:5], part, target=1)
    np.testing.assert_allclose(some.per_sample, whole.per_sample[2:5], rtol=1e-12)


class _Shifted(Baseline):
    """A custom removal that no registry name rebuilds."""

    name = "shifted"

    def __init__(self) -> None:
        super().__init__(value=0.5)


def test_a_custom_removal_is_used_in_memory_and_refused_once_loaded(tmp_path):
    model, X = _tabular()
    expl = xai.Explainer(removal=_Shifted(), summary="exact-shapley").explain(model, X[:4])
    assert "unsupported" in expl.removal_record
    metric = registry.get("metric", "deletion")()
    in_memory = metric(model, X[:4], expl)
    np.testing.assert_array_equal(
        in_memory.per_sample, metric(model, X[:4], expl, removal=_Shifted()).per_sample)
    loaded = Explanation.load(expl.save(tmp_path / "c.npz"))
    with pytest.raises(ProvenanceError, match=r"_Shifted object.*Pass removal="):
        metric(model, X[:4], loaded)
    again = metric(model, X[:4], loaded, removal=_Shifted())
    np.testing.assert_array_equal(again.per_sample, in_memory.per_sample)


def test_a_removal_not_registered_in_this_session_is_refused(tmp_path):
    model, X, expl = _explain("shap")
    expl.removal_record = {**expl.removal_record, "name": "from-a-plugin"}
    loaded = Explanation.load(expl.save(tmp_path / "p.npz"))
    with pytest.raises(ProvenanceError, match=r"'from-a-plugin'.*not registered.*removal="):
        registry.get("metric", "deletion")()(model, X, loaded)


def test_an_explanation_without_a_removal_uses_the_metric_default():
    model, X = _tabular()
    expl = Explanation(values=np.ones((3, 5)), stderr=None, base_values=np.zeros(3))
    got = registry.get("metric", "deletion")()(model, X[:3], expl, target=1)
    assert got.settings["removal"] == {"name": "baseline", "value": 0.0}


def _images():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 3)).double()
    images = np.random.default_rng(1).uniform(size=(24, 1, 8, 8))
    return net.eval(), images


@pytest.mark.parametrize("method", ["shap", "occlusion"])
def test_metrics_score_a_loaded_image_explanation_as_the_one_in_memory(method, tmp_path):
    net, images = _images()
    expl = xai.explain(net, images[:3], method=method, background=images[4:],
                       features=4, seed=0, progress=False)
    loaded = Explanation.load(expl.save(tmp_path / "img.npz"))
    assert loaded.feature_map.shape == (1, 8, 8)
    for name in METRICS:
        metric = registry.get("metric", name)()
        np.testing.assert_array_equal(metric(net, images[:3], loaded, seed=2).per_sample,
                                      metric(net, images[:3], expl, seed=2).per_sample)
    if method == "shap":
        np.testing.assert_array_equal(loaded.removal_arrays["background"], images[4:])


def test_saved_files_name_the_current_format(tmp_path):
    path = small().save(tmp_path / "f.npz")
    assert meta_of(members_of(path))["format"] == FORMAT == "xai.explanation/2"


class _Forgetful(Baseline):
    """A registered removal that does not keep its constructor option ``level``."""

    name = "test-forgetful"

    def __init__(self, level: float = 0.0) -> None:
        super().__init__(value=level)


class _Raising(Baseline):
    """A registered removal whose option attribute raises when read."""

    name = "test-raising"

    def __init__(self, value: float = 0.0) -> None:
        super().__init__(value=0.0)

    @property
    def value(self):
        raise RuntimeError("no value today")

    @value.setter
    def value(self, v) -> None:
        self._v = v


UNRECORDABLE = [(_Forgetful, "does not keep its constructor option 'level'"),
                (_Raising, "reading its options failed")]


@pytest.mark.parametrize(("cls", "why"), UNRECORDABLE)
def test_a_removal_that_cannot_be_recorded_still_explains(cls, why):
    registry.register("removal", cls.name, cls)
    try:
        removal = cls()
        expl = Explanation(values=np.ones((2, 3)), stderr=None, base_values=np.zeros(2))
        expl.record_removal(removal)
    finally:
        registry.unregister("removal", cls.name)
    assert why in expl.removal_record["unsupported"]
    assert expl.rebuild_removal() is removal  # in memory it is still used
