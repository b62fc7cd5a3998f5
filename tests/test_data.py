"""Every loader on its fixture in the real on-disk format, the shipped test split, and bad roots."""

from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import encode_events

from mdsnn_zoo import CorruptFileError, DatasetNotFoundError, MdsnnError, dataset_info, get_dataset
from mdsnn_zoo.data import (
    count_samples,
    dataset_splits,
    eventfolder,
    imagefolder,
    list_datasets,
    locate,
    to_time_major,
)
from mdsnn_zoo.data.events import decode_events, events_to_frames
from mdsnn_zoo.data.idx import read_idx, write_idx


def _check(ds, n, shape, num_classes):
    assert len(ds) == n
    labels = set()
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.dtype == torch.float32 and tuple(x.shape) == shape
        assert 0 <= y < num_classes
        labels.add(y)
    return labels


def test_registry_lists_every_dataset():
    assert list_datasets() == ["cifar10", "cifar100", "eventfolder", "fashion-mnist", "imagefolder",
                               "n-caltech101", "n-fashion-mnist", "n-mnist", "tiny-imagenet"]
    with pytest.raises(MdsnnError, match="unknown data set 'mnist'.*fashion-mnist"):
        dataset_info("mnist")
    with pytest.raises(MdsnnError, match="no split 'valid'"):
        get_dataset("fashion-mnist", "valid")


def test_shipped_fashion_mnist_test_split(no_system_dirs):
    ds = get_dataset("fashion-mnist", "test")
    assert locate("fashion-mnist", "test").shipped
    assert len(ds) == 10000 and tuple(ds.data.shape) == (10000, 1, 28, 28)
    assert sorted(ds.targets.unique().tolist()) == list(range(10))
    assert torch.bincount(ds.targets).tolist() == [1000] * 10  # the real split is balanced
    x, _ = get_dataset("fashion-mnist", "test", normalize=False)[0]
    assert x.shape == (1, 28, 28) and 0.0 <= x.min() and x.max() <= 1.0
    with pytest.raises(DatasetNotFoundError, match="train-images-idx3-ubyte.gz"):
        get_dataset("fashion-mnist", "train")  # the train split does not ship


def test_fashion_mnist_fixture_and_normalisation(fmnist_root):
    raw = read_idx(fmnist_root / "FashionMNIST/raw/train-images-idx3-ubyte.gz")
    ds = get_dataset("fashion-mnist", "train", root=fmnist_root)
    assert _check(ds, 7, (1, 28, 28), 10)
    info = dataset_info("fashion-mnist")
    expected = (torch.from_numpy(raw[3]).float() / 255 - info.mean[0]) / info.std[0]
    torch.testing.assert_close(ds[3][0][0], expected)
    assert count_samples("fashion-mnist", "test", root=fmnist_root) == 5
    flipped = get_dataset("fashion-mnist", "train", root=fmnist_root, transform=lambda x: x.flip(-1))
    torch.testing.assert_close(flipped[3][0], ds[3][0].flip(-1))


def test_fashion_mnist_reads_plain_idx_and_env_root(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", rng.integers(0, 256, (3, 28, 28), np.uint8))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([0, 9, 4], np.uint8))
    monkeypatch.setenv("MDSNN_DATA", str(tmp_path))
    ds = get_dataset("fashion-mnist", "test")
    assert ds.targets.tolist() == [0, 9, 4]
    assert locate("fashion-mnist", "test").folder == tmp_path.resolve()


def test_idx_round_trip_every_type(tmp_path):
    for dtype in (np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64):
        a = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
        write_idx(tmp_path / "a.gz", a)
        np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), a)


def test_truncated_or_foreign_idx_is_refused(fmnist_root):
    path = fmnist_root / "FashionMNIST/raw/train-images-idx3-ubyte.gz"
    with gzip.open(path, "rb") as f:
        raw = f.read()
    with gzip.open(path, "wb") as f:
        f.write(raw[:-100])
    with pytest.raises(CorruptFileError, match="truncated or corrupt"):
        get_dataset("fashion-mnist", "train", root=fmnist_root)
    path.write_bytes(b"not gzip at all")
    with pytest.raises(CorruptFileError, match="cannot read"):
        get_dataset("fashion-mnist", "train", root=fmnist_root)


