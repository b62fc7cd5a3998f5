"""Event data: the 40-bit file format, the saccade DVS converter, N-MNIST-layout data sets and frames."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import encode_events as independent_encode

from mdsnn_zoo import CorruptFileError, DatasetNotFoundError, dataset_info, get_dataset
from mdsnn_zoo.cli import main
from mdsnn_zoo.data import count_samples, eventfolder, events, nmnist
from mdsnn_zoo.data.events import decode_events, encode_events, events_to_frames, read_events, write_events
from mdsnn_zoo.data.nmnist import make_n_fashion_mnist, statistics
from mdsnn_zoo.data.saccades import DVSParams, corner_path, saccade_events, saccade_recordings

CLEAN = DVSParams(threshold_sigma=0.0, blur=False)  # every pixel alike, no optics: counts follow the formula


def _random_events(rng, n, t_max=(1 << 23) - 1):
    return {"x": rng.integers(0, 34, n), "y": rng.integers(0, 34, n), "t": np.sort(rng.integers(0, t_max, n)),
            "p": rng.integers(0, 2, n)}


def _square(size=28, lo=4, hi=14, value=255):
    img = np.zeros((size, size), np.uint8)
    img[lo:hi, lo:hi] = value
    return img


# -- the file format ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [0, 1, 997])
def test_encoding_round_trips_and_matches_an_independent_encoder(n, tmp_path):
    ev = _random_events(np.random.default_rng(n), n)
    raw = encode_events(ev)
    assert len(raw) == 5 * n
    assert raw == independent_encode(*(ev[k].tolist() for k in "xytp"))  # timestamps < 2^23: no markers
    back = decode_events(raw)
    for k in "xytp":
        np.testing.assert_array_equal(back[k], ev[k])
    write_events(tmp_path / "a.bin", ev)
    assert (tmp_path / "a.bin").read_bytes() == raw and not list(tmp_path.glob(".*tmp"))
    for k in "xytp":
        np.testing.assert_array_equal(read_events(tmp_path / "a.bin")[k], ev[k])


@pytest.mark.parametrize("bad, match", [({"t": [1 << 23]}, "timestamps"), ({"x": [256]}, "0..255"),
                                        ({"y": [240]}, "overflow"), ({"p": [2]}, "polarity"),
                                        ({"x": [1, 2]}, "one length")])
def test_encoding_refuses_what_40_bits_cannot_hold(bad, match):
    ev = {"x": [0], "y": [0], "t": [0], "p": [0], **bad}
    with pytest.raises(ValueError, match=match):
        encode_events({k: np.asarray(v) for k, v in ev.items()})


def test_tonic_reads_what_we_write(tmp_path):
    tonic_io = pytest.importorskip("tonic.io")
    ev = saccade_events(_square(), DVSParams())
    write_events(tmp_path / "s.bin", ev)
    theirs = tonic_io.read_mnist_file(str(tmp_path / "s.bin"), dtype=np.dtype([(k, int) for k in "xytp"]))
    for k in "xytp":
        np.testing.assert_array_equal(theirs[k], ev[k])


# -- the converter -------------------------------------------------------------------------------------------

def test_recording_is_ordered_on_the_sensor_and_lasts_three_saccades():
    ev = saccade_events(_square(value=200), DVSParams(), key=(0, 1))
    assert ev["t"].size > 100
    assert np.all(np.diff(ev["t"]) >= 0)
    assert 0 <= ev["t"].min() and ev["t"].max() <= 3 * 105_000
    assert ev["x"].max() < 34 and ev["y"].max() < 34 and set(np.unique(ev["p"])) == {0, 1}


def test_saccade_path_is_the_closed_triangle():
    path = corner_path(DVSParams())
    assert path.shape == (316, 2)  # 3 x 105 frames and the last
    assert path[0].tolist() == path[-1].tolist() == [0, 0]
    assert path[105].tolist() == [3 * 256, 6 * 256] and path[210].tolist() == [6 * 256, 0]
    assert np.abs(np.diff(path, axis=0)).max() <= 16  # straight and slow: < 1/16 pixel a frame


def test_converter_is_deterministic_and_batch_independent():
    images = np.random.default_rng(3).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    for params in (DVSParams(), DVSParams(noise="noisy")):
        keys = [(0, i) for i in range(5)]
        batch = saccade_recordings(images, params, keys)
        for i in (0, 3):
            alone = saccade_events(images[i], params, keys[i])
            assert encode_events(alone) == encode_events(batch[i])
        assert encode_events(saccade_recordings(images[::-1].copy(), params, keys[::-1])[0]) == \
            encode_events(batch[4])  # order of making does not matter
    other_sensor = saccade_events(images[0], DVSParams(seed=1))
    assert encode_events(other_sensor) != encode_events(saccade_events(images[0], DVSParams()))


def test_black_image_is_silent_unless_noisy():
    black = np.zeros((28, 28), np.uint8)
    assert saccade_events(black, DVSParams())["t"].size == 0
    noisy = saccade_events(black, DVSParams(noise="noisy"), key=(0, 0))
    expected = 5.0 * 0.315 * 34 * 34  # shot noise: 5 Hz per pixel over 315 ms
    assert abs(noisy["t"].size - expected) < 5 * math.sqrt(expected) + 0.1 * 34 * 34  # plus a few leak events


def test_event_counts_follow_log_contrast_over_threshold():
    ev = saccade_events(_square(), CLEAN)
    pixel = ev["y"] * 34 + ev["x"]
    on = np.bincount(pixel[ev["p"] == 1], minlength=34 * 34)
    off = np.bincount(pixel[ev["p"] == 0], minlength=34 * 34)
    assert np.abs(on - off).max() <= 1  # the path is closed: each pixel ends where it began
    steps = math.log((1 + CLEAN.dark_floor) / CLEAN.dark_floor) / CLEAN.threshold
    # a pixel the square's edge passes once each way fires floor(steps) events each way (or one more)
    assert on.max() >= math.floor(steps) and on.max() <= 2 * math.ceil(steps)
    assert on[pixel.min()] >= 1 and on.sum() == ev["p"].sum()


def test_moving_edge_fires_on_ahead_and_off_behind():
    ev = saccade_events(_square(), CLEAN)
    first = ev["t"] < 105_000  # the first saccade moves the image right and down
    on, off = first & (ev["p"] == 1), first & (ev["p"] == 0)
    # by 3 pixels right and 6 down: the leading edges (ON) lie right of and below the trailing ones (OFF)
    assert ev["x"][on].mean() > ev["x"][off].mean() + 2 and ev["y"][on].mean() > ev["y"][off].mean() + 4


def test_bad_parameters_and_images_say_what_is_wrong():
    with pytest.raises(ValueError, match="multiple of frame_us"):
        DVSParams(saccade_us=1500)
    with pytest.raises(ValueError, match="23-bit"):
        DVSParams(saccade_us=3_000_000)
    with pytest.raises(ValueError, match="noise"):
        DVSParams(noise="loud")
    with pytest.raises(ValueError, match="uint8"):
        saccade_events(np.zeros((28, 28), np.float32), DVSParams())


# -- frames --------------------------------------------------------------------------------------------------

def test_count_binning_splits_events_evenly_and_time_binning_by_duration():
    ev = _random_events(np.random.default_rng(0), 1003, t_max=1000)
    by_count = events_to_frames(ev, 10, (34, 34), binning="count")
    per_frame = by_count.sum(dim=(1, 2, 3))
    assert by_count.shape == (10, 2, 34, 34) and per_frame.sum() == 1003
    assert per_frame.max() - per_frame.min() <= 1
    by_time = events_to_frames(ev, 10, (34, 34), binning="time")
    edges = ev["t"].min() + (ev["t"].max() - ev["t"].min() + 1) * np.arange(11) / 10
    expected = np.histogram(ev["t"], edges)[0]
    np.testing.assert_array_equal(by_time.sum(dim=(1, 2, 3)).numpy(), expected)
    with pytest.raises(ValueError, match="binning"):
        events_to_frames(ev, 10, (34, 34), binning="space")


# -- the data sets on disk -------------------------------------------------------------------------------------

@pytest.fixture
def made(tmp_path, fmnist_root):
    """N-Fashion-MNIST of the fixture's 7 train and 5 test images."""
    return make_n_fashion_mnist(tmp_path / "nfm", source_root=fmnist_root, progress=False)


