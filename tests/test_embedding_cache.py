"""Embedding cache on disk: round trip, restart, damage, atomicity, LRU, clear, encoder hashes."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from core.sam_encoder import ImageEmbedding
from core.segment import embedding_cache as ec
from core.segment.embedding_cache import EmbeddingCache, default_cache_dir, make_key


def emb(seed: int) -> ImageEmbedding:
    e = np.random.default_rng(seed).normal(0, 1, (1, 256, 64, 64)).astype(np.float32)
    return ImageEmbedding(e, (1024, 700), (1024, 700))


def files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def test_round_trip_float16_and_restart(tmp_path):
    cache = EmbeddingCache(str(tmp_path))
    key = make_key({"crop": 1})
    assert not cache.contains(key) and cache.get(key) is None
    e = emb(0)
    cache.put(key, e, {"note": "x"})
    fresh = EmbeddingCache(str(tmp_path))  # a new QGIS session
    got = fresh.get(key)
    assert fresh.contains(key) and got.embeddings.dtype == np.float32
    assert got.original_size == (1024, 700) and got.input_size == (1024, 700)
    np.testing.assert_allclose(got.embeddings, e.embeddings, rtol=1e-3, atol=1e-4)
    assert os.path.getsize(os.path.join(tmp_path, "embeddings", key[:2], key + ".npy")) < 2.2e6
    assert make_key({"crop": 1}) == key != make_key({"crop": 2})


@pytest.mark.parametrize("damage", ["truncate", "flip", "sidecar", "shape"])
def test_damaged_entry_is_a_miss_and_removed(tmp_path, damage, caplog):
    cache = EmbeddingCache(str(tmp_path))
    key = make_key({"d": damage})
    cache.put(key, emb(1))
    npy = os.path.join(tmp_path, "embeddings", key[:2], key + ".npy")
    side = npy[:-4] + ".json"
    if damage == "truncate":
        with open(npy, "r+b") as f:
            f.truncate(os.path.getsize(npy) // 2)
    elif damage == "flip":
        with open(npy, "r+b") as f:
            f.seek(100000)
            f.write(b"\xff\xff\xff\xff")
    elif damage == "sidecar":
        with open(side, "w") as f:
            f.write("{not json")
    else:
        np.save(npy, np.zeros((1, 256, 32, 32), np.float16))
    with caplog.at_level("WARNING", logger="ai_segmentation"):
        assert cache.get(key) is None
    assert "damaged" in caplog.text
    assert not os.path.exists(npy) and not os.path.exists(side) and not cache.contains(key)
    cache.put(key, emb(1))  # re-encoded
    assert cache.get(key) is not None


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    cache = EmbeddingCache(str(tmp_path))

    def boom(f, arr, allow_pickle=False):
        f.write(b"\x93NUMPY partial")
        raise KeyboardInterrupt  # e.g. QGIS killed mid-write

    monkeypatch.setattr(ec.np, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        cache.put(make_key({"k": 1}), emb(2))
    assert files(tmp_path) == []


def test_crash_leftovers_are_swept_when_stale(tmp_path):
    cache = EmbeddingCache(str(tmp_path))
    key = make_key({"k": 2})
    cache.put(key, emb(3))
    folder = os.path.join(tmp_path, "embeddings", key[:2])
    old_tmp, new_tmp, orphan = (os.path.join(folder, n) for n in (".tmp-old", ".tmp-new", "f" * 64 + ".npy"))
    for p in (old_tmp, new_tmp, orphan):
        open(p, "wb").close()
    past = time.time() - 2 * ec.STALE_SECONDS
    os.utime(old_tmp, (past, past))
    os.utime(orphan, (past, past))
    assert cache.size_bytes() > 2 * 1024**2
    left = set(os.listdir(folder))
    assert ".tmp-new" in left and ".tmp-old" not in left and "f" * 64 + ".npy" not in left
    assert cache.get(key) is not None


def test_lru_eviction_and_clear(tmp_path):
    assert EmbeddingCache(str(tmp_path)).size_bytes() == 0  # no folder yet
    cache = EmbeddingCache(str(tmp_path), max_bytes=int(3.5 * 2 * 1024**2))  # room for 3 entries
    keys = [make_key({"i": i}) for i in range(4)]
    for i, k in enumerate(keys[:3]):
        cache.put(k, emb(i))
        past = time.time() - 100 + i
        os.utime(cache._paths(k)[1], (past, past))
    assert cache.get(keys[0]) is not None  # used: now the most recent
    cache.put(keys[3], emb(3))
    assert [cache.contains(k) for k in keys] == [True, False, True, True]
    assert cache.size_bytes() <= cache.max_bytes
    cache.encoder_hash(__file__)
    cache.clear()
    assert not any(cache.contains(k) for k in keys) and cache.size_bytes() == 0
    assert not os.path.exists(os.path.join(tmp_path, "encoders.json"))


def test_encoder_hash_is_memoised_on_disk(tmp_path):
    model = tmp_path / "enc.onnx"
    model.write_bytes(b"A" * 5000)
    cache = EmbeddingCache(str(tmp_path / "c"))
    h = cache.encoder_hash(str(model))
    st = os.stat(model)
    model.write_bytes(b"B" * 5000)  # same size; restore the mtime: the memo must answer
    os.utime(model, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert EmbeddingCache(str(tmp_path / "c")).encoder_hash(str(model)) == h
    os.utime(model, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched: hashed again
    assert EmbeddingCache(str(tmp_path / "c")).encoder_hash(str(model)) != h
    memo = json.loads((tmp_path / "c" / "encoders.json").read_text())
    assert len(memo) == 2


def test_encode_timings(tmp_path):
    cache = EmbeddingCache(str(tmp_path))
    assert cache.encode_seconds("h") is None
    cache.record_encode_seconds("h", 10.0)
    cache.record_encode_seconds("h", 20.0)
    assert EmbeddingCache(str(tmp_path)).encode_seconds("h") == pytest.approx(13.0)


def test_default_cache_dir_follows_platform_conventions(monkeypatch, tmp_path):
    monkeypatch.setattr(ec.sys, "platform", "linux")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == str(tmp_path / "xdg" / "qgis-ai-segmentation")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == os.path.join(os.path.expanduser("~"), ".cache", "qgis-ai-segmentation")
    monkeypatch.setattr(ec.sys, "platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local"))
    assert default_cache_dir() == str(tmp_path / "local" / "qgis-ai-segmentation")
    monkeypatch.setattr(ec.sys, "platform", "darwin")
    assert default_cache_dir() == os.path.join(os.path.expanduser("~"), "Library", "Caches",
                                               "qgis-ai-segmentation")
    assert EmbeddingCache().directory == os.path.abspath(default_cache_dir())


def sam2_bundle(seed: int) -> ImageEmbedding:
    rng = np.random.default_rng(seed)
    return ImageEmbedding(rng.normal(0, 1, (1, 256, 64, 64)).astype(np.float32), (700, 1024), (1024, 1024), "sam2",
                          {"high_res_feats_0": rng.normal(0, 1, (1, 32, 256, 256)).astype(np.float32),
                           "high_res_feats_1": rng.normal(0, 1, (1, 64, 128, 128)).astype(np.float32)})


def test_sam2_bundle_round_trip_holds_every_tensor(tmp_path):
    cache = EmbeddingCache(str(tmp_path))
    key = make_key({"crop": "sam2"})
    e = sam2_bundle(5)
    cache.put(key, e)
    got = EmbeddingCache(str(tmp_path)).get(key)
    assert got.family == "sam2" and got.original_size == (700, 1024) and got.input_size == (1024, 1024)
    assert set(got.tensors) == {"image_embeddings", "high_res_feats_0", "high_res_feats_1"}
    for name, value in e.tensors.items():
        assert got.tensors[name].dtype == np.float32 and got.tensors[name].shape == value.shape
        np.testing.assert_allclose(got.tensors[name], value, rtol=1e-3, atol=2e-3)  # float16
    npy, side = cache._paths(key)
    assert os.path.getsize(npy) + os.path.getsize(side) <= ec.entry_bytes("sam2")
    assert 8.3e6 < os.path.getsize(npy) < 8.5e6  # about 8 MiB, four times a SAM entry
    meta = json.loads(Path(side).read_text())
    assert meta["version"] == ec.FORMAT_VERSION and meta["family"] == "sam2"
    assert meta["tensors"] == [["image_embeddings", [1, 256, 64, 64]], ["high_res_feats_0", [1, 32, 256, 256]],
                               ["high_res_feats_1", [1, 64, 128, 128]]]


def test_bundles_that_do_not_fit_their_family_are_refused_or_dropped(tmp_path, caplog):
    cache = EmbeddingCache(str(tmp_path))
    broken = ImageEmbedding(emb(0).embeddings, (1024, 1024), (1024, 1024), "sam2")  # no high-res features
    with pytest.raises(ValueError, match="high_res_feats"):
        cache.put(make_key({"k": 3}), broken)
    key = make_key({"k": 4})
    cache.put(key, sam2_bundle(1))
    side = cache._paths(key)[1]
    meta = json.loads(Path(side).read_text())
    meta["family"] = "sam"  # a sidecar that no longer matches its array
    with open(side, "w") as f:
        json.dump(meta, f)
    with caplog.at_level("WARNING", logger="ai_segmentation"):
        assert cache.get(key) is None
    assert "damaged" in caplog.text and not cache.contains(key)


def test_format_1_entries_are_never_read(tmp_path):
    """Before families, an entry was a bare [1, 256, 64, 64] array with a version-1 sidecar; such a
    file under a current key (it cannot get one: the key's version changed) is a clean miss."""
    cache = EmbeddingCache(str(tmp_path))
    key = make_key({"k": 5})
    npy, side = cache._paths(key)
    os.makedirs(os.path.dirname(npy))
    arr = emb(0).embeddings.astype(np.float16)
    np.save(npy, arr)
    with open(side, "w") as f:
        json.dump({"version": 1, "shape": [1, 256, 64, 64], "dtype": "float16", "original_size": [1024, 1024],
                   "input_size": [1024, 1024], "sha256": hashlib.sha256(arr.tobytes()).hexdigest()}, f)
    assert cache.get(key) is None and not cache.contains(key)
    assert make_key({"k": 5}) != ec.hashlib.sha256(json.dumps({"v": 1, "k": 5}, sort_keys=True,
                                                               separators=(",", ":")).encode()).hexdigest()