@pytest.mark.parametrize("name", ["fashion-mnist", "cifar10", "cifar100", "tiny-imagenet",
                                  "n-caltech101", "imagefolder", "eventfolder"])
def test_empty_or_missing_root_gives_one_line_error(name, tmp_path, no_system_dirs):
    split = dataset_splits(name)[-1]
    for root in (tmp_path, tmp_path / "does-not-exist"):
        with pytest.raises(DatasetNotFoundError) as err:
            get_dataset(name, split, root=root)
        msg = str(err.value)
        assert "\n" not in msg and str(root) in msg and "nothing is downloaded" in msg
        folder_info = {"imagefolder": imagefolder.INFO, "eventfolder": eventfolder.INFO}.get(name)
        source = (folder_info or dataset_info(name)).source
        assert "expected" in msg and source in msg


def test_cifar10(cifar10_root):
    train = get_dataset("cifar10", "train", root=cifar10_root)
    test = get_dataset("cifar10", "test", root=cifar10_root / "cifar-10-batches-py")
    assert _check(train, 15, (3, 32, 32), 10) and _check(test, 4, (3, 32, 32), 10)
    with open(cifar10_root / "cifar-10-batches-py" / "test_batch", "rb") as f:
        entry = pickle.load(f, encoding="bytes")
    image = torch.from_numpy(entry[b"data"][2].reshape(3, 32, 32))
    raw = get_dataset("cifar10", "test", root=cifar10_root, normalize=False)
    torch.testing.assert_close(raw[2][0], image.float() / 255)
    assert raw[2][1] == entry[b"labels"][2]


def test_cifar100(cifar100_root):
    ds = get_dataset("cifar100", "train", root=cifar100_root)
    assert _check(ds, 6, (3, 32, 32), 100)
    assert count_samples("cifar100", "test", root=cifar100_root) == 2


def test_cifar_pickle_cannot_run_code(cifar10_root, tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    with open(cifar10_root / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": [0]}, f, protocol=2)
    with pytest.raises(CorruptFileError, match="not allowed"):
        get_dataset("cifar10", "test", root=cifar10_root)
    assert not (tmp_path / "pwned").exists()


def test_tiny_imagenet(tiny_imagenet_root):
    train = get_dataset("tiny-imagenet", "train", root=tiny_imagenet_root)
    assert _check(train, 6, (3, 64, 64), 3) == {0, 1, 2}
    assert train.info.classes == ("n01", "n02", "n03")  # label = position in sorted wnids
    assert train.targets.tolist() == [0, 0, 1, 1, 2, 2]
    val = get_dataset("tiny-imagenet", "test", root=tiny_imagenet_root)  # 'test' means 'val'
    assert val.targets.tolist() == [2, 0, 0, 1]
    assert _check(val, 4, (3, 64, 64), 3)


def test_tiny_imagenet_bad_annotation(tiny_imagenet_root):
    ann = tiny_imagenet_root / "tiny-imagenet-200/val/val_annotations.txt"
    ann.write_text("val_0.JPEG\tn99\t0\t0\t1\t1\n")
    with pytest.raises(CorruptFileError, match="val_annotations.txt:1"):
        get_dataset("tiny-imagenet", "val", root=tiny_imagenet_root)


def test_ncaltech_decoder_handles_timestamp_overflow():
    t = [5, 1 << 22, (1 << 23) + 7, (1 << 24) + 123, (1 << 25) + 1]
    raw = encode_events([1, 2, 3, 4, 5], [10, 20, 30, 40, 50], t, [0, 1, 1, 0, 1])
    assert len(raw) > 5 * len(t)  # overflow markers were needed
    ev = decode_events(raw)
    assert ev["t"].tolist() == t and ev["x"].tolist() == [1, 2, 3, 4, 5]
    assert ev["y"].tolist() == [10, 20, 30, 40, 50] and ev["p"].tolist() == [0, 1, 1, 0, 1]
    with pytest.raises(CorruptFileError, match="multiple of 5"):
        decode_events(raw[:-1])


def test_ncaltech_frames_count_every_event():
    ev = {"x": np.array([0, 239, 120]), "y": np.array([0, 179, 90]), "t": np.array([0, 50, 99]),
          "p": np.array([0, 1, 1])}
    frames = events_to_frames(ev, time_steps=2, sensor_size=(180, 240), frame_size=(6, 8))
    assert frames.shape == (2, 2, 6, 8) and frames.sum() == 3
    assert frames[0, 0, 0, 0] == 1 and frames[1, 1, 5, 7] == 1 and frames[1, 1, 3, 4] == 1


def test_ncaltech101(ncaltech_root):
    train = get_dataset("n-caltech101", "train", root=ncaltech_root, time_steps=4,
                        frame_size=(16, 20))
    test = get_dataset("n-caltech101", "test", root=ncaltech_root, time_steps=4,
                       frame_size=(16, 20))
    # per class the last max(1, round(n / 10)) files are test: 12 -> 1, 3 -> 1, 1 -> 1
    assert len(train) == 11 + 2 + 0 and len(test) == 3
    assert train.info.classes == ("accordion", "airplanes", "anchor")  # no BACKGROUND_Google
    assert test.paths[0].name == "image_0012.bin"
    x, y = test[1]
    assert x.shape == (4, 2, 16, 20) and y == 1
    n_events = len(decode_events(test.paths[1].read_bytes())["t"])
    assert n_events >= 5 and x.sum() == n_events  # every event lands in one frame
    with pytest.raises(MdsnnError, match="time_steps"):
        get_dataset("n-caltech101", "train", root=ncaltech_root, time_steps=0)


def test_ncaltech_tonic_reader_agrees(ncaltech_root):
    tonic_io = pytest.importorskip("tonic.io")
    path = next((ncaltech_root / "NCALTECH101/Caltech101/accordion").glob("*.bin"))
    dtype = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])
    theirs = tonic_io.read_mnist_file(str(path), dtype=dtype)
    ours = decode_events(path.read_bytes())
    for key in "xytp":
        np.testing.assert_array_equal(ours[key], theirs[key])