def test_made_dataset_has_n_mnist_layout_and_reads_as_frames(made, fmnist_root):
    source = get_dataset("fashion-mnist", "train", root=fmnist_root)
    files = sorted(made.glob("Train/*/*.bin"))
    assert len(files) == 7 and len(list(made.glob("Test/*/*.bin"))) == 5
    for i in range(7):
        assert (made / "Train" / str(int(source.targets[i])) / f"{i:05d}.bin").is_file()
    assert json.loads((made / "params.json").read_text())["params"]["threshold"] == 0.2
    ds = get_dataset("n-fashion-mnist", "train", root=made, time_steps=8)
    assert len(ds) == 7 == count_samples("n-fashion-mnist", "train", root=made)
    x, y = ds[0]
    assert x.shape == (8, 2, 34, 34) and x.dtype == torch.float32 and 0 <= y < 10
    n_events = decode_events(nmnist.recordings("train", made)[0][0].read_bytes())["t"].size
    assert x.sum() == n_events
    xb, yb = ds.batch(torch.tensor([0, 2]))
    assert xb.shape == (2, 8, 2, 34, 34) and torch.equal(xb[0], x) and yb[0] == y


def test_make_is_reproducible_and_resumes(made, tmp_path, fmnist_root):
    files = sorted(made.glob("*/*/*.bin"))
    first = {f.relative_to(made): f.read_bytes() for f in files}
    files[2].unlink()
    files[9].unlink()
    make_n_fashion_mnist(made, source_root=fmnist_root, progress=False)  # fills the gaps only
    again = make_n_fashion_mnist(tmp_path / "again", source_root=fmnist_root, progress=False)
    parallel = make_n_fashion_mnist(tmp_path / "parallel", source_root=fmnist_root, progress=False, chunk=3,
                                    workers=2)
    for folder in (made, again, parallel):
        assert {f.relative_to(folder): f.read_bytes() for f in sorted(folder.glob("*/*/*.bin"))} == first


def test_make_refuses_a_folder_made_otherwise(made, fmnist_root):
    with pytest.raises(ValueError, match="other parameters"):
        make_n_fashion_mnist(made, params=DVSParams(threshold=0.3), source_root=fmnist_root, progress=False)


def test_frames_are_cached_and_the_cache_follows_the_files(made, monkeypatch):
    first = get_dataset("n-fashion-mnist", "test", root=made, time_steps=4)
    calls = []
    real = events.bin_recordings
    monkeypatch.setattr(events, "bin_recordings", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = get_dataset("n-fashion-mnist", "test", root=made, time_steps=4)
    assert torch.equal(first.frames, again.frames) and calls == []
    get_dataset("n-fashion-mnist", "test", root=made, time_steps=4, binning="time")
    assert calls == [1]
    path = nmnist.recordings("test", made)[0][0]
    write_events(path, {k: np.zeros(1, np.int64) for k in "xytp"})  # one event at (0, 0), OFF
    changed = get_dataset("n-fashion-mnist", "test", root=made, time_steps=4)
    assert calls == [1, 1] and changed[0][0].sum() == 1 and changed[0][0][0, 0, 0, 0] == 1


def test_statistics(made):
    stats = statistics(made, "test")
    assert stats["samples"] == 5 and stats["events_min"] <= stats["events_mean"] <= stats["events_max"]
    assert 0.3 < stats["on_fraction"] < 0.7 and 300 < stats["duration_ms"] <= 315


def test_real_n_mnist_layout_is_read(tmp_path):
    rng = np.random.default_rng(1)
    for folder in ("Train", "Test"):
        for label in (3, 7):
            (tmp_path / "NMNIST" / folder / str(label)).mkdir(parents=True)
            ev = _random_events(rng, 50, t_max=300_000)
            (tmp_path / "NMNIST" / folder / str(label) / "00001.bin").write_bytes(
                independent_encode(*(ev[k].tolist() for k in "xytp")))
    ds = get_dataset("n-mnist", "test", root=tmp_path, time_steps=10)
    assert len(ds) == 2 and ds.targets.tolist() == [3, 7] and ds[1][0].sum() == 50
    with pytest.raises(DatasetNotFoundError, match="n-fashion-mnist"):
        get_dataset("n-fashion-mnist", "test", root=tmp_path)  # no params.json: not ours
    with pytest.raises(DatasetNotFoundError, match=r"Train/<label>/\*\.bin"):
        get_dataset("n-mnist", "train", root=tmp_path / "elsewhere")


def test_cli_make_prints_statistics(capsys, tmp_path, fmnist_root):
    assert main(["data", "make", "n-fashion-mnist", "--split", "test", "--out", str(tmp_path / "o"),
                 "--source-root", str(fmnist_root), "--limit", "3", "--no-progress", "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith(str(tmp_path / "o"))
    assert json.loads(lines[1])["samples"] == 3 and not (tmp_path / "o" / "Train").exists()


def test_plot_events_draws_one_row_per_class(made, tmp_path, capsys):
    out = tmp_path / "ev.png"
    assert main(["plot", "events", "n-fashion-mnist", "--split", "train", "--data-root", str(made),
                 "--samples", "2", "--out", str(out)]) == 0
    from PIL import Image

    with Image.open(out) as img:
        width, height = img.size
    assert capsys.readouterr().out.strip() == str(out) and height > width * 0.6  # 2 rows of 3 saccades


# -- your own recordings: the event folder -------------------------------------------------------------------

def _expected_frames(ev, time_steps, frame_size=(24, 40), binning="count"):
    """Frames counted here, event by event, independently of events_to_frames."""
    n, (h, w) = ev["t"].size, frame_size
    out = torch.zeros(time_steps, 2, h, w)
    t0, span = ev["t"].min(), ev["t"].max() - ev["t"].min() + 1
    for i in range(n):
        step = i * time_steps // n if binning == "count" else (ev["t"][i] - t0) * time_steps // span
        out[step, ev["p"][i], ev["y"][i] * h // 24, ev["x"][i] * w // 40] += 1
    return out


def test_event_folder_reads_every_format_into_frames(event_folder):
    root = event_folder.root
    info = dataset_info("eventfolder", root=root)
    assert info.classes == ("a-clap", "b-wave", "c-spin") and info.num_classes == 3
    assert info.input_shape == (2, 24, 40) and info.kind == "events"  # the sensor, read from the events
    train = get_dataset("eventfolder", "train", root=root, time_steps=4)
    assert len(train) == 18 == count_samples("eventfolder", "train", root=root)  # notes.txt is not a recording
    files = sorted(event_folder.events)
    train_files = [f for f in files if f.startswith("train")]
    for i, name in enumerate(sorted(train_files, key=lambda f: (f.split("/")[1], f))):
        x, y = train[i]
        assert info.classes[y] == name.split("/")[1]
        assert torch.equal(x, _expected_frames(event_folder.events[name], 4)), name
    by_time = get_dataset("eventfolder", "val", root=root, time_steps=3, binning="time", frame_size=(12, 20))
    first_val = sorted(f for f in files if f.startswith("val/a-clap"))[0]
    assert by_time[0][0].shape == (3, 2, 12, 20)
    assert torch.equal(by_time[0][0], _expected_frames(event_folder.events[first_val], 3, (12, 20), "time"))
    xb, yb = train.batch(torch.tensor([0, 17]))
    assert xb.shape == (2, 4, 2, 24, 40) and yb.tolist() == [0, 2]


def test_event_folder_options_are_completed_for_a_model(event_folder):
    from mdsnn_zoo.data import complete_options

    opts = complete_options("eventfolder", event_folder.root, (2, 34, 34), time_steps=10)
    assert opts == {"time_steps": 10, "binning": "count", "frame_size": [34, 34], "sensor_size": [24, 40]}
    assert complete_options("eventfolder", event_folder.root, None, sensor_size=[30, 50])["frame_size"] == [30, 50]
    with pytest.raises(ValueError, match="event frames have 2 channels"):
        complete_options("eventfolder", event_folder.root, (1, 28, 28))


def test_event_folder_errors_name_the_file_or_the_fix(event_folder, tmp_path):
    root = event_folder.root
    with pytest.raises(ValueError, match="a-clap/0.npy has events up to x=39, y=23, outside the 12x40"):
        get_dataset("eventfolder", "train", root=root, sensor_size=[12, 40], cache=False)
    with pytest.raises(ValueError, match="sensor_size must be .height, width."):
        get_dataset("eventfolder", "train", root=root, sensor_size=[24])
    bad = root / "train" / "a-clap" / "9.npy"
    bad.write_bytes(b"\x93NUMPY not really")
    with pytest.raises(CorruptFileError, match=f"cannot read events from {bad}"):
        get_dataset("eventfolder", "train", root=root, sensor_size=[24, 40], cache=False)
    np.save(bad, np.array([{"x": 1}], dtype=object))  # a pickle inside: refused, never run
    with pytest.raises(CorruptFileError, match=f"{bad}"):
        get_dataset("eventfolder", "train", root=root, sensor_size=[24, 40], cache=False)
    bad.unlink()
    np.savez(bad.with_suffix(".npz"), x=np.arange(3), y=np.arange(3), t=np.arange(3) * 0.5, p=np.ones(3))
    with pytest.raises(CorruptFileError, match="t must be integers .* integer microseconds"):
        get_dataset("eventfolder", "train", root=root, sensor_size=[24, 40], cache=False)
    np.savez(bad.with_suffix(".npz"), x=np.arange(3), y=np.arange(3), t=np.arange(3))
    with pytest.raises(CorruptFileError, match="needs fields x, y, t, p"):
        get_dataset("eventfolder", "train", root=root, sensor_size=[24, 40], cache=False)
    with pytest.raises(DatasetNotFoundError, match="eventfolder split 'train' not found.*recording"):
        get_dataset("eventfolder", "train", root=tmp_path / "none")
    (root / "val" / "d-jump").mkdir()
    (root / "val" / "d-jump" / "0.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="d-jump is a class the train split does not have"):
        get_dataset("eventfolder", "val", root=root, sensor_size=[24, 40])


def test_event_folder_sensor_follows_the_files_and_bins_sort_by_time(event_folder):
    root = event_folder.root
    assert dataset_info("eventfolder", root=root).input_shape == (2, 24, 40)
    ev = {"x": np.array([5, 6, 7]), "y": np.array([30, 1, 2]), "t": np.array([300, 100, 200]), "p": np.array([1, 0, 1])}
    write_events(root / "train" / "b-wave" / "late.bin", ev)  # out of time order, and a taller sensor
    assert dataset_info("eventfolder", root=root).input_shape == (2, 31, 40)  # read again: the files changed
    train = get_dataset("eventfolder", "train", root=root, time_steps=3)
    paths = eventfolder.FILES.samples("train", root)[0]
    frames = train[paths.index(root / "train" / "b-wave" / "late.bin")][0]
    assert [frames[step, ev["p"][i], ev["y"][i], ev["x"][i]].item() for step, i in enumerate((1, 2, 0))] == [1, 1, 1]
    write_events(root / "val" / "a-clap" / "wide.bin", {**ev, "x": np.array([5, 44, 7])})
    with pytest.raises(ValueError, match="wide.bin has events up to x=44, y=30, outside the 31x40"):
        get_dataset("eventfolder", "val", root=root)


def test_event_folder_options_refuse_what_they_cannot_read(event_folder):
    from mdsnn_zoo.data import complete_options

    with pytest.raises(ValueError, match="eventfolder has no option 'sensorsize'"):
        complete_options("eventfolder", event_folder.root, None, sensorsize=[24, 40])
    with pytest.raises(ValueError, match="frame_size must be .height, width."):
        complete_options("eventfolder", event_folder.root, None, frame_size=34)
    with pytest.raises(ValueError, match="binning must be one of"):
        complete_options("eventfolder", event_folder.root, None, binning="space")


def test_eval_reads_other_event_data_as_the_model_was_trained(event_folder):
    from mdsnn_zoo.cli.eval_cmd import data_options_for

    trained = {"time_steps": 10, "binning": "time"}
    assert data_options_for("n-fashion-mnist", trained, "eventfolder", str(event_folder.root)) == {
        "time_steps": 10, "binning": "time", "frame_size": [34, 34], "sensor_size": [24, 40]}
    assert data_options_for("n-fashion-mnist", trained, "n-mnist") == {"time_steps": 10}
    assert data_options_for("n-fashion-mnist", trained, "n-caltech101") == {"time_steps": 10}
    assert data_options_for("n-fashion-mnist", trained, "n-fashion-mnist") == trained