def test_to_time_major():
    x = torch.randn(3, 1, 5, 5)
    seq = to_time_major(x, 4)
    assert seq.shape == (4, 3, 1, 5, 5) and seq.stride(0) == 0  # a view, no copy
    assert torch.equal(seq[2], x)
    ev = torch.randn(3, 4, 2, 5, 5)
    assert torch.equal(to_time_major(ev, 4)[1], ev[:, 1])
    with pytest.raises(ValueError, match="T=4 frames but time_steps=6"):
        to_time_major(ev, 6)
    with pytest.raises(ValueError, match="got shape"):
        to_time_major(torch.randn(3, 5), 4)


def test_not_a_top_level_kernels_package(tmp_path):
    import subprocess
    import sys

    code = "import mdsnn_zoo.kernels, importlib.util; print(importlib.util.find_spec('kernels'))"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "None"


def test_debian_train_split_if_installed():
    debian = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
    if not debian.exists():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    assert count_samples("fashion-mnist", "train") == 60000


def test_image_folder_reads_classes_shapes_and_statistics(image_folder):
    train = get_dataset("imagefolder", "train", root=image_folder)
    info = train.info
    assert info.classes == ("a-cat", "b-dog", "c-bird") and info.num_classes == 3  # sorted as torchvision sorts
    assert info.input_shape == (1, 12, 10)  # the first training image (a-cat/0.png) is greyscale, 12x10
    assert len(train) == 24 and count_samples("imagefolder", "train", root=image_folder) == 24  # notes.txt skipped
    assert torch.equal(train.targets, torch.arange(3).repeat_interleave(8))
    rgb = get_dataset("imagefolder", "train", root=image_folder, channels=3, size=16, normalize=False)
    assert rgb.info.input_shape == (3, 16, 16) and rgb.data.shape == (24, 3, 16, 16)
    # the band that encodes the class survives conversion and resizing: brightest rows differ per class
    rows = rgb.data.float().mean((1, 3))  # [N, H]
    thirds = torch.stack([rows[:, :5].mean(1), rows[:, 6:10].mean(1), rows[:, 11:].mean(1)], 1)  # [N, 3]
    assert thirds.argmax(1).tolist() == [0] * 8 + [1] * 8 + [2] * 8
    # normalisation statistics are the train split's pixels
    x = rgb.data.double() / 255
    assert rgb.info.mean == pytest.approx(tuple(x.mean((0, 2, 3)).tolist()))
    assert rgb.info.std == pytest.approx(tuple(x.std((0, 2, 3), correction=0).tolist()))
    normalised = get_dataset("imagefolder", "train", root=image_folder, channels=3, size=16)
    assert abs(float(torch.stack([normalised[i][0] for i in range(24)]).mean())) < 1e-4
    # val keeps train's classes, and its statistics (not its own)
    val = get_dataset("imagefolder", "val", root=image_folder, channels=3, size=16)
    assert len(val) == 9 and val.info.mean == rgb.info.mean and val.targets.tolist() == [0] * 3 + [1] * 3 + [2] * 3
    given = get_dataset("imagefolder", "val", root=image_folder, channels=1, size=[8, 6], mean=[0.5], std=[0.25])
    assert given.info.mean == (0.5,) and given[0][0].shape == (1, 8, 6)
    assert dataset_info("imagefolder", root=image_folder, channels=3, size=16) == rgb.info


def test_image_folder_errors_name_the_file_or_folder(image_folder, tmp_path):
    bad = image_folder / "train" / "b-dog" / "3.JPG"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(CorruptFileError, match=f"cannot decode image {bad}"):
        get_dataset("imagefolder", "train", root=image_folder, channels=3, size=9)
    bad.unlink()
    (image_folder / "val" / "d-fish").mkdir()
    (image_folder / "val" / "d-fish" / "0.png").write_bytes((image_folder / "val" / "a-cat" / "0.png").read_bytes())
    with pytest.raises(ValueError, match="d-fish is a class the train split does not have"):
        get_dataset("imagefolder", "val", root=image_folder, channels=3, size=9)
    with pytest.raises(DatasetNotFoundError, match=f"imagefolder split 'train' not found.*{tmp_path / 'none'}"):
        get_dataset("imagefolder", "train", root=tmp_path / "none")
    with pytest.raises(ValueError, match="channels must be 1 .greyscale. or 3"):
        get_dataset("imagefolder", "train", root=image_folder, channels=2, size=9)
    with pytest.raises(ValueError, match="give both mean and std"):
        get_dataset("imagefolder", "train", root=image_folder, channels=1, size=9, mean=[0.5])
    (tmp_path / "empty" / "train" / "a").mkdir(parents=True)
    (tmp_path / "empty" / "train" / "b").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError, match="has class folders but no images"):
        get_dataset("imagefolder", "train", root=tmp_path / "empty", channels=1, size=4)
    lonely = tmp_path / "one" / "train" / "cat"
    lonely.mkdir(parents=True)
    (lonely / "0.png").write_bytes((image_folder / "train" / "a-cat" / "0.png").read_bytes())
    with pytest.raises(ValueError, match="has one class folder .cat.: a classifier needs at least two"):
        get_dataset("imagefolder", "train", root=tmp_path / "one", channels=1, size=4)


def test_image_folder_reads_every_pil_mode_as_its_grey_levels(tmp_path):
    """The same grey picture saved in eight PIL modes (16-bit and palette among them) and two sizes
    reads as the same pixels; a 32-bit float image is refused, naming the file."""
    from PIL import Image

    grey = np.random.default_rng(3).integers(0, 256, (9, 7), np.uint8)
    grey[0, 0], grey[0, 1] = 0, 255  # the extremes of the scale
    saved = {"L": Image.fromarray(grey), "I;16": Image.fromarray(grey.astype(np.uint16) * 257),
             "I": Image.fromarray(grey.astype(np.int32) * 257), "RGB": Image.fromarray(grey).convert("RGB"),
             "RGBA": Image.fromarray(grey).convert("RGBA"), "LA": Image.fromarray(grey).convert("LA"),
             "P": Image.fromarray(grey).convert("RGB").quantize(256, dither=Image.Dither.NONE)}
    for cls in ("a", "b"):
        for mode, img in saved.items():
            (tmp_path / "modes" / "train" / cls).mkdir(parents=True, exist_ok=True)
            suffix = "tiff" if mode == "I" else "png"  # PNG holds no 32-bit integers
            img.save(tmp_path / "modes" / "train" / cls / f"{mode.replace(';', '_')}.{suffix}")
        big = Image.fromarray(np.repeat(np.repeat(grey, 2, 0), 2, 1))
        big.save(tmp_path / "modes" / "train" / cls / "big.png")
    data = get_dataset("imagefolder", "train", root=tmp_path / "modes", channels=1, size=[9, 7], normalize=False).data
    assert data.shape == (16, 1, 9, 7)
    palette = [i for i, path in enumerate(sorted((tmp_path / "modes" / "train" / "a").iterdir())) if path.stem == "P"]
    for i in range(16):
        if i % 8 == 7:  # big.png (sorted last), resized to the size asked for
            assert torch.equal(data[i, 0], torch.from_numpy(np.array(big.resize((7, 9), Image.BILINEAR))))
            continue
        tolerance = 2 if i % 8 in palette else 0  # a 256-colour palette may merge neighbouring greys
        assert (data[i, 0].int() - torch.from_numpy(grey).int()).abs().max() <= tolerance, i
    for cls in ("a", "b"):
        (tmp_path / "floats" / "train" / cls).mkdir(parents=True)
        Image.fromarray(grey).save(tmp_path / "floats" / "train" / cls / "0.png")
    floats = tmp_path / "floats" / "train" / "b" / "1.tiff"
    Image.fromarray(grey.astype(np.float32) / 255).save(floats)
    with pytest.raises(ValueError, match=f"{floats} is a 32-bit floating-point image; save it with 8 or 16 bits"):
        get_dataset("imagefolder", "train", root=tmp_path / "floats", channels=1, size=[9, 7])


def test_augmentation_pads_and_erases_with_the_images_background():
    """Black after normalisation, per channel: a black image stays black, whatever is cropped or erased."""
    from mdsnn_zoo.data._base import TensorImageDataset
    from mdsnn_zoo.data._registry import _SPECS
    from mdsnn_zoo.data.batching import augment_batch, background

    info = _SPECS["cifar10"].info
    images = torch.zeros(64, 3, 32, 32, dtype=torch.uint8)
    images[32:] = 255  # white
    ds = TensorImageDataset(images, torch.zeros(64), info)
    x, _ = ds.batch(torch.arange(64))
    bg = background(ds)
    assert bg.shape == (3,) and torch.equal(x[0, :, 0, 0], bg) and (bg < 0).all()
    out = augment_batch(x, torch.Generator().manual_seed(0), pad=4, erase_p=1.0, fill=bg)
    assert torch.equal(out[:32], x[:32])  # black, padded and erased with black
    white = out[32:].permute(0, 2, 3, 1).reshape(-1, 3)
    is_bg, is_white = (white == bg).all(1), (white == x[32, :, 0, 0]).all(1)
    assert (is_bg | is_white).all() and is_bg.any()  # nothing but the image and its background
    frames = torch.ones(8, 5, 2, 16, 16)  # event frames: padded and erased with 0, no events
    moved = augment_batch(frames, torch.Generator().manual_seed(1), erase_p=1.0, fill=background(frames))
    assert set(moved.unique().tolist()) == {0.0, 1.0}
    assert background(TensorImageDataset(images, torch.zeros(64), info, normalize=False)).eq(0).all()


def test_augmentation_policies_name_what_runs():
    from mdsnn_zoo.data.batching import augment, augment_policy

    assert augment_policy("crop,flip,erase") == ("crop", "flip", "erase") == augment_policy(True)
    assert augment_policy("erase, crop") == ("crop", "erase") and augment_policy("none") == () == augment_policy(False)
    with pytest.raises(ValueError, match="unknown augmentation 'rotate'.*crop, flip, erase"):
        augment_policy("crop,rotate")
    x = torch.arange(2 * 1 * 8 * 8, dtype=torch.float32).view(2, 1, 8, 8)
    assert torch.equal(augment(x, torch.Generator().manual_seed(0), ()), x)  # nothing asked, nothing done
    flipped = augment(x, torch.Generator().manual_seed(0), ("flip",))
    assert all(torch.equal(f, s) or torch.equal(f, s.flip(-1)) for f, s in zip(flipped, x, strict=True))
